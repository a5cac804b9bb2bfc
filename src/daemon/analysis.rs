//! The analysis stage, on the daemon's inference thread: a dropped file's bytes (or a capture-card
//! slice) through decode, the pipeline and the judge ([`crate::verdict::Judge`]), into jobs for
//! the sink ([`super::sink`]). It never waits on a disk write: every write is a job for the sink;
//! it reads the journal on its own connection (duplicates; a series' slices when it first sees
//! one after a restart or a FAULT). Updates the display and the service status.
//!
//! ## Alert timing
//!
//! The alert (display ALERT, the `ALERT` log line, the systemd status) is raised here, the moment
//! the series rule is met, and the series row saying `alerted = 1` goes to the sink right after:
//! an alert never waits for a slow disk. The cost: a crash (power cut, kill -9) after the alert
//! and before that row is committed — a window of one queue's worth of commits, normally a few
//! milliseconds — loses the record of the alert; the files behind it are still in the drop folder,
//! are analysed again on restart, and the alert is raised a second time. A duplicate alert on a
//! crash was preferred to a late one on every slow disk; an alert is never lost.
//!
//! ## Failures
//!
//! An input the daemon cannot analyse is rejected with a reason code ([`crate::failure`]); an
//! engine or head failure while running a slice is returned as an error: the caller shows FAULT
//! and retries the file, whose frames already committed are then skipped.

use super::sink::{Job, Overlay, Sink};
use super::RunStats;
use crate::budget::{us_since, BudgetTracker, SlowChange};
use crate::display::{DisplayHandle, SliceUpdate};
use crate::eligibility::{Gate, Screen};
use crate::failure::{RejectCode, Rejection};
use crate::pipeline::{ModelSet, Pipeline, SliceScores};
use crate::service::Service;
use crate::slice::{SeriesId, Slice};
use crate::store::journal::{hex, Journal, RejectedRow, SeriesRow, SkippedRow, SliceRecord};
use crate::verdict::series::{SeriesEvent, SeriesSummary, SliceObservation};
use crate::verdict::Judge;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub(super) fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The inference thread's state and its outputs.
pub struct Analysis {
    pub(super) pipeline: Pipeline,
    models: ModelSet,
    judge: Judge,
    /// Read-only use: duplicates and series restores (the sink writes on its own connection).
    journal: Journal,
    scores: SliceScores,
    pub(super) budget: BudgetTracker,
    /// Series seen in this run (restored from the journal on first sight).
    known: HashSet<String>,
    /// Series that had alerted before this run started (restored): never alerted again.
    alerted_before: HashSet<String>,
    /// Files handed to the sink and not yet moved out of the drop folder, by content: a copy of
    /// one dropped meanwhile is a duplicate although its rows are not committed yet.
    in_sink: HashMap<PathBuf, [u8; 32]>,
    start: Instant,
    start_unix_ms: i64,
    pub(super) sink: Sink,
    pub(super) display: Option<DisplayHandle>,
    pub(super) service: Service,
    pub(super) stats: RunStats,
    /// Results for the PACS, when `[dicom.send]` is configured (issue 22).
    outbox: Option<crate::outbox::Outbox>,
    /// Intended use: which slices are analysed, and no alert on a patient with demo models.
    gate: Gate,
}

impl Analysis {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        pipeline: Pipeline,
        models: ModelSet,
        judge: Judge,
        journal: Journal,
        budget: BudgetTracker,
        sink: Sink,
        display: Option<DisplayHandle>,
        service: Service,
        outbox: Option<crate::outbox::Outbox>,
        gate: Gate,
    ) -> Analysis {
        Analysis {
            pipeline,
            models,
            judge,
            journal,
            scores: SliceScores::default(),
            budget,
            known: HashSet::new(),
            alerted_before: HashSet::new(),
            in_sink: HashMap::new(),
            start: Instant::now(),
            start_unix_ms: unix_ms(),
            sink,
            display,
            service,
            stats: RunStats::default(),
            outbox,
            gate,
        }
    }

    pub(super) fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn to_unix(&self, ms: u64) -> i64 {
        self.start_unix_ms + ms as i64
    }

    pub(super) fn next_deadline_ms(&self) -> Option<u64> {
        self.judge.next_deadline_ms()
    }

    /// Hands a job to the sink, keeping the watchdog fed while the queue is full.
    fn send(&mut self, job: Job) -> anyhow::Result<u32> {
        let service = &mut self.service;
        Ok(self.sink.send(job, || service.tick(false))?)
    }

    /// The sink's commits so far and the largest batch one held.
    pub(super) fn sink_totals(&self) -> (u64, usize) {
        self.sink.totals()
    }

    /// Files the sink has moved out of the drop folder since the last call.
    pub(super) fn finished(&mut self) -> Vec<PathBuf> {
        let state = self.sink.take_state();
        self.stats.faults += state.faults;
        if let (Some(f), Some(d)) = (&state.fault, self.display.as_mut()) {
            d.fault(f);
        }
        if let Some(f) = &state.fault {
            self.service.set_status(format!("FAULT: {f}"));
        }
        for p in &state.finished {
            self.in_sink.remove(p);
        }
        state.finished
    }

    /// Forgets the series state (after a FAULT: the journal is the truth, replayed on next sight),
    /// once the sink has committed everything sent before.
    pub(super) fn forget(&mut self) -> anyhow::Result<()> {
        let service = &mut self.service;
        self.sink.flush(|| service.tick(false))?;
        self.judge.forget();
        self.known.clear();
        self.alerted_before.clear();
        Ok(())
    }

    /// One file from the drop folder, arrived (complete) at `arrival`: handed to the sink for
    /// `done/` or `rejected/`, or an error (a FAULT: the file stays and is retried).
    /// `read_us`: how long reading the file took (part of the decode stage).
    pub(super) fn file(
        &mut self,
        path: &Path,
        bytes: &Arc<Vec<u8>>,
        read_us: u32,
        series: SeriesId,
        arrival: Instant,
    ) -> anyhow::Result<()> {
        self.stats.files += 1;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        // Intended use, from the header alone: a skipped file's pixels are never decoded.
        let screen = self.gate.screen(bytes, path);
        if let Screen::Skip { header, reasons, patient } = &screen {
            use sha2::Digest;
            let sha: [u8; 32] = sha2::Sha256::digest(bytes.as_slice()).into();
            return self.not_analysed(path, sha, header.as_ref(), &series, *patient, reasons);
        }
        let arrived = self.pipeline.arrive(bytes, path, series);
        let sha = arrived.sha256;
        let in_sink = self.in_sink.values().any(|s| *s == sha);
        let slices = match &arrived.slices {
            Ok(s) => s,
            Err(_) if in_sink || self.journal.seen(&sha, 0)? => return self.duplicate(path, &name, &sha),
            Err(e) => return self.reject(path, Some(sha), &e.rejection()),
        };
        // Frames already committed (the same content analysed before, or this file's first
        // frames before a FAULT or a kill) are not analysed again; the rest are.
        let mut todo = Vec::with_capacity(slices.len());
        for (i, s) in slices.iter().enumerate() {
            if !in_sink && !self.journal.seen(&sha, s.frame)? {
                todo.push(i);
            }
        }
        if todo.is_empty() {
            return self.duplicate(path, &name, &sha);
        }
        if let Screen::Analyse { header, image_test: true, patient } = &screen {
            if let Some(why) = slices.first().and_then(|s| self.gate.image_test(header.as_ref(), s)) {
                let series = slices[0].series.clone();
                return self.not_analysed(path, sha, header.as_ref(), &series, *patient, &[why]);
            }
        }
        let patient = matches!(screen, Screen::Analyse { patient: true, .. });
        let decode_us = arrived.decode_us.saturating_add(read_us);
        for i in todo {
            let slice = &slices[i];
            self.service.tick(false);
            if let Err(e) = self.pipeline.run_arrived(&arrived, i, &mut self.scores) {
                if e.is_input() {
                    return self.reject(path, Some(sha), &Rejection::new(RejectCode::CannotPreprocess, e.to_string()));
                }
                // The engine's fault, not the file's: FAULT, the file stays and is retried.
                return Err(anyhow::Error::new(e).context("engine fault"));
            }
            self.gate.note(&slice.series.0, patient, &[]);
            self.record(slice, &name, sha, decode_us, arrival)?;
        }
        self.in_sink.insert(path.to_path_buf(), sha);
        self.send(Job::Done(path.to_path_buf()))?;
        Ok(())
    }

    /// One slice from the capture card: analysed and recorded like a file's.
    pub(super) fn capture(&mut self, slice: &Slice, arrival: Instant) -> anyhow::Result<()> {
        let (name, sha) = super::intake::capture_identity(slice);
        if self.journal.seen(&sha, 0)? {
            self.stats.duplicates += 1;
            return Ok(());
        }
        if let Err(e) = self.pipeline.run(slice, &mut self.scores) {
            if e.is_input() {
                log::warn!("capture slice {name}: {e}");
                return Ok(());
            }
            return Err(anyhow::Error::new(e).context("engine fault"));
        }
        let patient = self.gate.rules().raster_input == crate::eligibility::RasterInput::Patient;
        self.gate.note(&slice.series.0, patient, &[]);
        self.record(slice, &name, sha, 0, arrival)
    }

    /// A file that is not what the models are meant for: its slice and series recorded with the
    /// reasons (`not-analysed`) through the sink, the display told, the file moved to `done/`.
    fn not_analysed(
        &mut self,
        path: &Path,
        sha: [u8; 32],
        header: Option<&crate::eligibility::SliceHeader>,
        folder_series: &SeriesId,
        patient: bool,
        reasons: &[crate::eligibility::Reason],
    ) -> anyhow::Result<()> {
        self.stats.not_analysed += 1;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let series = header.and_then(|h| h.series_uid.clone()).unwrap_or_else(|| folder_series.0.clone());
        self.restore(&series)?;
        let (short, long) = {
            let u = self.gate.note(&series, patient, reasons);
            (u.short(), reasons.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("; "))
        };
        let now = unix_ms();
        let row = match self.judge.summary(&series) {
            Some(s) => self.series_row(&series, &s),
            None => {
                // Rows sent earlier may still be in the sink's queue: count from the journal
                // after a flush, so the series row's slice count is right.
                let service = &mut self.service;
                self.sink.flush(|| service.tick(false))?;
                let first = self.journal.series(&series)?.map_or(now, |r| r.first_seen_unix_ms);
                let mut row = SeriesRow {
                    series: series.clone(),
                    slices: self.journal.skipped_slices(&series)? + 1,
                    suspicious_slices: 0,
                    max_p: 0.0,
                    boxes: 0,
                    verdict: crate::verdict::SeriesVerdict::Open,
                    first_seen_unix_ms: first,
                    last_seen_unix_ms: now,
                    closed_unix_ms: None,
                    alerted: false,
                    reasons: None,
                };
                self.gate.amend(&mut row);
                row
            }
        };
        let skipped = SkippedRow {
            source_file: name.clone(),
            sha256: sha,
            frame: 0,
            series: series.clone(),
            reasons: long.clone(),
            created_unix_ms: now,
        };
        log::info!("{name}: not analysed (series {series}: {short}): {long}");
        if let Some(d) = self.display.as_mut() {
            d.skipped(&series, &short);
        }
        self.in_sink.insert(path.to_path_buf(), sha);
        self.send(Job::Skipped { slice: Box::new(skipped), series: Box::new(row) })?;
        self.send(Job::Done(path.to_path_buf()))?;
        Ok(())
    }

    fn duplicate(&mut self, path: &Path, name: &str, sha: &[u8; 32]) -> anyhow::Result<()> {
        self.stats.duplicates += 1;
        log::info!("{name}: same content as a file already analysed (sha256 {}); not analysed again", hex(sha));
        self.in_sink.insert(path.to_path_buf(), *sha);
        self.send(Job::Done(path.to_path_buf()))?;
        Ok(())
    }

    pub(super) fn reject(&mut self, path: &Path, sha: Option<[u8; 32]>, why: &Rejection) -> anyhow::Result<()> {
        self.stats.rejected += 1;
        log::warn!("rejected ({}): {}", why.code, why.reason);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let row = RejectedRow {
            source_file: name,
            sha256: sha,
            code: why.code.as_str().to_string(),
            reason: why.reason.clone(),
            created_unix_ms: unix_ms(),
        };
        self.send(Job::Rejected { path: path.to_path_buf(), row: Box::new(row) })?;
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
                // The journal's `instance` column holds the slice's order (`Slice::order`).
                instance: r.record.instance.unwrap_or(r.record.frame as i32 + 1),
                suspicious: r.record.suspicious,
                p: r.record.p,
                boxes: r.record.boxes.len() as u32,
                max_confidence: r.record.boxes.iter().map(|b| b[4]).fold(0.0, f32::max),
            };
            // Events of the replay were already acted on before the restart.
            self.judge.replay(series, obs, now);
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
        let now = self.now_ms();
        let judged = self.judge.judge(slice, self.scores.p, &self.scores.detections, now);
        let (fs, verdict, order) = (judged.scores, judged.verdict, judged.order);
        let verdict_us = us_since(t_verdict);
        let total_us = us_since(arrival);
        let summary = self.judge.summary(&series);
        let det: Vec<crate::postprocess::Detection> = self.scores.detections.boxes.iter().copied().collect();
        let record = Box::new(SliceRecord {
            source_file: name.to_string(),
            sha256: sha,
            frame: slice.frame,
            series: series.clone(),
            instance: Some(order),
            p: fs.p,
            boxes: det.iter().map(|d| [d.bbox.x0, d.bbox.y0, d.bbox.x1, d.bbox.y1, d.confidence]).collect(),
            suspicious: verdict.suspicious,
            latency: self.scores.times.with(decode_us, verdict_us),
            classifier_sha256: self.models.classifier.model().sha256.clone(),
            detector_sha256: self.models.detector.model().sha256.clone(),
            created_unix_ms: unix_ms(),
        });
        self.observe_budget(total_us);
        let (budget_ms, slow) = (self.budget.budget_ms(), self.budget.is_slow());
        if let (Some(d), Some(s)) = (self.display.as_mut(), &summary) {
            d.slice(SliceUpdate {
                series: &series,
                slice: order.max(0) as u32,
                slices: s.slices,
                max_p: s.max_p,
                boxes: s.boxes,
                latency_ms: total_us / 1000,
                budget_ms: Some(budget_ms),
                slow,
            });
            if self.gate.is_demo(&series) {
                d.demo_model();
            }
        }
        let overlay = verdict.suspicious.then(|| {
            let pre = self.models.classifier.preprocess();
            Box::new(Overlay {
                slice: slice.clone(),
                name: name.to_string(),
                window: crate::preprocess::HuWindow { center_hu: pre.window_center_hu, width_hu: pre.window_width_hu },
                boxes: det,
            })
        });
        let series_row = summary.map(|s| self.series_row(&series, &s));
        // The row's `store_us` is filled in by the sink: how long it waited for its commit.
        self.send(Job::Slice { record, series: series_row.map(Box::new), overlay, sent: Instant::now() })?;
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
        log::debug!(
            "{name} frame {}: P {:.3}, {} box(es), suspicious {}",
            slice.frame,
            fs.p,
            fs.boxes,
            verdict.suspicious
        );
        for e in judged.events {
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

    fn series_row(&self, series: &str, s: &SeriesSummary) -> SeriesRow {
        let mut row = SeriesRow::from_summary(series, s, |ms| self.to_unix(ms));
        self.gate.amend(&mut row);
        row
    }

    /// Closes the series quiet for the configured time.
    pub(super) fn close_quiet(&mut self) -> anyhow::Result<()> {
        for e in self.judge.close_quiet(self.now_ms()) {
            self.on_event(e)?;
        }
        Ok(())
    }

    fn on_event(&mut self, e: SeriesEvent) -> anyhow::Result<()> {
        match e {
            SeriesEvent::Positive { series, summary } => {
                // The alert first (see "Alert timing"), then its record.
                if self.gate.is_demo(&series) {
                    log::warn!(
                        "series {series}: the series rule was met ({} suspicious of {} slices), but the models are demo \
                         models (trained on synthetic phantoms) and this is a patient scan: no alert (verdict demo-model)",
                        summary.suspicious_slices,
                        summary.slices
                    );
                } else if self.alerted_before.contains(&series) {
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
                let row = self.series_row(&series, &summary);
                self.send(Job::Series(row))?;
            }
            SeriesEvent::Closed { series, summary, reason } => {
                let row = self.series_row(&series, &summary);
                let verdict = row.verdict;
                self.send(Job::Series(row))?;
                if self.outbox.is_some() {
                    // The results read the series' committed slices: wait for the sink once per
                    // closed series (at the quiet time's end, never inside a slice).
                    let service = &mut self.service;
                    self.sink.flush(|| service.tick(false))?;
                    let closed = self.to_unix(summary.closed_at_ms.unwrap_or(0));
                    if let Some(o) = &self.outbox {
                        o.series_final(&self.journal, &series, &summary, closed);
                    }
                }
                if let Some(d) = self.display.as_mut() {
                    d.idle();
                }
                log::info!(
                    "series {series}: closed {} ({reason:?}) — {} slices, {} suspicious, max P {:.3}",
                    verdict.as_str(),
                    summary.slices,
                    summary.suspicious_slices,
                    summary.max_p
                );
            }
            SeriesEvent::Reopened { series, summary } => {
                let row = self.series_row(&series, &summary);
                self.send(Job::Series(row))?;
                log::info!("series {series}: reopened by a late slice");
            }
        }
        Ok(())
    }
}
