#!/usr/bin/env bash
# Fetches the pinned onnxruntime CPU library from its official PyPI wheel and puts it where
# `engine = "auto"` finds it without any setting (docs/engines.md, docs/platform.md). Nothing is
# compiled and nothing is installed into Python: only python3's standard library is used (no pip).
#
# Usage: scripts/get-onnxruntime.sh [DEST]
#   DEST default: ${CARGO_TARGET_DIR:-target}/lib/pe-sentinel, the "package lib folder" of every
#   binary built in this checkout (target/release/pe-sentinel and target/debug/pe-sentinel look in
#   ../lib/pe-sentinel). For an install elsewhere: <prefix>/lib/pe-sentinel beside <prefix>/bin, or set
#   [engine] onnxruntime_lib = "DEST/libonnxruntime.so" (or ORT_DYLIB_PATH).
# The wheel is checked against the sha256 pinned below (for the pinned version; any other version
# given in ONNXRUNTIME_VERSION is checked against the index's sha256 only), and kept in
# ${XDG_CACHE_HOME:-~/.cache}/pe-sentinel/onnxruntime so a second run needs no network.
# PIP_INDEX_URL (a local PyPI mirror) is honoured; ONNXRUNTIME_ARCH=aarch64 fetches the arm64 library
# on another machine (scripts/build-deb.sh). Exit 0: DEST holds the library; exit 3: it could
# not be fetched (offline, index unreachable, no wheel for this machine), with one line saying why.
set -euo pipefail
VERSION="${ONNXRUNTIME_VERSION:-1.32.0}"
DEST="${1:-}"
[ -z "$DEST" ] || [[ "$DEST" = /* ]] || DEST="$PWD/$DEST"
cd "$(dirname "$0")/.."
DEST="${DEST:-${CARGO_TARGET_DIR:-target}/lib/pe-sentinel}"
ARCH="${ONNXRUNTIME_ARCH:-$(uname -m)}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/pe-sentinel/onnxruntime/$VERSION-$ARCH"
INDEX="${PIP_INDEX_URL:-https://pypi.org/simple}"

if [ -e "$DEST/libonnxruntime.so.$VERSION" ] && [ "$(readlink "$DEST/libonnxruntime.so")" = "libonnxruntime.so.$VERSION" ]; then
  echo "onnxruntime $VERSION: $DEST/libonnxruntime.so (already there)"
  exit 0
fi
if ! compgen -G "$CACHE/libonnxruntime.so.*" >/dev/null; then
  mkdir -p "$CACHE"
  python3 - "$VERSION" "$INDEX" "$CACHE" "$ARCH" <<'PY' || exit 3
import hashlib, io, re, sys, urllib.parse, urllib.request, zipfile

version, index, cache, arch = sys.argv[1:5]
# The cp311 manylinux wheels of the pinned version: the C library inside does not depend on Python.
PINNED = {
    ("1.32.0", "x86_64"): ("onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl",
                           "5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d"),
    ("1.32.0", "aarch64"): ("onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_aarch64.whl",
                            "2303372a85299b6757b0e11e1cbf13e410ddf7e10c37f4b37e99d1c90e7daf7c"),
}

def fail(why):
    print(f"onnxruntime {version}: not fetched: {why}", file=sys.stderr)
    sys.exit(3)

page_url = index.rstrip("/") + "/onnxruntime/"
try:
    page = urllib.request.urlopen(page_url, timeout=30).read().decode("utf-8", "replace")
except Exception as e:  # offline, proxy, DNS: one line, the caller falls back
    fail(f"cannot reach the package index {page_url} ({e})")
links = {}
for href, name in re.findall(r'href="([^"]+)"[^>]*>([^<]+)</a>', page):
    links[name.strip()] = urllib.parse.urljoin(page_url, href.replace("&amp;", "&"))
pinned = PINNED.get((version, arch))
if pinned:
    name, want = pinned
else:
    names = sorted(n for n in links if n.startswith(f"onnxruntime-{version}-")
                   and re.search(rf"manylinux[^-]*_{arch}\.whl$", n) and "t-manylinux" not in n)
    if not names:
        fail(f"the index has no manylinux wheel of onnxruntime {version} for {arch}")
    name, want = names[0], None
if name not in links:
    fail(f"the index {page_url} does not list {name}")
url = links[name]
frag = urllib.parse.urlparse(url).fragment
if want is None:
    if not frag.startswith("sha256="):
        fail(f"the index gives no sha256 for {name}; pin one in scripts/get-onnxruntime.sh")
    want = frag.split("=", 1)[1]
try:
    data = urllib.request.urlopen(url.split("#")[0], timeout=120).read()
except Exception as e:
    fail(f"cannot download {name} ({e})")
got = hashlib.sha256(data).hexdigest()
if got != want:
    fail(f"{name} has sha256 {got}, expected {want}: refusing it")
z = zipfile.ZipFile(io.BytesIO(data))
libs = [n for n in z.namelist() if re.fullmatch(r"onnxruntime/capi/libonnxruntime\.so\.1\.[0-9.]+", n)]
if not libs:
    fail(f"{name} holds no onnxruntime/capi/libonnxruntime.so.1.*")
with open(f"{cache}/{libs[0].rsplit('/', 1)[1]}", "wb") as f:
    f.write(z.read(libs[0]))
# The licence and third-party notices travel with the library (MIT: the notice must be kept).
for base in ("LICENSE", "ThirdPartyNotices.txt"):
    if f"onnxruntime/{base}" in z.namelist():
        with open(f"{cache}/{base}", "wb") as f:
            f.write(z.read(f"onnxruntime/{base}"))
print(f"onnxruntime {version}: fetched {name} ({len(data) // 1_000_000} MB, sha256 checked)", file=sys.stderr)
PY
fi
LIB="$(compgen -G "$CACHE/libonnxruntime.so.*" | head -n1)"
mkdir -p "$DEST"
cp -f "$LIB" "$DEST/"
for f in LICENSE ThirdPartyNotices.txt; do
  [ -e "$CACHE/$f" ] && cp -f "$CACHE/$f" "$DEST/onnxruntime-$f"
done
ln -sf "$(basename "$LIB")" "$DEST/libonnxruntime.so"
echo "onnxruntime $VERSION: $DEST/libonnxruntime.so -> $(basename "$LIB")"
