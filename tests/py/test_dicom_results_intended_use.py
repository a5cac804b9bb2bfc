"""Results to the PACS and intended use (issues 21 and 22), with the real daemon; objects read
back with pydicom.

* NOT FOR DIAGNOSIS follows the loaded models' `training_domain` (the rule behind the `demo-model`
  verdict): manifests copied with `clinical-ctpa` give results without it; the shipped
  (synthetic-phantom) models' results carry it (checked in test_dicom_send.py).
"""
import pathlib
import shutil
import signal
import sqlite3
import subprocess

import pydicom

from test_dicom_send import ROOT, SC, SR3D, free_port, pending, wait, walk

YELLOW = [255, 220, 0]


def profile(tmp: pathlib.Path, port: int, models: pathlib.Path, **send) -> pathlib.Path:
    text = (ROOT / "board" / "x86-cpu.toml").read_text()
    text = text.replace("quiet_s = 20.0", "quiet_s = 3.0").replace('dir = "../models"', f'dir = "{models}"')
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
    # The banner: the statement alone, no line for NOT FOR DIAGNOSIS.
    px = sc.pixel_array
    assert YELLOW in px[2:38, :].reshape(-1, 3).tolist()
    assert YELLOW not in px[38:60, :].reshape(-1, 3).tolist()
