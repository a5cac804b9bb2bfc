#!/usr/bin/env python3
"""The peer `pe-sentinel bench --peer PYTHON` measures against: onnxruntime's own Python
inference on the same ONNX models and the same preprocessed inputs the daemon fed its engine,
with the same intra-op thread count and full graph optimization.

usage: ort_peer.py REQUEST.json RESULT.json
  REQUEST.json is written by bench (peer/request.json): threads, and per model the .onnx path,
  input name and shape, and a little-endian f32 file holding `slices` inputs back to back.
  RESULT.json gets {runtime, version, threads, models: [{role, runs, p50_ms, p99_ms}]}.
Each model: 3 warm-up runs, then every input REPEATS times in a tight loop; nearest-rank
percentiles. Then, when the request holds a classifier and a detector, the role
"classifier+detector": both models back to back on each slice's inputs, timed together, as a
per-slice loop runs them (the tight loops keep one model's weights and threads hot; here each
model follows the other, as in the daemon). Those two sessions are configured as the daemon's
onnxruntime engine configures its own: spinning between operators, stopped when a run returns
(`session.force_spinning_stop`); with onnxruntime's defaults the idle model's pool keeps spinning
while the other runs, which measured here 19 ms per pair against 11.6 ms for the two tight loops.
"""
import json
import math
import sys
import time

import numpy as np
import onnxruntime as ort

REPEATS = 5


def percentile(sorted_ms, q):
    rank = max(1, math.ceil(q * len(sorted_ms)))
    return sorted_ms[min(rank, len(sorted_ms)) - 1]


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: ort_peer.py REQUEST.json RESULT.json")
    req = json.load(open(sys.argv[1]))
    threads = int(req["threads"])
    out = {"runtime": "onnxruntime-python", "version": ort.__version__, "threads": threads, "models": []}
    loaded = {}
    for m in req["models"]:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(m["onnx"], so, providers=["CPUExecutionProvider"])
        shape = [int(d) for d in m["input_shape"]]
        data = np.fromfile(m["inputs"], dtype="<f4")
        per = int(np.prod(shape))
        n = data.size // per
        if n == 0:
            sys.exit(f"{m['inputs']}: no complete input of shape {shape}")
        xs = [data[i * per:(i + 1) * per].reshape(shape) for i in range(n)]
        for _ in range(3):
            sess.run(None, {m["input_name"]: xs[0]})
        ms = []
        for _ in range(REPEATS):
            for x in xs:
                t = time.perf_counter()
                sess.run(None, {m["input_name"]: x})
                ms.append((time.perf_counter() - t) * 1000.0)
        ms.sort()
        out["models"].append({
            "role": m["role"], "runs": len(ms),
            "p50_ms": percentile(ms, 0.50), "p99_ms": percentile(ms, 0.99),
        })
        loaded[m["role"]] = (sess, m["input_name"], xs)
    if "classifier" in loaded and "detector" in loaded:
        def paired(role):
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            so.add_session_config_entry("session.intra_op.allow_spinning", "1")
            so.add_session_config_entry("session.force_spinning_stop", "1")
            m = next(m for m in req["models"] if m["role"] == role)
            sess = ort.InferenceSession(m["onnx"], so, providers=["CPUExecutionProvider"])
            return sess, loaded[role][1], loaded[role][2]
        (cs, cn, cx), (ds, dn, dx) = paired("classifier"), paired("detector")
        n = min(len(cx), len(dx))
        ms = []
        for r in range(REPEATS + 1):
            for i in range(n):
                t = time.perf_counter()
                cs.run(None, {cn: cx[i]})
                ds.run(None, {dn: dx[i]})
                if r > 0:  # the first pass warms the alternation up
                    ms.append((time.perf_counter() - t) * 1000.0)
        ms.sort()
        out["models"].append({
            "role": "classifier+detector", "runs": len(ms),
            "p50_ms": percentile(ms, 0.50), "p99_ms": percentile(ms, 0.99),
        })
    json.dump(out, open(sys.argv[2], "w"), indent=2)


if __name__ == "__main__":
    main()
