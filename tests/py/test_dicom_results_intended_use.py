"""Results to the PACS and intended use (issues 21 and 22), with the real daemon, the real sender
and DCMTK's storescp as the PACS; objects checked by dciodvfy (dicom3tools) and pydicom.

* NOT FOR DIAGNOSIS follows the loaded models' `training_domain` (the rule behind the `demo-model`
  verdict): manifests copied with `clinical-ctpa` give results without it; the shipped
  (synthetic-phantom) models' results carry it (also checked in test_dicom_send.py).
* `send_not_analysed = true`: a real non-contrast 5 mm series (TCIA Lung-PET-CT-Dx, in
  tests/data/realct) ends not-analysed and the PACS gets a text-card Secondary Capture and an SR
  saying it was NOT analysed and why, in the patient's study; a real contrast axial slice read by
  the demo models (verdict demo-model) gets the same kind of result saying demo models are loaded,
  and never a finding or a score.
"""
import pathlib
import shutil
import signal
import sqlite3
import subprocess

import pydicom
import pytest

from test_dicom_send import ROOT, SC, SR3D, Sender, free_port, pending, send_bin, wait, walk

REALCT = ROOT / "tests" / "data" / "realct"
LUNG = ["lung-dx-a0001-5mm-18.dcm", "lung-dx-a0001-5mm-19.dcm", "lung-dx-a0001-5mm-20.dcm"]
CONTRAST = "sbu-A058062-axial-contrast.dcm"
YELLOW = [255, 220, 0]


def profile(tmp: pathlib.Path, port: int, models: pathlib.Path, **send) -> pathlib.Path:
    text = (ROOT / "board" / "x86-cpu.toml").read_text()
    # quiet_s above the drop folder's 3 s settle time: files copied into a new series folder before
    # the daemon's watch on it exists are found by its rescan and taken once settled (3 s), while
    # later ones come by event at once. With quiet_s = 3 the series could close between the two and
    # reopen (two results for one series): it did on a loaded machine, 2026-12-07.
    text = text.replace("quiet_s = 20.0", "quiet_s = 6.0").replace('dir = "../models"', f'dir = "{models}"')
    table = (f'[dicom.send]\npeer_ae = "PACS"\nhost = "127.0.0.1"\nport = {port}\n'
             'retry_initial_s = 0.2\nretry_max_s = 1.0\ntimeout_s = 5.0\n')
    p = tmp / "profile.toml"
    p.write_text(text + "\n" + table + "".join(f"{k} = {v}\n" for k, v in send.items()))
    return p


class Daemon:
    def __init__(self, binary, tmp, cfg):
        self.log = tmp / "run.log"
        self.drop, self.state = tmp / "drop", tmp / "state"
        self.drop.mkdir()
        lf = open(self.log, "w")
        self.proc = subprocess.Popen([str(binary), "run", "--config", str(cfg), "--drop", str(self.drop),
                                      "--state", str(self.state)], stderr=lf, stdout=lf)
        wait(lambda: "watching drop folder" in self.log.read_text(), 180, "start", self.proc, self.log)

    def put(self, sub, files):
        d = self.drop / sub
        d.mkdir()
        for f in files:
            shutil.copy(f, d / f.name)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)

    def series(self):
        db = sqlite3.connect(self.state / "journal.sqlite3")
        try:
            return {r[0]: r[1:] for r in db.execute("SELECT series, verdict, reasons, closed_unix_ms FROM series")}
        finally:
            db.close()


def texts(sr):
    return [i.TextValue for i in walk(sr) if i.ValueType == "TEXT"]


# ---------------------------------------------------------------- NOT FOR DIAGNOSIS and the training domain

def test_not_for_diagnosis_follows_the_models_training_domain(tmp_path, pe_sentinel_bin):
    """The same phantom series and settings with manifests saying clinical-ctpa: no NOT FOR
    DIAGNOSIS anywhere in the SC or SR, and the SR states each model's training domain."""
    models = tmp_path / "models"
    models.mkdir()
    for role in ["classifier", "detector"]:
        for prec in ["fp32", "int8"]:
            (models / f"{role}-{prec}.onnx").symlink_to(ROOT / "models" / f"{role}-{prec}.onnx")
            text = (ROOT / "models" / f"{role}-{prec}.toml").read_text()
            assert 'training_domain = "synthetic-phantom"' in text
            (models / f"{role}-{prec}.toml").write_text(
                text.replace('training_domain = "synthetic-phantom"', 'training_domain = "clinical-ctpa"'))
    subprocess.run([str(pe_sentinel_bin), "phantom", "--series", "1", "--slices", "8", "--seed", "5",
                    "--pe-fraction", "0", "--format", "dicom", "--out", str(tmp_path / "ph")],
                   check=True, capture_output=True)
    d = Daemon(pe_sentinel_bin, tmp_path, profile(tmp_path, free_port(), models, send_negative="true"))
    try:
        assert "DEMO MODELS" not in d.log.read_text()
        d.put("neg", sorted((tmp_path / "ph" / "series-000" / "dicom").glob("*.dcm")))
        outbox = d.state / "outbox"
        wait(lambda: (outbox / "pending").exists() and len(pending(outbox)) >= 2, 240, "two objects", d.proc, d.log)
    finally:
        d.stop()
    sc, sr = [pydicom.dcmread(f) for f in pending(outbox)]
    assert (sc.SOPClassUID, sr.SOPClassUID) == (SC, SR3D)
    for ds in (sc, sr):
        assert "NOT FOR DIAGNOSIS" not in ds.SeriesDescription, ds.SeriesDescription
    assert "NOT FOR DIAGNOSIS" not in sc.ImageComments
    t = texts(sr)
    assert not any("NOT FOR DIAGNOSIS" in x for x in t), t
    assert sum("training_domain clinical-ctpa" in x for x in t) == 2, t
    # The banner: the statement alone (two wrapped lines), no third line for NOT FOR DIAGNOSIS.
    px = sc.pixel_array
    assert YELLOW in px[2:38, :].reshape(-1, 3).tolist()
    assert YELLOW not in px[38:60, :].reshape(-1, 3).tolist()


# ---------------------------------------------------------------- not-analysed results to a real PACS

@pytest.fixture(scope="module")
def not_analysed(tmp_path_factory, pe_sentinel_bin):
    """Real non-contrast 5 mm slices and a real contrast slice through the daemon with
    send_not_analysed = true, sent by pe-sentinel-send to DCMTK's storescp."""
    assert shutil.which("storescp"), "storescp missing: install the Debian package dcmtk"
    tmp = tmp_path_factory.mktemp("na")
    port = free_port()
    got = tmp / "pacs"
    got.mkdir()
    pacs = subprocess.Popen(["storescp", "-aet", "PACS", "-od", str(got), "-uf", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cfg = profile(tmp, port, ROOT / "models", send_not_analysed="true")
    d = Daemon(pe_sentinel_bin, tmp, cfg)
    sender = Sender(send_bin(pe_sentinel_bin), tmp, port)  # the same PACS and STATE/outbox
    try:
        sender.start()
        d.put("lung", [REALCT / f for f in LUNG])
        d.put("contrast", [REALCT / CONTRAST])
        # Four files, and their deliveries confirmed: storescp answers once a file is written
        # (a file that only exists may still be half written).
        outbox = tmp / "state" / "outbox"
        wait(lambda: len(list(got.iterdir())) >= 4 and (outbox / "pending").exists() and not pending(outbox),
             120, "four objects delivered to the PACS", d.proc, d.log)
    finally:
        d.stop()
        sender.stop()
        pacs.terminate()
        pacs.wait(10)
    received = [pydicom.dcmread(f) for f in sorted(got.iterdir())]
    return {"files": sorted(got.iterdir()), "objects": received, "series": d.series(),
            "log": d.log.read_text(), "pending": pending(tmp / "state" / "outbox")}


def test_without_send_not_analysed_such_series_send_nothing(tmp_path, pe_sentinel_bin):
    """The default: the same real slices close not-analysed and demo-model, and the outbox stays empty."""
    d = Daemon(pe_sentinel_bin, tmp_path, profile(tmp_path, free_port(), ROOT / "models", send_negative="true"))
    try:
        d.put("lung", [REALCT / f for f in LUNG])
        d.put("contrast", [REALCT / CONTRAST])
        wait(lambda: "closed not-analysed" in d.log.read_text() and "closed demo-model" in d.log.read_text(),
             120, "both series closed", d.proc, d.log)
    finally:
        d.stop()
    assert not pending(d.state / "outbox"), "nothing queued"
    assert "result queued" not in d.log.read_text()


def source(name):
    return pydicom.dcmread(REALCT / name, stop_before_pixels=True)


def test_not_analysed_results_pass_dciodvfy_without_errors(not_analysed):
    assert shutil.which("dciodvfy"), "dciodvfy missing: install the Debian package dicom3tools"
    assert len(not_analysed["files"]) == 4 and not not_analysed["pending"], not_analysed["log"][-3000:]
    for f in not_analysed["files"]:
        out = subprocess.run(["dciodvfy", str(f)], capture_output=True, text=True)
        text = out.stdout + out.stderr
        errors = [line for line in text.splitlines() if line.startswith("Error")]
        assert not errors, f"{f.name}:\n{text}"


def pair(objs, study):
    mine = [o for o in objs if o.StudyInstanceUID == study]
    assert len(mine) == 2, [o.StudyInstanceUID for o in objs]
    sc, sr = sorted(mine, key=lambda o: o.SOPClassUID != SC)
    assert (sc.SOPClassUID, sr.SOPClassUID) == (SC, SR3D)
    return sc, sr


def check_not_analysed(sc, sr, files, why):
    """What a not-analysed result must say, whatever the reason; `files`: the series' slices."""
    slices = {f: pydicom.dcmread(REALCT / f, stop_before_pixels=True) for f in files}
    src = next(iter(slices.values()))
    uids = {d.SOPInstanceUID for d in slices.values()}
    assert sc.SeriesInstanceUID != src.SeriesInstanceUID and sr.SeriesInstanceUID != src.SeriesInstanceUID
    assert sc.PatientID == src.PatientID
    for ds in (sc, sr):
        assert "NOT analysed" in ds.SeriesDescription and "NOT FOR DIAGNOSIS" in ds.SeriesDescription
    # The SC: a text card (no pixel of the series), naming the series it speaks of.
    assert list(sc.ImageType) == ["ORIGINAL", "SECONDARY"] and sc.BurnedInAnnotation == "YES"
    assert "SourceImageSequence" not in sc
    assert sc.ReferencedImageSequence[0].ReferencedSOPInstanceUID in uids
    assert "NOT ANALYSED" in sc.ImageComments and why in sc.ImageComments, sc.ImageComments
    px = sc.pixel_array
    assert YELLOW in px[:200].reshape(-1, 3).tolist() and not px[400:].any(), "text on black"
    assert "PE SUSPECTED" not in sc.ImageComments and "NO PE FLAGGED" not in sc.ImageComments
    # The SR: PE presence Undetermined, the reason, no score, no region.
    items = list(walk(sr))
    presence = [i.ConceptCodeSequence[0].CodeValue for i in items
                if i.ValueType == "CODE" and i.ConceptNameCodeSequence[0].CodeValue == "59282003"]
    assert presence == ["373068000"], presence
    t = texts(sr)
    assert any(x.startswith("Series NOT analysed by pe-sentinel") and why in x for x in t), t
    assert not [i for i in items if i.ValueType in ("NUM", "SCOORD")]
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == src.StudyInstanceUID
    refs = {r.ReferencedSOPInstanceUID for s in evidence.ReferencedSeriesSequence for r in s.ReferencedSOPSequence}
    assert len(refs & uids) == 1 and refs - uids == {sc.SOPInstanceUID}, "one slice of the series, and the card"


def test_a_series_not_analysed_reaches_the_pacs_saying_so_and_why(not_analysed):
    lung = source(LUNG[0])
    verdict, reasons, closed = not_analysed["series"][lung.SeriesInstanceUID]
    assert verdict == "not-analysed" and closed is not None, not_analysed["series"]
    assert "SliceThickness 5 mm" in reasons, reasons
    sc, sr = pair(not_analysed["objects"], lung.StudyInstanceUID)
    check_not_analysed(sc, sr, LUNG, "SliceThickness 5 mm")
    assert "no contrast" in sc.ImageComments.lower(), sc.ImageComments


def test_a_patient_series_under_demo_models_gets_not_analysed_never_a_finding(not_analysed):
    real = source(CONTRAST)
    verdict, _reasons, _closed = not_analysed["series"][real.SeriesInstanceUID]
    assert verdict == "demo-model", not_analysed["series"]
    sc, sr = pair(not_analysed["objects"], real.StudyInstanceUID)
    check_not_analysed(sc, sr, [CONTRAST], "demo models loaded")
    # The series rule's outcome is a finding: it is not told.
    assert not any("met" in x.split() for x in texts(sr))
