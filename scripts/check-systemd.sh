#!/usr/bin/env bash
# Checks the systemd files in systemd/ without a running systemd (systemd is not PID 1 in CI):
#  1. `systemd-analyze verify` on the unit in a temporary root that holds the ExecStart binary and
#     the host's stock units. verify exits 0 even on unknown keys and bad values, so ANY output fails.
#  2. `systemd-analyze security --offline=yes`: the exposure rating must be <= 1.0 ("SAFE").
#  3. sysusers.d and tmpfiles.d applied for real into the temporary root: the user, group and
#     folders (owner, mode) must come out as documented.
# Needs: systemd-analyze, systemd-sysusers, systemd-tmpfiles (Debian package `systemd`).
set -euo pipefail
cd "$(dirname "$0")/.."
unit=systemd/pe-sentinel.service
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

mkdir -p "$root/usr/bin" "$root/usr/lib/systemd" "$root/etc/systemd/system"
# Any executable will do: verify only checks that ExecStart's binary exists in the root.
printf '#!/bin/sh\n' >"$root/usr/bin/pe-sentinel"
chmod +x "$root/usr/bin/pe-sentinel"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp "$unit" "$root/etc/systemd/system/"
out=$(systemd-analyze verify --root="$root" pe-sentinel.service 2>&1) || true
if [ -n "$out" ]; then
  echo "FAIL: systemd-analyze verify $unit printed:" >&2
  echo "$out" >&2
  exit 1
fi
echo "ok: systemd-analyze verify $unit (no output)"

sec=$(systemd-analyze security --offline=yes "$unit" 2>&1) || true
level=$(printf '%s\n' "$sec" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p')
if [ -z "$level" ]; then
  echo "FAIL: no exposure level in systemd-analyze security output:" >&2
  echo "$sec" >&2
  exit 1
fi
echo "exposure level of $unit: $level"
if ! awk -v l="${level%% *}" 'BEGIN { exit !(l <= 1.0) }'; then
  printf '%s\n' "$sec" | grep '✗' >&2 || true
  echo "FAIL: exposure ${level} is above 1.0" >&2
  exit 1
fi

mkdir -p "$root/etc"
: >"$root/etc/passwd"
: >"$root/etc/group"
# With --root, both tools read their configuration from inside the root, as installed.
mkdir -p "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d"
cp systemd/pe-sentinel.sysusers "$root/usr/lib/sysusers.d/pe-sentinel.conf"
cp systemd/pe-sentinel.tmpfiles "$root/usr/lib/tmpfiles.d/pe-sentinel.conf"
systemd-sysusers --root="$root"
grep -q '^pe-sentinel:' "$root/etc/passwd" || { echo "FAIL: sysusers made no pe-sentinel user" >&2; exit 1; }
grep -q '^pe-sentinel:' "$root/etc/group" || { echo "FAIL: sysusers made no pe-sentinel group" >&2; exit 1; }
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
  "var/lib/pe-sentinel/drop/done 2770" "var/lib/pe-sentinel/drop/rejected 2770"; do
  path=${want% *}
  mode=${want##* }
  got=$(stat -c '%a %u' "$root/$path")
  if [ "$got" != "$mode $uid" ]; then
    echo "FAIL: /$path is '$got', expected mode $mode owned by uid $uid" >&2
    exit 1
  fi
done
echo "ok: sysusers and tmpfiles create the user, group and folders"
