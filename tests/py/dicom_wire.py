"""DICOM upper-layer PDUs built byte by byte (PS3.8 section 9.3), for the tests that must do what
no well-behaved sender does: stop in the middle of an instance, send garbage or truncated PDUs,
send a data set that does not parse. Written from the standard, independent of the receiver."""
import socket
import struct

APP_CONTEXT = "1.2.840.10008.3.1.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
VERIFICATION = "1.2.840.10008.1.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def _uid(s: str) -> bytes:
    b = s.encode()
    return b + b"\0" if len(b) % 2 else b


def _item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body)) + body


def associate_rq(calling: str, called: str, contexts, max_pdu: int = 65536) -> bytes:
    """contexts: [(id, abstract_syntax, [transfer_syntax, ...])]."""
    body = struct.pack(">HH", 1, 0) + called.ljust(16).encode() + calling.ljust(16).encode() + bytes(32)
    body += _item(0x10, APP_CONTEXT.encode())
    for pc_id, abstract, tss in contexts:
        sub = _item(0x30, _uid(abstract)) + b"".join(_item(0x40, _uid(t)) for t in tss)
        body += _item(0x20, struct.pack(">BBBB", pc_id, 0, 0, 0) + sub)
    user = _item(0x51, struct.pack(">I", max_pdu)) + _item(0x52, b"1.2.3.4")
    body += _item(0x50, user)
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


def pdata(pc_id: int, command: bool, last: bool, data: bytes) -> bytes:
    header = (1 if command else 0) | (2 if last else 0)
    pdv = struct.pack(">IB", len(data) + 2, pc_id) + bytes([header]) + data
    return struct.pack(">BBI", 0x04, 0, len(pdv)) + pdv


def _elem(group: int, element: int, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\0"
    return struct.pack("<HHI", group, element, len(value)) + value


def command(fields) -> bytes:
    """fields: [(element, bytes)] of group 0000, in order; the group length is prepended."""
    body = b"".join(_elem(0x0000, e, v) for e, v in fields)
    return _elem(0x0000, 0x0000, struct.pack("<I", len(body))) + body


def c_store_rq(message_id: int, sop_class: str, sop_instance: str) -> bytes:
    return command([
        (0x0002, sop_class.encode()),
        (0x0100, struct.pack("<H", 0x0001)),
        (0x0110, struct.pack("<H", message_id)),
        (0x0700, struct.pack("<H", 0)),
        (0x0800, struct.pack("<H", 0x0000)),
        (0x1000, sop_instance.encode()),
    ])


def c_echo_rq(message_id: int) -> bytes:
    return command([
        (0x0002, _uid(VERIFICATION)),
        (0x0100, struct.pack("<H", 0x0030)),
        (0x0110, struct.pack("<H", message_id)),
        (0x0800, struct.pack("<H", 0x0101)),
    ])


def read_pdu(sock: socket.socket):
    """(type, body) of the next PDU, or None when the peer closed."""
    head = _read_exact(sock, 6)
    if head is None:
        return None
    kind, _, length = struct.unpack(">BBI", head)
    body = _read_exact(sock, length)
    return (kind, body) if body is not None else None


def _read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except (ConnectionResetError, socket.timeout):
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


def accepted_contexts(ac_body: bytes):
    """{pc_id: (result, transfer_syntax)} from an A-ASSOCIATE-AC body."""
    out = {}
    pos = 68
    while pos + 4 <= len(ac_body):
        kind, _, length = struct.unpack(">BBH", ac_body[pos:pos + 4])
        item = ac_body[pos + 4:pos + 4 + length]
        if kind == 0x21:
            pc_id, result = item[0], item[2]
            ts = item[8:8 + struct.unpack(">H", item[6:8])[0]].rstrip(b"\0").decode()
            out[pc_id] = (result, ts)
        pos += 4 + length
    return out


def response_status(pdata_body: bytes) -> int:
    """The Status (0000,0900) of a response command carried in one P-DATA-TF body."""
    pos = 0
    data = b""
    while pos < len(pdata_body):
        length = struct.unpack(">I", pdata_body[pos:pos + 4])[0]
        data += pdata_body[pos + 6:pos + 4 + length]
        pos += 4 + length
    i = 0
    while i + 8 <= len(data):
        g, e, n = struct.unpack("<HHI", data[i:i + 8])
        if (g, e) == (0x0000, 0x0900):
            return struct.unpack("<H", data[i + 8:i + 10])[0]
        i += 8 + n
    raise ValueError("no Status in the response")


def connect(port: int, host: str = "127.0.0.1", source: str | None = None, timeout: float = 10.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if source:
        s.bind((source, 0))
    s.connect((host, port))
    return s


def associate(port: int, calling: str, called: str, contexts, **kw):
    """Opens a connection and associates; returns (socket, {pc_id: (result, ts)})."""
    s = connect(port, **kw)
    s.sendall(associate_rq(calling, called, contexts))
    pdu = read_pdu(s)
    assert pdu is not None and pdu[0] == 0x02, f"expected A-ASSOCIATE-AC, got {pdu!r}"
    return s, accepted_contexts(pdu[1])
