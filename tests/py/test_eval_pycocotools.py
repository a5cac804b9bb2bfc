"""Cross-check of pe-sentinel's detection AP (src/eval/metrics.rs) against independent implementations.

`ap50_coco` must equal pycocotools' COCOeval (iouThrs [0.5], one category, area range "all",
maxDets [100]) to 1e-6 on random detection sets drawn with a fixed numpy seed: score ties,
images without truth, truths without detections, duplicates, near-0.5 overlaps, integer boxes
(exact IoU 0.5 cases) and an image with more than 100 detections. `ap50_voc` is compared with a
straight Python port of darknet's `validate_detector_map` matching and area rule.

Runs the `eval_ap` example (built by `cargo build --all-targets`): next to the binary that
conftest finds, in `examples/`, or wherever PE_SENTINEL_EVAL_AP says.
"""
import contextlib
import io
import json
import os
import pathlib
import subprocess

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from conftest import _binary

SEED = 20261127
MAX_DETS = 100


@pytest.fixture(scope="session")
def eval_ap_bin() -> pathlib.Path:
    env = os.environ.get("PE_SENTINEL_EVAL_AP")
    b = pathlib.Path(env) if env else _binary().parent / "examples" / "eval_ap"
    if not b.exists():
        pytest.fail(f"eval_ap example not found at {b}: run `cargo build --all-targets` or set PE_SENTINEL_EVAL_AP")
    return b


def _random_box(rng, size=512.0, integer=False):
    w, h = rng.uniform(4, 60, size=2)
    x, y = rng.uniform(0, size - 60, size=2)
    box = [x, y, x + w, y + h]
    return [float(round(v)) for v in box] if integer else [float(v) for v in box]


def _jitter(rng, box, scale, integer=False):
    w, h = box[2] - box[0], box[3] - box[1]
    dx0, dy0, dx1, dy1 = rng.normal(0, scale, size=4) * np.array([w, h, w, h])
    out = [box[0] + dx0, box[1] + dy0, box[2] + dx1, box[3] + dy1]
    out = [min(out[0], out[2] - 1), min(out[1], out[3] - 1), out[2], out[3]]
    return [float(round(v)) for v in out] if integer else [float(v) for v in out]


def make_case(rng, n_images, integer=False, tie_decimals=None, crowded_image=False):
    images = sorted(int(i) for i in rng.choice(10_000, size=n_images, replace=False))
    truths, dets = [], []
    for img in images:
        n_truth = int(rng.choice([0, 0, 1, 1, 2, 3, 4]))
        boxes = [_random_box(rng, integer=integer) for _ in range(n_truth)]
        if n_truth >= 2 and rng.random() < 0.5:  # overlapping truths, to exercise the matching order
            boxes[1] = _jitter(rng, boxes[0], 0.3, integer)
        for b in boxes:
            truths.append({"image": img, "box": b})
            r = rng.random()
            if r < 0.2:
                continue  # a truth without detection
            for _ in range(int(rng.choice([1, 1, 1, 2, 3]))):  # duplicates happen
                box = _jitter(rng, b, rng.choice([0.02, 0.1, 0.25, 0.4]), integer)
                dets.append({"image": img, "box": box, "score": float(rng.uniform(0.2, 1.0))})
        for _ in range(int(rng.choice([0, 0, 1, 2, 5]))):  # false positives, also on images without truth
            dets.append({"image": img, "box": _random_box(rng, integer=integer), "score": float(rng.uniform(0.005, 0.9))})
    if crowded_image:
        img = images[0]
        for _ in range(130):
            b = truths[0]["box"] if truths and rng.random() < 0.3 else _random_box(rng, integer=integer)
            image = truths[0]["image"] if truths else img
            dets.append({"image": image, "box": _jitter(rng, b, 0.2, integer), "score": float(rng.uniform(0.005, 1.0))})
    if tie_decimals is not None:
        for d in dets:
            d["score"] = round(d["score"], tie_decimals)
    order = rng.permutation(len(dets))
    dets = [dets[i] for i in order]
    return {"images": images, "truths": truths, "detections": dets, "max_dets": MAX_DETS}


def pycocotools_ap50(case):
    gt = COCO()
    gt.dataset = {
        "images": [{"id": i} for i in case["images"]],
        "categories": [{"id": 1, "name": "embolus"}],
        "annotations": [
            {
                "id": k + 1,
                "image_id": t["image"],
                "category_id": 1,
                "bbox": [t["box"][0], t["box"][1], t["box"][2] - t["box"][0], t["box"][3] - t["box"][1]],
                "area": (t["box"][2] - t["box"][0]) * (t["box"][3] - t["box"][1]),
                "iscrowd": 0,
            }
            for k, t in enumerate(case["truths"])
        ],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes([
            {
                "image_id": d["image"],
                "category_id": 1,
                "bbox": [d["box"][0], d["box"][1], d["box"][2] - d["box"][0], d["box"][3] - d["box"][1]],
                "score": d["score"],
            }
            for d in case["detections"]
        ])
        ev = COCOeval(gt, dt, "bbox")
        ev.params.iouThrs = np.array([0.5])
        ev.params.maxDets = [case["max_dets"]]
        ev.params.areaRng = [[0, 1e5**2]]
        ev.params.areaRngLbl = ["all"]
        ev.evaluate()
        ev.accumulate()
    p = ev.eval["precision"][0, :, 0, 0, 0]
    p = p[p > -1]
    return float(np.mean(p)) if p.size else None


def darknet_ap50(case):
    """A port of darknet's validate_detector_map (map_points = 0) for one class."""
    truths = case["truths"]
    if not truths:
        return None

    def iou(a, b):
        w = min(a[2], b[2]) - max(a[0], b[0])
        h = min(a[3], b[3]) - max(a[1], b[1])
        if w <= 0 or h <= 0:
            return 0.0
        inter = w * h
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    rows = []
    for k, d in enumerate(case["detections"]):
        best, best_iou = -1, 0.0
        for j, t in enumerate(truths):
            if t["image"] != d["image"]:
                continue
            v = iou(d["box"], t["box"])
            if v > 0.5 and v > best_iou:
                best, best_iou = j, v
        rows.append((-d["score"], d["image"], k, best))
    rows.sort()
    taken = [False] * len(truths)
    tp = fp = 0
    prec, rec = [], []
    for _, _, _, best in rows:
        if best >= 0 and not taken[best]:
            taken[best] = True
            tp += 1
        else:
            fp += 1
        prec.append(tp / (tp + fp))
        rec.append(tp / len(truths))
    if not rows:
        return 0.0
    last_r, last_p, ap = rec[-1], prec[-1], 0.0
    for rank in range(len(rows) - 2, -1, -1):
        ap += (last_r - rec[rank]) * max(last_p, prec[rank])
        last_r, last_p = rec[rank], max(last_p, prec[rank])
    return ap + last_r * last_p


def run_eval_ap(eval_ap_bin, tmp_path, case):
    f = tmp_path / "case.json"
    f.write_text(json.dumps(case))
    out = subprocess.run([str(eval_ap_bin), str(f)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


CASES = [
    # (name, n_images, integer boxes, score decimals (ties), an image with > 100 detections)
    ("continuous", 12, False, None, False),
    ("ties-1-decimal", 25, False, 1, False),
    ("ties-2-decimals", 40, False, 2, False),
    ("integer-boxes", 30, True, 1, False),
    ("integer-boxes-fine-scores", 30, True, None, False),
    ("one-image", 1, False, 1, False),
    ("many-images", 200, False, 2, False),
    ("crowded-image", 8, False, 1, True),
    ("crowded-integer", 8, True, None, True),
]


@pytest.mark.parametrize("name,n_images,integer,ties,crowded", CASES, ids=[c[0] for c in CASES])
def test_ap50_matches_pycocotools_and_darknet(eval_ap_bin, tmp_path, name, n_images, integer, ties, crowded):
    rng = np.random.default_rng([SEED, CASES.index((name, n_images, integer, ties, crowded))])
    for rep in range(4):
        case = make_case(rng, n_images, integer=integer, tie_decimals=ties, crowded_image=crowded)
        if not case["truths"] or not case["detections"]:
            continue  # covered by test_degenerate_cases; pycocotools' loadRes cannot take an empty list
        got = run_eval_ap(eval_ap_bin, tmp_path, case)
        want = pycocotools_ap50(case)
        assert got["ap50_coco"] == pytest.approx(want, abs=1e-6), f"{name} rep {rep}"
        assert got["ap50_voc"] == pytest.approx(darknet_ap50(case), abs=1e-9), f"{name} rep {rep}"


def test_cases_exercise_what_they_claim():
    rng = np.random.default_rng([SEED, 99])
    case = make_case(rng, 40, tie_decimals=1, crowded_image=True)
    scores = [d["score"] for d in case["detections"]]
    assert len(set(scores)) < len(scores), "score ties"
    with_truth = {t["image"] for t in case["truths"]}
    assert set(case["images"]) - with_truth, "images without truth"
    counts = {}
    for d in case["detections"]:
        counts[d["image"]] = counts.get(d["image"], 0) + 1
    assert max(counts.values()) > MAX_DETS, "an image over maxDets"


def test_degenerate_cases(eval_ap_bin, tmp_path):
    no_dets = {"images": [1, 2], "truths": [{"image": 1, "box": [0, 0, 10, 10]}], "detections": []}
    assert run_eval_ap(eval_ap_bin, tmp_path, no_dets) == {"ap50_voc": 0.0, "ap50_coco": 0.0}
    no_truth = {"images": [1], "truths": [], "detections": [{"image": 1, "box": [0, 0, 10, 10], "score": 0.9}]}
    assert run_eval_ap(eval_ap_bin, tmp_path, no_truth) == {"ap50_voc": None, "ap50_coco": None}


def test_bad_input_is_refused_with_a_reason(eval_ap_bin, tmp_path):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps({"truths": [{"image": 1, "box": [10, 0, 0, 10]}], "detections": []}))
    out = subprocess.run([str(eval_ap_bin), str(f)], capture_output=True, text=True)
    assert out.returncode != 0
    assert "truth 0 (image 1)" in out.stderr
