#!/usr/bin/env bash
# Builds libpe_trt.so (the TensorRT shim) ON a Jetson with JetPack 5.1 (TensorRT 8.5) or
# JetPack 6.x (TensorRT 10.x). Cannot run on the development machine: it has no TensorRT or CUDA.
# Usage: board/jetson/shim/build.sh [OUT_DIR]   (default: target/jetson)
# Install: copy OUT_DIR/libpe_trt.so to /usr/lib/pe-sentinel/ (beside bin/../lib/pe-sentinel)
# or point [tensorrt] shim at it.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
OUT="${1:-$ROOT/target/jetson}"
CUDA="${CUDA_HOME:-/usr/local/cuda}"
mkdir -p "$OUT"
for h in NvInfer.h NvOnnxParser.h; do
  if ! echo "#include <$h>" | ${CXX:-g++} -x c++ -E -I"$CUDA/include" -I/usr/include/aarch64-linux-gnu - >/dev/null 2>&1; then
    echo "error: $h not found; install TensorRT development files (JetPack: nvidia-tensorrt-dev / libnvinfer-dev libnvonnxparsers-dev)" >&2
    exit 1
  fi
done
${CXX:-g++} -std=c++17 -O2 -Wall -Wextra -shared -fPIC \
  -I"$ROOT/src/engine/tensorrt" -I"$CUDA/include" -I/usr/include/aarch64-linux-gnu \
  "$HERE/pe_trt.cpp" -o "$OUT/libpe_trt.so" \
  -L"$CUDA/lib64" -L/usr/lib/aarch64-linux-gnu -lnvinfer -lnvonnxparser -lcudart
echo "built $OUT/libpe_trt.so"
