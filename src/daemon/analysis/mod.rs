//! The analysis stage, on the daemon's inference thread: a dropped file's bytes (or a capture-card
//! slice) through decode, the pipeline and the judge ([`crate::verdict::Judge`]), into jobs for
//! the sink ([`super::sink`]). It never waits on a disk write: every write is a job for the sink;
//! it reads the journal on its own connection (duplicates; a series' slices when it first sees
//! one after a restart or a FAULT). Updates the display and the service status. This file decides
//! what becomes of an input (analysed, not analysed, duplicate, rejected); [`verdict`] turns one
//! analysed slice's scores into its verdict, the alert and the sink's jobs.
//!
//! ## Failures
//!
//! An input the daemon cannot analyse is rejected with a reason code ([`crate::failure`]); an
//! engine or head failure while running a slice is returned as an error: the caller shows FAULT
//! and retries the file, whose frames already committed are then skipped.

mod verdict;

use super::sink::{Job, Sink};
use super::RunStats;
use crate::budget::BudgetTracker;
use crate::display::DisplayHandle;
use crate::eligibility::{Gate, Screen};
use crate::failure::{RejectCode, Rejection};
use crate::pipeline::{ModelSet, Pipeline, SliceScores};
use crate::service::Service;
use crate::slice::{SeriesId, Slice};
use crate::store::journal::{hex, Journal, RejectedRow, SeriesRow, SkippedRow};
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
    /// Series none of whose slices was analysed, not yet closed: when their last slice came
    /// (ms on this run's clock). Closed after the quiet time like the judge's series.
    not_analysed_open: HashMap<String, u64>,
}

/// Not-analysed series waiting to close at once; beyond, the least recently seen closes now.
const MAX_NOT_ANALYSED_OPEN: usize = 256;

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
            not_analysed_open: HashMap::new(),
        }
    }

    pub(super) fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn to_unix(&self, ms: u64) -> i64 {
        self.start_unix_ms + ms as i64
    }

    pub(super) fn next_deadline_ms(&self) -> Option<u64> {
        let quiet = self.judge.quiet_ms();
        let skipped = self.not_analysed_open.values().map(|&last| last.saturating_add(quiet)).min();
        match (self.judge.next_deadline_ms(), skipped) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
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
        if self.judge.summary(&series).is_none() {
            if !self.not_analysed_open.contains_key(&series) && self.not_analysed_open.len() >= MAX_NOT_ANALYSED_OPEN {
                let oldest = self.not_analysed_open.iter().min_by_key(|(_, &t)| t).map(|(s, _)| s.clone());
                if let Some(oldest) = oldest {
                    self.close_not_analysed(&oldest)?;
                }
            }
            let now_ms = self.now_ms();
            self.not_analysed_open.insert(series.clone(), now_ms);
        }
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
}
