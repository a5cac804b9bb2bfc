//! `pe-sentinel run`: the daemon's wiring. Opens the journal, the drop folder and both models,
//! then loops: take a complete file, skip it if its content was analysed before, decode it
//! (rejecting with a reason what cannot be read), run every slice through the pipeline, fuse,
//! aggregate per series, commit the slice and series rows, draw an overlay for suspicious slices,
//! and only then move the file to `done/`. Quiet series are closed as they time out. SIGTERM and
//! SIGINT finish the file in hand and stop. Touches the drop folder, the state folder and the
//! model files.
//!
//! A failure of the daemon's own storage (journal, `done/`, e.g. a full disk) is a FAULT, not an
//! exit: it is logged, the file stays in the drop folder, the in-memory series state is rebuilt
//! from the journal (as after a restart) and the file is retried with a growing pause. The
//! service manager hears READY/WATCHDOG/STATUS/STOPPING through `crate::service`.
//!
//! Threads: the inotify watcher runs in its own thread (inside `notify`); decoding, inference and
//! the journal share this loop for now — the display and budget issues split the sink off.

use crate::budget::{us_since, BudgetTracker, SlowChange};
use crate::config::Resolved;
use crate::display::{DisplayHandle, SliceUpdate};
use crate::pipeline::{ModelSet, Pipeline, SliceScores};
use crate::service::Service;
use crate::slice::{Pixels, Slice};
use crate::source::capture::runner::{CaptureEvent, CaptureRunner};
use crate::source::drop_folder::DropFolder;
use crate::store::journal::{hex, Journal, RejectedRow, SeriesRow, SliceRecord};
use crate::store::overlay;
use crate::verdict::fusion::{fuse, FusionConfig};
use crate::verdict::series::{SeriesConfig, SeriesEvent, SeriesSummary, SeriesTracker, SliceObservation};
use anyhow::Context;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Files larger than this are rejected unread (a CT slice is well under 100 MB even multi-frame).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// Pause after the first FAULT; doubled on each further one, up to `FAULT_PAUSE_MAX`.
const FAULT_PAUSE_MIN: Duration = Duration::from_secs(1);
const FAULT_PAUSE_MAX: Duration = Duration::from_secs(15);

/// Counters of one run, for the log and tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunStats {
    pub files: u64,
    pub slices: u64,
    pub rejected: u64,
    pub duplicates: u64,
    pub alerts: u64,
    /// Slices whose arrival-to-verdict time exceeded the budget.
    pub budget_misses: u64,
    /// Failures of the daemon's own storage, each logged as FAULT and retried.
    pub faults: u64,
}

/// Everything the loop needs.
pub struct Daemon {
    drop: DropFolder,
    /// The capture-card source, when `[capture]` is configured (polled beside the drop folder).
    capture: Option<CaptureRunner>,
    journal: Journal,
    pipeline: Pipeline,
    models: ModelSet,
    fusion: FusionConfig,
    tracker: SeriesTracker,
    series_config: SeriesConfig,
    service: Service,
    /// The pause before the next retry after a FAULT; None while healthy.
    fault_pause: Option<Duration>,
    overlays: PathBuf,
    start: Instant,
    start_unix_ms: i64,
    /// Series seen in this run (restored from the journal on first sight).
    known: HashSet<String>,
    /// Series that had alerted before this run started (restored): never alerted again.
    alerted_before: HashSet<String>,
    scores: SliceScores,
    budget: BudgetTracker,
    /// The scanner-room display, when `[display]` is configured.
    display: Option<DisplayHandle>,
    /// Results for the PACS, when `[dicom.send]` is configured (issue 22).
    outbox: Option<crate::outbox::Outbox>,
    pub stats: RunStats,
}

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Daemon {
    pub fn open(cfg: &Resolved) -> anyhow::Result<Daemon> {
        let p = &cfg.profile;
        log::info!(
            "board profile {} ({}), engine {}, precision {}, {} thread(s)",
            p.board.name,
            cfg.profile_path.display(),
            p.engine.kind.as_str(),
            p.engine.precision.as_str(),
            p.engine.threads
        );
        std::fs::create_dir_all(&cfg.state_dir)
            .with_context(|| format!("cannot create state folder {}", cfg.state_dir.display()))?;
        let journal = Journal::open(&Journal::path_in(&cfg.state_dir))?;
        let models = ModelSet::load(&cfg.classifier_manifest, &cfg.detector_manifest)?;
        for m in [&models.classifier, &models.detector] {
            log::info!("model {} sha256 {} ({})", m.model().name, m.model().sha256, m.path().display());
            for w in m.warnings() {
                log::warn!("{}: {w}", m.path().display());
            }
        }
        // Scheduling first, so the engine's threads inherit affinity and priority.
        crate::runtime::apply(&p.runtime);
        let t = Instant::now();
        let (cls, det, choice) = crate::engine::open(cfg, &models)?;
        log::info!("{choice}");
        for a in &choice.looked {
            log::info!("looked for onnxruntime: {a}");
        }
        let mut pipeline = Pipeline::with_engines(&models, cls, det)?;
        pipeline.apply_profile(p);
        log::info!("engine {} loaded and warmed up in {} ms", pipeline.engine_name(), t.elapsed().as_millis());
        let b = p.budget.config();
        match crate::bench::warmup_probe(&mut pipeline, 3) {
            Ok(s) if s.p50_ms > f64::from(b.budget_ms) => log::warn!(
                "the models alone take {:.1} ms per slice (warm-up median), over the {} ms budget: every slice will miss it; see `pe-sentinel check`",
                s.p50_ms,
                b.budget_ms
            ),
            Ok(s) => log::info!("warm-up: the models take {:.1} ms per slice", s.p50_ms),
            Err(e) => log::warn!("warm-up slice failed: {e:#}"),
        }
        log::info!(
            "budget: {} ms per slice from arrival to verdict; SLOW above {:.0}% misses of the last {} slices; cascade {}",
            b.budget_ms,
            b.slow_miss_fraction * 100.0,
            b.slow_window,
            match p.budget.cascade_gate {
                Some(g) => format!("on (detector only when classifier P >= {g})"),
                None => "off".into(),
            }
        );
        let drop = DropFolder::open(&cfg.drop_dir)?;
        log::info!("watching drop folder {}", drop.root().display());
        let capture = match &p.capture {
            Some(c) => {
                use crate::source::capture::open;
                log::info!(
                    "capture source {} ({} {}x{} at {} fps), viewport {}",
                    c.device,
                    c.format,
                    c.width,
                    c.height,
                    c.fps,
                    c.viewport
                );
                Some(
                    CaptureRunner::start(open::runner_config(c), open::opener(c))
                        .context("cannot start the capture thread")?,
                )
            }
            None => None,
        };
        let fusion = p.verdict.fusion_config();
        let series = p.verdict.series_config();
        log::info!(
            "verdict: fusion {}, classifier P >= {}, positive at {} suspicious of {} adjacent slices, close after {} s quiet",
            fusion.policy.as_str(),
            fusion.classifier_p,
            series.suspicious_min,
            series.window_slices,
            p.verdict.quiet_s
        );
        let display = match &p.display {
            Some(d) => Some(DisplayHandle::start(&d.config(), Some(&cfg.state_dir))?),
            None => None,
        };
        let outbox = crate::outbox::Outbox::start(cfg, &models)?;
        Ok(Daemon {
            outbox,
            display,
            drop,
            capture,
            journal,
            pipeline,
            models,
            fusion,
            tracker: SeriesTracker::new(series),
            series_config: series,
            service: Service::from_env(),
            fault_pause: None,
            overlays: cfg.state_dir.join("overlays"),
            start: Instant::now(),
            start_unix_ms: unix_ms(),
            known: HashSet::new(),
            alerted_before: HashSet::new(),
            scores: SliceScores::default(),
            budget: BudgetTracker::new(b),
            stats: RunStats::default(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn to_unix(&self, ms: u64) -> i64 {
        self.start_unix_ms + ms as i64
    }

    /// Runs until `stop` is set; the file in hand is finished first.
    pub fn run(&mut self, stop: &AtomicBool) -> anyhow::Result<RunStats> {
        self.service.ready(&format!(
            "ready: engine {}, watching {}",
            self.pipeline.engine_name(),
            self.drop.root().display()
        ));
        while !stop.load(Ordering::Relaxed) {
            self.service.tick(false);
            let wait = match self.tracker.next_deadline_ms() {
                Some(d) => Duration::from_millis(d.saturating_sub(self.now_ms()).clamp(10, 250)),
                None => Duration::from_millis(250),
            };
            if self.capture.is_some() {
                self.poll_capture(wait)?;
            }
            let wait = if self.capture.is_some() { Duration::ZERO } else { wait };
            if let Some(path) = self.drop.next(wait) {
                match self.process_file(&path, stop) {
                    Ok(()) => self.fault_pause = None,
                    Err(e) => self.fault(Some(&path), &e, stop),
                }
            }
            let events = self.tracker.close_quiet(self.now_ms());
            for e in events {
                if let Err(err) = self.on_event(e) {
                    self.fault(None, &err, stop);
                    break;
                }
            }
        }
        self.service.stopping("stopping");
        log::info!(
            "stopping: {} file(s), {} slice(s), {} rejected, {} duplicate(s), {} alert(s), {} fault(s), {} slice(s) over the {} ms budget",
            self.stats.files,
            self.stats.slices,
            self.stats.rejected,
            self.stats.duplicates,
            self.stats.alerts,
            self.stats.faults,
            self.stats.budget_misses,
            self.budget.budget_ms()
        );
        Ok(self.stats)
    }

    /// One file from the drop folder to `done/` or `rejected/`. Errors returned are the daemon's
    /// own (journal, folder), not the file's: a bad file is rejected and the loop goes on.
    fn process_file(&mut self, path: &Path, stop: &AtomicBool) -> anyhow::Result<()> {
        self.stats.files += 1;
        let arrival = self.drop.last_arrival();
        if let Some(reason) = self.drop.refusal(path) {
            return self.reject(path, None, &reason);
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let t_decode = Instant::now();
        let bytes = match std::fs::metadata(path) {
            Ok(m) if m.len() > MAX_FILE_BYTES => {
                return self.reject(
                    path,
                    None,
                    &format!("{}: {} bytes, larger than the {} byte limit", path.display(), m.len(), MAX_FILE_BYTES),
                );
            }
            Ok(m) if m.len() == 0 => {
                return self.reject(path, None, &format!("{}: empty file (0 bytes)", path.display()))
            }
            Ok(_) => match std::fs::read(path) {
                Ok(b) => std::sync::Arc::new(b),
                Err(e) => {
                    log::warn!("cannot read {}: {e}; will retry", path.display());
                    self.drop.release(path);
                    return Ok(());
                }
            },
            Err(_) => {
                // Gone (moved away by someone else): nothing to do.
                self.drop.release(path);
                return Ok(());
            }
        };
        // Decoded from the bytes already read (the file is read once), and the first slice's
        // inputs prepared, while a second core hashes them.
        let series = self.drop.series_of(path);
        let read_us = us_since(t_decode);
        let arrived = self.pipeline.arrive(&bytes, path, series);
        drop(bytes);
        let sha = arrived.sha256;
        if self.journal.seen(&sha, 0)? {
            self.stats.duplicates += 1;
            log::info!("{name}: same content as a file already analysed (sha256 {}); not analysed again", hex(&sha));
            self.drop.finish_done(path)?;
            return Ok(());
        }
        let slices = match &arrived.slices {
            Ok(s) => s,
            Err(reason) => return self.reject(path, Some(sha), reason),
        };
        let decode_us = arrived.decode_us.saturating_add(read_us);
        for (i, slice) in slices.iter().enumerate() {
            self.service.tick(stop.load(Ordering::Relaxed));
            if let Err(e) = self.pipeline.run_arrived(&arrived, i, &mut self.scores) {
                if let Some(d) = self.display.as_mut() {
                    d.fault(&format!("engine: {e}"));
                }
                return self.reject(path, Some(sha), &e.to_string());
            }
            self.record(slice, &name, sha, decode_us, arrival)?;
        }
        self.drop.finish_done(path)?;
        Ok(())
    }

    /// One slice from the capture card, if one is waiting: analysed and recorded like a file's
    /// (its sha256 is that of its pixels, so a slice seen before a restart is not analysed twice).
    fn poll_capture(&mut self, wait: Duration) -> anyhow::Result<()> {
        let Some(runner) = &self.capture else { return Ok(()) };
        for e in runner.take_events() {
            log::info!("capture event: {e:?}");
            // An unplugged or stalled capture card is a FAULT on the display until it resumes.
            if let Some(d) = self.display.as_mut() {
                match &e {
                    CaptureEvent::Fault { reason } => d.fault(&format!("capture: {reason}")),
                    CaptureEvent::Resumed { .. } => d.idle(),
                    CaptureEvent::Ended => {}
                }
            }
        }
        let Some((slice, arrival)) = runner.next_timed(wait) else { return Ok(()) };
        let name = format!("{}-{:04}", slice.series.0, slice.instance.unwrap_or(0));
        let sha: [u8; 32] = match &slice.pixels {
            Pixels::Gray8(v) => Sha256::digest(v).into(),
            _ => Sha256::digest(name.as_bytes()).into(),
        };
        if self.journal.seen(&sha, 0)? {
            self.stats.duplicates += 1;
            return Ok(());
        }
        if let Err(e) = self.pipeline.run(&slice, &mut self.scores) {
            log::warn!("capture slice {name}: {e}");
            return Ok(());
        }
        self.record(&slice, &name, sha, 0, arrival)
    }

    /// A failure of the daemon's own storage: log it, leave the file in the drop folder, forget
    /// the in-memory series state (restored from the journal on next sight, as after a restart,
    /// so a slice counted before the failure is not counted twice), and pause before the retry.
    fn fault(&mut self, path: Option<&Path>, e: &anyhow::Error, stop: &AtomicBool) {
        self.stats.faults += 1;
        let pause = self.fault_pause.map_or(FAULT_PAUSE_MIN, |p| (p * 2).min(FAULT_PAUSE_MAX));
        self.fault_pause = Some(pause);
        let what = match path {
            Some(p) => {
                self.drop.retry(p);
                format!("{} stays in the drop folder and is retried", p.display())
            }
            None => "retrying".to_string(),
        };
        log::error!("FAULT: {e:#}; {what} in {} s", pause.as_secs());
        self.service.status_now(&format!("FAULT: {e:#}"));
        if let Some(d) = self.display.as_mut() {
            d.fault(&format!("{e:#}"));
        }
        self.tracker = SeriesTracker::new(self.series_config);
        self.known.clear();
        self.alerted_before.clear();
        let until = Instant::now() + pause;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            self.service.tick(false);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn reject(&mut self, path: &Path, sha: Option<[u8; 32]>, reason: &str) -> anyhow::Result<()> {
        self.stats.rejected += 1;
        log::warn!("rejected: {reason}");
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        self.journal.record_rejected(&RejectedRow {
            source_file: name,
            sha256: sha,
            reason: reason.to_string(),
            created_unix_ms: unix_ms(),
        })?;
        self.drop.finish_rejected(path, reason)?;
        Ok(())
    }

    /// Restores a series' state from the journal the first time this run sees it, so a restart
    /// neither forgets its slices nor alerts twice.
    fn restore(&mut self, series: &str) -> anyhow::Result<()> {
        if !self.known.insert(series.to_string()) {
            return Ok(());
        }
        if self.journal.series(series)?.is_some_and(|r| r.alerted) {
            self.alerted_before.insert(series.to_string());
        }
        let rows = self.journal.series_slices(series)?;
        if rows.is_empty() {
            return Ok(());
        }
        let now = self.now_ms();
        for r in &rows {
            let obs = SliceObservation {
                instance: r.record.instance.unwrap_or(r.record.frame as i32),
                suspicious: r.record.suspicious,
                p: r.record.p,
                boxes: r.record.boxes.len() as u32,
                max_confidence: r.record.boxes.iter().map(|b| b[4]).fold(0.0, f32::max),
            };
            // Events of the replay were already acted on before the restart.
            let _ = self.tracker.observe(series, obs, now);
        }
        log::info!("series {series}: restored {} slice(s) from the journal", rows.len());
        Ok(())
    }

    fn record(
        &mut self,
        slice: &Slice,
        name: &str,
        sha: [u8; 32],
        decode_us: u32,
        arrival: Instant,
    ) -> anyhow::Result<()> {
        let t_verdict = Instant::now();
        let series = slice.series.0.clone();
        self.restore(&series)?;
        let det = &self.scores.detections;
        let fs = self.scores.fusion_scores();
        let verdict = fuse(&self.fusion, &fs);
        let instance = slice.instance.unwrap_or(slice.frame as i32 + 1);
        let events = self.tracker.observe(
            &series,
            SliceObservation {
                instance,
                suspicious: verdict.suspicious,
                p: fs.p,
                boxes: fs.boxes,
                max_confidence: fs.max_confidence,
            },
            self.now_ms(),
        );
        let verdict_us = us_since(t_verdict);
        let total_us = us_since(arrival);
        let t_store = Instant::now();
        let summary = self.tracker.summary(&series);
        let boxes: Vec<[f32; 5]> =
            det.boxes.iter().map(|d| [d.bbox.x0, d.bbox.y0, d.bbox.x1, d.bbox.y1, d.confidence]).collect();
        let t = self.scores.times;
        let mut rec = SliceRecord {
            source_file: name.to_string(),
            sha256: sha,
            frame: slice.frame,
            series: series.clone(),
            instance: Some(instance),
            p: fs.p,
            boxes,
            suspicious: verdict.suspicious,
            latency: t.with(decode_us, verdict_us),
            classifier_sha256: self.models.classifier.model().sha256.clone(),
            detector_sha256: self.models.detector.model().sha256.clone(),
            created_unix_ms: unix_ms(),
        };
        rec.latency.store = t_store.elapsed().as_micros() as u32;
        self.observe_budget(total_us);
        let (budget_ms, slow) = (self.budget.budget_ms(), self.budget.is_slow());
        if let (Some(d), Some(s)) = (self.display.as_mut(), &summary) {
            d.slice(SliceUpdate {
                series: &series,
                slice: instance.max(0) as u32,
                slices: s.slices,
                max_p: s.max_p,
                boxes: s.boxes,
                latency_ms: total_us / 1000,
                budget_ms: Some(budget_ms),
                slow,
            });
        }
        match summary {
            Some(s) => {
                let row = self.series_row(&series, &s);
                self.journal.record_slice_with_series(&rec, &row)?;
            }
            None => {
                self.journal.record_slice(&rec)?;
            }
        }
        self.stats.slices += 1;
        self.service.set_status(format!(
            "last: {name} frame {}: {} (P {:.3}, {} box(es)); {} slice(s), {} alert(s)",
            slice.frame,
            if verdict.suspicious { "suspicious" } else { "not suspicious" },
            fs.p,
            fs.boxes,
            self.stats.slices,
            self.stats.alerts
        ));
        if verdict.suspicious {
            let pre = self.models.classifier.preprocess();
            let window = crate::preprocess::HuWindow { center_hu: pre.window_center_hu, width_hu: pre.window_width_hu };
            // An overlay is for review; failing to draw one must not stop the analysis.
            if let Err(e) = overlay::write_slice(&self.overlays, slice, name, window, &self.scores.detections.boxes) {
                log::warn!("{e}");
            }
        }
        log::debug!(
            "{name} frame {}: P {:.3}, {} box(es), suspicious {}",
            slice.frame,
            fs.p,
            fs.boxes,
            verdict.suspicious
        );
        for e in events {
            self.on_event(e)?;
        }
        Ok(())
    }

    /// Counts a miss and logs entering or leaving SLOW.
    fn observe_budget(&mut self, total_us: u32) {
        let (missed, change) = self.budget.record(total_us);
        if missed {
            self.stats.budget_misses += 1;
            log::debug!(
                "slice took {} ms from arrival to verdict, over the {} ms budget",
                total_us / 1000,
                self.budget.budget_ms()
            );
        }
        match change {
            Some(SlowChange::EnteredSlow { misses, window }) => log::warn!(
                "SLOW: {misses} of the last {window} slices missed the {} ms budget (this one took {} ms); see `pe-sentinel bench` for where the time goes",
                self.budget.budget_ms(),
                total_us / 1000
            ),
            Some(SlowChange::LeftSlow { misses, window }) => log::info!(
                "budget kept again: {misses} of the last {window} slices over {} ms; SLOW cleared",
                self.budget.budget_ms()
            ),
            None => {}
        }
    }

    /// Whether sustained budget misses put the box in the SLOW state.
    pub fn is_slow(&self) -> bool {
        self.budget.is_slow()
    }

    fn series_row(&self, series: &str, s: &SeriesSummary) -> SeriesRow {
        SeriesRow {
            series: series.to_string(),
            slices: s.slices,
            suspicious_slices: s.suspicious_slices,
            max_p: s.max_p,
            boxes: s.boxes,
            verdict: s.verdict,
            first_seen_unix_ms: self.to_unix(s.first_seen_ms),
            last_seen_unix_ms: self.to_unix(s.last_seen_ms),
            closed_unix_ms: s.closed_at_ms.map(|m| self.to_unix(m)),
            alerted: s.alerted,
        }
    }

    fn on_event(&mut self, e: SeriesEvent) -> anyhow::Result<()> {
        match e {
            SeriesEvent::Positive { series, summary } => {
                self.journal.update_series(&self.series_row(&series, &summary))?;
                if self.alerted_before.contains(&series) {
                    log::info!("series {series}: positive (already alerted before a restart)");
                } else {
                    self.stats.alerts += 1;
                    self.service.status_now(&format!(
                        "ALERT series {series}: POSITIVE, {} suspicious of {} slices",
                        summary.suspicious_slices, summary.slices
                    ));
                    log::warn!(
                        "ALERT series {series}: POSITIVE — {} suspicious of {} slices, max P {:.3}, {} box(es)",
                        summary.suspicious_slices,
                        summary.slices,
                        summary.max_p,
                        summary.boxes
                    );
                    if let Some(d) = self.display.as_mut() {
                        d.positive(&series, summary.slices, summary.max_p, summary.boxes);
                    }
                }
            }
            SeriesEvent::Closed { series, summary, reason } => {
                self.journal.update_series(&self.series_row(&series, &summary))?;
                if let Some(o) = &self.outbox {
                    o.series_final(&self.journal, &series, &summary, self.to_unix(summary.closed_at_ms.unwrap_or(0)));
                }
                if let Some(d) = self.display.as_mut() {
                    d.idle();
                }
                log::info!(
                    "series {series}: closed {} ({reason:?}) — {} slices, {} suspicious, max P {:.3}",
                    summary.verdict.as_str(),
                    summary.slices,
                    summary.suspicious_slices,
                    summary.max_p
                );
            }
            SeriesEvent::Reopened { series, summary } => {
                self.journal.update_series(&self.series_row(&series, &summary))?;
                log::info!("series {series}: reopened by a late slice");
            }
        }
        Ok(())
    }
}

/// Sets the returned flag on SIGTERM or SIGINT.
pub fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("cannot install the signal handler")?;
    }
    Ok(stop)
}
