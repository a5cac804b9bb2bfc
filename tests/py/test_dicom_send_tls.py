"""DICOM over TLS on the sender (`[dicom.send.tls]`), against DCMTK's storescp built with OpenSSL
(Debian's dcmtk: `+tls`, the default BCP 195 non-downgrading profile) as the PACS. Certificates
are made for each run with the openssl command line (the helpers of test_dicom_tls.py): a test CA,
the PACS's certificate for 127.0.0.1, our client certificate from that CA, and a stranger CA.

Checks: results delivered over mutual TLS (storescp requires and verifies our certificate); a
sender that trusts another CA refuses the PACS at the handshake, its objects stay in pending/,
are retried with backoff (attempts in the ledger, nothing parked) and all arrive, in order, once
the right CA is configured; a certificate from our CA for another name is refused; a missing CA file and a key that is not the certificate's stop the
start, naming the file.
"""
import os
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest

from test_dicom_send import Sender, free_port, make_objects, pending, send_bin, wait
from test_dicom_tls import _leaf, make_pki

pytestmark = pytest.mark.skipif(shutil.which("storescp") is None or shutil.which("openssl") is None,
                                reason="DCMTK (Debian package dcmtk) or openssl not installed")


@pytest.fixture()
def pki(tmp_path):
    return make_pki(tmp_path, [("pacs", "ca", "IP:127.0.0.1"), ("sender", "ca", None)])


def tls_table(pki: Path, ca: str = "ca", client: bool = True) -> str:
    t = f'[dicom.send.tls]\nca = "{pki / (ca + ".crt")}"\n'
    if client:
        t += f'cert = "{pki / "sender.crt"}"\nkey = "{pki / "sender.key"}"\n'
    return t


def tls_sender(binary, tmp, port, pki, **kw):
    s = Sender(binary, tmp, port)
    s.cfg.write_text(s.cfg.read_text() + tls_table(pki, **kw))
    return s


def storescp_tls(pki: Path, port: int, out: Path):
    """storescp over TLS; by default it requires and verifies the peer's certificate (-rc)."""
    return subprocess.Popen(["storescp", "+tls", str(pki / "pacs.key"), str(pki / "pacs.crt"), "+cf",
                             str(pki / "ca.crt"), "-aet", "PACS", "-od", str(out), "-uf", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def received(folder: Path):
    return {pydicom.dcmread(f).SOPInstanceUID for f in folder.iterdir()}


def test_results_go_over_mutual_tls(tmp_path, pe_sentinel_bin, pki):
    port = free_port()
    s = tls_sender(send_bin(pe_sentinel_bin), tmp_path, port, pki)
    uids = make_objects(s.outbox / "pending", 4)
    got = tmp_path / "pacs"
    got.mkdir()
    pacs = storescp_tls(pki, port, got)
    try:
        s.start()
        wait(lambda: not pending(s.outbox), 60, "the queue to empty over TLS", s.proc, s.log)
    finally:
        s.stop()
        pacs.terminate()
        pacs.wait(10)
    assert received(got) == set(uids)
    assert "over TLS" in s.log.read_text(), s.log.read_text()[-2000:]
    rows = s.rows("SELECT sop_instance_uid FROM attempts WHERE outcome = 'delivered' ORDER BY id")
    assert [r[0] for r in rows] == uids


def test_a_pacs_signed_by_another_ca_is_refused_and_nothing_is_lost(tmp_path, pe_sentinel_bin, pki):
    port = free_port()
    binary = send_bin(pe_sentinel_bin)
    s = tls_sender(binary, tmp_path, port, pki, ca="stranger-ca")
    uids = make_objects(s.outbox / "pending", 3)
    got = tmp_path / "pacs"
    got.mkdir()
    pacs = storescp_tls(pki, port, got)
    try:
        s.start()
        wait(lambda: (s.outbox / "deliveries.sqlite3").exists() and
             s.count("SELECT COUNT(*) FROM attempts WHERE outcome = 'unreachable' AND detail LIKE 'TLS with the PACS%'")
             >= 3, 60, "three refused handshakes", s.proc, s.log)
        s.stop()
        assert not list(got.iterdir()), "nothing reached a PACS we do not trust"
        assert len(pending(s.outbox)) == 3 and not list((s.outbox / "parked").iterdir())
        detail = s.rows("SELECT detail FROM attempts ORDER BY id DESC LIMIT 1")[0][0]
        assert "[dicom.send.tls] ca" in detail and ("UnknownIssuer" in detail or "unknown" in detail.lower()), detail
        # The configuration fixed: the same queue goes, in order, nothing lost.
        s.cfg.write_text(s.cfg.read_text().replace("stranger-ca.crt", "ca.crt"))
        s.start()
        wait(lambda: not pending(s.outbox), 60, "the queue to empty with the right CA", s.proc, s.log)
    finally:
        s.stop()
        pacs.terminate()
        pacs.wait(10)
    assert received(got) == set(uids)
    rows = s.rows("SELECT sop_instance_uid FROM attempts WHERE outcome = 'delivered' ORDER BY id")
    assert [r[0] for r in rows] == uids


def test_a_pacs_certificate_for_another_name_is_refused(tmp_path, pe_sentinel_bin, pki):
    """Our CA signed it, but for another host: the name check refuses it (server_name = host)."""
    _leaf(pki, "elsewhere", "ca", "DNS:pacs.elsewhere.example")
    port = free_port()
    s = tls_sender(send_bin(pe_sentinel_bin), tmp_path, port, pki)
    make_objects(s.outbox / "pending", 1)
    got = tmp_path / "pacs"
    got.mkdir()
    pacs = subprocess.Popen(["storescp", "+tls", str(pki / "elsewhere.key"), str(pki / "elsewhere.crt"), "+cf",
                             str(pki / "ca.crt"), "-aet", "PACS", "-od", str(got), "-uf", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        s.start()
        wait(lambda: (s.outbox / "deliveries.sqlite3").exists() and
             s.count("SELECT COUNT(*) FROM attempts WHERE outcome = 'unreachable' AND detail LIKE 'TLS with the PACS%'")
             >= 2, 60, "two refused handshakes", s.proc, s.log)
    finally:
        s.stop()
        pacs.terminate()
        pacs.wait(10)
    assert not list(got.iterdir()) and len(pending(s.outbox)) == 1
    detail = s.rows("SELECT detail FROM attempts ORDER BY id DESC LIMIT 1")[0][0]
    assert "NotValidForName" in detail or "name" in detail.lower(), detail


def run_once(binary, cfg):
    return subprocess.run([str(binary), "--config", str(cfg)], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "RUST_LOG": "error"})


def test_missing_or_mismatched_pem_files_stop_the_start_naming_the_file(tmp_path, pe_sentinel_bin, pki):
    binary = send_bin(pe_sentinel_bin)
    s = tls_sender(binary, tmp_path, free_port(), pki)
    base = s.cfg.read_text()
    s.cfg.write_text(base.replace(str(pki / "ca.crt"), str(pki / "missing-ca.crt")))
    out = run_once(binary, s.cfg)
    assert out.returncode == 2, out.stderr
    assert "[dicom.send.tls] ca" in out.stderr and "missing-ca.crt" in out.stderr and "cannot read" in out.stderr, \
        out.stderr
    s.cfg.write_text(base.replace(str(pki / "sender.key"), str(pki / "pacs.key")))
    out = run_once(binary, s.cfg)
    assert out.returncode == 2, out.stderr
    assert "[dicom.send.tls] key" in out.stderr and "pacs.key" in out.stderr and "sender.crt" in out.stderr, out.stderr
