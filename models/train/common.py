"""Shared pieces of the pe-sentinel model pipeline.

What goes in: phantom runs written by `pe-sentinel phantom` (layout below). What comes out: arrays of
preprocessed slices, YOLO decode / NMS / AP exactly as the Rust daemon computes them, and the
constants every other script and the manifests must agree on.

    OUT/phantom.json
    OUT/series-NNN/png/slice-0001.png      512x512 gray, W700 L100
    OUT/series-NNN/labels/slice-0001.txt   `0 cx cy w h` per embolus, empty file = negative slice
    OUT/series-NNN/truth.json

Touches only the folders it is given.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

# ---- contract shared with the daemon (also written into the manifests) -------------------------
CLS_SIZE = 224
DET_SIZE = 416
SCALE = 1.0 / 255.0
WINDOW_CENTER_HU = 100.0
WINDOW_WIDTH_HU = 700.0
LABELS_CLS = ["negative", "positive"]
LABELS_DET = ["embolus"]
# The first six anchors of the seed paper's yolov4-ctscans.cfg (pixels at 416x416): the
# yolov4-tiny layout has six anchors over two heads. Emboli in the phantoms are small, so the
# paper's small anchors are the useful ones; its three large ones (142x110 .. 459x401) are dropped.
ANCHORS = [[12, 16], [19, 36], [40, 28], [36, 75], [76, 55], [72, 146]]
# (output name, stride, mask, scale_x_y) — same order as the network outputs.
HEADS = [
    ("head_s32", 32, [3, 4, 5], 1.05),
    ("head_s16", 16, [0, 1, 2], 1.1),
]
NUM_CLASSES = 1
CONF_THRESHOLD = 0.6
NMS_IOU = 0.45
AP_MIN_CONF = 0.005  # detections kept for the PR curve (darknet's `map` uses 0.005 too)

# Seed ranges (the phantom's run --seed; disjoint): training and INT8 calibration use 1000-1999
# (train_all.sh: 1000-1019), evaluation and the Rust tests use 1-99 (train_all.sh: 1-6).


def set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)
    torch.set_num_interop_threads(1)


# ---- dataset ----------------------------------------------------------------------------------
def iter_slices(root: Path):
    """Yield (png_path, label_path) for every slice of every phantom run under `root`.

    `root` may itself be a run (has phantom.json) or a folder holding several runs.
    """
    root = Path(root)
    runs = [root] if (root / "phantom.json").exists() else sorted(
        p for p in root.iterdir() if (p / "phantom.json").exists()
    )
    for run in runs:
        for series in sorted(run.glob("series-*")):
            for png in sorted((series / "png").glob("slice-*.png")):
                yield png, series / "labels" / (png.stem + ".txt")


def read_labels(path: Path) -> np.ndarray:
    """Darknet truth file -> float32 [N, 4] of (cx, cy, w, h) normalised; empty file -> [0, 4]."""
    rows = []
    text = Path(path).read_text() if Path(path).exists() else ""
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            raise ValueError(f"{path}: expected `class cx cy w h`, found {line!r}")
        rows.append([float(v) for v in parts[1:]])
    return np.asarray(rows, dtype=np.float32).reshape(-1, 4)


def load_gray(png: Path) -> Image.Image:
    im = Image.open(png)
    if im.mode != "L":
        im = im.convert("L")
    return im


def resize_gray(im: Image.Image, size: int) -> np.ndarray:
    """Stretch-resize with PIL bilinear (a triangle filter, antialiased when downscaling: the same
    filter as the Rust image crate's FilterType::Triangle). Returns uint8 [size, size]."""
    return np.asarray(im.resize((size, size), Image.BILINEAR), dtype=np.uint8)


def resize_plain_bilinear(im: Image.Image, size: int) -> np.ndarray:
    """Bilinear without antialiasing (2x2 taps, half-pixel centres), as naive resizers do."""
    a = np.asarray(im, dtype=np.float32)
    h, w = a.shape
    ys = np.clip((np.arange(size) + 0.5) * h / size - 0.5, 0, h - 1)
    xs = np.clip((np.arange(size) + 0.5) * w / size - 0.5, 0, w - 1)
    y0 = np.floor(ys).astype(int); x0 = np.floor(xs).astype(int)
    y1 = np.minimum(y0 + 1, h - 1); x1 = np.minimum(x0 + 1, w - 1)
    fy = (ys - y0)[:, None]; fx = (xs - x0)[None, :]
    top = a[y0][:, x0] * (1 - fx) + a[y0][:, x1] * fx
    bot = a[y1][:, x0] * (1 - fx) + a[y1][:, x1] * fx
    return np.clip(np.rint(top * (1 - fy) + bot * fy), 0, 255).astype(np.uint8)


def load_split(roots, size: int, plain_too: bool = False):
    """Load every slice under `roots` resized to `size`.

    Returns (uint8 [N,H,W], labels [N], boxes list, uint8 [N,H,W] plain-bilinear copy or None).
    """
    imgs, ys, boxes, plain = [], [], [], []
    for root in roots:
        for png, lab in iter_slices(root):
            b = read_labels(lab)
            im = load_gray(png)
            imgs.append(resize_gray(im, size))
            if plain_too:
                plain.append(resize_plain_bilinear(im, size))
            ys.append(1 if len(b) else 0)
            boxes.append(b)
    if not imgs:
        raise SystemExit(f"no slices found under {[str(r) for r in roots]}")
    return (np.stack(imgs), np.asarray(ys, dtype=np.int64), boxes,
            np.stack(plain) if plain_too else None)


def to_tensor_input(gray_u8: np.ndarray) -> np.ndarray:
    """uint8 [H,W] -> float32 [1,1,H,W] as the manifest's preprocess says (scale 1/255, mean 0, std 1)."""
    return (gray_u8.astype(np.float32) * np.float32(SCALE))[None, None]


# ---- darknet-exact decode, NMS, AP -------------------------------------------------------------
def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def decode_head(raw: np.ndarray, stride: int, mask, scale_xy: float, net: int = DET_SIZE):
    """raw: [1, A*(5+C), H, W] -> boxes [K,4] (cx,cy,w,h normalised) and conf [K]."""
    _, ch, gh, gw = raw.shape
    na = len(mask)
    r = raw.reshape(na, 5 + NUM_CLASSES, gh, gw).astype(np.float64)
    col = np.arange(gw)[None, None, :]
    row = np.arange(gh)[None, :, None]
    s = scale_xy
    x = (sigmoid(r[:, 0]) * s - (s - 1) / 2 + col) / gw
    y = (sigmoid(r[:, 1]) * s - (s - 1) / 2 + row) / gh
    aw = np.asarray([ANCHORS[m][0] for m in mask], dtype=np.float64)[:, None, None]
    ah = np.asarray([ANCHORS[m][1] for m in mask], dtype=np.float64)[:, None, None]
    w = np.exp(r[:, 2]) * aw / net
    h = np.exp(r[:, 3]) * ah / net
    conf = sigmoid(r[:, 4]) * sigmoid(r[:, 5])
    boxes = np.stack([x, y, w, h], axis=-1).reshape(-1, 4)
    return boxes, conf.reshape(-1)


def iou_cxcywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU, a [N,4], b [M,4] -> [N,M]."""
    a1 = a[:, None, :2] - a[:, None, 2:] / 2
    a2 = a[:, None, :2] + a[:, None, 2:] / 2
    b1 = b[None, :, :2] - b[None, :, 2:] / 2
    b2 = b[None, :, :2] + b[None, :, 2:] / 2
    inter = np.clip(np.minimum(a2, b2) - np.maximum(a1, b1), 0, None).prod(-1)
    union = a[:, None, 2:].prod(-1) + b[None, :, 2:].prod(-1) - inter
    return inter / np.maximum(union, 1e-12)


def nms(boxes: np.ndarray, conf: np.ndarray, iou_thr: float = NMS_IOU):
    """Greedy NMS, highest confidence first."""
    order = np.argsort(-conf, kind="stable")
    keep = []
    suppressed = np.zeros(len(order), dtype=bool)
    for i_pos, i in enumerate(order):
        if suppressed[i_pos]:
            continue
        keep.append(i)
        rest = order[i_pos + 1:]
        if len(rest) == 0:
            break
        ious = iou_cxcywh(boxes[i:i + 1], boxes[rest])[0]
        suppressed[i_pos + 1:] |= ious > iou_thr
    return np.asarray(keep, dtype=np.int64)


def detect(outputs, min_conf: float = AP_MIN_CONF):
    """Raw head outputs (in HEADS order) -> (boxes [K,4], conf [K]) after threshold and NMS."""
    all_b, all_c = [], []
    for raw, (_, stride, mask, sxy) in zip(outputs, HEADS):
        b, c = decode_head(raw, stride, mask, sxy)
        sel = c >= min_conf
        all_b.append(b[sel])
        all_c.append(c[sel])
    b = np.concatenate(all_b) if all_b else np.zeros((0, 4))
    c = np.concatenate(all_c) if all_c else np.zeros((0,))
    if len(c) == 0:
        return b, c
    k = nms(b, c)
    return b[k], c[k]


def voc_ap(dets, truths, iou_thr: float = 0.5):
    """VOC all-point AP. dets: list per image of (boxes, conf); truths: list per image of [N,4]."""
    n_gt = sum(len(t) for t in truths)
    records = []  # (conf, image index, box)
    for i, (b, c) in enumerate(dets):
        for j in range(len(c)):
            records.append((float(c[j]), i, b[j]))
    records.sort(key=lambda r: -r[0])
    used = [np.zeros(len(t), dtype=bool) for t in truths]
    tp = np.zeros(len(records))
    fp = np.zeros(len(records))
    for k, (_, i, box) in enumerate(records):
        t = truths[i]
        if len(t):
            ious = iou_cxcywh(box[None], t)[0]
            j = int(np.argmax(ious))
            if ious[j] >= iou_thr and not used[i][j]:
                used[i][j] = True
                tp[k] = 1
                continue
        fp[k] = 1
    if n_gt == 0:
        return 0.0
    ctp, cfp = np.cumsum(tp), np.cumsum(fp)
    rec = ctp / n_gt
    prec = ctp / np.maximum(ctp + cfp, 1e-12)
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    idx = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def pr_at(dets, truths, thr: float, iou_thr: float = 0.5):
    """Precision and recall of detections with conf >= thr (the daemon's operating point)."""
    tp = fp = 0
    n_gt = sum(len(t) for t in truths)
    for (b, c), t in zip(dets, truths):
        sel = c >= thr
        b = b[sel]
        used = np.zeros(len(t), dtype=bool)
        for box in b[np.argsort(-c[sel])]:
            if len(t):
                ious = iou_cxcywh(box[None], t)[0]
                j = int(np.argmax(ious))
                if ious[j] >= iou_thr and not used[j]:
                    used[j] = True
                    tp += 1
                    continue
            fp += 1
    return tp / max(tp + fp, 1), tp / max(n_gt, 1)


def write_json(path: Path, obj) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
