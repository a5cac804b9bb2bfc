#!/usr/bin/env bash
# Run ON a Jetson (JetPack 5.1 / TensorRT 8.5, JetPack 6.x / TensorRT 10.x or JetPack 7 / TensorRT 11.x) from a checkout of
# pe-sentinel: builds the TensorRT shim and pe-sentinel with `--features tensorrt`, builds the
# engines, compares TensorRT with tract on phantom slices (classifier P within 0.02, every box
# matched by one of the other engine at IoU >= 0.9), then prints latency figures with
# `pe-sentinel bench`. Never run so far (no Jetson was available): see docs/engines.md.
# Usage: board/jetson/verify.sh [WORK_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
WORK="${1:-$(mktemp -d)}"
mkdir -p "$WORK"

board/jetson/shim/build.sh "$WORK/lib"
cargo build --release --locked --features tensorrt
BIN="$ROOT/target/release/pe-sentinel"

profile() { # name kind precision
  cat > "$WORK/$1.toml" <<EOT
[board]
name = "jetson-verify"
[engine]
kind = "$2"
precision = "$3"
threads = 4
[models]
dir = "$ROOT/models"
[paths]
drop_dir = "$WORK/drop"
state_dir = "$WORK/state"
[tensorrt]
shim = "$WORK/lib/libpe_trt.so"
fallback = "refuse"
EOT
}

"$BIN" phantom --out "$WORK/phantom" --series 2 --slices 32 --format png --seed 7 --pe-fraction 1
mapfile -t SLICES < <(ls "$WORK"/phantom/series-*/png/*.png)

status=0
for precision in fp32 int8; do
  profile "tract-$precision" tract "$precision"
  profile "trt-$precision" tensorrt "$precision"
  "$BIN" build-engines --config "$WORK/trt-$precision.toml"
  "$BIN" check --config "$WORK/trt-$precision.toml"
  "$BIN" infer --config "$WORK/tract-$precision.toml" "${SLICES[@]}" > "$WORK/tract-$precision.jsonl"
  "$BIN" infer --config "$WORK/trt-$precision.toml" "${SLICES[@]}" > "$WORK/trt-$precision.jsonl"
  python3 - "$WORK/tract-$precision.jsonl" "$WORK/trt-$precision.jsonl" "$precision" <<'PY' || status=1
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert [r["file"] for r in a] == [r["file"] for r in b], "slice lists differ"
def iou(p, q):
    w = max(0.0, min(p[2], q[2]) - max(p[0], q[0])); h = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
    u = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - w * h
    return w * h / u if u > 0 else 0.0
worst_p, unmatched, boxes = 0.0, 0, 0
for x, y in zip(a, b):
    worst_p = max(worst_p, abs(x["p"] - y["p"]))
    for s, t in ((x["boxes"], y["boxes"]), (y["boxes"], x["boxes"])):
        for box in s:
            boxes += 1
            if not any(iou(box, o) >= 0.9 for o in t):
                unmatched += 1
ok = worst_p <= 0.02 and unmatched == 0
print(f"{sys.argv[3]}: {len(a)} slices, max |P tract - P tensorrt| = {worst_p:.4f} (limit 0.02), "
      f"{unmatched} of {boxes} boxes without a match at IoU >= 0.9 -> {'PASS' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
PY
done

# INT8 accuracy margin ([tensorrt] int8_max_loss) on the phantom eval set, TensorRT engines.
"$BIN" phantom --out "$WORK/eval" --series 6 --slices 32 --format png --seed 11
"$BIN" eval --data "$WORK/eval" --config "$WORK/trt-fp32.toml" --json "$WORK/eval-fp32.json"
"$BIN" eval --data "$WORK/eval" --config "$WORK/trt-int8.toml" --int8-baseline "$WORK/eval-fp32.json" || status=1

# Latency: the lead's `bench` command (median/p99 per engine).
for engine in tract tensorrt onnxruntime; do
  "$BIN" bench --engine "$engine" --config "$WORK/trt-fp32.toml" || status=1
done
exit $status
