#!/usr/bin/env python3
"""Benchmark (not a test) of the DICOM receiver: a 300-slice 512x512 phantom series sent by DCMTK's
storescu over loopback, one association and four, to

  * pe-sentinel-receive (fsync of every instance and of the folder before each response) with the
    analysing daemon running on its drop folder, and
  * DCMTK's storescp (the peer, the same storescu, the same files, in the same run),

alternating per round. Prints images/s and MB/s (median over the rounds, and each round), their
ratio to the peer, and for ours the time from storescu's end (the last C-STORE response and the
release) to the last slice analysed and to the series verdict (ALERT for this positive series) and
to the series closing (the quiet time).

Usage: benches/dicom_receive.py [--rounds 3] [--slices 300] [--bin target/release/pe-sentinel]
Needs: dcmtk (storescu, storescp); the pe-sentinel and pe-sentinel-receive binaries (built together:
cargo build --release --workspace).
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait(cond, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return time.monotonic()
        time.sleep(0.02)
    raise SystemExit(f"timed out after {timeout} s waiting for {what}")


def send(files, port, called, assocs):
    """Runs `assocs` storescu processes in parallel over interleaved shares of the files; seconds."""
    shares = [files[i::assocs] for i in range(assocs)]
    t0 = time.monotonic()
    procs = [subprocess.Popen(["storescu", "-aet", "STORESCU", "-aec", called, "127.0.0.1", str(port), *map(str, s)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for s in shares]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"storescu failed: {err.decode(errors='replace')}")
    return time.monotonic() - t0


def peer_round(files, tmp, assocs):
    out = Path(tempfile.mkdtemp(dir=tmp))
    port = free_port()
    # --fork: one process per association, so four associations run in parallel.
    scp = subprocess.Popen(["storescp", "--fork", "-aet", "PEER", "-od", str(out), str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        secs = send(files, port, "PEER", assocs)
    finally:
        scp.send_signal(signal.SIGTERM)
        scp.wait(timeout=10)
    n = len(list(out.iterdir()))
    if n != len(files):
        raise SystemExit(f"storescp stored {n} of {len(files)}")
    shutil.rmtree(out)
    return secs


def ours_round(files, tmp, assocs, bin_dir, profile, with_daemon):
    work = Path(tempfile.mkdtemp(dir=tmp))
    drop, state = work / "drop", work / "state"
    drop.mkdir()
    dlog = open(work / "daemon.log", "wb")
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    env["RUST_LOG"] = "info"
    text = lambda: (work / "daemon.log").read_text(errors="replace")  # noqa: E731
    daemon = None
    if with_daemon:
        daemon = subprocess.Popen([str(bin_dir / "pe-sentinel"), "run", "--config", str(profile), "--drop", str(drop),
                                   "--state", str(state)], stdout=subprocess.DEVNULL, stderr=dlog, env=env)
        wait(lambda: "watching drop folder" in text(), 300, "daemon start")
    rprof = work / "receive.toml"
    rprof.write_text('[dicom]\nae_title = "PE-SENTINEL"\nmin_free_mb = 100\nmax_associations = 8\n')
    rlog = open(work / "receiver.log", "wb")
    rec = subprocess.Popen([str(bin_dir / "pe-sentinel-receive"), "--config", str(rprof), "--listen", "127.0.0.1:0",
                            "--drop", str(drop), "--state", str(work / "rstate"), "--allow", "STORESCU@127.0.0.1"],
                           stdout=subprocess.PIPE, stderr=rlog, env=env)
    port = int(rec.stdout.readline().decode().rsplit(":", 1)[1])
    done = drop / "done"
    try:
        secs = send(files, port, "PE-SENTINEL", assocs)
        t_end = time.monotonic()
        if daemon is None:
            return secs, float("nan"), float("nan"), 0
        t_all = wait(lambda: done.exists() and len(list(done.iterdir())) >= len(files), 3600, "all slices analysed")
        backlog = t_all - t_end
        t_closed = wait(lambda: ": closed " in text(), 600, "series closed")
        closed = t_closed - t_end
        alerts = text().count("ALERT")
    finally:
        rec.send_signal(signal.SIGTERM)
        rec.wait(timeout=10)
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
        dlog.close()
        rlog.close()
    shutil.rmtree(work)
    return secs, backlog, closed, alerts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "pe-sentinel"))
    ap.add_argument("--profile", default=str(ROOT / "board" / "x86-cpu.toml"))
    ap.add_argument("--files", help="send these .dcm files (a folder) instead of a phantom series")
    ap.add_argument("--no-daemon", action="store_true", help="the receiver alone (no analysis beside it)")
    a = ap.parse_args()
    bin_dir = Path(a.bin).resolve().parent
    tmp = tempfile.mkdtemp(prefix="pe-dicom-bench-")
    try:
        if a.files:
            files = sorted(Path(a.files).glob("*.dcm"))
        else:
            ph = Path(tmp) / "phantom"
            subprocess.run([str(bin_dir / "pe-sentinel"), "phantom", "--series", "1", "--slices", str(a.slices),
                            "--seed", "2", "--pe-fraction", "1", "--format", "dicom", "--out", str(ph)], check=True,
                           capture_output=True)
            files = sorted((ph / "series-000" / "dicom").glob("*.dcm"))
        mb = sum(f.stat().st_size for f in files) / 1e6
        print(f"{len(files)} slices, {mb:.1f} MB; {a.rounds} rounds; {os.cpu_count()} CPUs; "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {os.getloadavg()[0]:.1f}; "
              f"{'receiver alone' if a.no_daemon else 'daemon analysing beside the receiver'}")
        results = {}
        for r in range(a.rounds):
            for assocs in (1, 4):
                p = peer_round(files, tmp, assocs)
                o, backlog, closed, alerts = ours_round(files, tmp, assocs, bin_dir, Path(a.profile), not a.no_daemon)
                results.setdefault(("peer", assocs), []).append(p)
                results.setdefault(("ours", assocs), []).append((o, backlog, closed, alerts))
                print(f"round {r + 1}, {assocs} assoc: storescp {len(files) / p:6.1f} img/s | pe-sentinel-receive "
                      f"{len(files) / o:6.1f} img/s, last slice analysed {backlog:5.1f} s after the last response, "
                      f"series closed {closed:5.1f} s after, {alerts} ALERT", flush=True)
        print()
        print(f"{'':28} {'images/s':>9} {'MB/s':>7} {'x peer':>7}  last analysed  closed")
        for assocs in (1, 4):
            p = statistics.median(results[("peer", assocs)])
            o = statistics.median(x[0] for x in results[("ours", assocs)])
            bl = statistics.median(x[1] for x in results[("ours", assocs)])
            cl = statistics.median(x[2] for x in results[("ours", assocs)])
            print(f"storescp, {assocs} assoc{'s' if assocs > 1 else ' '}          {len(files) / p:9.1f} {mb / p:7.1f}")
            print(f"pe-sentinel-receive, {assocs} assoc{'s' if assocs > 1 else ' '} {len(files) / o:9.1f} {mb / o:7.1f} "
                  f"{p / o:7.2f}  {bl:8.1f} s  {cl:6.1f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
