#!/usr/bin/env bash
# Runs each cargo-fuzz target for SECONDS (default 300), seeded from the real files in tests/data
# and the shipped profiles. Stable Rust: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags.
# Needs: cargo install cargo-fuzz. Not part of scripts/test.sh (minutes per target, full rebuild
# of the dependencies with coverage instrumentation). A crash leaves its input in
# fuzz/artifacts/TARGET/; turn it into a regression test in tests/fuzz_regressions.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
export RUSTC_BOOTSTRAP=1
mkdir -p fuzz/corpus/dicom_decode fuzz/corpus/raster_decode fuzz/corpus/config_parse
cp -n tests/data/dicom/*.dcm fuzz/corpus/dicom_decode/ 2>/dev/null || true
find tests/data -name '*.png' -size -1M -exec cp -n {} fuzz/corpus/raster_decode/ \; 2>/dev/null || true
find tests/data -name '*.jpg' -size -1M -exec cp -n {} fuzz/corpus/raster_decode/ \; 2>/dev/null || true
cp -n board/*.toml fuzz/corpus/config_parse/
# -s none: no sanitizer (our code is safe Rust; the aim is panics and runaway allocations, which
# libFuzzer's -malloc_limit_mb reports). -a: debug assertions and overflow checks on.
for t in dicom_decode raster_decode config_parse; do
  echo "== $t for ${seconds} s"
  cargo fuzz run -s none -a "$t" "fuzz/corpus/$t" -- -max_total_time="$seconds" -malloc_limit_mb=2048 -rss_limit_mb=3072 \
    -print_final_stats=1 2>&1 | tail -n 25
done
