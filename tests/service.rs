//! The systemd service protocol against the real binary: systemd is not PID 1 on the test machine,
//! so the test plays the service manager with its own `NOTIFY_SOCKET` datagram socket (as systemd
//! does) and checks READY=1 after the models are loaded, WATCHDOG=1 pings while idle and busy,
//! STATUS= with the last verdict, and STOPPING=1 on SIGTERM. See: issue 9, `sd_notify(3)`.

mod common;

use common::*;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// Datagrams received until `until` holds for one of them, or `limit` passes.
fn receive_until(sock: &UnixDatagram, got: &mut Vec<String>, limit: Duration, until: impl Fn(&str) -> bool) -> bool {
    let end = Instant::now() + limit;
    let mut buf = vec![0u8; 4096];
    while Instant::now() < end {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let hit = until(&msg);
                got.push(msg);
                if hit {
                    return true;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("notify socket: {e}"),
        }
    }
    false
}

#[test]
fn ready_after_warm_up_watchdog_pings_status_with_the_last_verdict_and_stopping_on_sigterm() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (drop, state) = (tmp.path().join("drop"), tmp.path().join("state"));
    std::fs::create_dir_all(&drop).expect("drop");
    let sock_path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let cfg = profile(tmp.path());
    // 400 ms watchdog: the daemon must ping at least every 200 ms.
    let sock_str = sock_path.to_string_lossy().into_owned();
    let mut d =
        Daemon::start_with_env(&cfg, &drop, &state, &[("NOTIFY_SOCKET", &sock_str), ("WATCHDOG_USEC", "400000")]);

    let mut got = Vec::new();
    let ready = receive_until(&sock, &mut got, Duration::from_secs(60), |m| m.lines().any(|l| l == "READY=1"));
    assert!(ready, "no READY=1 within 60 s; got {got:?}\n{}", d.log());
    // READY comes only once the models are loaded and warmed up, never before.
    assert!(d.log().contains("loaded and warmed up"), "READY=1 before warm-up:\n{}", d.log());
    assert!(!got.iter().any(|m| m.contains("WATCHDOG=1")), "WATCHDOG before READY: {got:?}");
    let ready_msg = got.last().cloned().unwrap_or_default();
    assert!(ready_msg.contains("STATUS=ready"), "{ready_msg}");

    // Idle: pings keep coming, at least one per 200 ms interval (allowing for scheduling noise).
    got.clear();
    let t = Instant::now();
    receive_until(&sock, &mut got, Duration::from_secs(2), |_| false);
    let pings = got.iter().filter(|m| m.lines().any(|l| l == "WATCHDOG=1")).count();
    assert!(pings >= 5, "only {pings} WATCHDOG=1 in {:?} with WATCHDOG_USEC=400000: {got:?}", t.elapsed());

    // A slice: its verdict shows up in STATUS=.
    drop_file(&drop, "slice-7.png", &png_bytes(7));
    got.clear();
    let status = receive_until(&sock, &mut got, Duration::from_secs(30), |m| m.contains("STATUS=last: slice-7.png"));
    assert!(status, "no STATUS with the last verdict; got {got:?}\n{}", d.log());
    let line = got.iter().rev().flat_map(|m| m.lines()).find(|l| l.starts_with("STATUS=last:")).unwrap_or_default();
    assert!(line.contains("suspicious") && line.contains("P ") && line.contains("1 slice(s)"), "{line}");

    // SIGTERM: STOPPING=1, then a clean exit.
    let pid = d.pid().to_string();
    let _ = std::process::Command::new("kill").args(["-TERM", &pid]).status();
    got.clear();
    let stopping = receive_until(&sock, &mut got, Duration::from_secs(30), |m| m.lines().any(|l| l == "STOPPING=1"));
    assert!(stopping, "no STOPPING=1 after SIGTERM; got {got:?}\n{}", d.log());
    let st = d.child.wait().expect("wait");
    assert!(st.success(), "exit {st:?}");
}

#[test]
fn without_notify_socket_the_daemon_runs_as_before_and_says_nothing_about_systemd() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (drop, state) = (tmp.path().join("drop"), tmp.path().join("state"));
    std::fs::create_dir_all(&drop).expect("drop");
    let cfg = profile(tmp.path());
    // WATCHDOG_USEC alone (no socket) must not enable anything.
    let mut d = Daemon::start_with_env(&cfg, &drop, &state, &[("WATCHDOG_USEC", "400000")]);
    drop_file(&drop, "a.png", &png_bytes(1));
    wait_for(&mut d, Duration::from_secs(60), "the slice in the journal", |_| {
        try_count(&state, "SELECT COUNT(*) FROM slices") == Some(1)
    });
    let log = d.log();
    assert!(!log.contains("watchdog") && !log.contains("NOTIFY_SOCKET"), "{log}");
    assert!(d.terminate().success());
}
