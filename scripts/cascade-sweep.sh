#!/usr/bin/env bash
# The cascade sweep of issue 20, reproducible: which `[budget] cascade_gate` keeps series
# sensitivity equal to the cascade off, and what it buys in throughput.
#
# usage: scripts/cascade-sweep.sh OUT [GATES] [PEER_PYTHON]
#   OUT          work folder (phantoms, eval JSON, bench output, sweep.txt)
#   GATES        gates for bench's throughput runs, comma-separated (default 0.02,0.05,0.1,0.2)
#   PEER_PYTHON  Python with onnxruntime for bench's peer (default: the test venv's, if present)
# Environment: BIN (default target/release/pe-sentinel), PROFILE (default board/x86-cpu.toml),
#   ENGINE (default onnxruntime; its library via ORT_DYLIB_PATH or scripts/get-onnxruntime.sh).
#
# 1. Validation phantoms, seeds 1500-1515 (4 series x 64 slices each, as models/train/train_all.sh
#    validates; never the evaluation seeds 1-6), DICOM, the daemon's input.
# 2. `eval --json` on each seed (the detector on every slice: each slice's P and best box).
# 3. models/tune/sweep_cascade.py: series sensitivity and specificity per gate, exact and offline
#    (a gate only removes the boxes of slices whose P is below it), and the chosen gate.
# 4. `bench --input` on seeds 1500-1503 (16 series, 1024 slices) with `--cascade off,GATES`:
#    throughput per gate, and its ratio to the peer running both models on every slice.
# 5. The evaluation seeds 1-6 through the same sweep, for the figures at the chosen gate (reported,
#    not used to choose).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:?usage: scripts/cascade-sweep.sh OUT [GATES] [PEER_PYTHON]}"
GATES="${2:-0.02,0.05,0.1,0.2}"
PEER="${3:-${PE_SENTINEL_VENV:-$HOME/.cache/pe-sentinel/venv}/bin/python}"
BIN="${BIN:-target/release/pe-sentinel}"
PROFILE="${PROFILE:-board/x86-cpu.toml}"
ENGINE="${ENGINE:-onnxruntime}"
[ -x "$BIN" ] || { echo "cascade-sweep: no $BIN; run cargo build --release (or set BIN)" >&2; exit 1; }
mkdir -p "$OUT"

# Seeds 1500-1503 go under val/bench/ (bench's input, read recursively), the others under val/rest/.
dir_of() { # dir_of KIND SEED
  case "$1:$2" in
    val:150[0-3]) echo "$OUT/val/bench/seed-$2" ;;
    val:*) echo "$OUT/val/rest/seed-$2" ;;
    *) echo "$OUT/$1/seed-$2" ;;
  esac
}
phantoms() { # phantoms KIND FIRST LAST
  local s
  for s in $(seq "$2" "$3"); do
    [ -e "$(dir_of "$1" "$s")/phantom.json" ] && continue
    "$BIN" phantom --out "$(dir_of "$1" "$s")" --series 4 --slices 64 --seed "$s" --format dicom --threads 1 >/dev/null
  done
}
evals() { # evals KIND FIRST LAST
  local s
  for s in $(seq "$2" "$3"); do
    [ -e "$OUT/$1/eval-$s.json" ] && continue
    "$BIN" eval --config "$PROFILE" --data "$(dir_of "$1" "$s")" --input dicom --json "$OUT/$1/eval-$s.json" >/dev/null
  done
}

phantoms val 1500 1515
evals val 1500 1515
phantoms eval 1 6
evals eval 1 6
{
  echo "== validation seeds 1500-1515 (choose here)"
  python3 models/tune/sweep_cascade.py --profile "$PROFILE" "$OUT"/val/eval-*.json
  echo
  echo "== evaluation seeds 1-6 (report only)"
  python3 models/tune/sweep_cascade.py --profile "$PROFILE" "$OUT"/eval/eval-*.json
} | tee "$OUT/sweep.txt"

peer=()
[ -x "$PEER" ] && peer=(--peer "$PEER")
"$BIN" bench --config "$PROFILE" --engine "$ENGINE" --input "$OUT/val/bench" --cascade "off,$GATES" \
  "${peer[@]}" --out "$OUT/bench" | tee "$OUT/bench.txt"
