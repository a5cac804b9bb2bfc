#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, Rust unit and integration tests, and the
# Python cross-checks against independent implementations (pydicom, onnxruntime).
# Needs: Rust (cargo) and Python 3.11; scripts/deps.sh installs the Debian packages (python3-venv,
# systemd, udev, cmake, ...) when root, else prints the apt-get line. Installs the Python test
# packages into a venv outside the repository (PE_SENTINEL_VENV, default ~/.cache/pe-sentinel/venv).
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian packages of the build and the tests (installed when root, else the apt-get line to run).
scripts/deps.sh build test

VENV="${PE_SENTINEL_VENV:-$HOME/.cache/pe-sentinel/venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/py/requirements.txt

# The onnxruntime engine's tests load the shared library of the pinned onnxruntime wheel just installed.
PE_SENTINEL_ORT_LIB="$(ls "$VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.* | head -n1)"
export PE_SENTINEL_ORT_LIB

cargo fmt --check
# The systemd unit, sysusers and tmpfiles files (verify must print nothing; exposure <= 1.0).
scripts/check-systemd.sh
cargo clippy --workspace --all-targets --locked -- -D warnings
# The TensorRT binding (feature `tensorrt`) must compile and lint everywhere (docs/engines.md).
cargo clippy --features tensorrt --all-targets --locked -- -D warnings
# --workspace: also the DICOM receiver (crates/receive, binary pe-sentinel-receive), which tests/py drives.
cargo build --workspace --locked --all-targets
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
PE_SENTINEL_BIN="$TARGET_DIR/debug/pe-sentinel" "$VENV/bin/python" -m pytest -q tests/py
# Unit and integration tests (no doc-tests: there are none, and an empty last run would hide the count).
cargo test --workspace --locked --lib --bins --tests
# (--workspace: the results sender's crate, crates/send, and the DICOM receiver's, crates/receive.)
# The TensorRT shim compiled against every TensorRT header set (-Werror), and the lean TensorRT
# runtime and CUDA runtime from PyPI for its smoke test (cached in PE_SENTINEL_TRT_DIR).
scripts/trt-compile.sh
# The TensorRT binding against its C stand-in, then the real shim with the real lean runtime on
# this machine without a GPU (builds the binary with the feature; keep it last).
cargo test --locked --features tensorrt --test tensorrt --test tensorrt_real -- --nocapture --test-threads=1
