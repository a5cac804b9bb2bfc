//! The scanner-room status display: a character LCD, a Nextion panel or a microcontroller on a
//! serial port, showing READY / ANALYSING / ALERT / FAULT / SLOW, the series, its highest P and
//! boxes, and the latency; and the bedside alert latch that an `ACK` clears.
//!
//! The daemon holds a [`DisplayHandle`] and tells it what it knows (a slice analysed, a series
//! positive or closed, a failure). The handle never waits on the port: it puts the newest
//! [`Status`] into a one-slot mailbox (latest wins) and wakes the writer thread
//! ([`serial`]), which renders the [`screen`], rewrites only changed lines through the configured
//! [`protocol`], sends a heartbeat, reads `ACK` lines and reconnects when the port disappears.
//! The alert latch ([`alert`]) sits beside the mailbox under the same short lock, so positive
//! series are never overwritten by later status. `pe-sentinel ack` reaches the latch through a
//! Unix socket in the state folder ([`control`]).
//!
//! Touches: the serial port named in `[display]`, and `<state>/display.sock`. See docs/display.md.

pub mod alert;
pub mod control;
pub mod protocol;
pub mod screen;
pub mod serial;

use alert::{label, Alert, AlertMachine, Cleared, ClearedBy};
use screen::{fault_text, Geometry, Status};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

/// Which command set the display speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolKind {
    Line,
    Lcd,
    Nextion,
}

/// The `[display]` table, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct DisplayConfig {
    pub port: PathBuf,
    pub baud: u32,
    pub protocol: ProtocolKind,
    pub geometry: Geometry,
    /// Nextion text components, one per row.
    pub fields: Vec<String>,
    /// Nextion text component for the heartbeat mark.
    pub heartbeat_field: String,
    /// Least time between two redraws (a heartbeat is not a redraw).
    pub refresh_ms: u64,
    pub heartbeat_ms: u64,
    /// An ALERT clears itself after this long; `None`: only an acknowledgement clears it.
    pub alert_timeout_ms: Option<u64>,
}

impl DisplayConfig {
    /// A configuration with the defaults of the `[display]` table.
    pub fn new(port: impl Into<PathBuf>, protocol: ProtocolKind) -> Self {
        Self {
            port: port.into(),
            baud: 9600,
            protocol,
            geometry: Geometry::Cols20Rows4,
            fields: vec!["t0".into(), "t1".into(), "t2".into(), "t3".into()],
            heartbeat_field: "hb".into(),
            refresh_ms: 250,
            heartbeat_ms: 1000,
            alert_timeout_ms: None,
        }
    }

    pub fn encoder(&self) -> Box<dyn protocol::Protocol> {
        match self.protocol {
            ProtocolKind::Line => Box::new(protocol::PlainLines),
            ProtocolKind::Lcd => Box::new(protocol::MatrixOrbital { geometry: self.geometry }),
            ProtocolKind::Nextion => Box::new(protocol::Nextion {
                geometry: self.geometry,
                fields: self.fields.clone(),
                heartbeat_field: self.heartbeat_field.clone(),
            }),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DisplayError {
    #[error("display: cannot start the {what} thread: {err}; the system is out of threads or memory")]
    Thread { what: &'static str, err: std::io::Error },
    #[error(transparent)]
    Control(#[from] control::ControlError),
}

/// Counters, for the log and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DisplayStats {
    /// Status updates handed in.
    pub posted: u64,
    /// Updates replaced in the mailbox before the writer took them (latest wins).
    pub overwritten: u64,
    /// Updates waiting in the mailbox now (0 or 1).
    pub pending: u32,
    /// Times the port was opened (the first time and each reconnect).
    pub connects: u64,
    /// Times the port was lost (unplugged, closed).
    pub losses: u64,
    /// Writes that timed out because the display end was not reading.
    pub stalls: u64,
    /// Redraws sent (full or partial).
    pub redraws: u64,
    /// Acknowledgements that cleared an alert (display button, `pe-sentinel ack`).
    pub acks: u64,
}

/// State shared by the daemon's handle, the writer thread and the control socket.
pub(crate) struct Shared {
    pub(crate) inner: Mutex<Inner>,
    pub(crate) wake: Condvar,
    origin: Instant,
    pub(crate) stop: AtomicBool,
}

pub(crate) struct Inner {
    /// The one-slot queue from the daemon to the writer.
    pub(crate) mailbox: Option<Status>,
    pub(crate) alert: AlertMachine,
    /// The latch changed since the writer last looked.
    pub(crate) alert_changed: bool,
    pub(crate) stats: DisplayStats,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic in another holder leaves plain data behind; the display keeps going with it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// An acknowledgement from the display or from `pe-sentinel ack`.
    pub(crate) fn ack(&self, from: &str) -> Cleared {
        let now = self.now_ms();
        let mut g = self.lock();
        let r = g.alert.ack(now);
        if let Cleared::Alert { alert, next, .. } = &r {
            g.stats.acks += 1;
            g.alert_changed = true;
            log::info!(
                "ALERT series {} acknowledged ({from}){}",
                alert.series,
                next.as_ref().map(|n| format!("; next queued alert: series {n}")).unwrap_or_default()
            );
        }
        drop(g);
        self.wake.notify_all();
        r
    }
}

/// A slice analysed, as the display shows it.
#[derive(Debug, Clone, Copy)]
pub struct SliceUpdate<'a> {
    pub series: &'a str,
    pub slice: u32,
    pub slices: u32,
    pub max_p: f32,
    pub boxes: u32,
    pub latency_ms: u32,
    /// The per-slice budget (`[budget] budget_ms`).
    pub budget_ms: Option<u32>,
    /// Sustained budget misses (the SLOW state of `crate::budget`).
    pub slow: bool,
}

/// The daemon's side of the display. Every method returns at once: it never waits on the port.
pub struct DisplayHandle {
    shared: Arc<Shared>,
    status: Status,
    writer: Option<JoinHandle<()>>,
    control: Option<control::Listener>,
}

impl DisplayHandle {
    /// Starts the writer thread, and the `pe-sentinel ack` socket in `state_dir` when given.
    pub fn start(cfg: &DisplayConfig, state_dir: Option<&Path>) -> Result<Self, DisplayError> {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                mailbox: Some(Status::default()),
                alert: AlertMachine::new(cfg.alert_timeout_ms),
                alert_changed: true,
                stats: DisplayStats::default(),
            }),
            wake: Condvar::new(),
            origin: Instant::now(),
            stop: AtomicBool::new(false),
        });
        let control = match state_dir {
            Some(dir) => Some(control::Listener::start(dir, Arc::clone(&shared))?),
            None => None,
        };
        let writer = serial::Writer::new(cfg, Arc::clone(&shared));
        let writer = std::thread::Builder::new()
            .name("display".into())
            .spawn(move || writer.run())
            .map_err(|err| DisplayError::Thread { what: "display writer", err })?;
        log::info!(
            "display: {:?} protocol on {} at {} baud{}",
            cfg.protocol,
            cfg.port.display(),
            cfg.baud,
            if control.is_some() { "; `pe-sentinel ack` accepted" } else { "" }
        );
        Ok(Self { shared, status: Status::default(), writer: Some(writer), control })
    }

    fn post(&mut self) {
        let mut g = self.shared.lock();
        g.stats.posted += 1;
        if g.mailbox.is_some() {
            g.stats.overwritten += 1;
        }
        // `clone_from` reuses the slot: heapless fields, no allocation.
        match &mut g.mailbox {
            Some(m) => m.clone_from(&self.status),
            slot @ None => *slot = Some(self.status.clone()),
        }
        drop(g);
        self.shared.wake.notify_all();
    }

    /// A slice was analysed: the series is open, any earlier failure is over.
    pub fn slice(&mut self, u: SliceUpdate<'_>) {
        let s = &mut self.status;
        if s.series.as_str() != u.series {
            s.series = label(u.series);
            s.note = None;
        }
        s.analysing = true;
        s.slice = u.slice;
        s.slices = u.slices;
        s.max_p = u.max_p;
        s.boxes = u.boxes;
        s.latency_ms = u.latency_ms;
        s.budget_ms = u.budget_ms;
        s.slow = u.slow;
        s.fault = None;
        self.post();
    }

    /// A series turned positive: ALERT, latched (or queued behind the latched one).
    pub fn positive(&mut self, series: &str, slices: u32, max_p: f32, boxes: u32) {
        let now = self.shared.now_ms();
        let mut g = self.shared.lock();
        if g.alert.positive(Alert { series: label(series), slices, max_p, boxes }, now) {
            g.alert_changed = true;
            if g.alert.latched().is_some_and(|a| a.series.as_str() != label(series).as_str()) {
                log::warn!("ALERT series {series} queued behind the latched alert ({} waiting)", g.alert.waiting());
            }
        }
        drop(g);
        self.shared.wake.notify_all();
    }

    /// A series was not analysed (intended use): SKIPPED with the reasons in a few words, until a
    /// slice of another series arrives. Never an alert.
    pub fn skipped(&mut self, series: &str, why: &str) {
        let s = &mut self.status;
        s.series = label(series);
        s.analysing = false;
        s.slice = 0;
        s.slices = 0;
        s.max_p = 0.0;
        s.boxes = 0;
        s.fault = None;
        s.note = Some(screen::Note::Skipped(screen::note_text(why)));
        self.post();
    }

    /// The series of the newest slice is a patient's analysed with demo models: DEMO MODEL, no alert.
    pub fn demo_model(&mut self) {
        if self.status.note != Some(screen::Note::DemoModel) {
            self.status.note = Some(screen::Note::DemoModel);
            self.post();
        }
    }

    /// The open series closed: READY (unless an alert or fault is showing).
    pub fn idle(&mut self) {
        self.status.analysing = false;
        self.post();
    }

    /// A source or the engine failed: FAULT until the next slice succeeds.
    pub fn fault(&mut self, what: &str) {
        self.status.fault = Some(fault_text(what));
        self.post();
    }

    /// Acknowledges the latched alert (as the display button does).
    pub fn ack(&self, from: &str) -> Cleared {
        self.shared.ack(from)
    }

    pub fn latched(&self) -> Option<Alert> {
        self.shared.lock().alert.latched().cloned()
    }

    pub fn stats(&self) -> DisplayStats {
        let g = self.shared.lock();
        DisplayStats { pending: u32::from(g.mailbox.is_some()), ..g.stats }
    }
}

impl Drop for DisplayHandle {
    /// Stops the threads; the writer shows "stopped" (FAULT) as its last screen if it can.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.notify_all();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        self.control.take();
    }
}

/// Why the latch cleared, as a word for the log.
pub fn cleared_by(by: ClearedBy) -> &'static str {
    match by {
        ClearedBy::Ack => "acknowledged",
        ClearedBy::Timeout => "timed out",
    }
}
