#!/usr/bin/env python3
"""Choose the verdict settings (fusion policy, classifier threshold, detector threshold, k of n)
on VALIDATION phantoms, never on the evaluation seeds the model card reports.

usage: sweep_fusion.py EVAL_JSON... > sweep.txt
  EVAL_JSON: files written by `pe-sentinel eval --data DIR --json FILE` (per-slice scores in
  `slices`). Prints the settings ranked by series specificity among those that keep series
  sensitivity at its maximum, then by slice-level fused accuracy. The series rule re-implemented
  here is the daemon's (k suspicious slices within any n adjacent instances); the chosen setting
  is then confirmed by the daemon's own `eval` on the evaluation seeds.
"""
import itertools
import json
import sys
from collections import defaultdict


def load(paths):
    series = defaultdict(list)
    for i, p in enumerate(paths):
        for r in json.load(open(p))["slices"]:
            series[(i, r["series"])].append(r)
    for v in series.values():
        v.sort(key=lambda r: r["instance"])
    return series


def suspicious(r, fusion, tc, td):
    c = r["p"] >= tc
    d = r["max_confidence"] >= td
    return {"either": c or d, "both": c and d, "classifier_only": c, "detector_only": d}[fusion]


def series_positive(rows, flags, k, n):
    inst = [r["instance"] for r in rows]
    for i in range(len(rows)):
        lo = inst[i]
        cnt = sum(1 for j in range(i, len(rows)) if inst[j] < lo + n and flags[j])
        if cnt >= k:
            return True
    return False


def main():
    series = load(sys.argv[1:])
    truth = {s: any(r["truth"] for r in rows) for s, rows in series.items()}
    npos = sum(truth.values())
    nneg = len(truth) - npos
    results = []
    for fusion, tc, td, (k, n) in itertools.product(
        ["either", "both", "classifier_only", "detector_only"],
        [0.3, 0.5, 0.7, 0.9],
        [0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
        [(1, 1), (2, 3), (2, 5), (3, 5), (4, 5), (3, 7), (4, 7), (5, 7)],
    ):
        if fusion == "classifier_only" and td != 0.6 or fusion == "detector_only" and tc != 0.5:
            continue
        tp = tn = 0
        right = total = 0
        for s, rows in series.items():
            flags = [suspicious(r, fusion, tc, td) for r in rows]
            right += sum(f == r["truth"] for f, r in zip(flags, rows))
            total += len(rows)
            pos = series_positive(rows, flags, k, n)
            tp += pos and truth[s]
            tn += (not pos) and (not truth[s])
        results.append((tp / max(npos, 1), tn / max(nneg, 1), right / total, fusion, tc, td, k, n))
    best_sens = max(r[0] for r in results)
    ranked = sorted((r for r in results if r[0] == best_sens), key=lambda r: (-r[1], -r[2]))
    print(f"{len(truth)} series ({npos} positive, {nneg} negative), {sum(len(v) for v in series.values())} slices")
    print("sens  spec  slice_acc  fusion           cls_t  det_t  k/n")
    for r in ranked[:15]:
        print(f"{r[0]:.2f}  {r[1]:.2f}  {r[2]:.3f}      {r[3]:<16} {r[4]:.1f}    {r[5]:.1f}    {r[6]}/{r[7]}")


if __name__ == "__main__":
    main()
