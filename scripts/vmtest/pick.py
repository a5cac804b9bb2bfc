#!/usr/bin/env python3
"""The VM bench's test series, picked from phantom slices by the host's own verdicts.

Reads `pe-sentinel infer` JSON lines (the host's x86-64 run of the shipped models on tract, the
same engine and models the VM runs) and copies into PAYLOAD/data/:
  pos/     3 consecutive suspicious slices of one series: turns it positive (k=3 in 5), check 4;
  resume/  3 consecutive suspicious slices of another series: positive only if the slices analysed
           before the reboot are read back from the journal, check 2;
  term/    8 clear slices of a negative series: the SIGTERM check, check 2 (with 3, the arm64 guest
           had analysed all of them before the stop landed, 2026-12-07).
Prints the shell variables guest.sh reads (series UIDs, time limits). Few slices on purpose: the
shipped models take 7-10 s per slice under TCG (amd64).
usage: pick.py INFER.jsonl PAYLOAD_DIR > bench.env
"""
import json
import os
import shutil
import sys
from collections import defaultdict

# Slices of the SIGTERM series: enough that the stop lands mid-series on the faster arm64 guest.
TERM_SLICES = 8


def main() -> int:
    infer, payload = sys.argv[1], sys.argv[2]
    by_series = defaultdict(list)
    with open(infer, encoding="utf-8") as f:
        for line in f:
            a = json.loads(line)
            by_series[a["series"]].append(a)
    runs, clear = [], []
    for series, slices in sorted(by_series.items()):
        slices.sort(key=lambda a: (a["instance"] is None, a["instance"] or 0, a["file"]))
        flags = [a["verdict"] == "suspicious" for a in slices]
        if not any(flags) and len(slices) >= TERM_SLICES:
            clear.append((series, slices[:TERM_SLICES]))
        for i in range(len(slices) - 2):
            if all(flags[i : i + 3]):
                runs.append((series, slices[i : i + 3]))
                break
    if len(runs) < 2 or not clear:
        print(
            f"pick.py: need two series with 3 consecutive suspicious slices and one clear series of {TERM_SLICES}; "
            f"got {len(runs)} and {len(clear)} from {infer}: change the phantom seed in run.sh",
            file=sys.stderr,
        )
        return 1
    picks = {"pos": runs[0], "resume": runs[1], "term": clear[0]}
    for name, (series, slices) in picks.items():
        d = os.path.join(payload, "data", name)
        os.makedirs(d, exist_ok=True)
        for k, a in enumerate(slices):
            shutil.copy(a["file"], os.path.join(d, f"{k:02d}-{os.path.basename(a['file'])}"))
    print(f"POS_SERIES='{picks['pos'][0]}'")
    print(f"RESUME_SERIES='{picks['resume'][0]}'")
    print("RESUME_EXPECT=positive")
    print(f"TERM_SERIES='{picks['term'][0]}'")
    # Time limits inside the guest: a daemon start (models loaded, warmed up) and one slice.
    print(f"START_S={os.environ.get('VMTEST_START_S', '300')}")
    print(f"SLICE_S={os.environ.get('VMTEST_SLICE_S', '90')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
