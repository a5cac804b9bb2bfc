#!/usr/bin/env bash
# Fetches the pinned onnxruntime CPU library from its official PyPI wheel and puts it in a folder,
# for the onnxruntime engine (docs/engines.md). Nothing is compiled; pip only downloads the wheel.
# Usage: scripts/get-onnxruntime.sh [DEST]   (default DEST: ./lib/pe-sentinel)
# Then set [engine] onnxruntime_lib = "DEST/libonnxruntime.so" in the board profile (or ORT_DYLIB_PATH),
# or install DEST's files into <prefix>/lib/pe-sentinel/ beside <prefix>/bin/pe-sentinel.
set -euo pipefail
VERSION="${ONNXRUNTIME_VERSION:-1.32.0}"
DEST="${1:-lib/pe-sentinel}"
PY="${PYTHON:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# pip picks the wheel for this machine's Python and architecture (x86_64 or aarch64 manylinux).
"$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --dest "$WORK" "onnxruntime==$VERSION"
WHEEL="$(ls "$WORK"/onnxruntime-"$VERSION"-*.whl)"
"$PY" - "$WHEEL" "$WORK/x" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
LIB="$(ls "$WORK"/x/onnxruntime/capi/libonnxruntime.so.1.* | head -n1)"
mkdir -p "$DEST"
cp "$LIB" "$DEST/"
ln -sf "$(basename "$LIB")" "$DEST/libonnxruntime.so"
echo "onnxruntime $VERSION: $DEST/$(basename "$LIB") (and the link $DEST/libonnxruntime.so)"
