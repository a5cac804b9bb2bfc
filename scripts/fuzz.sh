#!/usr/bin/env bash
# Runs each cargo-fuzz target for SECONDS (default 300), seeded from the real files in tests/data
# and the shipped profiles. Stable Rust: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags.
# Needs: cargo install cargo-fuzz. Not part of scripts/test.sh (minutes per target, full rebuild
# of the dependencies with coverage instrumentation). A crash leaves its input in
# fuzz/artifacts/TARGET/; turn it into a regression test in tests/fuzz_regressions.rs.
#
# Campaign mode (docs/fuzzing.md): scripts/fuzz.sh campaign TARGET RUNS CORPUS [flags]
# runs the already built TARGET (cargo fuzz build -s none -a, CARGO_TARGET_DIR as for the build)
# for RUNS executions over the corpus folder CORPUS, files in /dev/shm, and logs to
# fuzz/logs/TARGET-TIME.log with the commit fuzzed. Several in parallel on one corpus share finds.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
if [ "${1:-}" = campaign ]; then
  t=$2 runs=$3 corpus=$4
  shift 4
  bin=${CARGO_TARGET_DIR:-fuzz/target}/x86_64-unknown-linux-gnu/release/$t
  [ -x "$bin" ] || { echo "fuzz.sh: no $bin; build it: cd fuzz && cargo fuzz build -s none -a $t" >&2; exit 2; }
  mkdir -p fuzz/logs "fuzz/artifacts/$t"
  log=fuzz/logs/$t-$(date -u +%Y%m%dT%H%M%S).log
  echo "commit $(git rev-parse --short HEAD) ($(git status --short | wc -l) changed files) start $(date -u +%FT%TZ) runs=$runs $*" >"$log"
  start=$(date +%s)
  rc=0
  FUZZ_CONTAINED_DIR="fuzz/artifacts/$t" TMPDIR=/dev/shm FUZZ_TMP=/dev/shm nice -n "${NICE:-5}" "$bin" "$corpus" -runs="$runs" -malloc_limit_mb=2048 \
    -rss_limit_mb=3072 -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" "$@" >>"$log" 2>&1 || rc=$?
  echo "end $(date -u +%FT%TZ) rc=$rc wall_s=$(($(date +%s) - start))" >>"$log"
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|^end" "$log"
  exit "$rc"
fi
seconds=${1:-300}
mkdir -p fuzz/corpus/dicom_decode fuzz/corpus/raster_decode fuzz/corpus/config_parse fuzz/corpus/receive_pdus
cp -n tests/data/dicom/*.dcm fuzz/corpus/dicom_decode/ 2>/dev/null || true
find tests/data -name '*.png' -size -1M -exec cp -n {} fuzz/corpus/raster_decode/ \; 2>/dev/null || true
find tests/data -name '*.jpg' -size -1M -exec cp -n {} fuzz/corpus/raster_decode/ \; 2>/dev/null || true
cp -n board/*.toml fuzz/corpus/config_parse/
# receive_pdus: what a sender sends after association (C-ECHO; C-STORE of a test file's data set
# in two fragments; a set-aside class), built by tests/py/dicom_wire.py (standard library only).
python3 - <<'PY'
import sys
sys.path.insert(0, "tests/py")
import dicom_wire as w
raw = open("tests/data/dicom/CT_small.dcm", "rb").read()
body = raw[132 + 12 + int.from_bytes(raw[140:144], "little"):]
uid = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
seeds = {
    "echo": w.pdata(7, True, True, w.c_echo_rq(1)) + bytes.fromhex("05000000000400000000"),
    "store": w.pdata(1, True, True, w.c_store_rq(1, w.CT_IMAGE, uid)) + w.pdata(1, False, False, body[:4000])
    + w.pdata(1, False, True, body[4000:]),
    "aside": w.pdata(5, True, True, w.c_store_rq(2, "1.2.840.10008.5.1.4.1.1.88.33", "1.2.3")) + w.pdata(5, False, True, b"\x08\x00\x16\x00\x02\x00\x00\x00ab"),
}
for name, data in seeds.items():
    open(f"fuzz/corpus/receive_pdus/seed-{name}", "wb").write(data)
PY
# -s none: no sanitizer (our code is safe Rust; the aim is panics and runaway allocations, which
# libFuzzer's -malloc_limit_mb reports). -a: debug assertions and overflow checks on.
for t in dicom_decode raster_decode config_parse receive_pdus; do
  echo "== $t for ${seconds} s"
  cargo fuzz run -s none -a "$t" "fuzz/corpus/$t" -- -max_total_time="$seconds" -malloc_limit_mb=2048 -rss_limit_mb=3072 \
    -print_final_stats=1 2>&1 | tail -n 25
done
