"""Measure ONNX models on evaluation-seed phantoms with onnxruntime, the way the daemon will.

in:  --data DIR... (evaluation-seed phantom runs), --classifier FILE..., --detector FILE...
out: --out FILE.json  {model file name: {metric: value}}

Classifier: slice accuracy (argmax of probs, i.e. P(positive) >= 0.5), sensitivity, specificity,
ROC AUC. Detector: darknet decode + greedy NMS 0.45 (common.detect); VOC all-point AP at IoU 0.5
over detections with conf >= 0.005, and precision/recall at the shipped threshold 0.6.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

import common


def session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def auc(scores, ys):
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    # average ranks over ties
    s_sorted = scores[order]
    i = 0
    while i < len(s_sorted):
        j = i
        while j + 1 < len(s_sorted) and s_sorted[j + 1] == s_sorted[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j + 2) / 2
        i = j + 1
    npos, nneg = ys.sum(), (1 - ys).sum()
    if npos == 0 or nneg == 0:
        return float("nan")
    return float((ranks[ys == 1].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def eval_classifier(path, imgs, ys, threads):
    sess = session(path, threads)
    t = time.time()
    p = np.array([sess.run(["probs"], {"input": common.to_tensor_input(im)})[0][0, 1] for im in imgs])
    ms = (time.time() - t) / len(imgs) * 1000
    pred = (p >= 0.5).astype(int)
    tp = int(((pred == 1) & (ys == 1)).sum()); tn = int(((pred == 0) & (ys == 0)).sum())
    return {
        "slice_accuracy": round(float((pred == ys).mean()), 4),
        "sensitivity": round(tp / max(int(ys.sum()), 1), 4),
        "specificity": round(tn / max(int((1 - ys).sum()), 1), 4),
        "roc_auc": round(auc(p, ys), 4),
        "eval_slices": int(len(ys)),
        "eval_positive_slices": int(ys.sum()),
        "onnxruntime_ms_per_slice": round(ms, 2),
    }, p


def eval_detector(path, imgs, boxes, threads):
    sess = session(path, threads)
    names = [h[0] for h in common.HEADS]
    dets = []
    t = time.time()
    for im in imgs:
        outs = sess.run(names, {"input": common.to_tensor_input(im)})
        dets.append(common.detect(outs))
    ms = (time.time() - t) / len(imgs) * 1000
    ap50 = common.voc_ap(dets, boxes, 0.5)
    prec, rec = common.pr_at(dets, boxes, common.CONF_THRESHOLD)
    ys = np.array([1 if len(b) else 0 for b in boxes])
    flagged = np.array([1 if (c >= common.CONF_THRESHOLD).any() else 0 for _, c in dets])
    return {
        "ap50": round(ap50, 4),
        "ap40": round(common.voc_ap(dets, boxes, 0.4), 4),
        "precision_at_threshold": round(prec, 4),
        "recall_at_threshold": round(rec, 4),
        "slice_accuracy_any_box": round(float((flagged == ys).mean()), 4),
        "eval_slices": int(len(boxes)),
        "eval_boxes": int(sum(len(b) for b in boxes)),
        "onnxruntime_ms_per_slice": round(ms, 2),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--classifier", nargs="*", default=[])
    ap.add_argument("--detector", nargs="*", default=[])
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    roots = [Path(d) for d in a.data]
    results = {}
    if a.classifier:
        imgs, ys, _, _ = common.load_split(roots, common.CLS_SIZE)
        for f in a.classifier:
            m, _ = eval_classifier(f, imgs, ys, a.threads)
            results[Path(f).name] = m
            print(f"[eval] {Path(f).name}: {m}", flush=True)
    if a.detector:
        imgs, _, boxes, _ = common.load_split(roots, common.DET_SIZE)
        for f in a.detector:
            m = eval_detector(f, imgs, boxes, a.threads)
            results[Path(f).name] = m
            print(f"[eval] {Path(f).name}: {m}", flush=True)
    common.write_json(Path(a.out), results)


if __name__ == "__main__":
    main()
