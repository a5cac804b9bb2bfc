#!/usr/bin/env bash
# The one list of system packages pe-sentinel needs, per task, and the one place that installs them.
# Used by scripts/demo.sh (build demo), scripts/test.sh (build test), scripts/cross-aarch64.sh
# (cross) and .ci/run; docs/platform.md explains each line.
#
#   scripts/deps.sh TASK...        install what TASK needs and is missing (apt, when root), or print
#                                  the one `apt-get install` line to run and exit 1 (not root)
#   scripts/deps.sh --missing TASK...   only print the missing Debian packages, one line
#   scripts/deps.sh --table             print the whole table (for docs/platform.md)
#
# TASKs: build (cargo build of the default features), demo, test, cross (arm64 cross-build check),
# cleanroom (scripts/clean-room.sh), vmtest and vmtest-arm64 (scripts/vmtest/run.sh). Nothing is installed that is already there: each line has a
# check (a command on PATH, a file glob, or a Python module) and is skipped when the check passes.
set -euo pipefail

# task | check | Debian package | why
TABLE='
build|cmd:cc|gcc|C compiler: SQLite (rusqlite, bundled) and the other C sources crates compile
build|cmd:c++|g++|C++ compiler: CharLS, the JPEG-LS decoder (crate charls-sys)
build|cmd:make|make|CharLS is built through cmake with Makefiles
build|cmd:cmake|cmake|CharLS (JPEG-LS transfer syntaxes 1.2.840.10008.1.2.4.80/.81)
build|file:/etc/ssl/certs/ca-certificates.crt|ca-certificates|HTTPS for crates.io
demo|cmd:python3|python3|the demo reads phantom.json; fetching onnxruntime from its PyPI wheel
demo|pymod:ssl|python3|HTTPS for the onnxruntime download
test|cmd:python3|python3|the Python cross-checks (pytest, pydicom, onnxruntime, OpenCV, pycocotools)
test|pymod:ensurepip|python3-venv|the test venv (scripts/test.sh) and the cross-build venv
test|cmd:systemd-analyze|systemd|scripts/check-systemd.sh: verify, security, sysusers, tmpfiles
test|cmd:udevadm|udev|scripts/check-systemd.sh: the udev rules in a private mount namespace
test|cmd:storescp|dcmtk|DICOM peers nobody here wrote (storescp, storescu, echoscu): the receiver and results tests
test|cmd:dciodvfy|dicom3tools|dciodvfy validates the Secondary Capture and SR objects we write
test|cmd:strace|strace|tests/fsync_delay.rs delays every fsync of the daemon (fault injection) to test a slow disk
test|cmd:openssl|openssl|certificates for the DICOM-over-TLS test of the receiver (tests/py/test_dicom_tls.py)
cross|cmd:qemu-aarch64|qemu-user|runs the arm64 binary (scripts/cross-aarch64.sh)
cross|file:/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1|libc6-arm64-cross|the arm64 loader and libc qemu runs it with
cross|pymod:ensurepip|python3-venv|the venv holding cargo-zigbuild and zig
cross|cmd:aarch64-linux-gnu-strip|binutils-aarch64-linux-gnu|strips the arm64 binaries of the .deb (scripts/build-deb.sh arm64: cargo deb --strip)
cleanroom|cmd:mmdebstrap|mmdebstrap|builds the minimal Debian root of scripts/clean-room.sh
cleanroom|cmd:git|git|clones the repository into the clean room
vmtest|cmd:qemu-system-x86_64|qemu-system-x86|the amd64 VM of scripts/vmtest/run.sh
vmtest|cmd:mmdebstrap|mmdebstrap|builds the Debian root of the VM (scripts/vmtest/image.sh)
vmtest|cmd:cpio|cpio|packs the initramfs of the VM
vmtest|cmd:depmod|kmod|the module index of the kernel of the VM
vmtest|cmd:mkfs.ext4|e2fsprogs|the root disk of the VM (mkfs.ext4 -d)
vmtest|cmd:storescu|dcmtk|check 5: the host is the scanner (echoscu, storescu, dcmodify)
vmtest-arm64|cmd:qemu-system-aarch64|qemu-system-arm|the arm64 VM of scripts/vmtest/run.sh arm64
vmtest-arm64|cmd:arch-test|arch-test|mmdebstrap --arch=arm64 checks that arm64 programs run here
vmtest-arm64|cmd:update-binfmts|binfmt-support|registers qemu-user for arm64 programs (maintainer scripts of the arm64 root)
vmtest-arm64|glob:/usr/libexec/qemu-binfmt/aarch64-binfmt-P|qemu-user-static|the binfmt handler mmdebstrap runs arm64 maintainer scripts through
'

rows() { # rows TASK... -> the table lines of those tasks
  local t
  for t in "$@"; do
    case " build demo test cross cleanroom vmtest vmtest-arm64 " in
      *" $t "*) ;;
      *) echo "deps.sh: unknown task '$t' (tasks: build demo test cross cleanroom vmtest vmtest-arm64)" >&2; exit 2 ;;
    esac
    grep "^$t|" <<<"$TABLE"
  done
}

present() { # present CHECK
  local kind="${1%%:*}" what="${1#*:}"
  case "$kind" in
    cmd) command -v "$what" >/dev/null 2>&1 ;;
    file) [ -e "$what" ] ;;
    glob) compgen -G "$what" >/dev/null ;;
    pymod) command -v python3 >/dev/null 2>&1 && python3 -c "import $what" >/dev/null 2>&1 ;;
    *) return 1 ;;
  esac
}

mode=install
case "${1:-}" in
  --missing) mode=missing; shift ;;
  --table)
    printf '%-9s %-18s %s\n' task package why
    grep '|' <<<"$TABLE" | while IFS='|' read -r task _ pkg why; do printf '%-9s %-18s %s\n' "$task" "$pkg" "$why"; done
    exit 0 ;;
esac
[ $# -gt 0 ] || { echo "usage: scripts/deps.sh [--missing] TASK... (build demo test cross cleanroom vmtest vmtest-arm64) | --table" >&2; exit 2; }

# Rust is not a Debian package here (Debian 12's rustc is too old): rustup's toolchain, of at least
# the rust-version in Cargo.toml.
case " $* " in *" build "*)
  want="$(sed -n 's/^rust-version = "\(.*\)"/\1/p' "$(dirname "$0")/../Cargo.toml")"
  have="$(rustc --version 2>/dev/null | awk '{print $2}' || true)"
  if [ -z "$have" ] || ! command -v cargo >/dev/null; then
    echo "pe-sentinel needs Rust $want or newer (cargo and rustc on PATH): install it with rustup" >&2
    exit 1
  fi
  if [ "$(printf '%s\n%s\n' "$want" "${have%%-*}" | sort -V | head -n1)" != "$want" ]; then
    echo "pe-sentinel needs Rust $want or newer; rustc here is $have: run \`rustup update\`" >&2
    exit 1
  fi
esac

pkgs=() reasons=()
while IFS='|' read -r _ check pkg why; do
  [ -n "$pkg" ] || continue
  present "$check" && continue
  case " ${pkgs[*]} " in *" $pkg "*) continue ;; esac
  pkgs+=("$pkg")
  reasons+=("  $pkg: $why")
done < <(rows "$@")

if [ "$mode" = missing ]; then
  echo "${pkgs[*]}"
  exit 0
fi
[ ${#pkgs[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "deps: installing ${pkgs[*]} (apt-get)" >&2
  printf '%s\n' "${reasons[@]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Install first from the lists already there; update them only when that fails (fresh images have none).
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null; }
  exit 0
fi

{
  echo "pe-sentinel needs these Debian packages first (for: $*):"
  printf '%s\n' "${reasons[@]}"
  if command -v apt-get >/dev/null; then
    echo "run:  sudo apt-get install -y --no-install-recommends ${pkgs[*]}"
  else
    echo "no apt-get here: install the equivalents with your system's package manager"
  fi
} >&2
exit 1
