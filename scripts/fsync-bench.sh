#!/usr/bin/env bash
# The slow-disk benchmark of issue 20 (README, "A slow disk"): the daemon's path through `bench`,
# undelayed, under strace with no delay (the tracer's own cost), and with every fsync/fdatasync
# delayed (strace fault injection), in interleaved rounds; then every slice of every round pooled:
# throughput, arrival-to-verdict p50/p99, journal commits, each as a change from the undelayed runs.
#
# usage: scripts/fsync-bench.sh OUT [ROUNDS]
# Environment: BIN (default target/release/pe-sentinel), PROFILE (board/x86-cpu.toml), ENGINE
#   (onnxruntime; its library via ORT_DYLIB_PATH), CASCADE (the profile's gate unless set: `off` or a
#   gate), SLICES (300), MODES ("r60 b2b": r<N> = --rate N, b2b = back to back), DELAY_US (20000).
# Needs strace. A benchmark, not a test: run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:?usage: scripts/fsync-bench.sh OUT [ROUNDS]}"
ROUNDS="${2:-5}"
BIN="${BIN:-target/release/pe-sentinel}"
PROFILE="${PROFILE:-board/x86-cpu.toml}"
gate="${CASCADE:-$(sed -n 's/^cascade_gate *= *\([0-9.]*\).*/\1/p' "$PROFILE")}"
[ -x "$BIN" ] || { echo "fsync-bench: no $BIN; run cargo build --release (or set BIN)" >&2; exit 1; }
command -v strace >/dev/null || { echo "fsync-bench: needs strace (apt-get install strace)" >&2; exit 1; }
mkdir -p "$OUT"
args=(bench --config "$PROFILE" --phantom "${SLICES:-300}" --engine "${ENGINE:-onnxruntime}" --cascade "${gate:-off}")
trace=(strace -f -qq --seccomp-bpf -o /dev/null -e trace=fsync,fdatasync)
for i in $(seq "$ROUNDS"); do
  for mode in ${MODES:-r60 b2b}; do
    rate=()
    case "$mode" in r*) rate=(--rate "${mode#r}") ;; esac
    "$BIN" "${args[@]}" "${rate[@]}" --out "$OUT/plain-$mode-$i" >"$OUT/plain-$mode-$i.txt" 2>&1
    "${trace[@]}" "$BIN" "${args[@]}" "${rate[@]}" --out "$OUT/traced-$mode-$i" >"$OUT/traced-$mode-$i.txt" 2>&1
    "${trace[@]}" -e inject=fsync,fdatasync:delay_exit="${DELAY_US:-20000}" \
      "$BIN" "${args[@]}" "${rate[@]}" --out "$OUT/delayed-$mode-$i" >"$OUT/delayed-$mode-$i.txt" 2>&1
    # Keep the figures; the phantom bench writes (150 MB a run at 300 slices) goes.
    rm -rf "$OUT"/{plain,traced,delayed}-"$mode-$i"/phantom
  done
  echo "fsync-bench: round $i of $ROUNDS done" >&2
done
python3 - "$OUT" <<'PY'
import csv, glob, json, statistics, sys
out = sys.argv[1]
modes = sorted({p.split("/")[-2].split("-")[1] for p in glob.glob(f"{out}/plain-*-*/summary.json")})
for mode in modes:
    print(f"== {mode} ({'back to back' if mode == 'b2b' else '--rate ' + mode[1:]})")
    base = None
    for kind in ("plain", "traced", "delayed"):
        runs = sorted(glob.glob(f"{out}/{kind}-{mode}-*/summary.json"))
        tput, commits, batch, total = [], [], 0, []
        for s in runs:
            r = json.load(open(s))["runs"][0]
            tput.append(r["throughput_slices_per_s"])
            commits.append(r["commits"])
            batch = max(batch, r["largest_batch"])
            with open(s.replace("summary.json", "slices.csv")) as f:
                total += [float(row["total_ms"]) for row in csv.DictReader(f)]
        total.sort()
        q = lambda x: total[min(len(total) - 1, int(x * len(total)))]  # noqa: E731
        fig = (statistics.mean(tput), q(0.5), q(0.99))
        base = base or fig
        d = lambda k: f"{100 * (fig[k] / base[k] - 1):+.1f}%"  # noqa: E731
        print(f"{kind:8} {len(runs)} runs, {len(total)} slices: {fig[0]:.1f} slices/s ({d(0)}), arrival to verdict "
              f"p50 {fig[1]:.2f} ms ({d(1)}), p99 {fig[2]:.1f} ms ({d(2)}); commits {min(commits)}-{max(commits)}, "
              f"largest group {batch}")
PY
