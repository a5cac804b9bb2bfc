#!/usr/bin/env python3
"""The VM bench's host side: starts qemu, plays the display's part, judges, kills the VM by PID.

Called by scripts/vmtest/run.sh. The guest agent (guest.sh) prints `VMTEST: ...` lines on the
console; this reads them from the console file as they come and acts on the markers:
  PLUG-DISPLAY    connect to the display's chardev socket: qemu's usb-serial (an FTDI 0403:6001)
                  attaches to the guest's xHCI, the guest sees /dev/ttyUSB0 appear (check 6);
  ALERT-EXPECTED  wait for STATE=ALERT on the line, unplug (close the socket: qemu detaches the
                  USB device), replug, expect a full redraw still in ALERT, send ACK, expect the
                  alert cleared; later a clean stop must show STATE=FAULT (check 4);
  DICOM-READY     the receiver's socket is enabled in the guest: C-ECHO from an allowed and an
                  unknown calling AE, then DCMTK's storescu sends a positive series through the
                  hostfwd port; wait for STATE=ALERT on the line and ACK it (check 5);
  RESULT c v ...  a check's verdict from inside;
  DONE            the guest has packed its logs and powers off.
The whole run has a time limit; qemu is killed by its PID on any exit path. Prints one
PASS/FAIL/SKIP line per check and exits 1 on any FAIL or missing result.
Only loopback and a Unix socket in the output folder are used: the guest's user network is
restricted (no way out) and one port on 127.0.0.1 is forwarded to its port 104 (check 5).
"""
import argparse
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time

CHECKS = {
    "1": "install, upgrade, purge of the .deb",
    "2": "watchdog, SIGTERM mid-series, reboot resume",
    "3": "capture from the kernel's vivid driver (negotiated mode)",
    "4": "serial display: READY, ALERT, unplug/replug, ACK, FAULT",
    "5": "DICOM receiver over the VM's network",
    "6": "devices plugged in after the service started",
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Display:
    """The display end of the serial line: the host side of qemu's usb-serial chardev socket."""

    def __init__(self, path: str, logfile: str):
        self.path = path
        self.sock = None
        self.buf = b""
        self.lines = []  # (time, line) of everything received
        self.log = open(logfile, "ab")

    def plug(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.path)
        s.setblocking(False)
        self.sock = s
        self.log.write(f"--- plugged {time.time():.1f}\n".encode())

    def unplug(self) -> None:
        if self.sock:
            self.sock.close()
            self.sock = None
            self.log.write(f"--- unplugged {time.time():.1f}\n".encode())

    def send(self, data: bytes) -> None:
        if self.sock:
            self.sock.sendall(data)
            self.log.write(b">>> " + data)

    def poll(self) -> None:
        if not self.sock:
            return
        while True:
            try:
                chunk = self.sock.recv(4096)
            except BlockingIOError:
                return
            except OSError:
                return
            if not chunk:
                self.unplug()
                return
            self.log.write(chunk)
            self.log.flush()
            self.buf += chunk
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                self.lines.append((time.time(), line.decode("ascii", "replace").strip("\r")))

    def seen_since(self, t: float, pred) -> bool:
        return any(ts >= t and pred(line) for ts, line in self.lines)


class Check4:
    """The host's half of check 4, a small state machine driven from the main loop."""

    def __init__(self, disp: Display):
        self.d = disp
        self.step = "idle"
        self.t = 0.0
        self.ok = []
        self.fail = []
        self.ack_at = None

    def start(self) -> None:
        self.step, self.t = "wait-alert", time.time()
        # READY, or ANALYSING when a capture slice from check 3 has opened a series already.
        shown = [l for _, l in self.d.lines if l in ("STATE=READY", "STATE=ANALYSING")]
        if shown:
            self.ok.append(f"{shown[0][6:]} shown after the plug")
        else:
            self.fail.append("no STATE=READY (or ANALYSING) on the line before the series")

    def tick(self, slice_s: int) -> None:
        now = time.time()
        if self.step == "wait-alert":
            if self.d.seen_since(self.t, lambda l: l == "STATE=ALERT"):
                self.ok.append(f"ALERT after {now - self.t:.0f} s")
                self.d.unplug()
                self.step, self.t = "unplugged", now
                log("check 4: ALERT on the line; unplugging the display (chardev disconnect)")
            elif now - self.t > 6 * slice_s:
                self.fail.append("no STATE=ALERT on the line")
                self.step = "done"
        elif self.step == "unplugged" and now - self.t > 5:
            self.d.plug()
            self.step, self.t = "replugged", now
            log("check 4: display plugged in again")
        elif self.step == "replugged":
            if self.d.seen_since(self.t, lambda l: l == "RESET") and self.d.seen_since(self.t, lambda l: l == "STATE=ALERT"):
                self.ok.append(f"full redraw (RESET) still in ALERT {now - self.t:.0f} s after the replug")
                self.d.send(b"ACK\r\n")
                self.step, self.t = "acked", now
                self.ack_at = now
                log("check 4: redraw in ALERT after the replug; ACK sent")
            elif now - self.t > 60:
                self.fail.append("no full redraw in ALERT within 60 s of the replug")
                self.step = "done"
        elif self.step == "acked":
            if self.d.seen_since(self.t, lambda l: l == "ALERT=-" or (l.startswith("STATE=") and l != "STATE=ALERT")):
                self.ok.append("ACK cleared the ALERT")
                self.step, self.t = "wait-fault", now
            elif now - self.t > 30:
                self.fail.append("ACK did not clear the ALERT within 30 s")
                self.step = "done"
        elif self.step == "wait-fault":
            if self.d.seen_since(self.t, lambda l: l == "STATE=FAULT"):
                self.ok.append("FAULT shown when the daemon stopped (upgrade restart)")
                self.step = "done"

    def finish(self) -> None:
        if self.step == "wait-fault":
            self.fail.append("no STATE=FAULT on the line when the daemon stopped")
        elif self.step not in ("done", "idle"):
            self.fail.append(f"did not finish (at step {self.step})")
        elif self.step == "idle":
            self.fail.append("the guest never asked for the display check")


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Check5:
    """The host's half of check 5: DCMTK on the host is the scanner, through the hostfwd port."""

    def __init__(self, disp: Display, port: int, net_dir: str, out: str):
        self.d, self.port, self.net_dir, self.out = disp, port, net_dir, out
        self.step = "idle"
        self.t = 0.0
        self.ok = []
        self.fail = []
        self.proc = None
        self.started = False

    def dcmtk(self, name: str, args: list, want_ok: bool, what: str) -> None:
        cmd = [name, "-to", "30", "-ta", "30", "-td", "180"] + args
        try:
            r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=900)
            out = (r.stdout + r.stderr).decode("utf-8", "replace")
            rc = r.returncode
        except (OSError, subprocess.TimeoutExpired) as e:
            out, rc = str(e), -1
        with open(os.path.join(self.out, "dcmtk.log"), "a", encoding="utf-8") as f:
            f.write(f"$ {shlex.join(cmd)}\n{out}\n(exit {rc})\n")
        last = " ".join(out.strip().splitlines()[-2:])[:160]
        if want_ok and rc == 0:
            self.ok.append(f"{what}: exit 0")
        elif not want_ok and rc != 0 and "reject" in out.lower():
            self.ok.append(f"{what}: refused ({last})")
        else:
            self.fail.append(f"{what}: exit {rc}: {last}")

    def start(self) -> None:
        """Runs the three DCMTK commands (in order, blocking: the guest waits for the series)."""
        self.started = True
        peer = ["127.0.0.1", str(self.port)]
        self.dcmtk("echoscu", ["-aet", "VMTEST-SCU", "-aec", "PE-SENTINEL"] + peer, True, "C-ECHO from VMTEST-SCU")
        self.dcmtk("echoscu", ["-aet", "VMTEST-BAD", "-aec", "PE-SENTINEL"] + peer, False, "C-ECHO from unknown VMTEST-BAD")
        files = sorted(os.path.join(self.net_dir, f) for f in os.listdir(self.net_dir) if f.endswith(".dcm"))
        self.dcmtk("storescu", ["-aet", "VMTEST-SCU", "-aec", "PE-SENTINEL"] + peer + files, True, f"storescu of {len(files)} slices")
        self.step, self.t = "wait-alert", time.time()

    def tick(self, slice_s: int) -> None:
        now = time.time()
        if self.step == "wait-alert":
            if self.d.seen_since(self.t, lambda l: l == "STATE=ALERT"):
                self.ok.append(f"ALERT on the line {now - self.t:.0f} s after the last C-STORE")
                self.d.send(b"ACK\r\n")
                self.step, self.t = "acked", now
                log("check 5: ALERT on the line for the series sent over DICOM; ACK sent")
            elif now - self.t > 8 * slice_s:
                self.fail.append("no STATE=ALERT on the line after storescu")
                self.step = "done"
        elif self.step == "acked":
            if self.d.seen_since(self.t, lambda l: l == "ALERT=-" or (l.startswith("STATE=") and l != "STATE=ALERT")):
                self.ok.append("ACK cleared it")
                self.step = "done"
            elif now - self.t > 30:
                self.fail.append("ACK did not clear the ALERT within 30 s")
                self.step = "done"

    def finish(self) -> None:
        if self.step not in ("done", "idle"):
            self.fail.append(f"did not finish (at step {self.step})")


def qemu_cmd(a, accel: str, run: str) -> list:
    img = a.image
    if a.arch == "amd64":
        cmd = ["qemu-system-x86_64", "-machine", "q35"]
        cmd += ["-accel", "kvm", "-cpu", "host"] if accel == "kvm" else ["-accel", "tcg,thread=multi", "-cpu", "max"]
        console = "ttyS0"
    else:
        cmd = ["qemu-system-aarch64", "-machine", "virt,gic-version=max", "-cpu", "cortex-a76"]
        cmd += ["-accel", "tcg,thread=multi"]
        console = "ttyAMA0"
    append = f"console={console} systemd.firstboot=off loglevel=4 rw systemd.show_status=false"
    cmd += [
        "-m", "2048", "-smp", "2", "-nodefaults", "-no-user-config", "-display", "none",
        "-kernel", f"{img}/vmlinuz", "-initrd", f"{img}/initrd.gz", "-append", append,
        "-chardev", f"file,id=con,path={run}/console.log", "-serial", "chardev:con",
        "-drive", f"file={img}/root.img,if=none,id=root,format=raw,snapshot=on",
        "-device", "virtio-blk-pci,drive=root",
        "-drive", f"file={a.payload},if=none,id=payload,format=raw,readonly=on",
        "-device", "virtio-blk-pci,drive=payload",
        "-drive", f"file={a.results},if=none,id=results,format=raw",
        "-device", "virtio-blk-pci,drive=results",
        # The status display: an FTDI USB serial adapter whose far end is a socket here.
        "-device", "qemu-xhci,id=xhci",
        "-chardev", f"socket,id=disp,path={run}/display.sock,server=on,wait=off",
        "-device", "usb-serial,bus=xhci.0,chardev=disp",
    ]
    if a.dicom_port:
        # restrict=on: the guest reaches nothing outside; only this forwarded port reaches it.
        cmd += ["-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{a.dicom_port}-:104",
                "-device", "virtio-net-pci,netdev=n0,romfile="]
    return cmd


def start(a, accel: str):
    run = a.out
    for f in ("console.log", "display.sock"):
        try:
            os.unlink(os.path.join(run, f))
        except FileNotFoundError:
            pass
    cmd = qemu_cmd(a, accel, run)
    with open(os.path.join(run, "qemu-cmd.txt"), "w", encoding="utf-8") as f:
        f.write(shlex.join(cmd) + "\n")
    err = open(os.path.join(run, f"qemu-{accel}.err"), "wb")
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    log(f"qemu ({accel}) started, PID {p.pid}")
    return p


def kill(p) -> None:
    if p and p.poll() is None:
        p.kill()  # SIGKILL to this PID only
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            pass


def read_env(path: str) -> dict:
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^(\w+)='?([^']*)'?$", line.strip())
            if m:
                env[m.group(1)] = m.group(2)
    return env


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--payload", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--timeout", type=int, required=True)
    ap.add_argument("--accel", default="auto")
    ap.add_argument("--env", required=True)
    ap.add_argument("--net-dir", default="", help="the series check 5 sends with storescu")
    a = ap.parse_args()
    # A SIGTERM (CI's time limit) unwinds through the `finally` that kills qemu by its PID.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    a.dicom_port = free_port() if a.net_dir else 0
    env = read_env(a.env)
    slice_s = int(env.get("SLICE_S", "90"))
    deadline = time.time() + a.timeout
    t0 = time.time()

    accels = ["tcg"] if a.arch != "amd64" or a.accel == "tcg" else (["kvm"] if a.accel == "kvm" else ["kvm", "tcg"])
    p = None
    results = {}
    disp = None
    booted = False
    try:
        for accel in accels:
            p = start(a, accel)
            console = os.path.join(a.out, "console.log")
            pos = 0
            pending = b""
            disp = Display(os.path.join(a.out, "display.sock"), os.path.join(a.out, "display.log"))
            c4 = Check4(disp)
            c5 = Check5(disp, a.dicom_port, a.net_dir, a.out)
            boot_deadline = time.time() + (60 if accel == "kvm" and len(accels) > 1 else a.timeout)
            done_at = None
            while True:
                now = time.time()
                if now > deadline:
                    log(f"TIMEOUT: the VM run passed {a.timeout} s; killing qemu (PID {p.pid})")
                    break
                if not booted and now > boot_deadline:
                    log(f"{accel}: no boot within 60 s; killing PID {p.pid}, trying the next accelerator")
                    break
                try:
                    with open(console, "rb") as f:
                        f.seek(pos)
                        chunk = f.read()
                        pos += len(chunk)
                except FileNotFoundError:
                    chunk = b""
                pending += chunk
                while b"\n" in pending:
                    raw, pending = pending.split(b"\n", 1)
                    line = raw.decode("utf-8", "replace").rstrip("\r")
                    i = line.find("VMTEST: ")
                    if i < 0:
                        continue
                    msg = line[i + 8 :]
                    if msg.startswith("RESULT "):
                        parts = msg.split(" ", 3)
                        if len(parts) >= 3:
                            results[parts[1]] = (parts[2], parts[3] if len(parts) > 3 else "")
                    log(f"guest: {msg}")
                    if msg.startswith("BOOTED"):
                        booted = True
                    elif msg == "PLUG-DISPLAY":
                        disp.plug()
                        log("display plugged in (usb-serial attached)")
                    elif msg == "ALERT-EXPECTED":
                        c4.start()
                    elif msg == "DICOM-READY" and a.net_dir:
                        log(f"check 5: echoscu and storescu to 127.0.0.1:{a.dicom_port} (the guest's port 104)")
                        c5.start()
                    elif msg == "DONE":
                        done_at = time.time()
                disp.poll()
                c4.tick(slice_s)
                c5.tick(slice_s)
                if p.poll() is not None:
                    if done_at is None and not booted:
                        log(f"qemu ({accel}) exited with {p.returncode} before the guest booted")
                    break
                if done_at and time.time() - done_at > 90:
                    log("the guest said DONE but did not power off in 90 s; killing qemu")
                    break
                time.sleep(0.2)
            if booted or time.time() > deadline:
                break
            kill(p)
        c4.finish()
        c5.finish()
        # Check 4 is PASS only when both halves (the guest's journal, the host's line) pass.
        g = results.get("4")
        host_txt = "; ".join(c4.ok + [f"FAIL: {x}" for x in c4.fail])
        if g:
            v = "PASS" if g[0] == "PASS" and not c4.fail else "FAIL"
            results["4"] = (v, f"line: {host_txt} | guest: {g[1]}")
        elif c4.ok or c4.fail:
            results["4"] = ("FAIL", f"line: {host_txt} | guest: no result")
        g = results.get("5")
        host_txt = "; ".join(c5.ok + [f"FAIL: {x}" for x in c5.fail])
        if g and c5.started:
            v = "PASS" if g[0] == "PASS" and not c5.fail else "FAIL"
            results["5"] = (v, f"host: {host_txt} | guest: {g[1]}")
        elif g:
            results["5"] = ("FAIL", f"host: the guest never said DICOM-READY | guest: {g[1]}")
        elif c5.ok or c5.fail:
            results["5"] = ("FAIL", f"host: {host_txt} | guest: no result")
    finally:
        kill(p)
        if disp:
            disp.unplug()
    log(f"VM run: {time.time() - t0:.0f} s ({'booted' if booted else 'never booted'})")
    failed = False
    print(f"== vmtest {a.arch}: results")
    for c, name in CHECKS.items():
        v, why = results.get(c, ("FAIL", "no result (the guest did not get there; see console.log)"))
        failed |= v == "FAIL"
        print(f"{v}: check {c} ({name}): {why}")
    passed = sum(1 for c in CHECKS if results.get(c, ("FAIL",))[0] == "PASS")
    skipped = sum(1 for c in CHECKS if results.get(c, ("FAIL",))[0] == "SKIP")
    print(f"vmtest: {passed} passed, {len(CHECKS) - passed - skipped} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
