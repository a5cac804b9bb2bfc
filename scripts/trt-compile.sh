#!/usr/bin/env bash
# Compiles the TensorRT shim (board/jetson/shim/pe_trt.cpp) against every set of public TensorRT
# headers in ../shared/vendor/tensorrt-headers (8.5, 10.3, 10.16, 11.1) with
# g++ -std=c++17 -Wall -Wextra -Werror (TensorRT's and CUDA's headers as system headers: warnings
# inside them are theirs, while our uses of anything they mark deprecated still fail), and links each into a shared library (no undefined symbol
# left but libcudart's). It also unpacks NVIDIA's lean TensorRT 11.1 runtime for the smoke test
# tests/tensorrt_real.rs, which loads the 11.1 build with it on a machine without a GPU.
#
# Downloads (pinned, sha256-checked, once; kept in $PE_SENTINEL_TRT_DIR/wheels, never in the clone):
#   nvidia-cuda-runtime-cu12 12.9.79  3.5 MB  cuda_runtime_api.h and friends, libcudart.so.12
#   nvidia-cuda-nvcc-cu12    12.9.86   41 MB  crt/host_defines.h (the runtime headers include it)
#   tensorrt-lean-cu12-libs  11.1.0.106 46 MB libnvinfer_lean.so.11 (the runtime-only library)
# An empty cache costs those downloads and ~30 s; a warm one only the compiles.
#
# Usage: scripts/trt-compile.sh   (PE_SENTINEL_TRT_DIR, default ~/.cache/pe-sentinel/tensorrt;
#        TRT_HEADERS, default ../shared/vendor/tensorrt-headers beside the repository)
# Writes: $PE_SENTINEL_TRT_DIR/build/trt-<version>/libpe_trt.so, $PE_SENTINEL_TRT_DIR/lean/
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${PE_SENTINEL_TRT_DIR:-$HOME/.cache/pe-sentinel/tensorrt}"
CXX="${CXX:-g++}"
PY="${PYTHON:-python3}"

# The headers live beside the repository (../shared), not in it. A worktree or a fresh clone of a
# local repository finds them beside the main worktree or beside the clone's origin.
candidates=("${TRT_HEADERS:-}" "$ROOT/../shared/vendor/tensorrt-headers")
common="$(git -C "$ROOT" rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)"
[ -n "$common" ] && candidates+=("$common/../../shared/vendor/tensorrt-headers")
origin="$(git -C "$ROOT" remote get-url origin 2>/dev/null || true)"
[ -n "$origin" ] && [ -d "$origin" ] && candidates+=("$origin/../shared/vendor/tensorrt-headers")
HEADERS=""
for c in "${candidates[@]}"; do
  if [ -n "$c" ] && [ -d "$c/trt-11.1" ]; then HEADERS="$(cd "$c" && pwd)" && break; fi
done
if [ -z "$HEADERS" ]; then
  echo "error: TensorRT headers not found (looked in: ${candidates[*]}); set TRT_HEADERS to the folder holding trt-8.5, trt-10.3, trt-10.16, trt-11.1" >&2
  exit 1
fi

mkdir -p "$DIR/wheels"
# name==version sha256 file-prefix
WHEELS=(
  "nvidia-cuda-runtime-cu12==12.9.79 25bba2dfb01d48a9b59ca474a1ac43c6ebf7011f1b0b8cc44f54eb6ac48a96c3 nvidia_cuda_runtime_cu12-12.9.79-"
  "nvidia-cuda-nvcc-cu12==12.9.86 5d6a0d32fdc7ea39917c20065614ae93add6f577d840233237ff08e9a38f58f0 nvidia_cuda_nvcc_cu12-12.9.86-"
  "tensorrt-lean-cu12-libs==11.1.0.106 6bd2d5fddaa9a528e196e46e76ace0cfbdac9a12ddc7caea1901353cf568c098 tensorrt_lean_cu12_libs-11.1.0.106-"
)
wheel_of() { ls "$DIR/wheels/$1"*.whl 2>/dev/null | head -n1 || true; }
for w in "${WHEELS[@]}"; do
  read -r spec sum prefix <<<"$w"
  f="$(wheel_of "$prefix")"
  if [ -z "$f" ] || ! echo "$sum  $f" | sha256sum --check --status; then
    rm -f "$DIR/wheels/$prefix"*.whl
    echo "downloading $spec"
    "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: -d "$DIR/wheels" "$spec"
    f="$(wheel_of "$prefix")"
    if [ -z "$f" ] || ! echo "$sum  $f" | sha256sum --check --status; then
      echo "error: $spec: the downloaded wheel does not match sha256 $sum" >&2
      exit 1
    fi
  fi
done

# Unpack what is needed (python's zipfile: a fresh machine may have no unzip). Stamped per wheel set.
STAMP="$(printf '%s\n' "${WHEELS[@]}" | sha256sum | cut -c1-16)"
if [ "$(cat "$DIR/unpacked.stamp" 2>/dev/null)" != "$STAMP" ]; then
  rm -rf "$DIR/cuda" "$DIR/lean"
  "$PY" - "$DIR" <<'EOF'
import glob, os, shutil, sys, zipfile
d = sys.argv[1]
def unpack(prefix, pick):
    (whl,) = glob.glob(os.path.join(d, "wheels", prefix + "*.whl"))
    with zipfile.ZipFile(whl) as z:
        for name in z.namelist():
            dest = pick(name)
            if dest and not name.endswith("/"):
                dest = os.path.join(d, dest)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with z.open(name) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
def under(root, to):
    return lambda n: to + n[len(root):] if n.startswith(root) else None
unpack("nvidia_cuda_runtime_cu12-", lambda n: under("nvidia/cuda_runtime/include/", "cuda/include/")(n)
       or ("cuda/lib/libcudart.so.12" if n == "nvidia/cuda_runtime/lib/libcudart.so.12" else None))
unpack("nvidia_cuda_nvcc_cu12-", under("nvidia/cuda_nvcc/include/", "cuda/include/"))
unpack("tensorrt_lean_cu12_libs-", under("tensorrt_lean_libs/lib", "lean/lib"))
EOF
  echo "$STAMP" >"$DIR/unpacked.stamp"
fi

status=0
for h in $(printf '%s\n' "$HEADERS"/trt-* | sort -V); do
  v="${h##*/trt-}"
  out="$DIR/build/trt-$v"
  mkdir -p "$out"
  full="$(printf '#include <NvInferVersion.h>\nNV_TENSORRT_MAJOR.NV_TENSORRT_MINOR.NV_TENSORRT_PATCH.NV_TENSORRT_BUILD\n' |
    "$CXX" -E -P -x c++ -I"$h" - | tail -n1 | tr -d ' ')"
  log="$out/compile.log"
  if "$CXX" -std=c++17 -O2 -Wall -Wextra -Werror -fPIC -shared -Wl,--no-undefined \
    -I"$ROOT/src/engine/tensorrt" -isystem "$h" -isystem "$DIR/cuda/include" \
    "$ROOT/board/jetson/shim/pe_trt.cpp" -o "$out/libpe_trt.so" \
    -L"$DIR/cuda/lib" -l:libcudart.so.12 -ldl -Wl,-rpath,"$DIR/cuda/lib" >"$log" 2>&1; then
    if [ -s "$log" ]; then
      echo "TensorRT $full headers ($h): compiled, but the compiler printed:" && cat "$log"
      status=1
    else
      echo "TensorRT $full headers: shim compiled with -Wall -Wextra -Werror, no warning -> $out/libpe_trt.so"
    fi
  else
    echo "TensorRT $full headers ($h): the shim does not compile:" && cat "$log"
    status=1
  fi
done
exit $status
