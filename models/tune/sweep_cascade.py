#!/usr/bin/env python3
"""Choose the cascade gate (`[budget] cascade_gate`: the detector runs only when the classifier's
P is at least the gate) on VALIDATION phantoms, never on the evaluation seeds the README reports.

usage: sweep_cascade.py --profile board/x86-cpu.toml [--gates 0.01,0.02,...] EVAL_JSON...
  EVAL_JSON: files written by `pe-sentinel eval --data DIR --json FILE`. `eval` runs the detector
  on every slice (no cascade), so each slice's P and highest box confidence are known; a gate g
  then gives exactly what the daemon decides with `cascade_gate = g`: a slice whose P is below g
  has no boxes. The fusion policy, both thresholds and k of n are read from the profile's
  `[verdict]` table; the series rule is the daemon's (k suspicious slices within any n adjacent
  instances), as in sweep_fusion.py.

Prints, per gate: series sensitivity and specificity, fused slice accuracy, the share of slices
the detector still runs on, and the chosen gate: the largest one that keeps series sensitivity
equal to the cascade off with a margin, i.e. every gate up to `--margin` (default 1.5) times it keeps
it too (a classifier whose P drifts down by a third on other scans still lets the detector see the
slices that hold each positive series). Deterministic: the same JSON gives the same table.
Throughput per gate is measured by `pe-sentinel bench --cascade off,G,...` (scripts/cascade-sweep.sh).
"""
import argparse
import json
import sys
import tomllib
from collections import defaultdict

from sweep_fusion import series_positive, suspicious


def load(paths):
    series = defaultdict(list)
    for i, p in enumerate(paths):
        with open(p) as f:
            for r in json.load(f)["slices"]:
                series[(i, r["series"])].append(r)
    for v in series.values():
        v.sort(key=lambda r: r["instance"])
    return series


def figures(series, truth, v, gate):
    """Series sensitivity, specificity, fused slice accuracy and detector share at `gate` (None: off)."""
    tp = tn = right = total = ran = 0
    npos = sum(truth.values())
    nneg = len(truth) - npos
    for s, rows in series.items():
        flags = []
        for r in rows:
            runs = gate is None or r["p"] >= gate
            ran += runs
            seen = dict(r, max_confidence=r["max_confidence"] if runs else 0.0)
            flags.append(suspicious(seen, v["fusion"], v["classifier_threshold"], v["detector_threshold"]))
        right += sum(f == r["truth"] for f, r in zip(flags, rows))
        total += len(rows)
        pos = series_positive(rows, flags, v["suspicious_min"], v["window_slices"])
        tp += pos and truth[s]
        tn += (not pos) and (not truth[s])
    return tp / max(npos, 1), tn / max(nneg, 1), right / max(total, 1), ran / max(total, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", required=True, help="board profile whose [verdict] the daemon uses")
    ap.add_argument(
        "--gates",
        default="0.001,0.002,0.005,0.01,0.02,0.03,0.05,0.07,0.1,0.15,0.2,0.3,0.5,0.7,0.9",
        help="comma-separated gates to try",
    )
    ap.add_argument("--margin", type=float, default=1.5, help="the chosen gate times this must still keep sensitivity")
    ap.add_argument("eval_json", nargs="+")
    a = ap.parse_args()
    with open(a.profile, "rb") as f:
        v = tomllib.load(f).get("verdict", {})
    missing = [k for k in ("fusion", "classifier_threshold", "detector_threshold", "suspicious_min", "window_slices") if k not in v]
    if missing:
        sys.exit(f"{a.profile}: [verdict] lacks {', '.join(missing)}; give a profile that sets the series rule")
    series = load(a.eval_json)
    truth = {s: any(r["truth"] for r in rows) for s, rows in series.items()}
    npos = sum(truth.values())
    print(
        f"{len(truth)} series ({npos} positive, {len(truth) - npos} negative), "
        f"{sum(len(r) for r in series.values())} slices; verdict {v['fusion']} P >= {v['classifier_threshold']}, "
        f"box >= {v['detector_threshold']}, {v['suspicious_min']} of {v['window_slices']}"
    )
    print("gate    series_sens  series_spec  fused_slice_acc  detector_share")
    off = figures(series, truth, v, None)
    print(f"off     {off[0]:.3f}        {off[1]:.3f}        {off[2]:.4f}           {off[3]:.3f}")
    # The gate that runs the detector least while keeping series sensitivity with a margin: the
    # largest g such that every listed gate up to g, and g * margin itself, equal the cascade off.
    chosen, dropped, limit = None, False, None
    for g in sorted(float(x) for x in a.gates.split(",")):
        f = figures(series, truth, v, g)
        print(f"{g:<7} {f[0]:.3f}        {f[1]:.3f}        {f[2]:.4f}           {f[3]:.3f}")
        if not dropped and f[0] >= off[0]:
            limit = g
        dropped = dropped or f[0] < off[0]
        if not dropped and figures(series, truth, v, g * a.margin)[0] >= off[0]:
            chosen = (g, f)
    if chosen is None:
        print(f"no gate keeps series sensitivity with a {a.margin}x margin: keep the cascade off")
    else:
        g, f = chosen
        print(
            f"largest gate keeping series sensitivity: {limit}; chosen: cascade_gate = {g} "
            f"(sensitivity kept up to {a.margin}x the gate): sensitivity {f[0]:.3f}, specificity {f[1]:.3f}, "
            f"detector on {100 * f[3]:.1f}% of slices"
        )

if __name__ == "__main__":
    main()
