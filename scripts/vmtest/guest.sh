#!/bin/sh
# The VM bench's agent inside the guest (Debian 12, systemd as PID 1). Started at every boot by
# vmtest-agent.service from the payload disk (scripts/vmtest/run.sh packs it with the .debs and the
# test series). Prints `VMTEST: ...` lines on the console: markers the host acts on
# (PLUG-DISPLAY, ALERT-EXPECTED, ...) and `VMTEST: RESULT <check> PASS|FAIL|SKIP <why>`.
# A reboot (check 2) continues from the phase kept in /var/lib/vmtest. Ends with the logs packed
# onto the results disk (/dev/vdc) and a poweroff. POSIX sh (dash).
set -u
P=/run/vmtest
S=/var/lib/vmtest
ST=/var/lib/pe-sentinel
DROP=$ST/drop
CONF=/etc/pe-sentinel/pe-sentinel.toml
mkdir -p "$S"
. "$P/bench.env"   # series UIDs and expectations written by the host (run.sh)

say() { echo "VMTEST: $*"; }   # stdout is journal+console (vmtest-agent.service)
result() { # check verdict text...
  c="$1"; v="$2"; shift 2
  say "RESULT $c $v $*"
  echo "$c $v $*" >>"$S/results"
}
note() { c="$1"; shift; echo "$*" >>"$S/notes.$c"; }
fail_note() { # check text: remembers a failed sub-check
  echo "$2" >>"$S/fail.$1"; say "  check $1: FAIL: $2"
}
ok_note() { echo "$2" >>"$S/ok.$1"; say "  check $1: ok: $2"; }
jr() { journalctl -q -o cat -u pe-sentinel --no-pager "$@" 2>/dev/null; }
prop() { systemctl show -p "$1" --value pe-sentinel; }
sql() { sqlite3 -readonly "$ST/journal.sqlite3" "$1" 2>/dev/null; }
# wait_for SECONDS COMMAND...: polls every second; 0 when COMMAND succeeded in time.
wait_for() {
  t="$1"; shift
  end=$(($(date +%s) + t))
  while [ "$(date +%s)" -lt "$end" ]; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  return 1
}
is_ready() { [ "$(prop ActiveState)" = active ] && [ "$(prop SubState)" = running ]; }
rows() { sql "select count(*) from slices where series='$1'"; }
distinct_rows() { sql "select count(distinct sha256) from slices where series='$1'"; }
verdict() { sql "select verdict from series where series='$1'"; }
done_count() { ls "$DROP/done" 2>/dev/null | grep -c "^$1" ; }
# drop PREFIX FILES...: copies slices into the drop folder under a prefix (write, then rename in).
drop() {
  pre="$1"; shift
  for f in "$@"; do
    cp "$f" "$DROP/.$pre-$(basename "$f").part" && mv "$DROP/.$pre-$(basename "$f").part" "$DROP/$pre-$(basename "$f")"
  done
}
finish() {
  say "collecting logs"
  mkdir -p /tmp/out
  journalctl -b -1 --no-pager >/tmp/out/journal-boot1.txt 2>/dev/null || true
  journalctl -b --no-pager >/tmp/out/journal.txt 2>/dev/null || true
  cp "$S"/* /tmp/out/ 2>/dev/null || true
  tar -cf /dev/vdc -C /tmp/out . 2>/dev/null || say "cannot write the results disk"
  say DONE
  sync
  systemctl poweroff
  exit 0
}
# The end result of a check from its remembered sub-checks.
conclude() {
  c="$1"
  if [ -s "$S/fail.$c" ]; then
    result "$c" FAIL "$(tr '\n' ';' <"$S/fail.$c")"
  else
    result "$c" PASS "$(tr '\n' ';' <"$S/ok.$c" 2>/dev/null)"
  fi
}

phase=$(cat "$S/phase" 2>/dev/null || echo 1)
say "BOOTED phase $phase kernel $(uname -r) arch $(uname -m) systemd $(systemctl --version | head -n1 | cut -d' ' -f2)"

if [ "$phase" = 1 ]; then
  # ---------------------------------------------------------------- check 1: install
  say "check 1: dpkg -i $DEB_A"
  if dpkg -i "$P/$DEB_A" >"$S/dpkg-install.log" 2>&1; then ok_note 1 "dpkg -i exit 0"; else fail_note 1 "dpkg -i failed: $(tail -n3 "$S/dpkg-install.log" | tr '\n' ' ')"; fi
  if wait_for "$START_S" is_ready; then
    ok_note 1 "unit active (READY) $(prop ExecMainStartTimestamp | cut -d' ' -f2-3) status '$(prop StatusText)'"
  else
    fail_note 1 "no READY within $START_S s: $(prop ActiveState)/$(prop SubState); $(jr | tail -n5 | tr '\n' ' ')"
  fi
  [ "$(systemctl is-enabled pe-sentinel)" = enabled ] && ok_note 1 "enabled" || fail_note 1 "not enabled"
  id pe-sentinel >/dev/null 2>&1 && ok_note 1 "user $(id pe-sentinel)" || fail_note 1 "no user pe-sentinel"
  for d in "$ST:750" "$DROP:2770" "$DROP/done:2770" "$ST/overlays:750"; do
    p="${d%%:*}"; m="${d##*:}"
    got="$(stat -c '%a %U:%G' "$p" 2>/dev/null)"
    [ "$got" = "$m pe-sentinel:pe-sentinel" ] && ok_note 1 "$p $got" || fail_note 1 "$p is '$got', want '$m pe-sentinel:pe-sentinel'"
  done
  exposure="$(systemd-analyze security pe-sentinel --no-pager 2>/dev/null | tail -n1)"
  say "systemd-analyze security (running unit): $exposure"
  ok_note 1 "exposure: $exposure"
  for dev in videodev usbserial cdc_acm; do
    lsmod | grep -q "^$dev " && ok_note 6 "module $dev loaded by the package" || fail_note 6 "module $dev not loaded (modules-load.d)"
  done

  # ---------------------------------------------------------------- configure the devices
  # The installer's part (docs/install.md): the display and the capture card in the profile, and
  # a udev rule naming the capture device (vivid here; a real card's USB IDs on a real box). The
  # display is qemu's FTDI usb-serial, 0403:6001, which the shipped rule already names.
  cat >/etc/udev/rules.d/99-vmtest-vivid.rules <<'EOF'
SUBSYSTEM=="video4linux", KERNEL=="video[0-9]*", ATTR{name}=="vivid-000-vid-cap", SYMLINK+="pe-sentinel-capture", GROUP="pe-sentinel", MODE="0660"
EOF
  udevadm control --reload
  sed -i 's/^quiet_s = .*/quiet_s = 600.0/' "$CONF"
  cat >>"$CONF" <<'EOF'

[display]
port = "/dev/pe-sentinel-display"
baud = 9600
protocol = "line"
heartbeat_ms = 1000

[capture]
device = "/dev/pe-sentinel-capture"
format = "yuyv"
width = 1920
height = 1080
fps = 30
viewport = { x = 704, y = 276, width = 512, height = 512 }
EOF
  systemctl restart pe-sentinel
  if ! wait_for "$START_S" is_ready; then
    fail_note 6 "no READY after configuring devices: $(jr | tail -n5 | tr '\n' ' ')"
  fi

  # ---------------------------------------------------------------- check 6: devices plugged after start
  pid0=$(prop MainPID); nr0=$(prop NRestarts)
  [ -e /dev/pe-sentinel-display ] && fail_note 6 "display present before the plug (the check needs it absent)"
  [ -e /dev/pe-sentinel-capture ] && fail_note 6 "capture present before the plug (the check needs it absent)"
  # The unit's device policy before issue 23 (DeviceAllow= by path only), in a transient unit
  # started now, while the devices are absent: it must be refused the display once it is plugged
  # in (what the class lines in the shipped unit are for).
  systemd-run -q --unit=vmtest-old-policy -p DevicePolicy=closed \
    -p "DeviceAllow=/dev/pe-sentinel-capture rw" -p "DeviceAllow=/dev/pe-sentinel-display rw" \
    sh -c 'for i in $(seq 120); do [ -e /dev/pe-sentinel-display ] && break; sleep 1; done; sleep 3; if (exec 3<>/dev/pe-sentinel-display) 2>/dev/null; then echo "old policy: OPENED"; else echo "old policy: BLOCKED"; fi'
  say PLUG-DISPLAY
  modprobe vivid n_devs=1 node_types=0x1 || fail_note 3 "modprobe vivid failed"
  wait_for 60 test -e /dev/pe-sentinel-display || fail_note 6 "/dev/pe-sentinel-display did not appear (usb-serial plug)"
  wait_for 30 test -e /dev/pe-sentinel-capture || fail_note 6 "/dev/pe-sentinel-capture did not appear (vivid)"
  say "devices: $(ls -l /dev/pe-sentinel-* 2>&1 | tr '\n' ' ')"
  v4l2-ctl -d /dev/pe-sentinel-capture --list-formats-ext >"$S/vivid-formats.txt" 2>&1 || true
  if wait_for 60 sh -c 'journalctl -q -o cat -u pe-sentinel | grep -E -q "display: /dev/pe-sentinel-display (open|is back)"'; then
    ok_note 6 "display opened after it was plugged in"
  else
    fail_note 6 "display not opened within 60 s of being plugged in: $(jr | grep 'display:' | tail -n2 | tr '\n' ' ')"
  fi
  if wait_for 90 sh -c 'journalctl -q -o cat -u pe-sentinel | grep -q "capture device /dev/pe-sentinel-capture: .*\(as asked\|nearest\)"'; then
    ok_note 6 "capture opened after it was plugged in"
  else
    fail_note 6 "capture not opened within 90 s of vivid loading: $(jr | grep -i 'capture' | tail -n2 | tr '\n' ' ')"
  fi
  wait_for 30 sh -c 'journalctl -q -o cat -u vmtest-old-policy | grep -q "old policy:"'
  old_policy="$(journalctl -q -o cat -u vmtest-old-policy | grep -o 'old policy: [A-Z]*' | tail -n1)"
  say "unit with DeviceAllow= by path only (before issue 23), started before the plug: $old_policy"
  note 6 "$old_policy"
  [ "$(prop MainPID)" = "$pid0" ] && [ "$(prop NRestarts)" = "$nr0" ] && ok_note 6 "no restart (MainPID $pid0)" \
    || fail_note 6 "the service restarted (MainPID $pid0 -> $(prop MainPID), NRestarts $nr0 -> $(prop NRestarts))"

  # ---------------------------------------------------------------- check 3: capture through vivid
  mode="$(jr | grep -o 'capture device /dev/pe-sentinel-capture: .*' | tail -n1)"
  say "capture: $mode"
  if echo "$mode" | grep -q 'took the nearest it offers: yuyv 1920x1080 at 5 fps'; then
    ok_note 3 "negotiated: asked yuyv 1920x1080 at 30 fps, took yuyv 1920x1080 at 5 fps"
  elif echo "$mode" | grep -q 'as asked\|nearest'; then
    ok_note 3 "negotiated: $(echo "$mode" | grep -o 'took.*fps\|.* as asked' | head -n1)"
  else
    fail_note 3 "no negotiated capture mode logged"
  fi
  if wait_for "$SLICE_S" sh -c "[ \"\$(sqlite3 -readonly $ST/journal.sqlite3 \"select count(*) from slices where series like 'capture-%'\" 2>/dev/null)\" -ge 1 ]"; then
    ok_note 3 "$(sql "select count(*) from slices where series like 'capture-%'") capture slice(s) analysed under the hardened unit"
  else
    fail_note 3 "no capture slice in the journal within $SLICE_S s: $(jr | grep -i capture | tail -n3 | tr '\n' ' ')"
  fi
  [ "$(prop User)" = pe-sentinel ] && [ "$(prop PrivateNetwork)" = yes ] && ok_note 3 "ran as User=pe-sentinel, DevicePolicy=$(prop DevicePolicy), PrivateNetwork=yes" \
    || fail_note 3 "unit not hardened as shipped (User=$(prop User) PrivateNetwork=$(prop PrivateNetwork))"
  conclude 3
  conclude 6

  # ---------------------------------------------------------------- check 4: serial display
  say ALERT-EXPECTED
  drop pos $P/data/pos/*.dcm
  n=$(ls $P/data/pos/*.dcm | wc -l)
  if wait_for $((n * SLICE_S)) sh -c "[ \"\$(sqlite3 -readonly $ST/journal.sqlite3 \"select verdict from series where series='$POS_SERIES'\" 2>/dev/null)\" = positive ]"; then
    ok_note 4 "series positive after $n slices"
  else
    fail_note 4 "series $POS_SERIES not positive: verdict '$(verdict "$POS_SERIES")', rows $(rows "$POS_SERIES")"
  fi
  # The host unplugs and replugs the line (chardev disconnect) while ALERT is latched, then ACKs.
  if wait_for 240 sh -c 'journalctl -q -o cat -u pe-sentinel | grep -q "ALERT series .* acknowledged"'; then
    ok_note 4 "ALERT cleared by the host's ACK: $(jr | grep 'ALERT series' | tail -n1)"
  else
    fail_note 4 "ALERT not cleared by an ACK within 240 s: $(jr | grep -i 'alert\|display' | tail -n3 | tr '\n' ' ')"
  fi
  jr | grep -q 'display: lost /dev/pe-sentinel-display' && ok_note 4 "unplug logged: $(jr | grep 'display: lost' | tail -n1 | cut -c1-120)" \
    || fail_note 4 "the unplug was not logged"
  jr | grep -q 'display: /dev/pe-sentinel-display is back' && ok_note 4 "replug logged (full redraw)" || fail_note 4 "the replug was not logged"
  say DISPLAY-DONE
  conclude 4

  # ---------------------------------------------------------------- check 5: DICOM over the network
  # The installer's part (docs/dicom.md): the sender allowed in [dicom] (qemu's user network: the
  # host's DCMTK connects through a hostfwd port and arrives from the gateway 10.0.2.2), then the
  # receiver's socket enabled (the package installs it disabled: no port opens before a sender is
  # allowed). The analyser is not restarted and keeps PrivateNetwork=yes.
  printf '\n[dicom]\nae_title = "PE-SENTINEL"\nmin_free_mb = 64\n\n[[dicom.allow]]\nae_title = "VMTEST-SCU"\naddresses = ["10.0.2.2"]\n' >>"$CONF"
  en="$(systemctl is-enabled pe-sentinel-receive.socket 2>&1)"
  act="$(systemctl is-active pe-sentinel-receive.socket pe-sentinel-send.service 2>&1 | tr '\n' ' ')"
  [ "$en" = disabled ] && [ "$act" = "inactive inactive " ] && ok_note 5 "receiver socket and sender installed disabled and not running" \
    || fail_note 5 "after install: receiver socket '$en', receiver socket/sender '$act' (want disabled, inactive until configured)"
  systemctl enable --now pe-sentinel-receive.socket >"$S/receive-enable.log" 2>&1 \
    || fail_note 5 "enable --now pe-sentinel-receive.socket: $(tail -n2 "$S/receive-enable.log" | tr '\n' ' ')"
  systemctl is-active -q pe-sentinel-receive.socket && ok_note 5 "socket listening on $(systemctl show -p Listen --value pe-sentinel-receive.socket)" \
    || fail_note 5 "pe-sentinel-receive.socket not active"
  # (networkctl needs D-Bus, which the minimal root lacks. The sign is the subnet route the DHCP
  # lease installs; qemu's restricted user network offers no default route.)
  wait_for 90 sh -c 'awk '"'"'NR > 1 && $1 != "lo" {f=1} END {exit !f}'"'"' /proc/net/route' \
    || fail_note 5 "the guest network did not come up (no route): $(cat /proc/net/route | tr '\n' ' ')"
  # The host answers with C-ECHO (allowed and unknown calling AE) and storescu of the series.
  say DICOM-READY
  n=$NET_COUNT
  if wait_for $((n * SLICE_S + 120)) sh -c "[ \"\$(sqlite3 -readonly $ST/journal.sqlite3 \"select verdict from series where series='$NET_SERIES'\" 2>/dev/null)\" = positive ]"; then
    ok_note 5 "series sent by storescu is positive ($(rows "$NET_SERIES") slices analysed)"
  else
    fail_note 5 "series $NET_SERIES not positive: verdict '$(verdict "$NET_SERIES")', rows $(rows "$NET_SERIES"); receiver: $(journalctl -q -o cat -u pe-sentinel-receive | tail -n3 | tr '\n' ' ')"
  fi
  if wait_for 240 sh -c "journalctl -q -o cat -u pe-sentinel | grep -q 'ALERT series $NET_SERIES acknowledged'"; then
    ok_note 5 "its ALERT acknowledged from the line"
  else
    fail_note 5 "no acknowledged ALERT for $NET_SERIES within 240 s: $(jr | grep 'ALERT' | tail -n2 | tr '\n' ' ')"
  fi
  pe-sentinel history --associations --json >"$S/associations.json" 2>"$S/associations.err" \
    || fail_note 5 "history --associations: $(cat "$S/associations.err")"
  released=$(grep -c '"outcome": "released"' "$S/associations.json" || true)
  rejected=$(grep -c '"outcome": "rejected' "$S/associations.json" || true)
  [ "$released" -ge 2 ] && ok_note 5 "audit: $released released associations (echo, store)" \
    || fail_note 5 "audit: $released released associations, want >= 2: $(tr -d '\n' <"$S/associations.json" | cut -c1-300)"
  [ "$rejected" -ge 1 ] && ok_note 5 "audit: the unknown calling AE's association: $(grep -o '"outcome": "rejected[^"]*"' "$S/associations.json" | head -n1)" \
    || fail_note 5 "audit: no rejected association (the unknown calling AE)"
  [ "$(systemctl show -p User --value pe-sentinel-receive)" = pe-sentinel-receive ] && ok_note 5 "receiver ran as User=pe-sentinel-receive" \
    || fail_note 5 "receiver user: '$(systemctl show -p User --value pe-sentinel-receive)'"
  [ "$(prop PrivateNetwork)" = yes ] && ok_note 5 "analyser kept PrivateNetwork=yes" || fail_note 5 "analyser PrivateNetwork=$(prop PrivateNetwork)"
  say DICOM-DONE
  conclude 5

  # ---------------------------------------------------------------- check 1: upgrade
  before_rows=$(sql "select count(*) from slices")
  conf_sum=$(md5sum "$CONF" | cut -d' ' -f1)
  pid_before=$(prop MainPID)
  say "check 1: upgrade to $DEB_B"
  if dpkg -i --force-confold "$P/$DEB_B" >"$S/dpkg-upgrade.log" 2>&1; then ok_note 1 "upgrade dpkg -i exit 0"; else fail_note 1 "upgrade failed: $(tail -n3 "$S/dpkg-upgrade.log" | tr '\n' ' ')"; fi
  wait_for "$START_S" is_ready || fail_note 1 "no READY after the upgrade"
  [ "$(dpkg-query -W -f '${Version}' pe-sentinel)" = "$VERSION_B" ] && ok_note 1 "version $VERSION_B installed" || fail_note 1 "version is $(dpkg-query -W -f '${Version}' pe-sentinel), want $VERSION_B"
  [ "$(prop MainPID)" != "$pid_before" ] && ok_note 1 "restarted by the upgrade" || fail_note 1 "not restarted by the upgrade"
  [ "$(md5sum "$CONF" | cut -d' ' -f1)" = "$conf_sum" ] && ok_note 1 "edited $CONF kept" || fail_note 1 "$CONF changed by the upgrade"
  [ "$(systemctl is-enabled pe-sentinel-receive.socket 2>&1)" = enabled ] && systemctl is-active -q pe-sentinel-receive.socket \
    && ok_note 1 "the enabled receiver socket still enabled and listening after the upgrade" \
    || fail_note 1 "receiver socket after the upgrade: $(systemctl is-enabled pe-sentinel-receive.socket 2>&1)/$(systemctl is-active pe-sentinel-receive.socket 2>&1)"
  after_rows=$(sql "select count(*) from slices")
  [ "$after_rows" -ge "$before_rows" ] && [ "$before_rows" -ge 1 ] && ok_note 1 "journal kept ($before_rows -> $after_rows slices)" || fail_note 1 "journal rows $before_rows -> $after_rows"

  # ---------------------------------------------------------------- check 2: watchdog
  mkdir -p /etc/systemd/system/pe-sentinel.service.d
  printf '[Service]\nWatchdogSec=5\n' >/etc/systemd/system/pe-sentinel.service.d/vmtest-watchdog.conf
  systemctl daemon-reload
  systemctl restart pe-sentinel
  wait_for "$START_S" is_ready || fail_note 2 "no READY with WatchdogSec=5"
  sleep 12   # pings keep it alive while it is healthy
  pid=$(prop MainPID); nr=$(prop NRestarts)
  [ "$(prop NRestarts)" = "$nr" ] && is_ready && ok_note 2 "healthy daemon survives WatchdogSec=5"
  say "check 2: SIGSTOP $pid (a hung daemon)"
  kill -STOP "$pid"
  if wait_for "$START_S" sh -c "[ \"\$(systemctl show -p MainPID --value pe-sentinel)\" != $pid ] && [ \"\$(systemctl show -p SubState --value pe-sentinel)\" = running ]"; then
    ok_note 2 "watchdog killed and restarted it: $(jr | grep -i 'watchdog timeout' | tail -n1 | cut -c1-100); NRestarts $nr -> $(prop NRestarts)"
  else
    fail_note 2 "no watchdog restart: $(prop ActiveState)/$(prop SubState) $(jr | tail -n3 | tr '\n' ' ')"
  fi
  jr | grep -qi 'watchdog timeout' || fail_note 2 "no 'Watchdog timeout' in the journal"
  rm -f /etc/systemd/system/pe-sentinel.service.d/vmtest-watchdog.conf
  systemctl daemon-reload
  systemctl restart pe-sentinel
  wait_for "$START_S" is_ready || fail_note 2 "no READY after removing the watchdog drop-in"

  # ---------------------------------------------------------------- check 2: SIGTERM mid-series
  n=$(ls $P/data/term/*.dcm | wc -l)
  drop term $P/data/term/*.dcm
  wait_for $((2 * SLICE_S)) sh -c "[ \$(ls $DROP/done | grep -c '^term-') -ge 1 ]" || fail_note 2 "no term slice analysed"
  at_term=$(done_count term)
  say "check 2: systemctl stop (SIGTERM) with $at_term of $n done"
  t0=$(date +%s)
  systemctl stop pe-sentinel
  took=$(($(date +%s) - t0))
  done_after=$(done_count term)
  left=$(ls "$DROP" | grep -c '^term-')
  r=$(rows "$TERM_SERIES")
  note 2 "at SIGTERM $at_term done; after stop ${took}s: $done_after done, $left waiting, $r journal rows"
  if [ $((done_after + left)) -eq "$n" ] && [ "$r" -eq "$done_after" ]; then
    ok_note 2 "SIGTERM: stop took ${took} s, $done_after analysed and recorded ($at_term when signalled), $left left in the drop folder, none lost"
  else
    fail_note 2 "SIGTERM lost or duplicated: $done_after done + $left waiting != $n, or $r journal rows != $done_after"
  fi
  [ "$done_after" -lt "$n" ] || say "note: the whole series finished before the stop (slices too fast for a mid-series stop)"
  systemctl start pe-sentinel
  if wait_for $((n * SLICE_S + START_S)) sh -c "[ \$(ls $DROP/done | grep -c '^term-') -eq $n ]" && [ "$(rows "$TERM_SERIES")" = "$n" ] && [ "$(distinct_rows "$TERM_SERIES")" = "$n" ]; then
    ok_note 2 "after restart: all $n slices analysed exactly once"
  else
    fail_note 2 "after restart: $(done_count term) done, $(rows "$TERM_SERIES") rows ($(distinct_rows "$TERM_SERIES") distinct), want $n"
  fi

  # ---------------------------------------------------------------- check 2: reboot mid-series
  n=$(ls $P/data/resume/*.dcm | wc -l)
  drop resume $P/data/resume/*.dcm
  wait_for $((2 * SLICE_S)) sh -c "[ \$(ls $DROP/done | grep -c '^resume-') -ge 1 ]" || fail_note 2 "no resume slice analysed before the reboot"
  pre=$(rows "$RESUME_SERIES")
  echo "$pre" >"$S/resume-pre"
  say "check 2: reboot with $pre of $n slices of series $RESUME_SERIES analysed (verdict $(verdict "$RESUME_SERIES"))"
  [ "$(verdict "$RESUME_SERIES")" = positive ] && say "note: the resume series turned positive before the reboot (slices too fast)"
  echo 2 >"$S/phase"
  sync
  systemctl reboot
  exit 0
fi

if [ "$phase" = 2 ]; then
  n=$(ls $P/data/resume/*.dcm | wc -l)
  pre=$(cat "$S/resume-pre")
  wait_for "$START_S" is_ready || fail_note 2 "no READY after the reboot"
  if wait_for $((n * SLICE_S)) sh -c "[ \"\$(sqlite3 -readonly $ST/journal.sqlite3 \"select count(*) from slices where series='$RESUME_SERIES'\")\" -ge $n ]"; then :; fi
  r=$(rows "$RESUME_SERIES"); dr=$(distinct_rows "$RESUME_SERIES"); v=$(verdict "$RESUME_SERIES")
  if [ "$r" = "$n" ] && [ "$dr" = "$n" ] && [ "$v" = "$RESUME_EXPECT" ]; then
    ok_note 2 "reboot: $pre slice(s) before, $((n - pre)) after; one series of $n slices, verdict $v (needs the pre-reboot slices from the journal)"
  else
    fail_note 2 "reboot: series $RESUME_SERIES has $r rows ($dr distinct), verdict '$v'; want $n, $RESUME_EXPECT"
  fi
  conclude 2

  # ---------------------------------------------------------------- check 1: purge
  jrows=$(sql "select count(*) from slices")
  dpkg --purge pe-sentinel >"$S/dpkg-purge.log" 2>&1 && ok_note 1 "purge exit 0" || fail_note 1 "purge failed: $(tail -n3 "$S/dpkg-purge.log" | tr '\n' ' ')"
  [ ! -e /usr/bin/pe-sentinel ] && [ ! -e "$CONF" ] && ok_note 1 "purge removed the binary and /etc/pe-sentinel" || fail_note 1 "purge left the binary or $CONF"
  systemctl is-active -q pe-sentinel && fail_note 1 "still running after purge"
  kept=$(sql "select count(*) from slices")
  [ -d "$DROP" ] && [ "$kept" = "$jrows" ] && [ "$kept" -ge 1 ] && ok_note 1 "purge kept /var/lib/pe-sentinel ($kept journal slices, drop folder)" \
    || fail_note 1 "purge did not keep /var/lib/pe-sentinel (journal slices $jrows -> '$kept')"
  conclude 1
  finish
fi
say "unknown phase $phase"
finish
