#!/usr/bin/env bash
# Checks the systemd files in systemd/ without a running systemd (systemd is not PID 1 in CI):
#  1. `systemd-analyze verify` on each unit (the analyser's, the DICOM receiver's service and socket) in a temporary root that holds the ExecStart binary and
#     the host's stock units. verify exits 0 even on unknown keys and bad values, so ANY output fails.
#  2. `systemd-analyze security --offline=yes`: the analyser's exposure rating must be <= 1.0 ("SAFE"),
#     the receiver's <= 1.1 (the network is its job; see below).
#  3. sysusers.d and tmpfiles.d applied for real into the temporary root: the user, group and
#     folders (owner, mode) must come out as documented.
#  4. the udev rules parsed by `udevadm test` (see below).
# Needs: systemd-analyze, systemd-sysusers, systemd-tmpfiles (Debian package `systemd`), udevadm (`udev`).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

mkdir -p "$root/usr/bin" "$root/usr/lib/systemd" "$root/etc/systemd/system"
# Any executable will do: verify only checks that ExecStart's binary exists in the root.
for bin in pe-sentinel pe-sentinel-receive pe-sentinel-send; do
  printf '#!/bin/sh\n' >"$root/usr/bin/$bin"
  chmod +x "$root/usr/bin/$bin"
done
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp systemd/*.service systemd/dicom/*.service systemd/dicom/*.socket "$root/etc/systemd/system/"

# Each unit with the exposure it may have. The receiver's 1.1 is the analyser's hardening plus what
# being on the network costs (docs/dicom.md, "Sandbox"): Internet sockets, no PrivateNetwork, no
# IPAddressDeny (the allowed senders are checked per association), group pe-sentinel and a
# group-readable UMask so the analyser can take what it writes.
# The results sender (pe-sentinel-send.service, issue 22) is held to the analyser's 1.0.
for spec in "pe-sentinel.service 1.0" "pe-sentinel-send.service 1.0" "pe-sentinel-receive.service 1.1" \
  "pe-sentinel-receive.socket -"; do
  name=${spec% *}
  limit=${spec##* }
  unit=systemd/$name
  [ -f "$unit" ] || unit=systemd/dicom/$name   # the DICOM node's units (their own folder: Cargo.toml)
  out=$(systemd-analyze verify --root="$root" "$name" 2>&1) || true
  if [ -n "$out" ]; then
    echo "FAIL: systemd-analyze verify $unit printed:" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "ok: systemd-analyze verify $unit (no output)"
  [ "$limit" = - ] && continue
  sec=$(systemd-analyze security --offline=yes "$unit" 2>&1) || true
  level=$(printf '%s\n' "$sec" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p')
  if [ -z "$level" ]; then
    echo "FAIL: no exposure level in systemd-analyze security output:" >&2
    echo "$sec" >&2
    exit 1
  fi
  echo "exposure level of $unit: $level (at most $limit)"
  if ! awk -v l="${level%% *}" -v m="$limit" 'BEGIN { exit !(l <= m) }'; then
    printf '%s\n' "$sec" | grep '✗' >&2 || true
    echo "FAIL: exposure ${level} is above $limit" >&2
    exit 1
  fi
done

mkdir -p "$root/etc"
: >"$root/etc/passwd"
: >"$root/etc/group"
# With --root, both tools read their configuration from inside the root, as installed.
mkdir -p "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d"
cp systemd/pe-sentinel.sysusers "$root/usr/lib/sysusers.d/pe-sentinel.conf"
cp systemd/pe-sentinel.tmpfile "$root/usr/lib/tmpfiles.d/pe-sentinel.conf"
systemd-sysusers --root="$root"
grep -q '^pe-sentinel:' "$root/etc/passwd" || { echo "FAIL: sysusers made no pe-sentinel user" >&2; exit 1; }
grep -q '^pe-sentinel:' "$root/etc/group" || { echo "FAIL: sysusers made no pe-sentinel group" >&2; exit 1; }
grep -q '^pe-sentinel-receive:' "$root/etc/passwd" || { echo "FAIL: sysusers made no pe-sentinel-receive user" >&2; exit 1; }
grep -q '^pe-sentinel:[^:]*:[0-9]*:.*pe-sentinel-receive' "$root/etc/group" ||
  { echo "FAIL: pe-sentinel-receive is not in group pe-sentinel" >&2; exit 1; }
tmp_out=$(systemd-tmpfiles --root="$root" --create 2>&1) || {
  echo "FAIL: systemd-tmpfiles: $tmp_out" >&2
  exit 1
}
if [ -n "$tmp_out" ]; then
  echo "FAIL: systemd-tmpfiles printed: $tmp_out" >&2
  exit 1
fi
uid=$(awk -F: '$1 == "pe-sentinel" { print $3 }' "$root/etc/passwd")
for want in "var/lib/pe-sentinel 750" "var/lib/pe-sentinel/overlays 750" "var/lib/pe-sentinel/drop 2770" \
  "var/lib/pe-sentinel/drop/done 2770" "var/lib/pe-sentinel/drop/rejected 2770" \
  "var/lib/pe-sentinel/outbox 750" "var/lib/pe-sentinel/outbox/pending 750" "var/lib/pe-sentinel/outbox/parked 750"; do
  path=${want% *}
  mode=${want##* }
  got=$(stat -c '%a %u' "$root/$path")
  if [ "$got" != "$mode $uid" ]; then
    echo "FAIL: /$path is '$got', expected mode $mode owned by uid $uid" >&2
    exit 1
  fi
done
echo "ok: sysusers and tmpfiles create the user, group and folders"

# 4. The udev rules (board/udev/99-pe-sentinel.rules). `udevadm verify` only exists from systemd
#    253 on (Debian 12 has 252), so the rules are parsed by `udevadm test` in a private mount
#    namespace where /etc/udev/rules.d holds only them and /etc/group knows the service's group:
#    any message naming the file (invalid key, operator or group) fails. Needs root (unshare -m).
rules=board/udev/99-pe-sentinel.rules
udevadm=$(command -v udevadm || true)
if [ -z "$udevadm" ]; then
  echo "SKIPPED: udev rules check (no udevadm; install the Debian package udev)"
elif [ "$(id -u)" != 0 ]; then
  echo "SKIPPED: udev rules check (needs root for a private mount namespace)"
else
  cp /etc/group "$root/group"
  grep -q '^pe-sentinel:' "$root/group" || echo 'pe-sentinel:x:999:' >>"$root/group"
  mkdir -p "$root/rules.d"
  cp "$rules" "$root/rules.d/99-pe-sentinel.rules"
  udev_out=$(unshare -m sh -c "mkdir -p /etc/udev/rules.d && mount --bind '$root/rules.d' /etc/udev/rules.d && \
    mount --bind '$root/group' /etc/group && '$udevadm' test --action=add /sys/class/tty/tty 2>&1") || {
    echo "FAIL: udevadm test could not run:" >&2
    echo "$udev_out" >&2
    exit 1
  }
  grep -q 'Reading rules file: /etc/udev/rules.d/99-pe-sentinel.rules' <<<"$udev_out" || {
    echo "FAIL: udevadm test did not read $rules:" >&2
    echo "$udev_out" >&2
    exit 1
  }
  if grep '99-pe-sentinel.rules:' <<<"$udev_out" >&2; then
    echo "FAIL: udevadm test found problems in $rules (above)" >&2
    exit 1
  fi
  echo "ok: udevadm test parses $rules without complaint"
fi
