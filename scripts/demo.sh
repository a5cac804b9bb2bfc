#!/usr/bin/env bash
# The main job on the embedded defaults: builds pe-sentinel (release), generates a demo CTPA study
# (three phantom series, two with emboli), starts the daemon with the shipped x86 CPU profile and
# models on a temporary drop folder, feeds it the series (two as DICOM, one as PNG screenshots),
# and prints the verdicts next to the truth.
# Set-up it does itself: the Debian packages the build needs (scripts/deps.sh: installed when run
# as root, else the one `apt-get install` line to run, before any build), and the pinned
# onnxruntime CPU library (scripts/get-onnxruntime.sh) beside the binary, so `engine = "auto"` runs
# onnxruntime; without network it says why and the demo runs on tract.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build demo
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
# stdout (where the library went) to the terminal, stderr (why it could not be fetched) kept.
if { ORT_ERR="$(scripts/get-onnxruntime.sh "$TARGET_DIR/lib/pe-sentinel" 2>&1 1>&3)"; } 3>&1; then
  ORT_NOTE=""
else
  ORT_NOTE="${ORT_ERR##*$'\n'}"
  echo "$ORT_NOTE: the demo runs on tract"
fi
cargo build --release --locked
BIN="$TARGET_DIR/release/pe-sentinel"
WORK="$(mktemp -d -t pe-sentinel-demo.XXXXXX)"
"$BIN" phantom --out "$WORK/phantom" --series 3 --slices 48 --seed 7 --pe-fraction 0.67
mkdir -p "$WORK/drop"
"$BIN" run --drop "$WORK/drop" --state "$WORK/state" 2> "$WORK/daemon.log" &
DAEMON=$!
trap 'kill $DAEMON 2>/dev/null || true' EXIT
until grep -q "watching drop folder" "$WORK/daemon.log"; do
  kill -0 $DAEMON 2>/dev/null || { cat "$WORK/daemon.log"; exit 1; }
  sleep 0.5
done
# DICOM series are told apart by SeriesInstanceUID; separate folders only keep equal file names apart.
mkdir -p "$WORK/drop/dicom-a" "$WORK/drop/dicom-b"
cp "$WORK"/phantom/series-000/dicom/*.dcm "$WORK/drop/dicom-a/"
cp "$WORK"/phantom/series-001/dicom/*.dcm "$WORK/drop/dicom-b/"
mkdir -p "$WORK/drop/series-002" && cp "$WORK"/phantom/series-002/png/*.png "$WORK/drop/series-002/"
echo "fed 144 slices; waiting for the daemon to analyse them and close the series (20 s quiet time)..."
until [ "$(find "$WORK/drop/done" -type f | wc -l)" -ge 144 ]; do sleep 1; done
sleep 23
kill -TERM $DAEMON; wait $DAEMON || true
trap - EXIT
grep -E "ALERT|closed" "$WORK/daemon.log" || true
echo
# The daemon's own line: `engine onnxruntime (asked: auto): onnxruntime 1.32.0 from ...`.
echo "ran on: $(grep -m1 -oE 'engine [a-z]+ \(asked: .*' "$WORK/daemon.log" | cut -c1-160)"
if [ -n "$ORT_NOTE" ]; then
  echo "(tract, because $ORT_NOTE; tract is about 3x slower per slice on x86)"
fi
echo
"$BIN" history --state "$WORK/state"
echo
echo "truth (phantom.json): $(python3 -c 'import json,sys; print(", ".join(s["folder"]+": "+("positive" if s["positive"] else "negative") for s in json.load(open(sys.argv[1]))["series"]))' "$WORK/phantom/phantom.json")"
echo "(series-000 and series-001 appear under their SeriesInstanceUID; overlays of suspicious slices: $WORK/state/overlays)"
