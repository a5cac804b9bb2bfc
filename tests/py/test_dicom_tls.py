"""DICOM over TLS on the receiver (`[dicom.tls]`), against DCMTK's echoscu and storescu built with
OpenSSL (Debian's dcmtk: `+tls`), the default BCP 195 non-downgrading profile. Certificates are made
for each run with the openssl command line: a test CA, the receiver's certificate for 127.0.0.1,
a sender's client certificate from that CA, and one from a stranger CA.

Checks: echo and store over TLS with a client certificate (mutual TLS) succeed and the instance
lands in the drop folder; a plain TCP sender, a TLS sender without a certificate and one whose
certificate another CA signed are all refused, the receiver lives on, and each refusal is in the
association audit.
"""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from test_dicom_receive import ROOT, Receiver, dcm_files, receiver_bin, wait  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None or shutil.which("openssl") is None,
                                reason="DCMTK (Debian package dcmtk) or openssl not installed")


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(d: Path, name: str):
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
             "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=d)


def _leaf(d: Path, name: str, ca: str, san: str | None):
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", cwd=d)
    ext = d / f"{name}.ext"
    ext.write_text(("subjectAltName=" + san + "\n" if san else "") + "basicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-days", "2", "-extfile", str(ext), "-out", f"{name}.crt", cwd=d)


def make_pki(tmp_path: Path, leaves) -> Path:
    """Two CAs (`ca`, `stranger-ca`) and the leaves given as (name, issuing CA, subjectAltName or None)."""
    d = tmp_path / "pki"
    d.mkdir()
    _ca(d, "ca")
    _ca(d, "stranger-ca")
    for name, ca, san in leaves:
        _leaf(d, name, ca, san)
    return d


@pytest.fixture()
def pki(tmp_path):
    return make_pki(tmp_path, [("receiver", "ca", "IP:127.0.0.1"), ("scanner", "ca", None), ("intruder", "stranger-ca", None)])


def _tls(pki: Path, who: str):
    return ["+tls", str(pki / f"{who}.key"), str(pki / f"{who}.crt"), "+cf", str(pki / "ca.crt")]


def test_echo_and_store_over_mutual_tls_and_everyone_else_refused(receiver_bin, tmp_path, pki):
    drop = tmp_path / "drop"
    extra = (f'[dicom.tls]\ncert = "{pki / "receiver.crt"}"\nkey = "{pki / "receiver.key"}"\n'
             f'client_ca = "{pki / "ca.crt"}"\n')
    r = Receiver(receiver_bin, tmp_path, drop, extra=extra)
    try:
        assert "TLS" in r.text(), r.text()
        echo = subprocess.run(["echoscu", *_tls(pki, "scanner"), "-aet", "ECHOSCU", "-aec", "PE-SENTINEL",
                               "127.0.0.1", str(r.port)], capture_output=True, text=True, timeout=30)
        assert echo.returncode == 0, echo.stderr
        ct = ROOT / "tests/data/dicom/CT_small.dcm"
        store = subprocess.run(["storescu", *_tls(pki, "scanner"), "-aet", "STORESCU", "-aec", "PE-SENTINEL",
                                "127.0.0.1", str(r.port), str(ct)], capture_output=True, text=True, timeout=30)
        assert store.returncode == 0, store.stderr
        wait(lambda: len(dcm_files(drop)) == 1, 10, "the stored instance in the drop folder")
        assert dcm_files(drop)[0].read_bytes()[128:132] == b"DICM"

        plain = subprocess.run(["echoscu", "-to", "5", "-ta", "5", "-aet", "ECHOSCU", "-aec", "PE-SENTINEL",
                                "127.0.0.1", str(r.port)], capture_output=True, text=True, timeout=30)
        assert plain.returncode != 0, "plain TCP must not associate with a TLS receiver"
        anonymous = subprocess.run(["echoscu", "+tla", "+cf", str(pki / "ca.crt"), "-aet", "ECHOSCU", "-aec",
                                    "PE-SENTINEL", "127.0.0.1", str(r.port)], capture_output=True, text=True,
                                   timeout=30)
        assert anonymous.returncode != 0, "a sender without a client certificate is refused"
        intruder = subprocess.run(["echoscu", *_tls(pki, "intruder"), "-aet", "ECHOSCU", "-aec", "PE-SENTINEL",
                                   "127.0.0.1", str(r.port)], capture_output=True, text=True, timeout=30)
        assert intruder.returncode != 0, "a certificate from another CA is refused"
        assert r.alive(), r.text()
        wait(lambda: len(r.audit()) == 5, 15, "five audit rows")
        rows = r.audit()
        assert [row[6] for row in rows[:2]] == ["released", "released"], rows
        assert rows[1][2] == 1, "one instance stored over TLS"
        for row in rows[2:]:
            assert row[6].startswith("not established"), rows
        again = subprocess.run(["echoscu", *_tls(pki, "scanner"), "-aet", "ECHOSCU", "-aec", "PE-SENTINEL",
                                "127.0.0.1", str(r.port)], capture_output=True, text=True, timeout=30)
        assert again.returncode == 0, again.stderr
    finally:
        r.stop()


def test_tls_without_client_ca_takes_any_tls_sender_and_bad_key_stops_the_start(receiver_bin, tmp_path, pki):
    drop = tmp_path / "drop"
    extra = f'[dicom.tls]\ncert = "{pki / "receiver.crt"}"\nkey = "{pki / "receiver.key"}"\n'
    r = Receiver(receiver_bin, tmp_path, drop, extra=extra)
    try:
        anonymous = subprocess.run(["echoscu", "+tla", "+cf", str(pki / "ca.crt"), "-aet", "ECHOSCU", "-aec",
                                    "PE-SENTINEL", "127.0.0.1", str(r.port)], capture_output=True, text=True,
                                   timeout=30)
        assert anonymous.returncode == 0, anonymous.stderr
        # The sender checks our certificate: one that does not trust our CA refuses us.
        distrust = subprocess.run(["echoscu", "+tla", "+cf", str(pki / "stranger-ca.crt"), "-aet", "ECHOSCU",
                                   "-aec", "PE-SENTINEL", "127.0.0.1", str(r.port)], capture_output=True, text=True,
                                  timeout=30)
        assert distrust.returncode != 0
        assert r.alive()
    finally:
        r.stop()
    # The key of another certificate: the receiver refuses to start and names both files.
    bad = tmp_path / "bad.toml"
    bad.write_text(r.profile.read_text().replace("receiver.key", "scanner.key"))
    out = subprocess.run([str(receiver_bin), "--config", str(bad), "--listen", "127.0.0.1:0"],
                         capture_output=True, text=True, timeout=30, env={**os.environ, "RUST_LOG": "error"})
    assert out.returncode != 0
    assert "[dicom.tls]" in out.stderr and "scanner.key" in out.stderr and "receiver.crt" in out.stderr, out.stderr


def test_one_over_the_limit_is_rejected_inside_tls(receiver_bin, tmp_path, pki):
    """The transient rejection (local limit exceeded) travels inside TLS, so a TLS sender reads it."""
    import ssl

    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    drop = tmp_path / "drop"
    extra = (f'max_associations = 1\n[dicom.tls]\ncert = "{pki / "receiver.crt"}"\nkey = "{pki / "receiver.key"}"\n'
             f'client_ca = "{pki / "ca.crt"}"\n')
    r = Receiver(receiver_bin, tmp_path, drop, extra=extra)
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "scanner.crt"), str(pki / "scanner.key"))
        ae = AE(ae_title="SCANNER")
        ae.add_requested_context(Verification)
        held = ae.associate("127.0.0.1", r.port, ae_title="PE-SENTINEL", tls_args=(ctx, "127.0.0.1"))
        assert held.is_established, "pynetdicom over TLS with a client certificate"
        busy = subprocess.run(["echoscu", *_tls(pki, "scanner"), "-aet", "ECHOSCU", "-aec", "PE-SENTINEL",
                               "127.0.0.1", str(r.port)], capture_output=True, text=True, timeout=30)
        assert "Rejected Transient" in busy.stderr and "Local Limit Exceeded" in busy.stderr, busy.stderr
        assert held.send_c_echo().Status == 0x0000, "the held association still works"
        held.release()
        wait(lambda: len(r.audit()) == 2, 10, "two audit rows")
        outcomes = [row[6] for row in r.audit()]
        assert any("transient" in o and "local limit exceeded" in o for o in outcomes), outcomes
        assert "released" in outcomes, outcomes
    finally:
        r.stop()
