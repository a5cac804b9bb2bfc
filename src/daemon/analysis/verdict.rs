//! The verdict side of the analysis stage: one analysed slice's scores through the
//! [`crate::verdict::Judge`] into its journal row, the display, the budget and, when the series
//! rule is met, the alert; series events (positive, closed, reopened) into series rows for the
//! sink; a series' state restored from the journal the first time this run sees it.
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

use super::{unix_ms, Analysis};
use crate::budget::{us_since, SlowChange};
use crate::daemon::sink::{Job, Overlay};
use crate::display::SliceUpdate;
use crate::slice::Slice;
use crate::store::journal::{SeriesRow, SliceRecord};
use crate::verdict::series::{SeriesEvent, SeriesSummary, SliceObservation};
use std::time::Instant;

impl Analysis {
    /// Restores a series' state from the journal the first time this run sees it, so a restart
    /// neither forgets its slices nor alerts twice.
    pub(super) fn restore(&mut self, series: &str) -> anyhow::Result<()> {
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

    pub(super) fn record(
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

    pub(super) fn series_row(&self, series: &str, s: &SeriesSummary) -> SeriesRow {
        let mut row = SeriesRow::from_summary(series, s, |ms| self.to_unix(ms));
        self.gate.amend(&mut row);
        row
    }

    /// Closes the series quiet for the configured time: analysed ones through the judge, and
    /// those none of whose slices was analysed (the judge never saw them).
    pub(in crate::daemon) fn close_quiet(&mut self) -> anyhow::Result<()> {
        let now = self.now_ms();
        for e in self.judge.close_quiet(now) {
            self.on_event(e)?;
        }
        let quiet = self.judge.quiet_ms();
        let due: Vec<String> = self
            .not_analysed_open
            .iter()
            .filter(|(_, &last)| now.saturating_sub(last) >= quiet)
            .map(|(s, _)| s.clone())
            .collect();
        for series in due {
            self.close_not_analysed(&series)?;
        }
        Ok(())
    }

    /// Closes a series none of whose slices was analysed: its journal row gets its closing time
    /// and, with `[dicom.send] send_not_analysed`, the PACS a result saying it was not analysed
    /// and why. A series that has had an analysed slice since is the judge's to close.
    pub(super) fn close_not_analysed(&mut self, series: &str) -> anyhow::Result<()> {
        self.not_analysed_open.remove(series);
        if self.judge.summary(series).is_some() {
            return Ok(());
        }
        // Its skipped rows may still be in the sink's queue.
        let service = &mut self.service;
        self.sink.flush(|| service.tick(false))?;
        let Some(mut row) = self.journal.series(series)? else { return Ok(()) };
        if row.verdict != crate::verdict::SeriesVerdict::NotAnalysed {
            return Ok(());
        }
        let closed = unix_ms();
        row.closed_unix_ms = Some(closed);
        self.send(Job::Series(row.clone()))?;
        log::info!(
            "series {series}: closed not-analysed — {} slice(s), none analysed: {}",
            row.slices,
            row.reasons.as_deref().unwrap_or("")
        );
        if let Some(o) = &self.outbox {
            o.series_final(&self.journal, &row, closed);
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
                self.send(Job::Series(row.clone()))?;
                if self.outbox.is_some() {
                    // The results read the series' committed slices: wait for the sink once per
                    // closed series (at the quiet time's end, never inside a slice).
                    let service = &mut self.service;
                    self.sink.flush(|| service.tick(false))?;
                    let closed = self.to_unix(summary.closed_at_ms.unwrap_or(0));
                    if let Some(o) = &self.outbox {
                        o.series_final(&self.journal, &row, closed);
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
