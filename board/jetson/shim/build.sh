#!/usr/bin/env bash
# Builds libpe_trt.so (the TensorRT shim) ON the box that will run it: a Jetson with JetPack 5.1
# (TensorRT 8.5), JetPack 6.x (TensorRT 10.x) or JetPack 7 (TensorRT 11.x), or an x86 box with
# TensorRT and CUDA installed. Needs the TensorRT headers (JetPack: libnvinfer-dev,
# libnvonnxparsers-dev) and CUDA's. TensorRT itself is opened at run time (dlopen: libnvinfer, else
# the lean libnvinfer_lean; [tensorrt] library overrides), so only libcudart is linked.
# CI compiles the same source against the 8.5, 10.3, 10.16 and 11.1 headers (scripts/trt-compile.sh).
# Usage: board/jetson/shim/build.sh [OUT_DIR]   (default: target/jetson)
# Install: copy OUT_DIR/libpe_trt.so to /usr/lib/pe-sentinel/ (beside bin/../lib/pe-sentinel)
# or point [tensorrt] shim at it.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
OUT="${1:-$ROOT/target/jetson}"
CUDA="${CUDA_HOME:-/usr/local/cuda}"
ARCH_INC="/usr/include/$(uname -m)-linux-gnu"
mkdir -p "$OUT"
for h in NvInfer.h NvOnnxParser.h cuda_runtime_api.h; do
  if ! echo "#include <$h>" | ${CXX:-g++} -x c++ -E -I"$CUDA/include" -I"$ARCH_INC" - >/dev/null 2>&1; then
    echo "error: $h not found; install the TensorRT and CUDA development files (JetPack: nvidia-tensorrt-dev, or libnvinfer-dev libnvonnxparsers-dev cuda-cudart-dev)" >&2
    exit 1
  fi
done
${CXX:-g++} -std=c++17 -O2 -Wall -Wextra -shared -fPIC -Wl,--no-undefined \
  -I"$ROOT/src/engine/tensorrt" -isystem "$CUDA/include" -isystem "$ARCH_INC" \
  "$HERE/pe_trt.cpp" -o "$OUT/libpe_trt.so" \
  -L"$CUDA/lib64" -L"/usr/lib/$(uname -m)-linux-gnu" -lcudart -ldl
echo "built $OUT/libpe_trt.so"
