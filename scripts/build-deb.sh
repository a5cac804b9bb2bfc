#!/usr/bin/env bash
# Builds the appliance package for a Jetson (arm64) or an x86 mini-PC (amd64) on any Linux host:
#   scripts/build-deb.sh arm64|amd64        -> target/debian/pe-sentinel_<version>_<arch>.deb
# The binaries (pe-sentinel, pe-sentinel-receive, pe-sentinel-send) are linked against glibc 2.31
# with cargo-zigbuild (so they start on JetPack 5 / Ubuntu 20.04, JetPack 6 / Ubuntu 22.04 and
# anything newer), each checked for newer symbol versions, and the package says
# `Depends: libc6 (>= 2.31)` (Cargo.toml: a fixed line, not cargo-deb's `$auto`, which would copy
# the build host's glibc version). C++ (CharLS) is linked statically by zig, so there is
# no libstdc++ dependency. The package carries the onnxruntime CPU library (usr/lib/pe-sentinel),
# the man pages and the bash/zsh/fish completions. Installs cargo-deb (cargo install) and cargo-zigbuild (PyPI, with zig)
# when missing; the cross build uses the same venv as scripts/cross-aarch64.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
GLIBC="2.31"
case "${1:-}" in
  arm64) triple=aarch64-unknown-linux-gnu ;;
  amd64) triple=x86_64-unknown-linux-gnu ;;
  *) echo "usage: scripts/build-deb.sh arm64|amd64" >&2; exit 2 ;;
esac
VENV="${PE_SENTINEL_XBUILD_VENV:-$HOME/.cache/pe-sentinel/xbuild}"
if [ ! -x "$VENV/bin/cargo-zigbuild" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check cargo-zigbuild==0.24.1 ziglang==0.17.1
fi
command -v cargo-deb >/dev/null || cargo install --locked cargo-deb
rustup target list --installed | grep -qx "$triple" || rustup target add "$triple"
# The analyser, then the DICOM receiver and the results sender (issue 22: their own crates and
# units), against the same glibc; two builds, so that cargo's feature unification does not link the
# receiver's network code (pe-sentinel-receive's `server` feature) into the analyser. Each binary is
# checked for newer symbol versions.
PATH="$VENV/bin:$PATH" cargo zigbuild --locked --release --target "$triple.$GLIBC" --bin pe-sentinel
PATH="$VENV/bin:$PATH" cargo zigbuild --locked --release --target "$triple.$GLIBC" \
  -p pe-sentinel-receive -p pe-sentinel-send --bins
for bin in pe-sentinel pe-sentinel-receive pe-sentinel-send; do
  scripts/glibc-check.sh "${CARGO_TARGET_DIR:-target}/$triple/release/$bin" "$GLIBC"
done
# What the package carries beside the binary (Cargo.toml assets under target/release/assets): the man
# pages and shell completions from the clap definitions, written by the binary itself (the arm64 one
# under qemu-aarch64), and the pinned onnxruntime CPU library for `engine = "auto"` (docs/platform.md).
REL="${CARGO_TARGET_DIR:-target}/$triple/release"
run=()
if [ "$triple" = aarch64-unknown-linux-gnu ] && [ "$(uname -m)" != aarch64 ]; then
  scripts/deps.sh cross
  run=(qemu-aarch64 -L /usr/aarch64-linux-gnu)
fi
rm -rf "$REL/assets"
"${run[@]}" "$REL/pe-sentinel" generate-docs --out "$REL/assets"
gzip -9n "$REL/assets/man1/"*.1
ONNXRUNTIME_ARCH="${triple%%-*}" scripts/get-onnxruntime.sh "$REL/assets/lib"
cargo deb --no-build --strip --target "$triple"
