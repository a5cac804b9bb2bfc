#!/usr/bin/env bash
# The appliance on a real OS: boots a Debian 12 VM (systemd as PID 1) with qemu, installs the .deb
# and runs the checks of docs/install.md ("VM bench"). One command, no questions asked:
#   scripts/vmtest/run.sh [amd64|arm64]
# Prints PASS/FAIL/SKIP per check and exits non-zero on any FAIL, on a timeout, or when the VM
# does not come up. Everything it needs it installs (apt: qemu, mmdebstrap, ...). Settings:
#   PE_SENTINEL_VMTEST_CACHE   kernel/initramfs/root images (default /var/cache/pe-sentinel-ci/vmtest)
#   PE_SENTINEL_VMTEST_DEB     the .deb to test (default: built with scripts/build-deb.sh ARCH)
#   PE_SENTINEL_VMTEST_HOST_BIN  an x86-64 pe-sentinel that makes the test series on the host
#                              (default: the one in the amd64 .deb, or $CARGO_TARGET_DIR/debug)
#   PE_SENTINEL_VMTEST_TIMEOUT whole VM run in seconds (default 1500 amd64, 2400 arm64)
#   PE_SENTINEL_VMTEST_ACCEL   auto (KVM when it boots, else TCG) | kvm | tcg
# Logs (console, display line, guest journal) go to $CARGO_TARGET_DIR/vmtest-<arch>/.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
cd "$(dirname "$0")/../.."
arch="${1:-amd64}"
case "$arch" in amd64 | arm64) ;; *) echo "usage: scripts/vmtest/run.sh [amd64|arm64]" >&2; exit 2 ;; esac
t_start=$(date +%s)
CACHE="${PE_SENTINEL_VMTEST_CACHE:-/var/cache/pe-sentinel-ci/vmtest}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
OUT="$TARGET_DIR/vmtest-$arch"
rm -rf "$OUT"
mkdir -p "$OUT" "$CACHE"
OUT="$(cd "$OUT" && pwd)"
if [ "$arch" = amd64 ]; then timeout_s="${PE_SENTINEL_VMTEST_TIMEOUT:-1500}"; else timeout_s="${PE_SENTINEL_VMTEST_TIMEOUT:-2400}"; fi

# ------------------------------------------------------------------ packages
if [ "$(id -u)" != 0 ]; then
  echo "vmtest: needs root (mmdebstrap, mkfs.ext4 -d with owners, binfmt_misc)" >&2
  exit 2
fi
tasks=(vmtest)
[ "$arch" = arm64 ] && tasks+=(vmtest-arm64)
# qemu-system-common 7.2 (bookworm) and a qemu-utils from bookworm-backports (>= 8) break each
# other; bring qemu-utils to the same 7.2 first when qemu is to be installed (nothing here needs qemu-utils).
if [ -n "$(scripts/deps.sh --missing "${tasks[@]}")" ] && dpkg-query -W -f '${Version}' qemu-utils 2>/dev/null | grep -qv '^1:7\.'; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --allow-downgrades \
    "qemu-utils=$(apt-cache policy qemu-system-common | awk '/Candidate/ {print $2}')" >&2
fi
scripts/deps.sh "${tasks[@]}"

# ------------------------------------------------------------------ the package (two builds)
deb="${PE_SENTINEL_VMTEST_DEB:-}"
if [ -z "$deb" ]; then
  echo "== vmtest: scripts/build-deb.sh $arch" >&2
  nice scripts/build-deb.sh "$arch" >&2
  deb="$(ls -t "$TARGET_DIR"/*/debian/pe-sentinel_*_"$arch".deb "$TARGET_DIR"/debian/pe-sentinel_*_"$arch".deb 2>/dev/null | head -n1 || true)"
fi
[ -f "$deb" ] || { echo "vmtest: no .deb for $arch (PE_SENTINEL_VMTEST_DEB or scripts/build-deb.sh)" >&2; exit 1; }
work="$OUT/work"
mkdir -p "$work/payload/data"
cp "$deb" "$work/payload/"
deb_a="$(basename "$deb")"
# The upgrade's "second build": the same package with a higher version (dpkg's upgrade path:
# maintainer scripts, conffile, restart), repacked rather than compiled twice.
version_a="$(dpkg-deb -f "$deb" Version)"
version_b="$version_a+vmtest1"
rm -rf "$work/deb-b"
dpkg-deb -R "$deb" "$work/deb-b"
sed -i "s/^Version: .*/Version: $version_b/" "$work/deb-b/DEBIAN/control"
deb_b="pe-sentinel_${version_b}_$arch.deb"
dpkg-deb --root-owner-group -Znone -b "$work/deb-b" "$work/payload/$deb_b" >/dev/null
rm -rf "$work/deb-b"

# ------------------------------------------------------------------ the test series
host_bin="${PE_SENTINEL_VMTEST_HOST_BIN:-}"
if [ -z "$host_bin" ]; then
  if [ "$arch" = amd64 ]; then
    dpkg-deb -x "$deb" "$work/host-pkg"
    host_bin="$work/host-pkg/usr/bin/pe-sentinel"
  else
    for b in "$TARGET_DIR/x86_64-unknown-linux-gnu/release/pe-sentinel" "$TARGET_DIR/debug/pe-sentinel" "$TARGET_DIR/release/pe-sentinel"; do
      if [ -x "$b" ]; then host_bin="$b"; break; fi
    done
  fi
fi
[ -x "$host_bin" ] || { echo "vmtest: no x86-64 pe-sentinel at $host_bin to make the test series (PE_SENTINEL_VMTEST_HOST_BIN)" >&2; exit 1; }
"$host_bin" phantom --out "$work/phantom" --series 4 --slices 12 --seed 23 --pe-fraction 0.5 --format dicom >/dev/null
sed -e 's/^kind = "auto"/kind = "tract"/' -e "s|^dir = \"../models\"|dir = \"$PWD/models\"|" board/x86-cpu.toml >"$work/tract.toml"
"$host_bin" infer --config "$work/tract.toml" "$work"/phantom/series-*/dicom/*.dcm >"$work/infer.jsonl" 2>"$work/infer.log"
python3 scripts/vmtest/pick.py "$work/infer.jsonl" "$work/payload" >"$work/payload/bench.env"
# Check 5's series: the positive slices again as a new series (new series and instance UIDs, as a
# second acquisition would have), sent by storescu from the host over the VM's network.
net_uid="2.25.$(python3 -c 'import uuid; print(uuid.uuid4().int)')"
mkdir -p "$work/net"
cp "$work/payload/data/pos/"*.dcm "$work/net/"
dcmodify -q -nb -m "(0020,000e)=$net_uid" -gin "$work/net/"*.dcm
echo "NET_SERIES='$net_uid'" >>"$work/payload/bench.env"
echo "NET_COUNT=$(ls "$work/net/"*.dcm | wc -l)" >>"$work/payload/bench.env"
cat >>"$work/payload/bench.env" <<EOF
DEB_A=$deb_a
DEB_B=$deb_b
VERSION_B=$version_b
EOF
cp scripts/vmtest/guest.sh "$work/payload/"
tar -cf "$work/payload.tar" -C "$work/payload" .
truncate -s 64M "$work/results.img"

# ------------------------------------------------------------------ the machine
echo "== vmtest: image ($arch), cache $CACHE" >&2
img="$(scripts/vmtest/image.sh "$arch" "$CACHE")"
echo "== vmtest: prepared in $(($(date +%s) - t_start)) s; booting ($arch, limit $timeout_s s)" >&2
rc=0
nice python3 scripts/vmtest/host.py --arch "$arch" --image "$img" --payload "$work/payload.tar" \
  --results "$work/results.img" --out "$OUT" --timeout "$timeout_s" \
  --accel "${PE_SENTINEL_VMTEST_ACCEL:-auto}" --env "$work/payload/bench.env" --net-dir "$work/net" &
host_pid=$!
# A SIGTERM here (an outer time limit) goes on to host.py, which kills qemu before it exits.
trap 'kill -TERM "$host_pid" 2>/dev/null; wait "$host_pid"; exit 143' TERM INT
wait "$host_pid" || rc=$?
trap - TERM INT
mkdir -p "$OUT/guest"
tar -xf "$work/results.img" -C "$OUT/guest" 2>/dev/null || true
echo "vmtest $arch: $(($(date +%s) - t_start)) s in all; logs in $OUT"
exit "$rc"
