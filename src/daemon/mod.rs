//! `pe-sentinel run`: the daemon's wiring. Opens the journal, the drop folder (and capture card),
//! both models and the display, starts the sink thread, and loops on the inference thread: take a
//! complete file ([`intake`]), analyse it ([`analysis`]: decode, models, verdict, alert), and hand
//! the results to the sink ([`sink`]: journal commit, overlays, the move to `done/` or
//! `rejected/`), which moves a file only after its rows are committed. Quiet series are closed as
//! they time out. SIGTERM and SIGINT finish the file in hand, drain the sink and stop. The service
//! manager hears READY/WATCHDOG/STATUS/STOPPING through `crate::service`.
//!
//! Threads: this one (intake and analysis: decoding and inference), the sink, the inotify watcher
//! (inside `notify`), the display writer and the capture reader when configured.
//!
//! A FAULT is the machine's failure, not the input's: an engine error while running a slice, or
//! the journal or a folder failing (e.g. a full disk). The sink retries its own writes in place;
//! an engine fault leaves the file in the drop folder, the series state is rebuilt from the
//! journal (as after a restart) and the file is retried after a growing pause.

pub mod analysis;
pub mod intake;
pub mod sink;

use crate::budget::BudgetTracker;
use crate::config::Resolved;
use crate::display::DisplayHandle;
use crate::pipeline::{ModelSet, Pipeline};
use crate::service::Service;
use crate::source::capture::runner::{CaptureEvent, CaptureRunner};
use crate::source::drop_folder::DropFolder;
use crate::store::journal::Journal;
use crate::verdict::Judge;
use analysis::Analysis;
use anyhow::Context;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use intake::MAX_FILE_BYTES;

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
    /// Failures of the engine or of the daemon's own storage, each logged as FAULT and retried.
    pub faults: u64,
    /// Files not analysed: not what the models are meant for (`crate::eligibility`).
    pub not_analysed: u64,
}

/// The daemon: its sources, and the analysis stage that owns the rest.
pub struct Daemon {
    drop: DropFolder,
    /// The capture-card source, when `[capture]` is configured (polled beside the drop folder).
    capture: Option<CaptureRunner>,
    analysis: Analysis,
    /// The pause before the next retry after a FAULT; None while healthy.
    fault_pause: Option<Duration>,
}

impl Daemon {
    pub fn open(cfg: &Resolved) -> anyhow::Result<Daemon> {
        log::info!(
            "board profile {} ({}), engine {}, precision {}, {} thread(s)",
            cfg.board().name,
            cfg.profile_path().display(),
            cfg.engine().kind.as_str(),
            cfg.engine().precision.as_str(),
            cfg.engine().threads
        );
        let journal = open_journal(cfg)?;
        let models = ModelSet::load(cfg.classifier_manifest(), cfg.detector_manifest())?;
        for m in [&models.classifier, &models.detector] {
            log::info!("model {} sha256 {} ({})", m.model().name, m.model().sha256, m.path().display());
            for w in m.warnings() {
                log::warn!("{}: {w}", m.path().display());
            }
        }
        // Scheduling first, so the engine's threads inherit affinity and priority.
        crate::runtime::apply(cfg.runtime());
        let t = Instant::now();
        let (cls, det, choice) = crate::engine::open(cfg, &models)?;
        log::info!("{choice}");
        for a in &choice.looked {
            log::info!("looked for onnxruntime: {a}");
        }
        Daemon::assemble(cfg, journal, models, cls, det, t)
    }

    /// As [`Daemon::open`], on engines the caller opened for `models` (tests: an engine that
    /// fails at run time, as a GPU can).
    pub fn with_engines(
        cfg: &Resolved,
        models: ModelSet,
        cls: Box<dyn crate::engine::Engine>,
        det: Box<dyn crate::engine::Engine>,
    ) -> anyhow::Result<Daemon> {
        let journal = open_journal(cfg)?;
        Daemon::assemble(cfg, journal, models, cls, det, Instant::now())
    }

    fn assemble(
        cfg: &Resolved,
        journal: Journal,
        models: ModelSet,
        cls: Box<dyn crate::engine::Engine>,
        det: Box<dyn crate::engine::Engine>,
        t: Instant,
    ) -> anyhow::Result<Daemon> {
        let mut pipeline = Pipeline::with_engines(&models, cls, det)?;
        pipeline.apply_profile(cfg);
        log::info!("engine {} loaded and warmed up in {} ms", pipeline.engine_name(), t.elapsed().as_millis());
        let b = cfg.budget().config();
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
            match cfg.budget().cascade_gate {
                Some(g) => format!("on (detector only when classifier P >= {g})"),
                None => "off".into(),
            }
        );
        let drop = DropFolder::open(cfg.drop_dir())?;
        log::info!("watching drop folder {}", drop.root().display());
        let capture = match cfg.capture() {
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
        let fusion = cfg.verdict().fusion_config();
        let series = cfg.verdict().series_config();
        log::info!(
            "verdict: fusion {}, classifier P >= {}, positive at {} suspicious of {} adjacent slices, close after {} s quiet",
            fusion.policy.as_str(),
            fusion.classifier_p,
            series.suspicious_min,
            series.window_slices,
            cfg.verdict().quiet_s
        );
        let display = match cfg.display() {
            Some(d) => Some(DisplayHandle::start(&d.config(), Some(cfg.state_dir()))?),
            None => None,
        };
        let outbox = crate::outbox::Outbox::start(cfg, &models)?;
        let gate = crate::eligibility::gate_for(cfg.eligibility(), &models);
        for (warn, line) in crate::eligibility::describe(&gate, &models) {
            if warn {
                log::warn!("{line}");
            } else {
                log::info!("{line}");
            }
        }
        // The sink writes on `journal`; the analysis reads on a connection of its own.
        let reader = Journal::open(journal.path())?;
        let sink = sink::Sink::start(journal, Some(drop.mover()), cfg.state_dir().join("overlays"))
            .context("cannot start the sink thread")?;
        let analysis = Analysis::new(
            pipeline,
            models,
            Judge::new(fusion, series),
            reader,
            BudgetTracker::new(b),
            sink,
            display,
            Service::from_env(),
            outbox,
            gate,
        );
        Ok(Daemon { drop, capture, analysis, fault_pause: None })
    }

    /// Runs until `stop` is set; the file in hand is finished and the sink drained first.
    pub fn run(&mut self, stop: &AtomicBool) -> anyhow::Result<RunStats> {
        let a = &mut self.analysis;
        a.service.ready(&format!(
            "ready: engine {}, watching {}",
            a.pipeline.engine_name(),
            self.drop.root().display()
        ));
        while !stop.load(Ordering::Relaxed) {
            self.analysis.service.tick(false);
            for p in self.analysis.finished() {
                self.drop.release(&p);
            }
            let now = self.analysis.now_ms();
            let wait = match self.analysis.next_deadline_ms() {
                Some(d) => Duration::from_millis(d.saturating_sub(now).clamp(10, 250)),
                None => Duration::from_millis(250),
            };
            if self.capture.is_some() {
                if let Err(e) = self.poll_capture(wait) {
                    self.fault(None, &e, stop);
                }
            }
            let wait = if self.capture.is_some() { Duration::ZERO } else { wait };
            if let Some(path) = self.drop.next(wait) {
                match self.take_file(&path) {
                    Ok(()) => self.fault_pause = None,
                    Err(e) => self.fault(Some(&path), &e, stop),
                }
            }
            if let Err(e) = self.analysis.close_quiet() {
                self.fault(None, &e, stop);
            }
        }
        let a = &mut self.analysis;
        a.service.stopping("stopping");
        a.sink.finish();
        for p in a.finished() {
            self.drop.release(&p);
        }
        let (commits, largest) = a.sink_totals();
        log::info!("journal: {commits} commit(s), up to {largest} queued job(s) in one");
        log::info!(
            "stopping: {} file(s), {} slice(s), {} rejected, {} not analysed, {} duplicate(s), {} alert(s), {} fault(s), {} slice(s) over the {} ms budget",
            a.stats.files,
            a.stats.slices,
            a.stats.rejected,
            a.stats.not_analysed,
            a.stats.duplicates,
            a.stats.alerts,
            a.stats.faults,
            a.stats.budget_misses,
            a.budget.budget_ms()
        );
        Ok(a.stats)
    }

    /// One file from the drop folder into the analysis. Errors are FAULTs (engine, sink), not
    /// the file's: a bad file is rejected and the loop goes on.
    fn take_file(&mut self, path: &Path) -> anyhow::Result<()> {
        let arrival = self.drop.last_arrival();
        if let Some(reason) = self.drop.refusal(path) {
            let why = crate::failure::Rejection::new(crate::failure::RejectCode::TooDeep, reason);
            return self.analysis.reject(path, None, &why);
        }
        let t = Instant::now();
        match intake::read(path) {
            intake::Intake::Bytes(bytes) => {
                let series = self.drop.series_of(path);
                self.analysis.file(path, &bytes, crate::budget::us_since(t), series, arrival)
            }
            intake::Intake::Reject(why) => self.analysis.reject(path, None, &why),
            intake::Intake::Skip => {
                self.drop.release(path);
                Ok(())
            }
        }
    }

    /// One slice from the capture card, if one is waiting.
    fn poll_capture(&mut self, wait: Duration) -> anyhow::Result<()> {
        let Some(runner) = &self.capture else { return Ok(()) };
        for e in runner.take_events() {
            log::info!("capture event: {e:?}");
            // An unplugged or stalled capture card is a FAULT on the display until it resumes.
            if let Some(d) = self.analysis.display.as_mut() {
                match &e {
                    CaptureEvent::Fault { reason } => d.fault(&format!("capture: {reason}")),
                    CaptureEvent::Resumed { .. } => d.idle(),
                    CaptureEvent::Ended => {}
                }
            }
        }
        let Some((slice, arrival)) = runner.next_timed(wait) else { return Ok(()) };
        self.analysis.capture(&slice, arrival)
    }

    /// A FAULT of the engine or the sink: log it, leave the file in the drop folder, forget the
    /// in-memory series state once the sink has committed what it holds (restored from the
    /// journal on next sight, as after a restart, so nothing is counted twice), pause, retry.
    fn fault(&mut self, path: Option<&Path>, e: &anyhow::Error, stop: &AtomicBool) {
        let a = &mut self.analysis;
        a.stats.faults += 1;
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
        a.service.status_now(&format!("FAULT: {e:#}"));
        if let Some(d) = a.display.as_mut() {
            d.fault(&format!("{e:#}"));
        }
        if let Err(err) = a.forget() {
            log::error!("{err:#}");
        }
        let until = Instant::now() + pause;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            a.service.tick(false);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether sustained budget misses put the box in the SLOW state.
    pub fn is_slow(&self) -> bool {
        self.analysis.budget.is_slow()
    }
}

fn open_journal(cfg: &Resolved) -> anyhow::Result<Journal> {
    std::fs::create_dir_all(cfg.state_dir())
        .with_context(|| format!("cannot create state folder {}", cfg.state_dir().display()))?;
    Ok(Journal::open(&Journal::path_in(cfg.state_dir()))?)
}

/// Sets the returned flag on SIGTERM or SIGINT.
pub fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("cannot install the signal handler")?;
    }
    Ok(stop)
}
