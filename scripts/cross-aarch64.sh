#!/usr/bin/env bash
# The arm64 (Jetson) build check: cross-builds the release binary for aarch64-unknown-linux-gnu
# against glibc 2.31 (JetPack 5 = Ubuntu 20.04; JetPack 6 has 2.35), checks that no symbol needs a
# newer glibc, then runs `pe-sentinel infer` on phantom slices under qemu-aarch64 and checks that
# verdicts, P(PE), box scores and boxes equal the x86-64 ones (tract, FP32, within 1e-4; boxes within
# 1e-2 px). Run by .ci/run after the tests; locally: scripts/cross-aarch64.sh [x86 pe-sentinel binary].
#
# Why cargo-zigbuild: Debian's gcc-aarch64-linux-gnu links against the build host's glibc (2.36 on
# Debian 12), so the binary would ask for GLIBC_2.34 symbols and not start on JetPack 5.
# cargo-zigbuild (PyPI wheel, with zig) links against a chosen glibc version instead.
# Installs, when missing: qemu-user and libc6-arm64-cross (apt: the emulator and the arm64 loader
# and libc it runs the binary with), the rustup target, and cargo-zigbuild + ziglang in a venv
# (PE_SENTINEL_XBUILD_VENV, default ~/.cache/pe-sentinel/xbuild).
set -euo pipefail
cd "$(dirname "$0")/.."

GLIBC_MAX="2.31"
TARGET="aarch64-unknown-linux-gnu"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
X86_BIN="${1:-$TARGET_DIR/debug/pe-sentinel}"
VENV="${PE_SENTINEL_XBUILD_VENV:-$HOME/.cache/pe-sentinel/xbuild}"
SYSROOT=/usr/aarch64-linux-gnu

scripts/deps.sh cross
rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
if [ ! -x "$VENV/bin/cargo-zigbuild" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check cargo-zigbuild==0.24.1 ziglang==0.17.1
fi
if [ ! -x "$X86_BIN" ]; then
  echo "cross-aarch64: no x86-64 pe-sentinel at $X86_BIN to compare with; build it (cargo build) or pass its path" >&2
  exit 1
fi

echo "== cross-build: $TARGET, glibc $GLIBC_MAX (cargo zigbuild --release)"
PATH="$VENV/bin:$PATH" cargo zigbuild --locked --release --target "$TARGET.$GLIBC_MAX" --bin pe-sentinel
ARM_BIN="$TARGET_DIR/$TARGET/release/pe-sentinel"

echo "== glibc symbol versions the arm64 binary needs"
scripts/glibc-check.sh "$ARM_BIN" "$GLIBC_MAX"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$X86_BIN" phantom --out "$work/ph" --series 2 --slices 3 --seed 11 --pe-fraction 0.5 --format dicom >/dev/null
# The shipped x86 profile with the engine pinned to tract (the engine both architectures have).
sed -e 's/^kind = "auto"/kind = "tract"/' -e "s|^dir = \"../models\"|dir = \"$PWD/models\"|" \
  board/x86-cpu.toml >"$work/tract.toml"
grep -q '^kind = "tract"' "$work/tract.toml"
slices=("$work"/ph/series-00[01]/dicom/slice-000[123].dcm)

echo "== infer on x86-64 and on arm64 under qemu-aarch64 (${#slices[@]} slices, tract FP32)"
"$X86_BIN" infer --config "$work/tract.toml" "${slices[@]}" >"$work/x86.jsonl" 2>"$work/x86.log"
QEMU_LD_PREFIX="$SYSROOT" qemu-aarch64 "$ARM_BIN" infer --config "$work/tract.toml" "${slices[@]}" \
  >"$work/arm64.jsonl" 2>"$work/arm64.log" || { cat "$work/arm64.log" >&2; exit 1; }

python3 - "$work/x86.jsonl" "$work/arm64.jsonl" <<'EOF'
import json, sys
x86 = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
arm = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
bad = []
if len(x86) != len(arm) or not x86:
    sys.exit(f"cross-aarch64: x86 gave {len(x86)} results, arm64 {len(arm)}")
worst_p = worst_s = worst_xy = 0.0
for a, b in zip(x86, arm):
    name = a["file"].rsplit("/", 1)[-1]
    if a["file"] != b["file"] or a["verdict"] != b["verdict"]:
        bad.append(f"{name}: verdict {a['verdict']} on x86, {b['verdict']} on arm64")
    worst_p = max(worst_p, abs(a["p"] - b["p"]))
    if len(a["boxes"]) != len(b["boxes"]):
        bad.append(f"{name}: {len(a['boxes'])} boxes on x86, {len(b['boxes'])} on arm64")
        continue
    for ba, bb in zip(a["boxes"], b["boxes"]):
        worst_xy = max(worst_xy, max(abs(u - v) for u, v in zip(ba[:4], bb[:4])))
        worst_s = max(worst_s, abs(ba[4] - bb[4]))
print(f"{len(x86)} slices, verdicts {[r['verdict'] for r in arm]}")
print(f"max |dP| {worst_p:.2e}, max |d box score| {worst_s:.2e}, max |d box corner| {worst_xy:.2e} px")
if worst_p > 1e-4: bad.append(f"P differs by {worst_p:.2e} (> 1e-4)")
if worst_s > 1e-4: bad.append(f"a box score differs by {worst_s:.2e} (> 1e-4)")
if worst_xy > 1e-2: bad.append(f"a box corner differs by {worst_xy:.2e} px (> 1e-2)")
if not any(r["boxes"] for r in x86): bad.append("no slice had a box: the check would not compare the detector")
if len({r["verdict"] for r in x86}) < 2: bad.append("all slices had one verdict: pick phantom seeds with both kinds")
if bad:
    sys.exit("cross-aarch64: arm64 differs from x86-64:\n  " + "\n  ".join(bad))
print("arm64 under qemu equals x86-64")
EOF
