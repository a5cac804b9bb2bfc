//! The display writer on real pseudo-terminals: the serialport crate opens the pty slave by path
//! (a symlink standing for /dev/ttyACM0), this test plays the display on the master side. Checks
//! the bytes of each protocol for a scripted sequence, unplug and re-plug, a display that never
//! reads, and `ACK` from the display side.

use pe_sentinel::display::screen::Geometry;
use pe_sentinel::display::{DisplayConfig, DisplayHandle, ProtocolKind, SliceUpdate};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A pty pair; the slave is reachable at `link`, like a device node.
struct Pty {
    master: File,
    slave: File,
    link: PathBuf,
}

impl Pty {
    fn plug(link: &Path) -> Pty {
        let r = nix::pty::openpty(None, None).expect("openpty");
        // SAFETY: openpty just returned these two descriptors and nothing else owns them.
        let (master, slave) = unsafe { (File::from_raw_fd(r.master), File::from_raw_fd(r.slave as RawFd)) };
        let name = std::fs::read_link(format!("/proc/self/fd/{}", r.slave)).expect("pty name");
        let _ = std::fs::remove_file(link);
        std::os::unix::fs::symlink(&name, link).expect("symlink");
        Pty { master, slave, link: link.to_path_buf() }
    }

    /// Closes both ends and removes the device path: a USB unplug.
    fn unplug(self) {
        let _ = std::fs::remove_file(&self.link);
        drop(self.master);
        drop(self.slave);
    }

    /// Reads what arrives until `want` bytes have come, or `limit` passes.
    fn read_n(&mut self, want: usize, limit: Duration) -> Vec<u8> {
        let mut got = Vec::new();
        let end = Instant::now() + limit;
        while got.len() < want && Instant::now() < end {
            got.extend(self.read_for(Duration::from_millis(50)));
        }
        got
    }

    /// Everything that arrives within `d`.
    fn read_for(&mut self, d: Duration) -> Vec<u8> {
        use std::os::fd::AsRawFd;
        let mut got = Vec::new();
        let end = Instant::now() + d;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let mut fds = [nix::poll::PollFd::new(self.master.as_raw_fd(), nix::poll::PollFlags::POLLIN)];
            let n = nix::poll::poll(&mut fds, left.as_millis() as i32).unwrap_or(0);
            if n <= 0 {
                return got;
            }
            let mut buf = [0u8; 4096];
            match self.master.read(&mut buf) {
                Ok(0) | Err(_) => return got,
                Ok(k) => got.extend_from_slice(&buf[..k]),
            }
        }
    }

    /// Reads until `needle` has arrived; returns all read.
    fn read_until(&mut self, needle: &[u8], limit: Duration) -> Vec<u8> {
        let mut got = Vec::new();
        let end = Instant::now() + limit;
        while Instant::now() < end {
            got.extend(self.read_for(Duration::from_millis(50)));
            if got.windows(needle.len()).any(|w| w == needle) {
                return got;
            }
        }
        panic!("timed out waiting for {:?}; got {:?}", String::from_utf8_lossy(needle), String::from_utf8_lossy(&got));
    }
}

fn config(link: &Path, protocol: ProtocolKind, geometry: Geometry) -> DisplayConfig {
    let mut c = DisplayConfig::new(link, protocol);
    c.geometry = geometry;
    c.fields = (0..geometry.rows()).map(|i| format!("t{i}")).collect();
    c.refresh_ms = 20;
    // No heartbeat inside a scripted step: the bytes stay exact. Heartbeats get their own test.
    c.heartbeat_ms = 600_000;
    c
}

fn wait(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

const S1: &str = "1.2.826.0.1.3680043.8.498.1001";
const S2: &str = "1.2.826.0.1.3680043.8.498.2002";

fn update(series: &str, slice: u32, p: f32, boxes: u32) -> SliceUpdate<'_> {
    SliceUpdate { series, slice, slices: slice, max_p: p, boxes, latency_ms: 840, budget_ms: None, slow: false }
}

/// The scripted steps; each returns after its bytes were read, so the writer cannot coalesce.
/// Returns what the display end received at each step.
fn script(pty: &mut Pty, d: &mut DisplayHandle, lens: &[usize]) -> Vec<Vec<u8>> {
    let mut steps = Vec::new();
    // 0: connect: reset, full screen (READY), backlight, heartbeat.
    steps.push(pty.read_n(lens[0], Duration::from_secs(20)));
    d.slice(update(S1, 1, 0.12, 0));
    steps.push(pty.read_n(lens[1], Duration::from_secs(20)));
    d.positive(S1, 24, 0.97, 3);
    steps.push(pty.read_n(lens[2], Duration::from_secs(20)));
    d.ack("test");
    steps.push(pty.read_n(lens[3], Duration::from_secs(20)));
    d.fault("engine: out of memory");
    steps.push(pty.read_n(lens[4], Duration::from_secs(20)));
    // Nothing more may come: only changed lines are written.
    steps.push(pty.read_for(Duration::from_millis(300)));
    steps
}

fn run_script(protocol: ProtocolKind, geometry: Geometry, expected: &[Vec<u8>]) {
    let t = tempfile::tempdir().expect("tempdir");
    let link = t.path().join("ttyDISPLAY");
    let mut pty = Pty::plug(&link);
    let mut d = DisplayHandle::start(&config(&link, protocol, geometry), None).expect("start");
    let lens: Vec<usize> = expected.iter().map(Vec::len).collect();
    let got = script(&mut pty, &mut d, &lens);
    for (i, (g, e)) in got.iter().zip(expected.iter()).enumerate() {
        assert_eq!(
            String::from_utf8_lossy(g),
            String::from_utf8_lossy(e),
            "{protocol:?} step {i}: bytes {g:?} expected {e:?}"
        );
        assert_eq!(g, e, "{protocol:?} step {i}");
    }
    assert!(got[5].is_empty(), "nothing rewritten without a change: {:?}", String::from_utf8_lossy(&got[5]));
}

fn lines(ls: &[&str]) -> Vec<u8> {
    ls.iter().flat_map(|l| format!("{l}\r\n").into_bytes()).collect()
}

#[test]
fn line_protocol_bytes_for_a_scripted_sequence() {
    run_script(
        ProtocolKind::Line,
        Geometry::Cols20Rows4,
        &[
            lines(&[
                "RESET",
                "STATE=READY",
                "SERIES=-",
                "SLICE=0/0",
                "PMAX=0.00",
                "BOXES=0",
                "LATENCY_MS=0",
                "BUDGET_MS=-",
                "ALERT=-",
                "QUEUED=0",
                "FAULT=-",
                "NOTE=-",
                "LIGHT=GREEN",
                "HB",
            ]),
            lines(&["STATE=ANALYSING", &format!("SERIES={S1}"), "SLICE=1/1", "PMAX=0.12", "LATENCY_MS=840"]),
            lines(&["STATE=ALERT", &format!("ALERT={S1}"), "LIGHT=RED"]),
            lines(&["STATE=ANALYSING", "ALERT=-", "LIGHT=GREEN"]),
            lines(&["STATE=FAULT", "FAULT=engine: out of memory", "LIGHT=AMBER"]),
        ],
    );
}

fn mo_line(row: u8, text: &str) -> Vec<u8> {
    [&[0xFE, 0x47, 1, row][..], text.as_bytes()].concat()
}

#[test]
fn lcd_protocol_bytes_for_a_scripted_sequence() {
    let reset = vec![0xFE, 0x52, 0xFE, 0x4B, 0xFE, 0x54, 0xFE, 0x42, 0, 0xFE, 0x58];
    let green = vec![0xFE, 0xD0, 0, 255, 0];
    run_script(
        ProtocolKind::Lcd,
        Geometry::Cols20Rows4,
        &[
            [
                reset,
                mo_line(1, "READY              "),
                mo_line(2, "no series yet       "),
                mo_line(3, "                    "),
                mo_line(4, "                    "),
                green.clone(),
                vec![0xFE, 0x47, 20, 1, b'*'],
            ]
            .concat(),
            [
                mo_line(1, "ANALYSING          "),
                mo_line(2, "S ~680043.8.498.1001"),
                mo_line(3, "1/1 P0.12 B0        "),
                mo_line(4, "840ms               "),
            ]
            .concat(),
            [
                mo_line(1, "ALERT              "),
                mo_line(3, "24 sl P0.97 B3      "),
                mo_line(4, "ACK to clear        "),
                vec![0xFE, 0xD0, 255, 0, 0],
            ]
            .concat(),
            [
                mo_line(1, "ANALYSING          "),
                mo_line(3, "1/1 P0.12 B0        "),
                mo_line(4, "840ms               "),
                green,
            ]
            .concat(),
            [mo_line(1, "FAULT              "), mo_line(4, "engine: out of memor"), vec![0xFE, 0xD0, 255, 128, 0]]
                .concat(),
        ],
    );
}

fn nx(cmd: &str) -> Vec<u8> {
    [cmd.as_bytes(), &[0xFF, 0xFF, 0xFF]].concat()
}

#[test]
fn nextion_protocol_bytes_for_a_scripted_sequence() {
    run_script(
        ProtocolKind::Nextion,
        Geometry::Cols16Rows2,
        &[
            [
                vec![0xFF, 0xFF, 0xFF],
                nx("dim=100"),
                nx("t0.txt=\"READY          \""),
                nx("t1.txt=\"no series yet   \""),
                nx("t0.bco=2016"),
                nx("hb.txt=\"*\""),
            ]
            .concat(),
            [nx("t0.txt=\"ANALYSING 1/1  \""), nx("t1.txt=\"P0.12 B0 840ms  \"")].concat(),
            [nx("t0.txt=\"ALERT     1/1  \""), nx("t1.txt=\"~.8.498.1001 ACK\""), nx("t0.bco=63488")].concat(),
            [nx("t0.txt=\"ANALYSING 1/1  \""), nx("t1.txt=\"P0.12 B0 840ms  \""), nx("t0.bco=2016")].concat(),
            [nx("t0.txt=\"FAULT     1/1  \""), nx("t1.txt=\"engine: out of m\""), nx("t0.bco=64512")].concat(),
        ],
    );
}

#[test]
fn unplugged_and_plugged_back_the_display_is_redrawn_whole() {
    let t = tempfile::tempdir().expect("tempdir");
    let link = t.path().join("ttyACM0");
    let mut pty = Pty::plug(&link);
    let mut d = DisplayHandle::start(&config(&link, ProtocolKind::Line, Geometry::Cols20Rows4), None).expect("start");
    pty.read_until(b"HB\r\n", Duration::from_secs(20));
    d.slice(update(S1, 7, 0.5, 1));
    pty.read_until(b"SLICE=7/7\r\n", Duration::from_secs(20));
    pty.unplug();
    // Updates while unplugged: the daemon's calls return, the newest one waits in the mailbox.
    d.slice(update(S2, 3, 0.25, 0));
    d.positive(S2, 3, 0.25, 0);
    wait("the loss to be noticed", || d.stats().losses >= 1);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(d.stats().connects, 1, "the path is gone: no reconnect yet");
    let mut pty = Pty::plug(&link);
    let got = pty.read_until(b"HB\r\n", Duration::from_secs(20));
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("RESET\r\nSTATE=ALERT\r\n"), "full redraw after re-plug: {text}");
    for l in [&format!("SERIES={S2}"), "SLICE=3/3", &format!("ALERT={S2}"), "LIGHT=RED"] {
        assert!(text.contains(&format!("{l}\r\n")), "{l} in the redraw: {text}");
    }
    let s = d.stats();
    assert_eq!((s.connects, s.losses), (2, 1), "{s:?}");
    drop(d);
    pty.unplug();
}

#[test]
fn a_display_that_never_reads_does_not_hold_up_the_sender() {
    let t = tempfile::tempdir().expect("tempdir");
    let link = t.path().join("ttyUSB0");
    let mut pty = Pty::plug(&link);
    let mut c = config(&link, ProtocolKind::Line, Geometry::Cols20Rows4);
    c.refresh_ms = 0;
    let mut d = DisplayHandle::start(&c, None).expect("start");
    // The display end reads nothing: the pty fills, the writer's writes time out.
    let mut sent = 0u64;
    let mut i = 0u32;
    while d.stats().stalls == 0 {
        for _ in 0..1000 {
            i = i.wrapping_add(1);
            d.slice(update(S1, i, (i % 100) as f32 / 100.0, i % 7));
            sent += 1;
        }
        assert!(sent < 50_000_000, "the writer never stalled: {:?}", d.stats());
    }
    // While it is stalled, every call still returns and the queue stays at one entry.
    for _ in 0..100_000 {
        i = i.wrapping_add(1);
        d.slice(update(S1, i, 0.5, 1));
        sent += 1;
        assert!(d.stats().pending <= 1);
    }
    let s = d.stats();
    eprintln!("never-reading display: {sent} updates handed in, {s:?}");
    assert_eq!(s.posted, sent, "every update was handed in: {s:?}");
    assert!(s.overwritten > 0 && s.overwritten < s.posted, "latest wins: {s:?}");
    // Reading again: the display catches up with a full redraw showing the newest slice.
    let want = format!("SLICE={i}/{i}\r\n");
    let got = pty.read_until(want.as_bytes(), Duration::from_secs(30));
    assert!(String::from_utf8_lossy(&got).contains("RESET\r\n"), "redrawn from a reset after the stall");
    drop(d);
    pty.unplug();
}

#[test]
fn ack_from_the_display_end_clears_the_latch_and_the_queued_alert_follows() {
    let t = tempfile::tempdir().expect("tempdir");
    let link = t.path().join("ttyACM1");
    let mut pty = Pty::plug(&link);
    let mut d = DisplayHandle::start(&config(&link, ProtocolKind::Line, Geometry::Cols20Rows4), None).expect("start");
    pty.read_until(b"HB\r\n", Duration::from_secs(20));
    d.positive(S1, 10, 0.9, 2);
    d.positive(S2, 12, 0.8, 1);
    pty.read_until(b"QUEUED=1\r\n", Duration::from_secs(20));
    assert_eq!(d.latched().map(|a| a.series.to_string()).as_deref(), Some(S1));
    // Noise and a too-long line are ignored; a lower-case ack with CR LF counts.
    pty.master.write_all(b"HELLO\r\nACKACKACKACKACKACKACKACKACKACKACKACKACK\r\nack\r\n").expect("write");
    let got = pty.read_until(format!("ALERT={S2}\r\n").as_bytes(), Duration::from_secs(20));
    assert!(String::from_utf8_lossy(&got).contains("QUEUED=0\r\n"));
    assert_eq!(d.stats().acks, 1);
    pty.master.write_all(b"ACK\n").expect("write");
    pty.read_until(b"STATE=READY\r\n", Duration::from_secs(20));
    assert!(d.latched().is_none());
    assert_eq!(d.stats().acks, 2);
    drop(d);
    pty.unplug();
}

#[test]
fn the_heartbeat_ticks_on_the_lcd_while_nothing_changes() {
    let t = tempfile::tempdir().expect("tempdir");
    let link = t.path().join("ttyACM2");
    let mut pty = Pty::plug(&link);
    let mut c = config(&link, ProtocolKind::Lcd, Geometry::Cols16Rows2);
    c.heartbeat_ms = 200;
    let d = DisplayHandle::start(&c, None).expect("start");
    let on = [0xFE, 0x47, 16, 1, b'*'];
    let off = [0xFE, 0x47, 16, 1, b' '];
    let mut got = Vec::new();
    for _ in 0..2 {
        got.extend(pty.read_until(&off, Duration::from_secs(20)));
        got.extend(pty.read_until(&on, Duration::from_secs(20)));
    }
    let beats: Vec<usize> = (0..got.len().saturating_sub(4)).filter(|&i| got[i..i + 4] == on[..4]).collect();
    assert!(beats.len() >= 3, "at least three heartbeats: {got:?}");
    // Alternating marks.
    let marks: Vec<u8> = beats.iter().map(|&i| got[i + 4]).collect();
    assert!(marks.windows(2).all(|w| w[0] != w[1]), "{marks:?}");
    drop(d);
    pty.unplug();
}
