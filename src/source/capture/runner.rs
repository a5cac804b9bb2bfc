//! The capture thread: opens the frame source, turns frames into new slices ([`SliceMaker`]),
//! and hands the latest slice to the analyser through a one-slot mailbox — when the user
//! scrolls faster than the analysis budget allows, the newest slice wins and the replaced ones
//! are counted as skipped. Faults (device unplugged, stream stalled past its timeout, device
//! missing at start) put the runner into a FAULT state that the daemon and, later, the display
//! read; the source is closed and reopened with exponential backoff (bounded), and the runner
//! resumes by itself. Touches the frame source it is given, nothing else.

use super::convert::GrayConverter;
use super::detect::{DetectConfig, DetectStats, FrameKind, SeriesLabeler, SliceDetector};
use super::{CaptureError, Frame, FrameSource};
use crate::slice::{Pixels, SeriesId, Slice};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Frames to slices: gray conversion, viewport, change detection, series label. Used by the
/// runner thread, and directly by tests and tools that drive a source themselves.
pub struct SliceMaker {
    conv: GrayConverter,
    pub detector: SliceDetector,
    labeler: SeriesLabeler,
    start: Instant,
    pub decode_errors: u64,
}

impl SliceMaker {
    pub fn new(detect: DetectConfig, series_gap_ms: u64) -> Self {
        Self {
            conv: GrayConverter::new(0, 0),
            detector: SliceDetector::new(detect),
            labeler: SeriesLabeler::new(series_gap_ms),
            start: Instant::now(),
            decode_errors: 0,
        }
    }

    /// Checks that the viewport and masks fit the stream's frames.
    pub fn check_fits(&self, width: u32, height: u32, device: &str) -> Result<(), CaptureError> {
        let v = self.detector.config().viewport;
        if v.fits(width, height) {
            Ok(())
        } else {
            Err(CaptureError::FormatUnavailable {
                device: device.to_string(),
                wanted: format!("a frame containing the viewport {v}"),
                offered: format!("{width}x{height} frames; fix [capture] viewport or the resolution"),
            })
        }
    }

    /// One frame in; a new slice out when this frame is one. A corrupt frame is counted and
    /// returned as an error (the caller goes on with the next).
    pub fn push(&mut self, frame: &Frame<'_>, source: &str) -> Result<Option<Slice>, CaptureError> {
        let gray = match self.conv.convert(frame) {
            Ok(g) => g,
            Err(e) => {
                self.decode_errors += 1;
                return Err(e);
            }
        };
        if !self.detector.config().viewport.fits(gray.width, gray.height) {
            return Err(CaptureError::Decode {
                sequence: frame.sequence,
                reason: format!(
                    "frame {}x{} does not contain the viewport {}",
                    gray.width,
                    gray.height,
                    self.detector.config().viewport
                ),
            });
        }
        if self.detector.push(gray) != FrameKind::NewSlice {
            return Ok(None);
        }
        let (label, instance) = self.labeler.next(unix_ms(), self.start.elapsed().as_millis() as u64);
        let v = self.detector.config().viewport;
        Ok(Some(Slice {
            source: PathBuf::from(source),
            frame: 0,
            width: v.width,
            height: v.height,
            pixels: Pixels::Gray8(self.detector.pixels().to_vec()),
            series: SeriesId(label),
            instance: Some(instance),
            order: instance,
            position_z: None,
        }))
    }
}

/// What the capture side is doing (for the log, `history`, and the status display).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureState {
    Starting,
    Running,
    /// Not capturing; retrying. `reason` is the error message.
    Fault {
        reason: String,
        since_unix_ms: i64,
        retries: u32,
    },
    /// A replay reached its end.
    Ended,
}

/// State changes, oldest first (bounded: the oldest are dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureEvent {
    Fault { reason: String },
    Resumed { after_retries: u32 },
    Ended,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CaptureStats {
    pub detect: DetectStats,
    /// Slices the analyser took.
    pub taken: u64,
    /// New slices replaced in the mailbox before the analyser took them.
    pub skipped: u64,
    pub decode_errors: u64,
    pub faults: u64,
}

/// Retry and timing settings.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    pub detect: DetectConfig,
    pub series_gap_ms: u64,
    /// A recording, not a live screen: wait for the analyser to take each slice instead of letting
    /// the newest replace it (a live source keeps latest-wins and counts the skipped ones).
    pub lossless: bool,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

const MAX_EVENTS: usize = 256;

struct Shared {
    /// The newest slice and when it was made from its frame (its arrival, for the budget).
    slot: Mutex<Option<(Slice, Instant)>>,
    ready: Condvar,
    /// Signalled when the analyser takes the slot (lossless replay waits on it).
    taken: Condvar,
    state: Mutex<CaptureState>,
    events: Mutex<VecDeque<CaptureEvent>>,
    stats: Mutex<CaptureStats>,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking capture thread must not take the analyser down with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn event(&self, e: CaptureEvent) {
        let mut q = lock(&self.events);
        if q.len() >= MAX_EVENTS {
            q.pop_front();
        }
        q.push_back(e);
    }

    fn sleep(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.stop.load(Ordering::Relaxed) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(20)));
        }
    }
}

/// Opens (or reopens) the frame source.
pub type OpenFn = Box<dyn FnMut() -> Result<Box<dyn FrameSource>, CaptureError> + Send>;

pub struct CaptureRunner {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl CaptureRunner {
    pub fn start(cfg: RunnerConfig, open: OpenFn) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            slot: Mutex::new(None),
            ready: Condvar::new(),
            taken: Condvar::new(),
            state: Mutex::new(CaptureState::Starting),
            events: Mutex::new(VecDeque::new()),
            stats: Mutex::new(CaptureStats::default()),
            stop: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new().name("capture".into()).spawn(move || capture_loop(&s, cfg, open))?;
        Ok(Self { shared, thread: Some(thread) })
    }

    /// The newest slice not yet taken, waiting up to `wait` for one.
    pub fn next(&self, wait: Duration) -> Option<Slice> {
        self.next_timed(wait).map(|(s, _)| s)
    }

    /// Like [`CaptureRunner::next`], with the moment the slice was made from its frame.
    pub fn next_timed(&self, wait: Duration) -> Option<(Slice, Instant)> {
        let slot = lock(&self.shared.slot);
        let (mut slot, _) =
            self.shared.ready.wait_timeout_while(slot, wait, |s| s.is_none()).unwrap_or_else(|p| p.into_inner());
        let s = slot.take();
        if s.is_some() {
            lock(&self.shared.stats).taken += 1;
            self.shared.taken.notify_one();
        }
        s
    }

    pub fn state(&self) -> CaptureState {
        lock(&self.shared.state).clone()
    }

    pub fn stats(&self) -> CaptureStats {
        *lock(&self.shared.stats)
    }

    pub fn take_events(&self) -> Vec<CaptureEvent> {
        lock(&self.shared.events).drain(..).collect()
    }
}

impl Drop for CaptureRunner {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn capture_loop(sh: &Shared, cfg: RunnerConfig, mut open: OpenFn) {
    let mut maker = SliceMaker::new(cfg.detect.clone(), cfg.series_gap_ms);
    let mut backoff = cfg.backoff_min;
    let mut retries = 0u32;
    let fault = |e: &CaptureError, retries: u32| {
        let reason = e.to_string();
        log::warn!("capture FAULT: {reason}");
        let mut st = lock(&sh.state);
        let since = match &*st {
            CaptureState::Fault { since_unix_ms, .. } => *since_unix_ms,
            _ => {
                sh.event(CaptureEvent::Fault { reason: reason.clone() });
                lock(&sh.stats).faults += 1;
                unix_ms()
            }
        };
        *st = CaptureState::Fault { reason, since_unix_ms: since, retries };
    };
    while !sh.stop.load(Ordering::Relaxed) {
        let mut src = match open().and_then(|s| {
            let f = s.format();
            maker.check_fits(f.width, f.height, s.name()).map(|_| s)
        }) {
            Ok(s) => s,
            Err(e) => {
                fault(&e, retries);
                retries += 1;
                sh.sleep(backoff);
                backoff = (backoff * 2).min(cfg.backoff_max);
                continue;
            }
        };
        let name = src.name().to_string();
        let mut first = true;
        loop {
            if sh.stop.load(Ordering::Relaxed) {
                return;
            }
            let result = src.next_frame().and_then(|frame| maker.push(&frame, &name));
            match result {
                Ok(slice) => {
                    if first {
                        first = false;
                        let was_fault = matches!(&*lock(&sh.state), CaptureState::Fault { .. });
                        if was_fault {
                            log::info!("capture resumed on {name} after {retries} retr(ies)");
                            sh.event(CaptureEvent::Resumed { after_retries: retries });
                        } else {
                            log::info!("capture running on {name}");
                        }
                        *lock(&sh.state) = CaptureState::Running;
                        backoff = cfg.backoff_min;
                        retries = 0;
                    }
                    {
                        let mut st = lock(&sh.stats);
                        st.detect = maker.detector.stats;
                    }
                    if let Some(slice) = slice {
                        let mut slot = lock(&sh.slot);
                        while cfg.lossless && slot.is_some() && !sh.stop.load(Ordering::Relaxed) {
                            slot = sh
                                .taken
                                .wait_timeout(slot, Duration::from_millis(50))
                                .map(|(g, _)| g)
                                .unwrap_or_else(|p| p.into_inner().0);
                        }
                        if slot.replace((slice, Instant::now())).is_some() {
                            lock(&sh.stats).skipped += 1;
                        }
                        sh.ready.notify_one();
                    }
                }
                Err(CaptureError::Ended { .. }) => {
                    log::info!("capture: end of the recording {name}");
                    *lock(&sh.state) = CaptureState::Ended;
                    sh.event(CaptureEvent::Ended);
                    return;
                }
                Err(e @ CaptureError::Decode { .. }) => {
                    lock(&sh.stats).decode_errors += 1;
                    log::debug!("{e}");
                }
                Err(e) => {
                    drop(src);
                    fault(&e, retries);
                    retries += 1;
                    sh.sleep(backoff);
                    backoff = (backoff * 2).min(cfg.backoff_max);
                    break;
                }
            }
        }
    }
}
