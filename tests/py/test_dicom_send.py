"""Results back to the PACS (issue 22), checked with software nobody here wrote.

* The analyser's Secondary Capture and Comprehensive 3D SR: `dciodvfy` (dicom3tools) finds no
  error in either, and pydicom reads back what they must say (same study, DERIVED\\SECONDARY,
  burned-in annotation, NOT FOR DIAGNOSIS, SNOMED CT 59282003, region on the key slice, model
  sha256).
* pe-sentinel-send against DCMTK's storescp and a pynetdicom SCP as the PACS: a PACS that starts
  late, one that refuses (0xA700 retried, 0xC000 parked), and the sender killed mid-queue
  (nothing lost; at most the object in flight sent twice, with the same SOP Instance UID).
"""
import os
import pathlib
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ROOT = pathlib.Path(__file__).resolve().parents[2]
SC = "1.2.840.10008.5.1.4.1.1.7"
SR3D = "1.2.840.10008.5.1.4.1.1.88.34"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send_bin(pe_sentinel_bin: pathlib.Path) -> pathlib.Path:
    b = pe_sentinel_bin.parent / "pe-sentinel-send"
    if not b.exists():
        pytest.fail(f"{b} not found: build it with `cargo build --workspace`")
    return b


def send_table(port: int, **extra) -> str:
    t = (f'[dicom.send]\npeer_ae = "PACS"\nhost = "127.0.0.1"\nport = {port}\n'
         'retry_initial_s = 0.2\nretry_max_s = 1.0\ntimeout_s = 5.0\n')
    return t + "".join(f"{k} = {v}\n" for k, v in extra.items())


def profile(tmp: pathlib.Path, port: int, **extra) -> pathlib.Path:
    text = (ROOT / "board" / "x86-cpu.toml").read_text()
    text = text.replace("quiet_s = 20.0", "quiet_s = 4.0").replace(
        'dir = "../models"', f'dir = "{ROOT / "models"}"')
    p = tmp / "profile.toml"
    p.write_text(text + "\n" + send_table(port, **extra))
    return p


def wait(cond, limit, what, proc=None, log=None):
    end = time.time() + limit
    while time.time() < end:
        if cond():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.1)
    detail = log.read_text() if log is not None and log.exists() else ""
    pytest.fail(f"timed out waiting for {what}\n{detail[-4000:]}")


def pending(outbox: pathlib.Path):
    return sorted(p for p in (outbox / "pending").glob("*.dcm"))


# ---------------------------------------------------------------- the objects the analyser writes

@pytest.fixture(scope="module")
def results(tmp_path_factory, pe_sentinel_bin):
    """One positive and one negative phantom series through `pe-sentinel run` with
    send_negative = true: the outbox's objects and the journal's verdicts."""
    tmp = tmp_path_factory.mktemp("results")
    drop, state = tmp / "drop", tmp / "state"
    drop.mkdir()
    for name, seed, frac in [("pos", 2, "1"), ("neg", 5, "0")]:
        subprocess.run([str(pe_sentinel_bin), "phantom", "--series", "1", "--slices", "16", "--seed", str(seed),
                        "--pe-fraction", frac, "--format", "dicom", "--out", str(tmp / name)],
                       check=True, capture_output=True)
    cfg = profile(tmp, free_port(), send_negative="true")
    log = tmp / "run.log"
    with open(log, "w") as lf:
        d = subprocess.Popen([str(pe_sentinel_bin), "run", "--config", str(cfg), "--drop", str(drop),
                              "--state", str(state)], stderr=lf, stdout=lf)
    try:
        wait(lambda: "watching drop folder" in log.read_text(), 180, "start", d, log)
        for name in ["pos", "neg"]:
            sub = drop / name
            sub.mkdir()
            for f in sorted((tmp / name / "series-000" / "dicom").glob("*.dcm")):
                shutil.copy(f, sub / f.name)
        outbox = state / "outbox"
        wait(lambda: len(list((drop / "done").rglob("*.dcm"))) == 32, 300, "32 slices analysed", d, log)
        wait(lambda: (outbox / "pending").exists() and len(pending(outbox)) >= 4, 60, "4 objects in the outbox", d, log)
    finally:
        d.send_signal(signal.SIGTERM)
        d.wait(60)
    db = sqlite3.connect(state / "journal.sqlite3")
    verdicts = dict(db.execute("SELECT series, verdict FROM series").fetchall())
    text = log.read_text()
    # Each series closed once, whole (a series closed early by a slow start would reopen).
    assert "reopened" not in text, text[-3000:]
    return {"outbox": outbox, "files": pending(outbox), "verdicts": verdicts, "tmp": tmp, "log": text}


def test_sc_and_sr_pass_dciodvfy_without_errors(results):
    assert shutil.which("dciodvfy"), "dciodvfy missing: install the Debian package dicom3tools"
    assert len(results["files"]) == 4, results["log"][-3000:]
    for f in results["files"]:
        out = subprocess.run(["dciodvfy", str(f)], capture_output=True, text=True)
        text = out.stdout + out.stderr
        errors = [l for l in text.splitlines() if l.startswith("Error")]
        assert not errors, f"{f.name}:\n{text}"
        # dciodvfy recognised the IOD it was meant to check.
        assert ("SCImage" in text or "Secondary Capture" in text) if "-sc" in f.name else "Comprehensive3DSR" in text, text


def test_pydicom_reads_what_the_objects_must_say(results):
    manifests = {}
    for role in ["classifier", "detector"]:
        for line in (ROOT / "models" / f"{role}-fp32.toml").read_text().splitlines():
            if line.startswith("sha256"):
                manifests[role] = line.split('"')[1]
    by_series = {}
    for f in results["files"]:
        ds = pydicom.dcmread(f)
        by_series.setdefault(f.name.split("-")[0], []).append(ds)
    assert len(by_series) == 2
    for objs in by_series.values():
        sc, sr = sorted(objs, key=lambda d: d.SOPClassUID != SC)
        assert sc.SOPClassUID == SC and sr.SOPClassUID == SR3D
        src_ref = sc.SourceImageSequence[0]
        # The source slice is the analysed series' own: same study, other series.
        assert sc.StudyInstanceUID == sr.StudyInstanceUID
        assert sc.SeriesInstanceUID != sr.SeriesInstanceUID
        assert list(sc.ImageType) == ["DERIVED", "SECONDARY"]
        assert sc.BurnedInAnnotation == "YES"
        assert sc.PhotometricInterpretation == "RGB" and sc.pixel_array.shape == (512, 512, 3)
        assert "NOT FOR DIAGNOSIS" in sc.SeriesDescription and "NOT FOR DIAGNOSIS" in sr.SeriesDescription
        # The burned-in banner: yellow text on black in the top rows.
        top = sc.pixel_array[:20, :300].reshape(-1, 3).tolist()
        assert [255, 220, 0] in top and [0, 0, 0] in top
        # SR: TID 1500 with the finding, the algorithm and both models' sha256.
        assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
        assert sr.ConceptNameCodeSequence[0].CodeValue == "126000"
        items = list(walk(sr))
        codes = [(i.ConceptCodeSequence[0].CodeValue, i.ConceptCodeSequence[0].CodingSchemeDesignator)
                 for i in items if i.ValueType == "CODE"]
        assert ("59282003", "SCT") in codes
        texts = [i.TextValue for i in items if i.ValueType == "TEXT"]
        for sha in manifests.values():
            assert any(sha in t for t in texts), texts
        # The shipped models say synthetic-phantom: the results are marked NOT FOR DIAGNOSIS.
        assert sum("training_domain synthetic-phantom" in t for t in texts) == 2, texts
        assert "NOT FOR DIAGNOSIS - DEMO MODELS" in texts
        # ... and burned in: three banner lines (NOT FOR DIAGNOSIS, the statement wrapped in two).
        assert [255, 220, 0] in sc.pixel_array[38:56].reshape(-1, 3).tolist()
        assert "pe-sentinel" in texts
        evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
        assert evidence.StudyInstanceUID == sc.StudyInstanceUID
        refs = {r.ReferencedSOPInstanceUID for s in evidence.ReferencedSeriesSequence for r in s.ReferencedSOPSequence}
        assert refs == {src_ref.ReferencedSOPInstanceUID, sc.SOPInstanceUID}
        # The verdict stated is the journal's.
        presence = [i.ConceptCodeSequence[0].CodeValue for i in items
                    if i.ValueType == "CODE" and i.ConceptNameCodeSequence[0].CodeValue == "59282003"]
        verdicts = set(results["verdicts"].values())
        assert verdicts == {"positive", "negative"}, results["verdicts"]
        scoords = [i for i in items if i.ValueType == "SCOORD"]
        if presence == ["52101004"]:  # Present
            assert scoords, "a positive result marks the region"
            for s in scoords:
                on = s.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
                assert on == src_ref.ReferencedSOPInstanceUID
                x = list(s.GraphicData)
                assert len(x) == 10 and x[:2] == x[-2:] and all(0 <= v <= 512 for v in x)
        else:
            assert presence == ["2667000"] and not scoords  # Absent, no region


def walk(ds):
    for item in getattr(ds, "ContentSequence", []):
        yield item
        yield from walk(item)


# ---------------------------------------------------------------- the sender against real PACSes

def make_objects(folder: pathlib.Path, n: int):
    """n small Secondary Capture objects, as any outbox may hold."""
    folder.mkdir(parents=True, exist_ok=True)
    uids = []
    for i in range(n):
        ds = Dataset()
        ds.SOPClassUID = SC
        ds.SOPInstanceUID = generate_uid()
        ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
        ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.2"
        ds.PatientName, ds.PatientID, ds.Modality, ds.ConversionType = "TEST^SEND", "S1", "OT", "WSD"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = 8
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit, ds.PixelRepresentation = 7, 0
        ds.PixelData = bytes([i % 256]) * 64
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = SC, ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        ds.save_as(folder / f"{1000 + i:013}-1-sc.dcm", enforce_file_format=True)
        uids.append(ds.SOPInstanceUID)
    return uids


class Sender:
    def __init__(self, binary, tmp, port, **extra):
        self.binary, self.tmp = binary, tmp
        self.cfg = tmp / "send.toml"
        self.cfg.write_text(f'[paths]\nstate_dir = "{tmp / "state"}"\ndrop_dir = "unused"\n' + send_table(port, **extra))
        self.outbox = tmp / "state" / "outbox"
        self.log = tmp / "send.log"
        self.proc = None

    def start(self):
        lf = open(self.log, "a")
        self.proc = subprocess.Popen([str(self.binary), "--config", str(self.cfg)], stdout=lf, stderr=lf,
                                     env={**os.environ, "RUST_LOG": "info"})

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(30) == 0, self.log.read_text()[-3000:]

    def kill9(self):
        self.proc.kill()
        self.proc.wait(10)

    def count(self, sql):
        """rows(sql)[0][0], or 0 while the sender is still creating its ledger."""
        try:
            return self.rows(sql)[0][0]
        except sqlite3.OperationalError:
            return 0

    def rows(self, sql):
        db = sqlite3.connect(self.outbox / "deliveries.sqlite3")
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()


def test_a_storescp_that_starts_late_gets_everything_in_order(tmp_path, pe_sentinel_bin):
    assert shutil.which("storescp"), "storescp missing: install the Debian package dcmtk"
    port = free_port()
    s = Sender(send_bin(pe_sentinel_bin), tmp_path, port)
    uids = make_objects(s.outbox / "pending", 6)
    s.start()
    try:
        # Nobody listens yet: attempts are recorded as unreachable, nothing is parked or lost.
        wait(lambda: (s.outbox / "deliveries.sqlite3").exists() and
             s.count("SELECT COUNT(*) FROM attempts WHERE outcome = 'unreachable'") >= 3,
             30, "three unreachable attempts", s.proc, s.log)
        assert len(pending(s.outbox)) == 6
        got = tmp_path / "pacs"
        got.mkdir()
        pacs = subprocess.Popen(["storescp", "-aet", "PACS", "-od", str(got), "-uf", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait(lambda: not pending(s.outbox), 30, "the queue to empty", s.proc, s.log)
        finally:
            pacs.terminate()
            pacs.wait(10)
    finally:
        s.stop()
    received = {pydicom.dcmread(f).SOPInstanceUID for f in got.iterdir()}
    assert received == set(uids)
    delivered = s.rows("SELECT sop_instance_uid FROM attempts WHERE outcome = 'delivered' ORDER BY id")
    assert [r[0] for r in delivered] == uids, "delivered in the outbox's order"
    assert not list((s.outbox / "parked").iterdir())


def pynetdicom_pacs(port, answer):
    """A pynetdicom Storage SCP on `port`; answer(ds) -> status. Returns (server, received list)."""
    from pynetdicom import AE, evt, AllStoragePresentationContexts
    received = []

    def on_store(event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        status = answer(ds)
        received.append((ds.SOPInstanceUID, status))
        return status

    ae = AE(ae_title="PACS")
    ae.supported_contexts = AllStoragePresentationContexts
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    return server, received


def test_refusals_are_retried_or_parked_by_status_class(tmp_path, pe_sentinel_bin):
    port = free_port()
    s = Sender(send_bin(pe_sentinel_bin), tmp_path, port, max_attempts=5)
    uids = make_objects(s.outbox / "pending", 3)
    tries = {}

    def answer(ds):
        u = ds.SOPInstanceUID
        tries[u] = tries.get(u, 0) + 1
        if u == uids[1]:
            return 0xC000  # cannot understand: never going to work
        if u == uids[0] and tries[u] <= 2:
            return 0xA700  # out of resources: try again later
        return 0x0000

    server, received = pynetdicom_pacs(port, answer)
    try:
        s.start()
        wait(lambda: not pending(s.outbox), 60, "the queue to empty", s.proc, s.log)
    finally:
        s.stop()
        server.shutdown()
    assert tries[uids[0]] == 3 and tries[uids[1]] == 1 and tries[uids[2]] == 1, tries
    rows = s.rows("SELECT sop_instance_uid, outcome, status FROM attempts ORDER BY id")
    assert rows[:2] == [(uids[0], "retry", 0xA700)] * 2
    assert (uids[0], "delivered", 0) in rows and (uids[2], "delivered", 0) in rows
    assert (uids[1], "parked", 0xC000) in rows
    parked = list((s.outbox / "parked").glob("*.dcm"))
    assert len(parked) == 1 and pydicom.dcmread(parked[0]).SOPInstanceUID == uids[1]
    reason = pathlib.Path(str(parked[0]) + ".reason.txt").read_text()
    assert "0xc000" in reason and "cannot understand" in reason, reason


def test_a_sender_killed_mid_queue_loses_nothing_and_repeats_at_most_the_object_in_flight(tmp_path, pe_sentinel_bin):
    port = free_port()
    s = Sender(send_bin(pe_sentinel_bin), tmp_path, port)
    uids = make_objects(s.outbox / "pending", 20)

    def slow(ds):
        time.sleep(0.15)
        return 0x0000

    server, received = pynetdicom_pacs(port, slow)
    try:
        s.start()
        wait(lambda: len(received) >= 6, 60, "six objects received", s.proc, s.log)
        s.kill9()
        left = len(pending(s.outbox))
        assert 0 < left < 20
        s.start()
        wait(lambda: not pending(s.outbox), 60, "the queue to empty after the restart", s.proc, s.log)
    finally:
        s.stop()
        server.shutdown()
    got = [u for u, _ in received]
    assert set(got) == set(uids), "nothing lost"
    repeats = len(got) - len(set(got))
    assert repeats <= 1, f"{repeats} objects sent twice"
    assert s.rows("SELECT COUNT(DISTINCT sop_instance_uid) FROM delivered")[0][0] == 20


def test_a_rejected_association_parks_nothing_and_delivers_once_the_pacs_knows_us(tmp_path, pe_sentinel_bin):
    from pynetdicom import AE, AllStoragePresentationContexts
    port = free_port()
    s = Sender(send_bin(pe_sentinel_bin), tmp_path, port)
    uids = make_objects(s.outbox / "pending", 2)
    wrong = AE(ae_title="OTHER")
    wrong.require_called_aet = True  # rejects our called AE "PACS": permanent, called AE not recognised
    wrong.supported_contexts = AllStoragePresentationContexts
    server = wrong.start_server(("127.0.0.1", port), block=False)
    try:
        s.start()
        wait(lambda: (s.outbox / "deliveries.sqlite3").exists() and
             s.count("SELECT COUNT(*) FROM attempts WHERE outcome = 'unreachable' "
                     "AND detail LIKE '%rejected the association (permanent)%'") >= 2,
             30, "two rejected associations", s.proc, s.log)
    finally:
        server.shutdown()
    assert len(pending(s.outbox)) == 2 and not list((s.outbox / "parked").iterdir())
    server, received = pynetdicom_pacs(port, lambda ds: 0x0000)
    try:
        wait(lambda: not pending(s.outbox), 30, "delivery to the right PACS", s.proc, s.log)
    finally:
        s.stop()
        server.shutdown()
    assert [u for u, _ in received] == uids
