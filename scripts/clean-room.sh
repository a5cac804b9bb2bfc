#!/usr/bin/env bash
# The clean-room check: do the README's commands work on a fresh Debian machine that has only what
# the README says it needs? Builds a minimal Debian 12 root with mmdebstrap (build-essential,
# python3, python3-pip, ca-certificates, git; nothing else), bind-mounts the host's Rust toolchain
# read-only, clones this repository (its HEAD commit) inside, and runs there, as root:
#   1. `scripts/demo.sh` as a plain user first: it must stop before any build with the one
#      `apt-get install` line (the non-root path of scripts/deps.sh);
#   2. `scripts/demo.sh` as root: installs what it needs, fetches onnxruntime, builds, runs the
#      demo; it must end with verdicts for the three series and `ran on: engine onnxruntime`;
#   3. with --full, `scripts/test.sh` (the whole test suite; about an hour cold on 2 cores).
# Prints PASS, or FAIL and the first thing missing (with the log's tail). Needs root (chroot,
# mounts) and network to the Debian archive, crates.io and PyPI.
#
# Usage: scripts/clean-room.sh [--full] [--cold] [--keep]
#   --cold  no shared caches: a fresh cargo registry and target dir (the true first-run time).
#           Default: the cargo registry and the release target dir live in $CACHE (shared between
#           runs; the build script that needs Debian packages, charls-sys (cmake), is
#           cleaned first so it runs again against the clean room's packages).
#   --keep  leave the root in $CACHE/root for inspection.
# CACHE: PE_SENTINEL_CLEANROOM_CACHE, default /var/cache/pe-sentinel-ci/cleanroom; the base root is
# kept there as base-bookworm.tar and rebuilt when older than 7 days.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
FULL=0 COLD=0 KEEP=0
for a in "$@"; do
  case "$a" in
    --full) FULL=1 ;;
    --cold) COLD=1 ;;
    --keep) KEEP=1 ;;
    *) echo "usage: scripts/clean-room.sh [--full] [--cold] [--keep]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "clean-room: needs root (mmdebstrap, chroot, bind mounts)" >&2; exit 2; }
scripts/deps.sh cleanroom

CACHE="${PE_SENTINEL_CLEANROOM_CACHE:-/var/cache/pe-sentinel-ci/cleanroom}"
BASE="$CACHE/base-bookworm.tar"
ROOT="$CACHE/root"
LOG="$CACHE/clean-room.log"
TOOLCHAIN="$(rustc --print sysroot)"
mkdir -p "$CACHE"
: >"$LOG"
t0=$(date +%s)
say() { echo "clean-room [$(( $(date +%s) - t0 ))s]: $*"; }

# A base that is not a regular tar file (a directory left by an older version of this script, which
# let mmdebstrap guess the format from the name "*.tar.tmp") is rebuilt.
if [ ! -f "$BASE" ] || [ ! -s "$BASE" ] || [ -n "$(find "$BASE" -mtime +7)" ]; then
  say "building the base root (mmdebstrap bookworm: build-essential python3 python3-pip ca-certificates git)"
  rm -rf "$BASE" "$BASE.tmp"
  nice mmdebstrap --quiet --variant=apt --format=tar --include=build-essential,python3,python3-pip,ca-certificates,git \
    bookworm "$BASE.tmp" >>"$LOG" 2>&1 || { echo "FAIL: mmdebstrap could not build the base root (log: $LOG)"; tail -n 20 "$LOG"; exit 1; }
  tar -tf "$BASE.tmp" ./etc/os-release >/dev/null 2>&1 || { echo "FAIL: mmdebstrap's output $BASE.tmp is not a tar of a root (log: $LOG)"; exit 1; }
  mv "$BASE.tmp" "$BASE"
fi
rm -rf "$ROOT"
mkdir -p "$ROOT"
tar -C "$ROOT" -xf "$BASE"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# The host's local trust anchors (a site proxy's CA, as hospital networks have) go in too: they are
# the network's, not the project's; a user's machine on that network has them as well.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
  chroot "$ROOT" update-ca-certificates >>"$LOG" 2>&1
fi
mkdir -p "$ROOT/opt/rust" "$ROOT/root/.cargo" "$ROOT/build/target"
# HEAD as a bundle (a worktree's .git points outside the root); the clean room clones it with its own git.
git -C "$REPO" bundle create --quiet "$ROOT/mnt/origin.bundle" HEAD
if [ "$COLD" = 0 ]; then
  mkdir -p "$CACHE/cargo-home" "$CACHE/target"
fi

# Everything inside runs in a private mount namespace: the mounts vanish when it ends.
INNER=$(cat <<'EOF'
set -euo pipefail
export HOME=/root PATH=/opt/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export CARGO_HOME=/root/.cargo CARGO_TARGET_DIR=/build/target LANG=C.UTF-8
unset RUSTUP_HOME RUSTUP_TOOLCHAIN
git -c advice.detachedHead=false clone --quiet /mnt/origin.bundle /home/pe-sentinel
cd /home/pe-sentinel
echo "== clean room: $(. /etc/os-release; echo "$PRETTY_NAME"), $(rustc --version), commit $(git rev-parse --short HEAD)"
echo "== 1. scripts/demo.sh as a plain user (must stop before building, naming the apt-get line)"
useradd --create-home demo
cp -r /home/pe-sentinel /home/demo/pe-sentinel && chown -R demo: /home/demo/pe-sentinel
if su demo -c 'cd ~/pe-sentinel && CARGO_TARGET_DIR=/tmp/demo-target PATH=/opt/rust/bin:$PATH scripts/demo.sh' >/tmp/user.out 2>&1; then
  echo "CHECK-FAILED: scripts/demo.sh as a plain user did not stop although Debian packages are missing"; cat /tmp/user.out; exit 1
fi
cat /tmp/user.out
grep -q "apt-get install" /tmp/user.out || { echo "CHECK-FAILED: no apt-get line printed for a plain user"; exit 1; }
if grep -q "Compiling" /tmp/user.out; then echo "CHECK-FAILED: a build started before the apt-get line"; exit 1; fi
if [ -n "${CLEAN_SYS_CRATES:-}" ]; then
  # Shared target dir: run the build scripts that need Debian packages again, here.
  cargo clean --release --quiet $CLEAN_SYS_CRATES 2>/dev/null || true
fi
# A library left in the shared target dir by an earlier run must not stand in for today's fetch.
rm -rf "$CARGO_TARGET_DIR/lib"
echo "== 2. scripts/demo.sh as root"
scripts/demo.sh 2>&1 | tee /tmp/demo.out
grep -q "^ran on: engine onnxruntime" /tmp/demo.out || { echo "CHECK-FAILED: the demo did not run on onnxruntime"; exit 1; }
n=$(grep -cE "^[^ ]+ +[0-9]+ +[0-9]+ +[0-9.]+ +[0-9]+ +(positive|negative)$" /tmp/demo.out || true)
[ "$n" -ge 3 ] || { echo "CHECK-FAILED: the demo printed $n series verdicts, expected 3"; exit 1; }
if [ "${FULL:-0}" = 1 ]; then
  echo "== 3. scripts/test.sh as root"
  CARGO_TARGET_DIR=/build/target-test scripts/test.sh
fi
echo "== clean room: all steps done"
EOF
)

set +e
say "running in the clean room (log: $LOG)"
FULL=$FULL CLEAN_SYS_CRATES="$( [ "$COLD" = 0 ] && echo "-p charls-sys" )" \
nice unshare --mount --propagation private bash -c '
  set -e
  R="$1"
  mount --bind "$2" "$R/opt/rust" && mount -o remount,bind,ro "$R/opt/rust"
  if [ -n "$3" ]; then mount --bind "$3/cargo-home" "$R/root/.cargo"; mount --bind "$3/target" "$R/build/target"; fi
  mount -t proc proc "$R/proc"
  mount --rbind /dev "$R/dev"
  mount -t sysfs sys "$R/sys"
  mount -t tmpfs tmpfs "$R/tmp"
  exec chroot "$R" /bin/bash -c "$4"
' clean-room "$ROOT" "$TOOLCHAIN" "$( [ "$COLD" = 0 ] && echo "$CACHE")" "$INNER" </dev/null >>"$LOG" 2>&1
rc=$?
set -e
[ "$KEEP" = 1 ] || rm -rf "$ROOT"

if [ $rc = 0 ]; then
  grep -E "^ran on:|^== clean room" "$LOG" || true
  say "PASS ($([ $FULL = 1 ] && echo "demo and tests" || echo demo), $([ $COLD = 1 ] && echo cold || echo "shared caches"))"
  exit 0
fi
# The first thing missing: our own check's words, else the first line that names a missing tool,
# file or library, else the first error.
# Step 1 prints the missing packages on purpose: look from step 2 on.
after1=$(awk '/^== 2\./ { f = 1 } f' "$LOG")
first=$(grep -m1 "CHECK-FAILED" "$LOG" ||
  grep -m1 -iE "not installed|not found|no such file|unable to find|cannot find|needs these Debian packages|needs Rust" <<<"$after1" ||
  grep -m1 -E "^error|error:" <<<"$after1" || echo "exit status $rc$([ $rc -gt 128 ] && echo " (killed by signal $((rc - 128)))")")
echo "FAIL: ${first#CHECK-FAILED: }"
echo "--- last 25 lines of $LOG:"
tail -n 25 "$LOG"
exit 1
