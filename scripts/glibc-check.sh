#!/usr/bin/env bash
# Prints the newest glibc symbol version an ELF binary needs and fails when it is newer than MAX.
# Usage: scripts/glibc-check.sh BINARY MAX   (e.g. 2.31: JetPack 5 / Ubuntu 20.04; 2.35: JetPack 6)
# readelf (binutils) reads ELF files of any architecture.
set -euo pipefail
bin="$1"; max="$2"
[ -f "$bin" ] || { echo "glibc-check: no binary at $bin: build it first" >&2; exit 1; }
newest="$(readelf -V -W "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)"
[ -n "$newest" ] || { echo "glibc-check: $bin names no GLIBC symbol version: not a glibc-linked ELF binary?" >&2; exit 1; }
echo "$bin: newest GLIBC symbol version $newest (allowed: $max); needs $(readelf -d -W "$bin" | grep NEEDED | grep -o '\[.*\]' | tr -d '[]' | tr '\n' ' ')"
if [ "$(printf '%s\n%s\n' "$newest" "$max" | sort -V | tail -n1)" != "$max" ]; then
  echo "glibc-check: $bin needs GLIBC_$newest, newer than $max: it would not start on a system with glibc $max" >&2
  exit 1
fi
