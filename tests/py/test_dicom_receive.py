"""The DICOM receiver (pe-sentinel-receive) against independent DICOM software: DCMTK's echoscu and
storescu and pynetdicom as the scanner, plus hand-built PDUs (dicom_wire.py) for what no
well-behaved sender does. Each test starts its own receiver on a free loopback port.

The end-to-end test also runs the analysing daemon with the shipped models: a positive phantom
series sent by storescu must give one ALERT and a positive series in `history`, and sending the
same series again must not alert again.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE, debug_logger  # noqa: F401  (debug_logger: handy when a test fails)
from pynetdicom.sop_class import CTImageStorage, ComprehensiveSRStorage, Verification

import dicom_wire as wire

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("storescu") is None, reason="DCMTK (Debian package dcmtk) not installed")


def wait(cond, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Receiver:
    def __init__(self, binary, tmp, drop, allow=("SCANNER@127.0.0.1", "STORESCU@127.0.0.1", "ECHOSCU@127.0.0.1"),
                 extra="", port=0):
        self.tmp = Path(tmp)
        self.drop = Path(drop)
        self.state = self.tmp / "receiver-state"
        self.profile = self.tmp / "receive.toml"
        self.profile.write_text(
            f'[paths]\ndrop_dir = "{self.drop}"\nstate_dir = "{self.tmp / "state"}"\n'
            f'[dicom]\nae_title = "PE-SENTINEL"\nmin_free_mb = 0\nidle_timeout_s = 5\nartim_timeout_s = 5\n{extra}\n')
        self.binary = binary
        self.allow = allow
        self.log = self.tmp / "receiver.log"
        self.start(port)

    def start(self, port=0):
        args = [str(self.binary), "--config", str(self.profile), "--listen", f"127.0.0.1:{port}",
                "--state", str(self.state)]
        for a in self.allow:
            args += ["--allow", a]
        self.err = open(self.log, "ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.err, env={**os.environ, "RUST_LOG": "info"})
        line = self.proc.stdout.readline().decode()
        assert line.startswith("listening on "), f"receiver did not start: {line!r}\n{self.text()}"
        self.port = int(line.rsplit(":", 1)[1])

    def text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self):
        return self.proc.poll() is None

    def audit(self):
        con = __import__("sqlite3").connect(self.state / "associations.sqlite3")
        try:
            return con.execute("SELECT calling_ae, peer, instances, set_aside, failed, bytes, outcome "
                               "FROM associations ORDER BY id").fetchall()
        finally:
            con.close()

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        self.err.close()


@pytest.fixture()
def receiver_bin(pe_sentinel_bin):
    b = pe_sentinel_bin.parent / "pe-sentinel-receive"
    if not b.exists():
        pytest.fail(f"{b} not found: build the workspace (cargo build --workspace)")
    return b


@pytest.fixture(scope="module")
def phantom(tmp_path_factory, pe_sentinel_bin):
    """A positive 32-slice phantom series (the daemon test's evaluation seed), DICOM only."""
    out = tmp_path_factory.mktemp("phantom")
    subprocess.run([str(pe_sentinel_bin), "phantom", "--series", "1", "--slices", "32", "--seed", "2",
                    "--pe-fraction", "1", "--format", "dicom", "--out", str(out)], check=True, capture_output=True)
    return sorted((out / "series-000" / "dicom").glob("*.dcm"))


def dcm_files(d: Path):
    return sorted(p for p in d.glob("*.dcm"))


def test_echo_and_rejections_carry_the_standard_reasons(receiver_bin, tmp_path):
    r = Receiver(receiver_bin, tmp_path, tmp_path / "drop", extra="max_associations = 1")
    try:
        ok = subprocess.run(["echoscu", "-aet", "ECHOSCU", "-aec", "PE-SENTINEL", "127.0.0.1", str(r.port)],
                            capture_output=True, text=True)
        assert ok.returncode == 0, ok.stderr
        wrong_called = subprocess.run(["echoscu", "-aet", "ECHOSCU", "-aec", "SOMEONE", "127.0.0.1", str(r.port)],
                                      capture_output=True, text=True)
        assert wrong_called.returncode != 0
        assert "Rejected Permanent, Source: Service User" in wrong_called.stderr
        assert "Called AE Title Not Recognized" in wrong_called.stderr
        unknown_calling = subprocess.run(["echoscu", "-aet", "STRANGER", "-aec", "PE-SENTINEL", "127.0.0.1",
                                          str(r.port)], capture_output=True, text=True)
        assert "Calling AE Title Not Recognized" in unknown_calling.stderr
        # A known AE title from an address it is not allowed from (127.0.0.2 is loopback too).
        s = wire.connect(r.port, source="127.0.0.2")
        s.sendall(wire.associate_rq("SCANNER", "PE-SENTINEL", [(1, wire.VERIFICATION, [wire.IMPLICIT_LE])]))
        kind, body = wire.read_pdu(s)
        assert kind == 0x03, "A-ASSOCIATE-RJ"
        assert tuple(body[1:4]) == (1, 1, 3), "permanent, service user, calling AE title not recognised"
        s.close()
        # One over the limit: hold one association open (pynetdicom), the next is rejected transient,
        # service provider (presentation), local limit exceeded.
        ae = AE(ae_title="SCANNER")
        ae.add_requested_context(Verification)
        held = ae.associate("127.0.0.1", r.port, ae_title="PE-SENTINEL")
        assert held.is_established
        busy = subprocess.run(["echoscu", "-aet", "ECHOSCU", "-aec", "PE-SENTINEL", "127.0.0.1", str(r.port)],
                              capture_output=True, text=True)
        assert "Rejected Transient, Source: Service Provider (Presentation Related)" in busy.stderr, busy.stderr
        assert "Local Limit Exceeded" in busy.stderr
        assert held.send_c_echo().Status == 0x0000, "the held association still works"
        held.release()
        wait(lambda: len(r.audit()) == 6, 10, "six audit rows")
        outcomes = [row[6] for row in r.audit()]
        assert outcomes[0] == "released"
        assert "called AE title not recognized" in outcomes[1]
        assert "calling AE title not recognized" in outcomes[2] and "calling AE title not recognized" in outcomes[3]
        assert "transient" in outcomes[4] and "local limit exceeded" in outcomes[4]
        assert outcomes[5] == "released"
        assert r.audit()[3][1].startswith("127.0.0.2:"), "the peer address is recorded"
        # After the limit frees up, associations are accepted again.
        again = subprocess.run(["echoscu", "-aet", "ECHOSCU", "-aec", "PE-SENTINEL", "127.0.0.1", str(r.port)],
                               capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
    finally:
        r.stop()


def test_store_other_classes_are_set_aside_and_bad_data_sets_answer_c000(receiver_bin, tmp_path, phantom):
    drop = tmp_path / "drop"
    r = Receiver(receiver_bin, tmp_path, drop)
    try:
        ae = AE(ae_title="SCANNER")
        ae.add_requested_context(CTImageStorage, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
        ae.add_requested_context(ComprehensiveSRStorage)
        a = ae.associate("127.0.0.1", r.port, ae_title="PE-SENTINEL")
        assert a.is_established
        ds = pydicom.dcmread(phantom[0])
        assert a.send_c_store(ds).Status == 0x0000
        sr = pydicom.Dataset()
        sr.SOPClassUID = ComprehensiveSRStorage
        sr.SOPInstanceUID = pydicom.uid.generate_uid()
        sr.SeriesInstanceUID = pydicom.uid.generate_uid()
        sr.Modality = "SR"
        sr.file_meta = pydicom.dataset.FileMetaDataset()
        sr.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
        assert a.send_c_store(sr).Status == 0x0000, "a dose report or SR does not fail the sender's job"
        a.release()
        files = dcm_files(drop)
        assert [f.name for f in files] == [ds.SOPInstanceUID + ".dcm"], "only the CT image is kept"
        back = pydicom.dcmread(files[0])
        assert back.file_meta.TransferSyntaxUID in ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")
        assert back.PixelData == ds.PixelData
        # A data set that does not parse: 0xC000 class, nothing kept, association goes on.
        s, ctx = wire.associate(r.port, "SCANNER", "PE-SENTINEL", [(1, wire.CT_IMAGE, [wire.EXPLICIT_LE])])
        assert ctx[1] == (0, wire.EXPLICIT_LE)
        s.sendall(wire.pdata(1, True, True, wire.c_store_rq(7, wire.CT_IMAGE, "1.2.3.999")))
        s.sendall(wire.pdata(1, False, True, b"\x08\x00\x16\x00UI\xff\xff" + b"garbage" * 10))
        kind, body = wire.read_pdu(s)
        assert kind == 0x04
        assert wire.response_status(body) & 0xF000 == 0xC000
        s.sendall(wire.pdata(1, True, True, wire.c_echo_rq(8)))  # not negotiated for echo, still a command
        kind, body = wire.read_pdu(s)
        assert kind == 0x04 and wire.response_status(body) == 0x0000
        s.sendall(b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00")  # A-RELEASE-RQ
        assert wire.read_pdu(s)[0] == 0x06
        s.close()
        assert dcm_files(drop) == files
        assert not any((drop / ".receiving").iterdir())
    finally:
        r.stop()


def test_sender_gone_mid_instance_and_receiver_killed_leave_no_partial_file(receiver_bin, tmp_path, phantom):
    drop = tmp_path / "drop"
    r = Receiver(receiver_bin, tmp_path, drop)
    try:
        ds_bytes = phantom[1].read_bytes()
        ds = pydicom.dcmread(phantom[1])
        body = ds_bytes[132 + 12 + int.from_bytes(ds_bytes[140:144], "little"):]  # after the file meta
        # 1. The sender disappears (connection reset) after half of the data set.
        s, ctx = wire.associate(r.port, "SCANNER", "PE-SENTINEL", [(1, wire.CT_IMAGE, [wire.EXPLICIT_LE])])
        s.sendall(wire.pdata(1, True, True, wire.c_store_rq(1, wire.CT_IMAGE, ds.SOPInstanceUID)))
        s.sendall(wire.pdata(1, False, False, body[: len(body) // 2]))
        wait(lambda: any((drop / ".receiving").iterdir()), 10, "the partial instance being written")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
        wait(lambda: len(r.audit()) == 1, 10, "the aborted association's audit row")
        assert r.audit()[0][6].startswith("aborted"), r.audit()
        assert not any((drop / ".receiving").iterdir()), "the partial instance is removed"
        assert dcm_files(drop) == []
        # 2. The receiver itself is killed mid-instance: the next start removes the partial file.
        s, _ = wire.associate(r.port, "SCANNER", "PE-SENTINEL", [(1, wire.CT_IMAGE, [wire.EXPLICIT_LE])])
        s.sendall(wire.pdata(1, True, True, wire.c_store_rq(1, wire.CT_IMAGE, ds.SOPInstanceUID)))
        s.sendall(wire.pdata(1, False, False, body[: len(body) // 2]))
        wait(lambda: any((drop / ".receiving").iterdir()), 10, "the partial instance being written")
        r.stop(signal.SIGKILL)
        s.close()
        assert any((drop / ".receiving").iterdir()), "killed mid-instance, its temporary file is there"
        assert dcm_files(drop) == [], "but nothing the analyser would take"
        r.start()
        assert not any((drop / ".receiving").iterdir()), "removed at start"
        assert "partial instance(s) left" in r.text()
        # 3. storescu killed mid-series: whatever reached the drop folder is complete.
        p = subprocess.Popen(["storescu", "-aet", "STORESCU", "-aec", "PE-SENTINEL", "127.0.0.1", str(r.port),
                              *map(str, phantom)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait(lambda: len(dcm_files(drop)) >= 3, 30, "three stored instances")
        p.kill()
        p.wait()
        # The audit survives the restart: the aborted association's row, then storescu's (the killed
        # receiver's association never ended, so it has none).
        wait(lambda: len(r.audit()) == 2, 10, "storescu's association ended")
    except AssertionError:
        print(r.text())
        raise
    finally:
        r.stop()
    for f in dcm_files(drop):
        back = pydicom.dcmread(f)
        assert len(back.PixelData) == 512 * 512 * 2, f"{f} is complete"
    assert not any((drop / ".receiving").iterdir())


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root (CI runs as root)")
def test_full_spool_answers_a700_keeps_nothing_half_written_and_resumes(receiver_bin, tmp_path, phantom):
    drop = tmp_path / "drop"
    drop.mkdir()
    # 2 MB: room for three of the ~0.5 MB slices and the receiver's folder.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(drop)], check=True)
    try:
        r = Receiver(receiver_bin, tmp_path, drop)
        try:
            ae = AE(ae_title="SCANNER")
            ae.add_requested_context(CTImageStorage, "1.2.840.10008.1.2.1")
            a = ae.associate("127.0.0.1", r.port, ae_title="PE-SENTINEL")
            assert a.is_established
            statuses = [a.send_c_store(pydicom.dcmread(f)).Status for f in phantom[:6]]
            assert statuses[:3] == [0, 0, 0] and statuses[3:] == [0xA700] * 3, [hex(s) for s in statuses]
            stored = dcm_files(drop)
            assert len(stored) == 3
            for f in stored:
                assert len(pydicom.dcmread(f).PixelData) == 512 * 512 * 2, "complete"
            assert not any((drop / ".receiving").iterdir()), "the failed instances left no temporary file"
            # Space returns (the analysed files are taken away): the same association goes on.
            for f in stored:
                f.unlink()
            statuses = [a.send_c_store(pydicom.dcmread(f)).Status for f in phantom[3:6]]
            assert statuses == [0, 0, 0]
            a.release()
            assert len(dcm_files(drop)) == 3
            wait(lambda: len(r.audit()) == 1, 10, "audit row")
            assert r.audit()[0][2:5] == (6, 0, 3), "6 stored, 0 set aside, 3 failed"
            assert r.alive()
        finally:
            r.stop()
    finally:
        subprocess.run(["umount", str(drop)], check=True)


def test_garbage_and_truncated_pdus_abort_and_the_receiver_lives_on(receiver_bin, tmp_path):
    r = Receiver(receiver_bin, tmp_path, tmp_path / "drop")
    try:
        # Garbage instead of an A-ASSOCIATE-RQ.
        s = wire.connect(r.port)
        s.sendall(b"\x99" + os.urandom(200))
        pdu = wire.read_pdu(s)
        assert pdu is None or pdu[0] == 0x07, f"A-ABORT or a closed connection, got {pdu!r}"
        s.close()
        # A truncated A-ASSOCIATE-RQ (the length says more than comes), then silence: the ARTIM timer.
        s = wire.connect(r.port)
        rq = wire.associate_rq("SCANNER", "PE-SENTINEL", [(1, wire.VERIFICATION, [wire.IMPLICIT_LE])])
        s.sendall(rq[: len(rq) // 2])
        s.close()
        # Inside an association: a P-DATA whose command is garbage, and a PDU of an unknown type.
        for bad in (wire.pdata(1, True, True, b"\x00\x00\x00\x00\xff\xff\xff\x7f" + b"x" * 20),
                    wire.pdata(9, True, True, wire.c_echo_rq(1)),
                    b"\x0a\x00\x00\x00\x00\x02\x00\x00",
                    wire.pdata(1, False, True, b"data without a command")):
            s, ctx = wire.associate(r.port, "SCANNER", "PE-SENTINEL", [(1, wire.VERIFICATION, [wire.IMPLICIT_LE])])
            s.sendall(bad)
            pdu = wire.read_pdu(s)
            assert pdu is not None and pdu[0] == 0x07, f"A-ABORT for {bad[:12]!r}, got {pdu!r}"
            assert pdu[1][2] == 2, "source: service provider"
            s.close()
        # A P-DATA cut short, then the sender vanishes.
        s, _ = wire.associate(r.port, "SCANNER", "PE-SENTINEL", [(1, wire.VERIFICATION, [wire.IMPLICIT_LE])])
        s.sendall(wire.pdata(1, True, True, wire.c_echo_rq(1))[:9])
        s.close()
        assert r.alive()
        ok = subprocess.run(["echoscu", "-aet", "ECHOSCU", "-aec", "PE-SENTINEL", "127.0.0.1", str(r.port)],
                            capture_output=True, text=True)
        assert ok.returncode == 0, ok.stderr + r.text()
        wait(lambda: len(r.audit()) >= 8, 15, "audit rows of the broken associations")
        assert sum(row[6].startswith("aborted") for row in r.audit()) >= 5, r.audit()
    finally:
        r.stop()


def test_storescu_series_gives_one_alert_positive_history_and_a_second_send_no_second_alert(
        pe_sentinel_bin, receiver_bin, tmp_path, phantom):
    drop, state = tmp_path / "drop", tmp_path / "state"
    drop.mkdir()
    log = open(tmp_path / "daemon.log", "wb")
    daemon = subprocess.Popen([str(pe_sentinel_bin), "run", "--config", str(ROOT / "board" / "x86-cpu.toml"),
                               "--drop", str(drop), "--state", str(state)], stdout=subprocess.DEVNULL, stderr=log,
                              env={**{k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}, "RUST_LOG": "info"})
    daemon_log = lambda: (tmp_path / "daemon.log").read_text(errors="replace")  # noqa: E731
    r = Receiver(receiver_bin, tmp_path, drop)
    done = drop / "done"
    try:
        wait(lambda: "watching drop folder" in daemon_log() or daemon.poll() is not None, 180, "daemon start")
        assert daemon.poll() is None, daemon_log()
        for rnd in (1, 2):
            st = subprocess.run(["storescu", "-aet", "STORESCU", "-aec", "PE-SENTINEL", "127.0.0.1", str(r.port),
                                 *map(str, phantom)], capture_output=True, text=True)
            assert st.returncode == 0, st.stderr
            wait(lambda: len(list(done.glob("*.dcm"))) + len(list(done.glob("*.dcm.*"))) == 32 * rnd, 300,
                 f"round {rnd}: {32 * rnd} files analysed")
            assert daemon_log().count("ALERT") == 1, daemon_log()
        assert "same content as a file already analysed" in daemon_log()
        hist = subprocess.run([str(pe_sentinel_bin), "history", "--state", str(state), "--json"],
                              capture_output=True, text=True, check=True)
        rows = json.loads(hist.stdout)
        assert len(rows) == 1 and rows[0]["verdict"] == "positive", rows
        assert rows[0]["series"] == pydicom.dcmread(phantom[0]).SeriesInstanceUID
        assoc = subprocess.run([str(pe_sentinel_bin), "history", "--associations", "--state", str(r.state),
                                "--json"], capture_output=True, text=True, check=True)
        rows = json.loads(assoc.stdout)
        assert [(x["calling_ae"], x["instances"], x["outcome"]) for x in rows] == [("STORESCU", 32, "released")] * 2
        assert rows[0]["bytes"] > 32 * 512 * 512 * 2
    finally:
        r.stop()
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        log.close()
