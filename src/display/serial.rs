//! The display's writer thread: owns the serial port. Takes the newest status from the mailbox,
//! renders the screen, writes only the lines that changed (at most one redraw per `refresh_ms`),
//! sends a heartbeat every `heartbeat_ms`, reads `ACK` lines from the display side, and clears
//! timed-out alerts. When the port disappears (USB unplugged, pty closed) it logs once, retries
//! opening it by path with a growing pause (100 ms doubling to 2 s, for as long as the daemon
//! runs), and redraws everything when it is back. A display that stops reading only makes this
//! thread's writes time out; the daemon's side never waits. Touches the configured port only.

use super::protocol::Protocol;
use super::screen::{fault_text, AlertView, Screen, Status};
use super::{cleared_by, DisplayConfig, Shared};
use crate::display::alert::{Alert, Cleared};
use serialport::{SerialPort, TTYPort};
use std::io::{Read, Write};

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one write may wait for a display that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_millis(200);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How often the port is polled for `ACK` input while nothing else happens.
const INPUT_POLL: Duration = Duration::from_millis(50);
/// An input line longer than this is not `ACK`: dropped up to its end.
const MAX_INPUT_LINE: usize = 32;

pub(crate) struct Writer {
    port_path: PathBuf,
    baud: u32,
    protocol: Box<dyn Protocol>,
    refresh: Duration,
    heartbeat: Duration,
    shared: Arc<Shared>,
}

/// The port and what the display is known to show.
struct Link {
    port: TTYPort,
    /// `None`: the display's content is unknown; redraw everything.
    shown: Option<Screen>,
    input: heapless::Vec<u8, MAX_INPUT_LINE>,
    overlong: bool,
    stalled: bool,
}

enum WriteOutcome {
    Ok,
    /// The display is not reading; the port stays open.
    Stalled,
    Lost(std::io::Error),
}

impl Writer {
    pub(crate) fn new(cfg: &DisplayConfig, shared: Arc<Shared>) -> Self {
        Self {
            port_path: cfg.port.clone(),
            baud: cfg.baud,
            protocol: cfg.encoder(),
            refresh: Duration::from_millis(cfg.refresh_ms),
            heartbeat: Duration::from_millis(cfg.heartbeat_ms),
            shared,
        }
    }

    fn open(&self) -> Result<TTYPort, serialport::Error> {
        let path = self.port_path.to_string_lossy();
        serialport::new(path, self.baud).timeout(WRITE_TIMEOUT).open_native()
    }

    pub(crate) fn run(self) {
        let mut link: Option<Link> = None;
        let mut status = Status::default();
        let mut alert: Option<Alert> = None;
        let mut waiting = 0u32;
        let mut out: Vec<u8> = Vec::with_capacity(1024);
        let mut backoff = BACKOFF_FIRST;
        let mut next_open = Instant::now();
        let mut lost_logged = false;
        let mut last_draw: Option<Instant> = None;
        let mut next_beat = Instant::now();
        let mut tick = true;
        let mut dirty = true;
        loop {
            let now = Instant::now();
            let mut wake_at = next_beat.min(now + INPUT_POLL);
            if dirty {
                wake_at = wake_at.min(last_draw.map_or(now, |t| t + self.refresh));
            }
            if link.is_none() {
                wake_at = next_open;
            }
            let stopping = {
                let mut g = self.shared.lock();
                if g.mailbox.is_none() && !g.alert_changed && !self.shared.stop.load(Ordering::SeqCst) {
                    let wait = wake_at.saturating_duration_since(now);
                    g = self.shared.wake.wait_timeout(g, wait).map(|(g, _)| g).unwrap_or_else(|p| p.into_inner().0);
                }
                if let Some(s) = g.mailbox.take() {
                    status.clone_from(&s);
                    dirty = true;
                }
                let now_ms = self.shared.now_ms();
                if let Cleared::Alert { alert: a, by, next } = g.alert.tick(now_ms) {
                    log::info!(
                        "ALERT series {} {}{}",
                        a.series,
                        cleared_by(by),
                        next.map(|n| format!("; next queued alert: series {n}")).unwrap_or_default()
                    );
                    g.alert_changed = true;
                }
                if g.alert_changed {
                    g.alert_changed = false;
                    alert = g.alert.latched().cloned();
                    waiting = g.alert.waiting();
                    dirty = true;
                }
                self.shared.stop.load(Ordering::SeqCst)
            };
            if stopping {
                // The last screen says nobody is watching any more; best effort, one attempt.
                // A fault that stopped the daemon stays on screen; otherwise say it stopped.
                if status.fault.is_none() {
                    status.fault = Some(fault_text("pe-sentinel stopped"));
                }
                if let Some(l) = link.as_mut() {
                    let screen =
                        Screen::render(self.protocol.layout(), &status, AlertView { latched: alert.as_ref(), waiting });
                    out.clear();
                    self.encode(&mut l.shown, &screen, &mut out);
                    let _ = write_all(&mut l.port, &out);
                }
                return;
            }
            let now = Instant::now();
            if link.is_none() && now >= next_open {
                match self.open() {
                    Ok(port) => {
                        let mut g = self.shared.lock();
                        g.stats.connects += 1;
                        let n = g.stats.connects;
                        drop(g);
                        if n == 1 {
                            log::info!("display: {} open", self.port_path.display());
                        } else {
                            log::info!("display: {} is back; redrawing everything", self.port_path.display());
                        }
                        link = Some(Link {
                            port,
                            shown: None,
                            input: heapless::Vec::new(),
                            overlong: false,
                            stalled: false,
                        });
                        backoff = BACKOFF_FIRST;
                        lost_logged = false;
                        dirty = true;
                        next_beat = now;
                    }
                    Err(e) => {
                        if !lost_logged {
                            log::warn!(
                                "display: cannot open {}: {e}; the analysis goes on, retrying every {} s at most",
                                self.port_path.display(),
                                BACKOFF_MAX.as_secs()
                            );
                            lost_logged = true;
                        }
                        next_open = now + backoff;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                }
            }
            let Some(l) = link.as_mut() else { continue };
            if let Err(e) = self.read_input(l) {
                link = self.lose(e, &mut lost_logged, &mut next_open);
                continue;
            }
            out.clear();
            let mut redrew = false;
            let full = l.shown.is_none();
            if dirty && (full || last_draw.is_none_or(|t| now >= t + self.refresh)) {
                let screen =
                    Screen::render(self.protocol.layout(), &status, AlertView { latched: alert.as_ref(), waiting });
                redrew = self.encode(&mut l.shown, &screen, &mut out);
                dirty = false;
                last_draw = Some(now);
            }
            // After a full redraw at once: a clear wiped the LCD's mark.
            if now >= next_beat || redrew && full {
                self.protocol.heartbeat(tick, &mut out);
                tick = !tick;
                next_beat = now + self.heartbeat;
            }
            if out.is_empty() {
                continue;
            }
            match write_all(&mut l.port, &out) {
                WriteOutcome::Ok => {
                    if redrew {
                        self.shared.lock().stats.redraws += 1;
                    }
                    if l.stalled {
                        log::info!("display: {} reads again", self.port_path.display());
                        l.stalled = false;
                    }
                }
                WriteOutcome::Stalled => {
                    self.shared.lock().stats.stalls += 1;
                    if !l.stalled {
                        log::warn!(
                            "display: {} does not take data (write timed out); the analysis goes on, the screen is redrawn when it reads again",
                            self.port_path.display()
                        );
                        l.stalled = true;
                    }
                    // Part of a command may have gone out: start over from a reset.
                    l.shown = None;
                    dirty = true;
                }
                WriteOutcome::Lost(e) => link = self.lose(e, &mut lost_logged, &mut next_open),
            }
        }
    }

    fn lose(&self, e: std::io::Error, lost_logged: &mut bool, next_open: &mut Instant) -> Option<Link> {
        self.shared.lock().stats.losses += 1;
        if !*lost_logged {
            log::warn!(
                "display: lost {} ({e}); the analysis goes on, reconnecting with back-off",
                self.port_path.display()
            );
            *lost_logged = true;
        }
        *next_open = Instant::now() + BACKOFF_FIRST;
        None
    }

    /// Appends the bytes that bring the display from `shown` to `screen`; true if any.
    fn encode(&self, shown: &mut Option<Screen>, screen: &Screen, out: &mut Vec<u8>) -> bool {
        let start = out.len();
        match shown {
            None => {
                self.protocol.reset(out);
                for (row, line) in screen.lines.iter().enumerate() {
                    self.protocol.line(row, line, out);
                }
                self.protocol.backlight(screen.light, out);
            }
            Some(old) => {
                for (row, line) in screen.lines.iter().enumerate() {
                    if old.lines.get(row) != Some(line) {
                        self.protocol.line(row, line, out);
                    }
                }
                if old.light != screen.light {
                    self.protocol.backlight(screen.light, out);
                }
            }
        }
        let full = shown.is_none();
        match shown {
            Some(s) => s.clone_from(screen),
            None => *shown = Some(screen.clone()),
        }
        full || out.len() > start
    }

    /// Reads what the display sent; an `ACK` line clears the latched alert.
    fn read_input(&self, l: &mut Link) -> std::io::Result<()> {
        let n = l.port.bytes_to_read().map_err(std::io::Error::from)?;
        if n == 0 {
            return Ok(());
        }
        let mut buf = [0u8; 64];
        let got = match l.port.read(&mut buf) {
            Ok(0) => return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "end of input")),
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Ok(()),
            Err(e) => return Err(e),
        };
        for &b in &buf[..got] {
            if b == b'\r' || b == b'\n' {
                if !l.overlong && l.input.trim_ascii().eq_ignore_ascii_case(b"ACK") {
                    self.shared.ack("display button");
                }
                l.input.clear();
                l.overlong = false;
            } else if l.input.push(b).is_err() {
                l.overlong = true;
            }
        }
        Ok(())
    }
}

/// Writes everything, telling a display that does not read from one that is gone.
fn write_all(port: &mut TTYPort, mut bytes: &[u8]) -> WriteOutcome {
    while !bytes.is_empty() {
        match port.write(bytes) {
            Ok(0) => return WriteOutcome::Lost(std::io::Error::new(std::io::ErrorKind::WriteZero, "wrote nothing")),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut || e.kind() == std::io::ErrorKind::WouldBlock => {
                return WriteOutcome::Stalled
            }
            Err(e) => return WriteOutcome::Lost(e),
        }
    }
    // No flush: on a TTY it is tcdrain, which waits for as long as the display does not read.
    WriteOutcome::Ok
}
