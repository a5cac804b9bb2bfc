#!/usr/bin/env bash
# The main job on the embedded defaults: builds pe-sentinel (release), generates a demo phantom
# study (three CTPA series, two with emboli) into a temporary folder and shows what was made.
# As the core path lands, this script grows into: start the daemon on a temporary drop folder,
# feed it the series, print the verdicts.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
BIN="${CARGO_TARGET_DIR:-target}/release/pe-sentinel"
WORK="$(mktemp -d -t pe-sentinel-demo.XXXXXX)"
"$BIN" phantom --out "$WORK/phantom" --series 3 --slices 64 --seed 7 --pe-fraction 0.67
echo "demo output in $WORK/phantom (DICOM, PNG, YOLO labels, truth.json per series)"
