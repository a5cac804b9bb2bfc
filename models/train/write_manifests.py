"""Write one manifest (TOML) beside each shipped ONNX file.

in:  --models DIR (holds the four .onnx files), --eval FILE.json (from evaluate.py)
out: DIR/<model>.toml for classifier-fp32, classifier-int8, detector-fp32, detector-int8

The schema is the daemon's (unknown keys are rejected there): [model] [input] [preprocess]
[output] (classifier) or [detector] + [[detector.heads]] (detector) [labels] [provenance] [metrics].
Every metric is written as a float so it parses into an f64 map.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import subprocess
from pathlib import Path

import onnx
import onnxruntime
import torch

import common

MODELS = [
    ("classifier-fp32.onnx", "classifier", "fp32"),
    ("classifier-int8.onnx", "classifier", "int8"),
    ("detector-fp32.onnx", "detector", "fp32"),
    ("detector-int8.onnx", "detector", "int8"),
]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def repo_commit(repo: Path) -> str:
    """HEAD if the training code is committed as run, else 'uncommitted'. Read-only git calls."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "--no-optional-locks", "-C", str(repo), "status", "--porcelain", "--", "models/train"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return "uncommitted" if dirty else head
    except (OSError, subprocess.CalledProcessError):
        return "uncommitted"


def q(s: str) -> str:
    return json.dumps(s)


def fnum(v) -> str:
    return repr(float(v))


def opset_of(path: Path) -> int:
    m = onnx.load(str(path), load_external_data=False)
    return [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")][0]


def manifest(file: str, kind: str, precision: str, models: Path, metrics: dict, prov: dict) -> str:
    path = models / file
    size = common.CLS_SIZE if kind == "classifier" else common.DET_SIZE
    name = "pe-classifier-mobilenetv2" if kind == "classifier" else "pe-detector-yolov4-tiny"
    out = [
        f"# Manifest for {file}: see models/README.md (demonstration and testing only, not for diagnosis).",
        "# Written by models/train/write_manifests.py; regenerate rather than edit by hand.",
        "[model]",
        f"name = {q(name)}",
        f"kind = {q(kind)}",
        f"file = {q(file)}",
        f"sha256 = {q(sha256(path))}",
        f"precision = {q(precision)}",
        f"opset = {opset_of(path)}",
        'training_domain = "synthetic-phantom"   # trained on synthetic phantoms only: never alerts on a patient scan',
        "",
        "[input]",
        'name = "input"',
        f"shape = [1, 1, {size}, {size}]",
        'layout = "nchw"',
        'dtype = "f32"',
        "",
        "[preprocess]",
        f"window_center_hu = {fnum(common.WINDOW_CENTER_HU)}",
        f"window_width_hu = {fnum(common.WINDOW_WIDTH_HU)}",
        'resize = "stretch"',
        # Pillow's BILINEAR (antialiased), as common.resize_gray fed the model in training and evaluation.
        'filter = "triangle"',
        "scale = 0.003921568627451",
        "mean = [0.0]",
        "std = [1.0]",
        "",
    ]
    if kind == "classifier":
        out += [
            "[output]",
            'name = "probs"',
            'kind = "probabilities"',
            "",
            "[labels]",
            "names = [" + ", ".join(q(n) for n in common.LABELS_CLS) + "]",
            'positive = "positive"',
            "",
        ]
    else:
        out += [
            "[labels]",
            "names = [" + ", ".join(q(n) for n in common.LABELS_DET) + "]",
            'positive = "embolus"',
            "",
            "[detector]",
            "anchors = [" + ", ".join(f"[{w}, {h}]" for w, h in common.ANCHORS) + "]",
            f"confidence_threshold = {fnum(common.CONF_THRESHOLD)}",
            f"nms_iou = {fnum(common.NMS_IOU)}",
        ]
        for hname, stride, mask, sxy in common.HEADS:
            out += [
                "[[detector.heads]]",
                f"output = {q(hname)}",
                f"stride = {stride}",
                "mask = [" + ", ".join(str(m) for m in mask) + "]",
                f"scale_x_y = {fnum(sxy)}",
            ]
        out.append("")
    out += [
        "[provenance]",
        f"script = {q(prov['script'])}",
        f"commit = {q(prov['commit'])}",
        f"train_seeds = {q(prov['train_seeds'])}",
        f"eval_seeds = {q(prov['eval_seeds'])}",
        f"date = {q(prov['date'])}",
        f"framework = {q(prov['framework'])}",
        "",
        "[metrics]",
    ]
    for k, v in metrics.items():
        out.append(f"{k} = {fnum(v)}")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True)
    ap.add_argument("--eval", required=True)
    ap.add_argument("--train-seeds", required=True)
    ap.add_argument("--eval-seeds", required=True)
    ap.add_argument("--script", default="models/train/train_all.sh")
    ap.add_argument("--kinds", nargs="+", default=["classifier", "detector"],
                    help="which models' manifests to (re)write; the others are left as they are")
    ap.add_argument("--precisions", nargs="+", default=["fp32", "int8"],
                    help="which precisions' manifests to (re)write (e.g. int8 alone after pow2_scales.py)")
    a = ap.parse_args()
    models = Path(a.models)
    evals = json.loads(Path(a.eval).read_text())
    prov = {
        "script": a.script,
        "commit": repo_commit(models.parent),
        "train_seeds": a.train_seeds,
        "eval_seeds": a.eval_seeds,
        "date": dt.date.today().isoformat(),
        "framework": f"torch {torch.__version__.split('+')[0]} / onnxruntime {onnxruntime.__version__}",
    }
    for file, kind, precision in MODELS:
        if kind not in a.kinds or precision not in a.precisions:
            continue
        text = manifest(file, kind, precision, models, evals[file], prov)
        (models / (Path(file).stem + ".toml")).write_text(text)
        print(f"[manifest] wrote {Path(file).stem}.toml", flush=True)


if __name__ == "__main__":
    main()
