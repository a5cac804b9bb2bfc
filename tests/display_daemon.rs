//! The real daemon with its display on a pseudo-terminal: a positive phantom series through the
//! shipped models shows ALERT on the display end, and `pe-sentinel ack` (no network: the state
//! folder's Unix socket) clears it. The pty slave is reached by a symlink, as /dev/ttyACM0 would be.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pe-sentinel"))
}

/// Reads the master until `needle` has arrived (keeps reading so the daemon never stalls).
fn read_until(master: &mut File, got: &mut Vec<u8>, needle: &str, limit: Duration, log: &Path) {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        let mut fds = [nix::poll::PollFd::new(master.as_raw_fd(), nix::poll::PollFlags::POLLIN)];
        if nix::poll::poll(&mut fds, 100).unwrap_or(0) > 0 {
            let mut buf = [0u8; 4096];
            if let Ok(k) = master.read(&mut buf) {
                got.extend_from_slice(&buf[..k]);
            }
        }
        if String::from_utf8_lossy(got).contains(needle) {
            return;
        }
    }
    panic!(
        "timed out waiting for {needle:?} on the display; got:\n{}\ndaemon log:\n{}",
        String::from_utf8_lossy(got),
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// A pseudo-terminal standing in for the display, reached through a symlink in `dir` as
/// /dev/ttyACM0 would be: (master end the test reads, slave end kept open, the symlink).
fn pty_display(dir: &Path) -> (File, File, PathBuf) {
    let r = nix::pty::openpty(None, None).expect("openpty");
    // SAFETY: openpty just returned these descriptors and nothing else owns them.
    let (master, slave) = unsafe { (File::from_raw_fd(r.master), File::from_raw_fd(r.slave)) };
    let link = dir.join("ttyACM0");
    std::os::unix::fs::symlink(std::fs::read_link(format!("/proc/self/fd/{}", r.slave)).expect("pty"), &link)
        .expect("symlink");
    (master, slave, link)
}

/// A profile on the tiny test models (tract, 1 thread) with the display on `port`; `extra` is
/// appended (more tables).
fn tiny_profile(dir: &Path, name: &str, port: &Path, extra: &str) -> PathBuf {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let cfg = dir.join("profile.toml");
    std::fs::write(
        &cfg,
        format!(
            "[board]\nname = \"{name}\"\n[engine]\nkind = \"tract\"\nprecision = \"fp32\"\nthreads = 1\n\
             [models]\ndir = \"{m}\"\nclassifier = \"{m}/tiny-classifier.toml\"\ndetector = \"{m}/tiny-detector.toml\"\n\
             [paths]\ndrop_dir = \"{d}\"\nstate_dir = \"{s}\"\n\
             [display]\nport = \"{p}\"\nprotocol = \"line\"\nrefresh_ms = 20\n{extra}",
            m = data.display(),
            d = dir.join("drop").display(),
            s = dir.join("state").display(),
            p = port.display()
        ),
    )
    .expect("profile");
    cfg
}

/// `pe-sentinel run --config CFG` with its log in `log`.
fn spawn_daemon(cfg: &Path, log: &Path) -> std::process::Child {
    bin()
        .args(["run", "--config"])
        .arg(cfg)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(File::create(log).expect("log"))
        .spawn()
        .expect("daemon")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|r| r.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    v.sort();
    v
}

#[test]
fn the_daemon_shows_alert_on_the_display_and_pe_sentinel_ack_clears_it() {
    let t = tempfile::tempdir().expect("tempdir");
    let (drop, state) = (t.path().join("drop"), t.path().join("state"));
    let (mut master, _slave, link) = pty_display(t.path());

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("board/x86-cpu.toml")).expect("profile");
    let text = text.replace("dir = \"../models\"", &format!("dir = \"{}\"", root.join("models").display()));
    // 24 files land at once, so queue time counts against each slice's budget: a generous budget
    // keeps SLOW (amber) out of this test about ALERT and ACK (SLOW has its own test below).
    let text = text.replace("budget_ms = 250 ", "budget_ms = 600000 ");
    assert!(text.contains("budget_ms = 600000"), "the shipped profile's budget line changed");
    let cfg = t.path().join("profile.toml");
    std::fs::write(
        &cfg,
        format!("{text}\n[display]\nport = \"{}\"\nprotocol = \"line\"\nheartbeat_ms = 200\n", link.display()),
    )
    .expect("write profile");

    let st = bin()
        .args(["phantom", "--series", "1", "--slices", "32", "--seed", "2", "--pe-fraction", "1"])
        .args(["--format", "dicom", "--out"])
        .arg(t.path().join("ph"))
        .output()
        .expect("phantom");
    assert!(st.status.success());
    std::fs::create_dir_all(&drop).expect("mkdir");
    let log = t.path().join("daemon.log");
    let mut child = bin()
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--drop")
        .arg(&drop)
        .arg("--state")
        .arg(&state)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(File::create(&log).expect("log"))
        .spawn()
        .expect("daemon");
    let mut got = Vec::new();
    read_until(&mut master, &mut got, "STATE=READY\r\n", Duration::from_secs(120), &log);
    read_until(&mut master, &mut got, "HB\r\n", Duration::from_secs(10), &log);
    let no_answer = bin().args(["ack", "--state"]).arg(t.path()).output().expect("ack");
    assert!(!no_answer.status.success(), "no daemon on that folder: an error");
    assert!(String::from_utf8_lossy(&no_answer.stderr).contains("no running daemon"));
    let ack = bin().args(["ack", "--state"]).arg(&state).output().expect("ack");
    assert_eq!(String::from_utf8_lossy(&ack.stdout).trim(), "nothing latched");

    for f in files_in(&t.path().join("ph/series-000/dicom")).iter().take(24) {
        std::fs::copy(f, drop.join(f.file_name().expect("name"))).expect("copy");
    }
    got.clear();
    read_until(&mut master, &mut got, "STATE=ANALYSING\r\n", Duration::from_secs(180), &log);
    read_until(&mut master, &mut got, "STATE=ALERT\r\n", Duration::from_secs(180), &log);
    read_until(&mut master, &mut got, "LIGHT=RED\r\n", Duration::from_secs(10), &log);
    let shown = String::from_utf8_lossy(&got).to_string();
    let uid = shown.split("SERIES=").nth(1).and_then(|r| r.split("\r\n").next()).expect("SERIES line").to_string();
    assert!(uid.len() > 10, "{shown}");
    assert!(shown.contains(&format!("ALERT={uid}\r\n")), "the alerted series' UID is shown: {shown}");

    let ack = bin().args(["ack", "--state"]).arg(&state).output().expect("ack");
    assert!(ack.status.success(), "{}", String::from_utf8_lossy(&ack.stderr));
    let answer = String::from_utf8_lossy(&ack.stdout).to_string();
    assert_eq!(answer.trim(), format!("cleared {uid}; none waiting"));
    got.clear();
    read_until(&mut master, &mut got, "ALERT=-\r\n", Duration::from_secs(10), &log);
    read_until(&mut master, &mut got, "LIGHT=GREEN\r\n", Duration::from_secs(10), &log);

    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    got.clear();
    read_until(&mut master, &mut got, "FAULT=pe-sentinel stopped\r\n", Duration::from_secs(60), &log);
    let status = child.wait().expect("wait");
    assert!(status.success(), "{}", std::fs::read_to_string(&log).unwrap_or_default());
    assert!(!state.join("display.sock").exists(), "the socket is removed at stop");
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(log.contains("acknowledged (pe-sentinel ack)"), "{log}");
}

/// Issue 6 on the display: with a budget no slice can keep (1 ms), the display end shows SLOW
/// with an amber light once more than 5% of the recent slices missed, while slices keep coming.
#[test]
fn an_impossible_budget_shows_slow_on_the_display() {
    let t = tempfile::tempdir().expect("tempdir");
    let drop = t.path().join("drop");
    let (mut master, _slave, link) = pty_display(t.path());
    let cfg = tiny_profile(t.path(), "slow", &link, "[budget]\nbudget_ms = 1\n");
    let st = bin()
        .args(["phantom", "--series", "1", "--slices", "10", "--seed", "4", "--pe-fraction", "0", "--format", "png"])
        .arg("--out")
        .arg(t.path().join("ph"))
        .output()
        .expect("phantom");
    assert!(st.status.success());
    std::fs::create_dir_all(drop.join("s1")).expect("mkdir");
    let log = t.path().join("daemon.log");
    let mut child = spawn_daemon(&cfg, &log);
    let mut got = Vec::new();
    read_until(&mut master, &mut got, "STATE=READY\r\n", Duration::from_secs(120), &log);
    for f in files_in(&t.path().join("ph/series-000/png")) {
        std::fs::copy(&f, drop.join("s1").join(f.file_name().expect("name"))).expect("copy");
    }
    got.clear();
    read_until(&mut master, &mut got, "STATE=SLOW\r\n", Duration::from_secs(120), &log);
    read_until(&mut master, &mut got, "LIGHT=AMBER\r\n", Duration::from_secs(10), &log);
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let status = child.wait().expect("wait");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "{text}");
    assert!(text.contains("SLOW: 6 of the last 100 slices missed the 1 ms budget"), "{text}");
}

/// Issue 8 on the display: a capture card that cannot be opened (here a recording that does not
/// exist) is a FAULT on the display, with the capture's reason, while the daemon keeps running.
#[test]
fn a_capture_fault_shows_on_the_display() {
    let t = tempfile::tempdir().expect("tempdir");
    let (mut master, _slave, link) = pty_display(t.path());
    let missing = t.path().join("no-such-recording.mjpeg");
    let capture = format!(
        "[capture]\ndevice = \"replay:{}\"\nviewport = {{ x = 0, y = 0, width = 512, height = 512 }}\n",
        missing.display()
    );
    let cfg = tiny_profile(t.path(), "capfault", &link, &capture);
    let log = t.path().join("daemon.log");
    let mut child = spawn_daemon(&cfg, &log);
    let mut got = Vec::new();
    read_until(&mut master, &mut got, "STATE=FAULT\r\n", Duration::from_secs(120), &log);
    read_until(&mut master, &mut got, "FAULT=capture:", Duration::from_secs(10), &log);
    assert!(matches!(child.try_wait(), Ok(None)), "the daemon keeps running");
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let status = child.wait().expect("wait");
    assert!(status.success(), "{}", std::fs::read_to_string(&log).unwrap_or_default());
}
