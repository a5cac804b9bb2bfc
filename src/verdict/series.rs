//! Per-series aggregation: folds the suspicious flags of a series' slices into one verdict and
//! says when to alert. Pure computation on values handed in; touches no clock, file or device.
//!
//! In: for each slice, its series id, its place in the series (an integer instance number) and its
//! fused flag and scores ([`SliceObservation`]), and the caller's monotonic time in milliseconds.
//! Out: [`SeriesEvent`]s — `Positive` (alert, exactly once per series), `Closed`, `Reopened` — and
//! a [`SeriesSummary`] per series for the journal.
//!
//! ## The rule, and why
//!
//! A series turns POSITIVE as soon as at least `suspicious_min` (k) of its slices are suspicious
//! within some window of `window_slices` (n) adjacent instance numbers. Defaults k = 2, n = 5: a
//! lone false positive slice (a streak, a mixing artefact, one noisy classifier output) does not
//! alarm, while a real embolus runs along its artery across several adjacent slices (the smallest
//! segmental emboli, 3-5 mm at 1-2 mm slice thickness, still cross 2-4 slices), so two flags
//! within five slices catch it without waiting for the end of the series.
//!
//! "Adjacent" is by instance number, not by arrival: the window covers instances s..s+n-1. The
//! rule is therefore monotone (a new slice can only add suspicious slices to a window) and the
//! verdict does not depend on the order in which slices arrive. Missing instances shrink a
//! window's slice count rather than stretching it. The caller supplies the instance number: the
//! DICOM InstanceNumber; for a frame of a multi-frame file, or a file without InstanceNumber, an
//! integer derived from the slice position ([`order_from_position`]); for raster files, the number
//! in the file name. Slices with the same instance number are merged (flagged if any was).
//!
//! ## Closing
//!
//! A series with no new slice for `quiet_ms` is closed by [`SeriesTracker::close_quiet`]: NEGATIVE
//! unless it is already POSITIVE. Default 20 s: DICOM routers and PACS forwarders flush a series
//! after 5 to 60 s of quiet, and a CT scanner sends a whole CTPA series within seconds, so 20 s
//! covers the usual gaps without keeping the console waiting long for a negative verdict. A late
//! slice reopens a closed series (a `Reopened` event); a positive series stays positive and never
//! alerts twice.
//!
//! ## Bounds
//!
//! At most `max_open_series` series are tracked with their slice lists (default 64, far more than
//! the scanners one box serves). A new series takes a free slot, else the slot of the series that
//! closed longest ago, else the slot of the open series idle longest, which is closed first with a
//! `Closed { reason: Evicted }` event. Each slot holds at most `max_slices_per_series` slice entries
//! (default 4096; a thick-slab CTPA has 200-800) in storage allocated once at construction; slices
//! beyond are counted and still take part in the rule as they arrive, but are not stored. Series
//! that left their slot are remembered by id, verdict and counts in a history of `closed_history`
//! entries (default 1024), so a very late slice still finds its series' verdict (and a positive
//! series still does not alert twice); its earlier slice list is gone, so the window rule then
//! starts again from the late slices.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::VerdictConfigError;

/// The largest `window_slices` allowed: it bounds the work of one rule check to n * n steps.
pub const MAX_WINDOW_SLICES: u16 = 64;
/// The quiet time's range, milliseconds: the one set of limits, which the config file's
/// `[verdict] quiet_s` is checked against too (0.5 s for tests and replays; an hour at most,
/// beyond any router's flush delay).
pub const QUIET_MS_MIN: u64 = 500;
pub const QUIET_MS_MAX: u64 = 3_600_000;

/// Series aggregation settings (the `[verdict]` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct SeriesConfig {
    /// k: suspicious slices needed within one window.
    pub suspicious_min: u16,
    /// n: the window, in adjacent instance numbers.
    pub window_slices: u16,
    /// A series with no new slice for this long is closed.
    pub quiet_ms: u64,
    /// Series tracked at once with their slice lists.
    pub max_open_series: usize,
    /// Slice entries stored per series; more are counted, not stored.
    pub max_slices_per_series: usize,
    /// Series remembered by id and verdict after they left their slot.
    pub closed_history: usize,
}

impl Default for SeriesConfig {
    fn default() -> Self {
        SeriesConfig {
            suspicious_min: 2,
            window_slices: 5,
            quiet_ms: 20_000,
            max_open_series: 64,
            max_slices_per_series: 4096,
            closed_history: 1024,
        }
    }
}

impl SeriesConfig {
    /// Checks every setting is in its range. Call once when the config is resolved.
    pub fn validate(&self) -> Result<(), VerdictConfigError> {
        fn range<T>(key: &'static str, v: T, lo: T, hi: T) -> Result<(), VerdictConfigError>
        where
            T: PartialOrd + std::fmt::Display,
        {
            if v < lo || v > hi {
                return Err(VerdictConfigError::OutOfRange {
                    key,
                    found: v.to_string(),
                    allowed: format!("it must be between {lo} and {hi}"),
                });
            }
            Ok(())
        }
        range("suspicious_min", self.suspicious_min, 1, MAX_WINDOW_SLICES)?;
        range("window_slices", self.window_slices, 1, MAX_WINDOW_SLICES)?;
        range("quiet_ms", self.quiet_ms, QUIET_MS_MIN, QUIET_MS_MAX)?;
        range("max_open_series", self.max_open_series, 1, 4096)?;
        range("max_slices_per_series", self.max_slices_per_series, 1, 65_536)?;
        range("closed_history", self.closed_history, 0, 100_000)?;
        if self.suspicious_min > self.window_slices {
            return Err(VerdictConfigError::WindowTooSmall { k: self.suspicious_min, n: self.window_slices });
        }
        Ok(())
    }
}

/// Maps a slice position along the patient axis (ImagePositionPatient z, or SliceLocation, in mm)
/// to an integer place in the series, for slices without an InstanceNumber. `spacing_mm` is the
/// distance between slice centres (SpacingBetweenSlices, else SliceThickness). `None` when the
/// values are not finite, the spacing is not positive, or the result does not fit an `i32`.
pub fn order_from_position(z_mm: f64, spacing_mm: f64) -> Option<i32> {
    if !z_mm.is_finite() || !spacing_mm.is_finite() || spacing_mm <= 0.0 {
        return None;
    }
    let order = (z_mm / spacing_mm).round();
    if order < f64::from(i32::MIN) || order > f64::from(i32::MAX) {
        return None;
    }
    Some(order as i32)
}

/// One slice's fused answer, as the tracker needs it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SliceObservation {
    /// Place in the series (see the module docs).
    pub instance: i32,
    pub suspicious: bool,
    /// Classifier P(positive).
    pub p: f32,
    /// Detector boxes kept for this slice.
    pub boxes: u32,
    /// Best detector confidence on this slice; 0 without boxes.
    pub max_confidence: f32,
}

/// Where a series stands. Stored in the journal as `open`, `positive`, `negative`, and, from the
/// intended-use rules (`crate::eligibility`), `not-analysed` and `demo-model`, which the tracker
/// never sets and which never alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeriesVerdict {
    /// Still receiving slices, rule not met yet.
    Open,
    /// The rule was met (open or closed).
    Positive,
    /// Closed without the rule being met.
    Negative,
    /// No slice of the series is what the models are meant for (reasons in the journal).
    NotAnalysed,
    /// A patient series analysed with demo models (trained on synthetic phantoms): never an alert.
    DemoModel,
}

impl SeriesVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            SeriesVerdict::Open => "open",
            SeriesVerdict::Positive => "positive",
            SeriesVerdict::Negative => "negative",
            SeriesVerdict::NotAnalysed => "not-analysed",
            SeriesVerdict::DemoModel => "demo-model",
        }
    }

    pub fn parse(s: &str) -> Option<SeriesVerdict> {
        match s {
            "open" => Some(SeriesVerdict::Open),
            "positive" => Some(SeriesVerdict::Positive),
            "negative" => Some(SeriesVerdict::Negative),
            "not-analysed" => Some(SeriesVerdict::NotAnalysed),
            "demo-model" => Some(SeriesVerdict::DemoModel),
            _ => None,
        }
    }
}

/// Counts and state of one series, in the tracker's monotonic milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesSummary {
    pub verdict: SeriesVerdict,
    /// Slices observed, including duplicates and those beyond the storage bound.
    pub slices: u32,
    pub suspicious_slices: u32,
    /// Observations of an instance number already stored (merged into it).
    pub duplicate_slices: u32,
    /// Slices beyond `max_slices_per_series`: counted, not stored.
    pub overflow_slices: u32,
    /// Highest classifier probability seen (NaN ignored).
    pub max_p: f32,
    /// Detector boxes over all slices.
    pub boxes: u32,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    /// When it was last closed; `None` while open.
    pub closed_at_ms: Option<u64>,
    /// The `Positive` event was emitted for this series.
    pub alerted: bool,
}

impl SeriesSummary {
    fn new(now_ms: u64) -> Self {
        SeriesSummary {
            verdict: SeriesVerdict::Open,
            slices: 0,
            suspicious_slices: 0,
            duplicate_slices: 0,
            overflow_slices: 0,
            max_p: 0.0,
            boxes: 0,
            first_seen_ms: now_ms,
            last_seen_ms: now_ms,
            closed_at_ms: None,
            alerted: false,
        }
    }

    pub fn is_open(&self) -> bool {
        self.closed_at_ms.is_none()
    }
}

/// Why a series was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CloseReason {
    /// No slice for `quiet_ms`.
    Quiet,
    /// Its slot was needed for a new series while all were open (it had been idle longest).
    Evicted,
}

/// Something the caller must act on: alert, record, log.
#[derive(Debug, Clone, PartialEq)]
pub enum SeriesEvent {
    /// The rule was met: alert now. Emitted once per series, ever (within the history bound).
    Positive { series: String, summary: SeriesSummary },
    /// The series was closed; `summary.verdict` is `Positive` or `Negative`.
    Closed { series: String, reason: CloseReason, summary: SeriesSummary },
    /// A slice arrived for a closed series, which is open again (keeping a positive verdict).
    Reopened { series: String, summary: SeriesSummary },
}

/// At most three events follow one slice: another series evicted, this one reopened, this one positive.
pub type ObserveEvents = heapless::Vec<SeriesEvent, 3>;

/// One stored slice of a tracked series (instances are unique within a series; a repeated
/// instance is merged into its entry).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackedSlice {
    pub instance: i32,
    /// Highest classifier probability seen for this instance.
    pub p: f32,
    pub max_confidence: f32,
    /// Detector boxes (saturating at 65535).
    pub boxes: u16,
    pub suspicious: bool,
}

#[derive(Debug)]
struct Slot {
    in_use: bool,
    series: String,
    summary: SeriesSummary,
    /// Sorted by instance, unique instances; capacity fixed at construction.
    slices: Vec<TrackedSlice>,
}

#[derive(Debug)]
struct ClosedRecord {
    series: String,
    summary: SeriesSummary,
}

/// Tracks every series in flight. Owned by the sink thread; not shared.
#[derive(Debug)]
pub struct SeriesTracker {
    config: SeriesConfig,
    slots: Vec<Slot>,
    history: VecDeque<ClosedRecord>,
}

impl SeriesTracker {
    /// Allocates all slice storage up front (`max_open_series * max_slices_per_series` entries of
    /// 16 bytes: 4 MiB with the defaults). The config should have passed [`SeriesConfig::validate`];
    /// zero bounds are raised to one so that the tracker still works.
    pub fn new(config: SeriesConfig) -> Self {
        let mut config = config;
        config.max_open_series = config.max_open_series.max(1);
        config.max_slices_per_series = config.max_slices_per_series.max(1);
        config.window_slices = config.window_slices.clamp(1, MAX_WINDOW_SLICES);
        config.suspicious_min = config.suspicious_min.max(1);
        let slots = (0..config.max_open_series)
            .map(|_| Slot {
                in_use: false,
                series: String::with_capacity(64),
                summary: SeriesSummary::new(0),
                slices: Vec::with_capacity(config.max_slices_per_series),
            })
            .collect();
        // The history is bounded by `closed_history` (oldest forgotten first); only its first
        // entries are reserved up front, as series leave their slots rarely.
        let history = VecDeque::with_capacity(config.closed_history.min(1024));
        SeriesTracker { config, slots, history }
    }

    pub fn config(&self) -> &SeriesConfig {
        &self.config
    }

    /// Records one slice of `series` at time `now_ms` and returns what the caller must do.
    pub fn observe(&mut self, series: &str, slice: SliceObservation, now_ms: u64) -> ObserveEvents {
        let mut events = ObserveEvents::new();
        let idx = match self.slots.iter().position(|s| s.in_use && s.series == series) {
            Some(i) => {
                let summary = &mut self.slots[i].summary;
                if !summary.is_open() {
                    summary.closed_at_ms = None;
                    if summary.verdict == SeriesVerdict::Negative {
                        summary.verdict = SeriesVerdict::Open;
                    }
                    push(&mut events, SeriesEvent::Reopened { series: series.to_owned(), summary: *summary });
                }
                i
            }
            None => {
                let i = self.free_slot(now_ms, &mut events);
                let slot = &mut self.slots[i];
                slot.in_use = true;
                slot.series.clear();
                slot.series.push_str(series);
                slot.slices.clear();
                slot.summary = SeriesSummary::new(now_ms);
                if let Some(h) = self.history.iter().position(|r| r.series == series) {
                    if let Some(record) = self.history.remove(h) {
                        let mut summary = record.summary;
                        summary.closed_at_ms = None;
                        if summary.verdict == SeriesVerdict::Negative {
                            summary.verdict = SeriesVerdict::Open;
                        }
                        slot.summary = summary;
                        push(&mut events, SeriesEvent::Reopened { series: series.to_owned(), summary });
                    }
                }
                i
            }
        };

        let (k, n) = (self.config.suspicious_min, self.config.window_slices);
        let cap = self.config.max_slices_per_series;
        let slot = &mut self.slots[idx];
        let summary = &mut slot.summary;
        summary.slices = summary.slices.saturating_add(1);
        summary.suspicious_slices = summary.suspicious_slices.saturating_add(u32::from(slice.suspicious));
        summary.max_p = summary.max_p.max(slice.p);
        summary.boxes = summary.boxes.saturating_add(slice.boxes);
        summary.last_seen_ms = summary.last_seen_ms.max(now_ms);

        let entry = TrackedSlice {
            instance: slice.instance,
            p: slice.p,
            max_confidence: slice.max_confidence,
            boxes: u16::try_from(slice.boxes).unwrap_or(u16::MAX),
            suspicious: slice.suspicious,
        };
        let stored = match slot.slices.binary_search_by_key(&slice.instance, |e| e.instance) {
            Ok(at) => {
                let e = &mut slot.slices[at];
                e.suspicious |= entry.suspicious;
                e.p = e.p.max(entry.p);
                e.max_confidence = e.max_confidence.max(entry.max_confidence);
                e.boxes = e.boxes.max(entry.boxes);
                summary.duplicate_slices = summary.duplicate_slices.saturating_add(1);
                true
            }
            Err(at) if slot.slices.len() < cap => {
                // Within the capacity reserved at construction: no reallocation.
                slot.slices.insert(at, entry);
                true
            }
            Err(_) => {
                summary.overflow_slices = summary.overflow_slices.saturating_add(1);
                false
            }
        };

        if slice.suspicious && !summary.alerted && window_met(&slot.slices, slice.instance, stored, k, n) {
            summary.alerted = true;
            summary.verdict = SeriesVerdict::Positive;
            push(&mut events, SeriesEvent::Positive { series: series.to_owned(), summary: *summary });
        }
        // The events above carry the summary at the moment they happened; refresh the reopen
        // event so that every event of this call shows the counts including this slice.
        let latest = *summary;
        for ev in events.iter_mut() {
            if let SeriesEvent::Reopened { series: s, summary: sum } = ev {
                if s.as_str() == series {
                    *sum = latest;
                }
            }
        }
        events
    }

    /// Closes every open series that has had no slice for `quiet_ms` at `now_ms`.
    pub fn close_quiet(&mut self, now_ms: u64) -> Vec<SeriesEvent> {
        let quiet = self.config.quiet_ms;
        let mut events = Vec::new();
        for slot in self.slots.iter_mut().filter(|s| s.in_use && s.summary.is_open()) {
            if now_ms.saturating_sub(slot.summary.last_seen_ms) >= quiet {
                close(&mut slot.summary, now_ms);
                events.push(SeriesEvent::Closed {
                    series: slot.series.clone(),
                    reason: CloseReason::Quiet,
                    summary: slot.summary,
                });
            }
        }
        events
    }

    /// When the next open series falls quiet (for the caller's wait timeout); `None` if none is open.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.slots
            .iter()
            .filter(|s| s.in_use && s.summary.is_open())
            .map(|s| s.summary.last_seen_ms.saturating_add(self.config.quiet_ms))
            .min()
    }

    /// The current summary of `series`, whether in a slot or only in the closed history.
    pub fn summary(&self, series: &str) -> Option<SeriesSummary> {
        self.slots
            .iter()
            .find(|s| s.in_use && s.series == series)
            .map(|s| s.summary)
            .or_else(|| self.history.iter().find(|r| r.series == series).map(|r| r.summary))
    }

    /// Number of series currently open.
    pub fn open_series(&self) -> usize {
        self.slots.iter().filter(|s| s.in_use && s.summary.is_open()).count()
    }

    /// The stored slices of `series` in instance order (empty when it holds no slot): for
    /// review and tests.
    pub fn stored_slices(&self, series: &str) -> &[TrackedSlice] {
        self.slots.iter().find(|s| s.in_use && s.series == series).map_or(&[], |s| s.slices.as_slice())
    }

    /// Finds a slot for a new series: a free one, else the one closed longest ago (moved to the
    /// history), else the open one idle longest (closed as evicted, moved to the history).
    fn free_slot(&mut self, now_ms: u64, events: &mut ObserveEvents) -> usize {
        if let Some(i) = self.slots.iter().position(|s| !s.in_use) {
            return i;
        }
        let closed = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.summary.closed_at_ms.map(|at| (at, i)))
            .min()
            .map(|(_, i)| i);
        let i = match closed {
            Some(i) => i,
            None => {
                let i = self
                    .slots
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| s.summary.last_seen_ms)
                    .map(|(i, _)| i)
                    .unwrap_or(0);
                let slot = &mut self.slots[i];
                close(&mut slot.summary, now_ms);
                push(
                    events,
                    SeriesEvent::Closed {
                        series: slot.series.clone(),
                        reason: CloseReason::Evicted,
                        summary: slot.summary,
                    },
                );
                i
            }
        };
        let slot = &mut self.slots[i];
        slot.in_use = false;
        if self.config.closed_history > 0 {
            if self.history.len() >= self.config.closed_history {
                self.history.pop_front();
            }
            self.history.push_back(ClosedRecord { series: slot.series.clone(), summary: slot.summary });
        }
        i
    }
}

fn close(summary: &mut SeriesSummary, now_ms: u64) {
    summary.closed_at_ms = Some(now_ms);
    if summary.verdict == SeriesVerdict::Open {
        summary.verdict = SeriesVerdict::Negative;
    }
}

fn push(events: &mut ObserveEvents, event: SeriesEvent) {
    // One slice causes at most one eviction, one reopen and one positive: three fit.
    let pushed = events.push(event);
    debug_assert!(pushed.is_ok(), "more than three events from one slice");
}

/// Whether some window of `n` adjacent instance numbers containing `instance` holds at least `k`
/// suspicious slices: the stored ones (sorted, unique instances) plus the new one when it could
/// not be stored. Only windows containing the new slice can have changed, so only those are
/// checked: at most n windows of at most n entries.
fn window_met(stored_sorted: &[TrackedSlice], instance: i32, stored: bool, k: u16, n: u16) -> bool {
    let (k, n) = (usize::from(k), i64::from(n));
    let new = i64::from(instance);
    for start in (new - (n - 1))..=new {
        let end = start + n; // exclusive
        let from = stored_sorted.partition_point(|e| i64::from(e.instance) < start);
        let count =
            stored_sorted[from..].iter().take_while(|e| i64::from(e.instance) < end).filter(|e| e.suspicious).count()
                + usize::from(!stored);
        if count >= k {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(instance: i32, suspicious: bool) -> SliceObservation {
        SliceObservation {
            instance,
            suspicious,
            p: if suspicious { 0.9 } else { 0.1 },
            boxes: u32::from(suspicious),
            max_confidence: if suspicious { 0.8 } else { 0.0 },
        }
    }

    fn config(k: u16, n: u16) -> SeriesConfig {
        SeriesConfig {
            suspicious_min: k,
            window_slices: n,
            max_open_series: 4,
            max_slices_per_series: 512,
            closed_history: 16,
            ..SeriesConfig::default()
        }
    }

    fn positives(events: &[SeriesEvent]) -> usize {
        events.iter().filter(|e| matches!(e, SeriesEvent::Positive { .. })).count()
    }

    /// Feeds (instance, suspicious) at t = 0, 1, 2, ... and returns every event.
    fn feed(tracker: &mut SeriesTracker, series: &str, slices: &[(i32, bool)]) -> Vec<SeriesEvent> {
        let mut all = Vec::new();
        for (t, &(i, s)) in slices.iter().enumerate() {
            all.extend(tracker.observe(series, obs(i, s), t as u64));
        }
        all
    }

    /// The rule by brute force over the whole set: some window [s, s+n) with >= k suspicious.
    fn reference(slices: &[(i32, bool)], k: usize, n: i64) -> bool {
        let mut sus: Vec<i64> = slices.iter().filter(|(_, s)| *s).map(|(i, _)| i64::from(*i)).collect();
        sus.sort_unstable();
        sus.dedup();
        sus.iter().any(|&s| sus.iter().filter(|&&x| x >= s && x < s + n).count() >= k)
    }

    #[test]
    fn defaults_are_documented_values_and_valid() {
        let c = SeriesConfig::default();
        assert_eq!((c.suspicious_min, c.window_slices, c.quiet_ms), (2, 5, 20_000));
        assert_eq!((c.max_open_series, c.max_slices_per_series), (64, 4096));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn lone_suspicious_slice_does_not_alarm() {
        let mut t = SeriesTracker::new(config(2, 5));
        let slices: Vec<(i32, bool)> = (1..=100).map(|i| (i, i == 40)).collect();
        let ev = feed(&mut t, "s", &slices);
        assert_eq!(positives(&ev), 0);
        assert_eq!(t.summary("s").map(|s| s.verdict), Some(SeriesVerdict::Open));
        assert_eq!(t.summary("s").map(|s| s.suspicious_slices), Some(1));
    }

    #[test]
    fn turns_positive_at_the_slice_that_meets_the_rule() {
        let mut t = SeriesTracker::new(config(2, 5));
        assert!(t.observe("s", obs(10, true), 0).is_empty());
        assert!(t.observe("s", obs(11, false), 1).is_empty());
        let ev = t.observe("s", obs(14, true), 2);
        assert_eq!(ev.len(), 1);
        match &ev[0] {
            SeriesEvent::Positive { series, summary } => {
                assert_eq!(series, "s");
                assert_eq!(summary.verdict, SeriesVerdict::Positive);
                assert!(summary.alerted && summary.is_open());
                assert_eq!((summary.slices, summary.suspicious_slices, summary.boxes), (3, 2, 2));
            }
            other => panic!("expected Positive, got {other:?}"),
        }
    }

    #[test]
    fn window_edges() {
        // (k, n, slices, positive?)
        type Case<'a> = (u16, u16, &'a [(i32, bool)], bool);
        let cases: &[Case] = &[
            (2, 5, &[(1, true), (5, true)], true),  // exactly n apart-inclusive
            (2, 5, &[(1, true), (6, true)], false), // one too far
            (2, 5, &[(6, true), (1, true)], false), // same, reversed
            (3, 5, &[(1, true), (3, true), (5, true)], true),
            (3, 5, &[(1, true), (3, true), (6, true)], false),
            (3, 5, &[(1, true), (3, true), (6, true), (4, true)], true), // 3,4,6 in [2,6]
            (1, 1, &[(7, false), (8, true)], true),
            (2, 1, &[(8, true), (8, true)], false), // one instance sent twice is one slice
            (2, 2, &[(-1, true), (0, true)], true), // negative instance numbers
            (2, 2, &[(i32::MAX, true), (i32::MAX - 1, true)], true), // no overflow at the ends
            (2, 2, &[(i32::MIN, true), (i32::MIN + 1, true)], true),
            (2, 5, &[(i32::MIN, true), (i32::MAX, true)], false),
            (2, 5, &[(1, true), (2, false), (3, false), (4, false), (5, false), (6, true)], false),
            (5, 5, &[(1, true), (2, true), (3, true), (4, true), (5, true)], true),
            (2, 64, &[(1, true), (64, true)], true),
            (2, 64, &[(1, true), (65, true)], false),
        ];
        for &(k, n, slices, want) in cases {
            let mut t = SeriesTracker::new(config(k, n));
            let ev = feed(&mut t, "s", slices);
            assert_eq!(positives(&ev), usize::from(want), "k={k} n={n} {slices:?}");
            assert_eq!(reference(slices, usize::from(k), i64::from(n)), want, "reference k={k} n={n} {slices:?}");
        }
    }

    #[test]
    fn verdict_does_not_depend_on_arrival_order() {
        // A deterministic LCG so the permutations are reproducible.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        for round in 0..200 {
            let len = 5 + next() % 60;
            let k = 1 + (next() % 4) as u16;
            let n = k + (next() % 6) as u16;
            // Sparse flags so that both outcomes happen.
            let slices: Vec<(i32, bool)> = (0..len).map(|i| (i as i32 + 1, next() % 7 == 0)).collect();
            let want = reference(&slices, usize::from(k), i64::from(n));
            for _ in 0..5 {
                let mut perm = slices.clone();
                for i in (1..perm.len()).rev() {
                    perm.swap(i, next() % (i + 1));
                }
                let mut t = SeriesTracker::new(config(k, n));
                let ev = feed(&mut t, "s", &perm);
                assert_eq!(positives(&ev), usize::from(want), "round {round} k={k} n={n} {perm:?}");
                let s = t.summary("s").map(|s| (s.verdict, s.slices, s.suspicious_slices));
                let verdict = if want { SeriesVerdict::Positive } else { SeriesVerdict::Open };
                let sus = slices.iter().filter(|x| x.1).count() as u32;
                assert_eq!(s, Some((verdict, len as u32, sus)));
                let stored: Vec<i32> = t.stored_slices("s").iter().map(|e| e.instance).collect();
                assert_eq!(stored, (1..=len as i32).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn quiet_close_is_negative_or_stays_positive() {
        let mut t = SeriesTracker::new(config(2, 5));
        feed(&mut t, "neg", &[(1, false), (2, true)]); // last slice at t=1
        t.observe("pos", obs(1, true), 5_000);
        t.observe("pos", obs(2, true), 6_000);
        assert_eq!(t.next_deadline_ms(), Some(20_001));
        assert!(t.close_quiet(20_000).is_empty(), "19 999 ms of quiet is not enough");
        let ev = t.close_quiet(20_001);
        assert_eq!(ev.len(), 1);
        match &ev[0] {
            SeriesEvent::Closed { series, reason, summary } => {
                assert_eq!((series.as_str(), *reason), ("neg", CloseReason::Quiet));
                assert_eq!(summary.verdict, SeriesVerdict::Negative);
                assert_eq!(summary.closed_at_ms, Some(20_001));
            }
            other => panic!("expected Closed, got {other:?}"),
        }
        assert_eq!(t.next_deadline_ms(), Some(26_000));
        let ev = t.close_quiet(30_000);
        assert!(matches!(&ev[..], [SeriesEvent::Closed { summary, .. }] if summary.verdict == SeriesVerdict::Positive));
        assert!(t.close_quiet(90_000).is_empty(), "closing happens once");
        assert_eq!(t.next_deadline_ms(), None);
        assert_eq!(t.open_series(), 0);
    }

    #[test]
    fn late_slice_reopens_and_the_window_sees_earlier_slices() {
        let mut t = SeriesTracker::new(config(2, 5));
        feed(&mut t, "s", &[(10, true), (11, false)]);
        assert_eq!(t.close_quiet(60_000).len(), 1);
        assert_eq!(t.summary("s").map(|s| s.verdict), Some(SeriesVerdict::Negative));
        let ev = t.observe("s", obs(13, true), 61_000);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert!(matches!(&ev[0], SeriesEvent::Reopened { series, summary } if series == "s" && summary.slices == 3));
        assert!(matches!(&ev[1], SeriesEvent::Positive { .. }));
        assert_eq!(t.summary("s").map(|s| (s.verdict, s.is_open())), Some((SeriesVerdict::Positive, true)));
        assert_eq!(t.next_deadline_ms(), Some(81_000));
    }

    #[test]
    fn a_positive_series_never_alerts_twice() {
        let mut t = SeriesTracker::new(config(2, 5));
        let ev = feed(&mut t, "s", &[(1, true), (2, true), (3, true), (20, true), (21, true)]);
        assert_eq!(positives(&ev), 1);
        t.close_quiet(100_000);
        let ev = t.observe("s", obs(40, true), 100_001);
        assert!(
            matches!(&ev[..], [SeriesEvent::Reopened { summary, .. }] if summary.verdict == SeriesVerdict::Positive)
        );
        let ev = t.observe("s", obs(41, true), 100_002);
        assert!(ev.is_empty(), "{ev:?}");
        // Even after its slot was reused and it lives only in the history.
        t.close_quiet(200_000);
        for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
            t.observe(name, obs(1, false), 200_001 + i as u64);
        }
        assert!(t.stored_slices("s").is_empty(), "s left its slot");
        let ev: Vec<_> = [50, 51, 52].iter().flat_map(|&i| t.observe("s", obs(i, true), 200_100)).collect();
        assert_eq!(positives(&ev), 0, "{ev:?}");
        // All four slots were open: the idle-longest one (a) made room, then s came back.
        assert!(matches!(&ev[0], SeriesEvent::Closed { series, reason: CloseReason::Evicted, .. } if series == "a"));
        assert!(matches!(&ev[1], SeriesEvent::Reopened { series, summary } if series == "s" && summary.alerted));
    }

    #[test]
    fn full_tracker_reuses_closed_slots_then_evicts_the_oldest_idle() {
        let mut t = SeriesTracker::new(SeriesConfig { max_open_series: 2, ..config(2, 5) });
        t.observe("a", obs(1, true), 0);
        t.observe("b", obs(1, false), 10);
        t.observe("a", obs(2, false), 20); // a is now the more recently active
        let ev = t.observe("c", obs(1, false), 30);
        assert_eq!(ev.len(), 1);
        match &ev[0] {
            SeriesEvent::Closed { series, reason, summary } => {
                assert_eq!(
                    (series.as_str(), *reason, summary.verdict),
                    ("b", CloseReason::Evicted, SeriesVerdict::Negative)
                );
            }
            other => panic!("expected Closed, got {other:?}"),
        }
        assert_eq!(t.open_series(), 2);
        // A closed series' slot is taken before an open one is evicted.
        let ev = t.close_quiet(20_025); // a (last 20) closes, c (last 30) stays open
        assert_eq!(ev.len(), 1);
        assert!(t.observe("d", obs(1, false), 20_030).is_empty());
        assert_eq!(t.summary("a").map(|s| s.verdict), Some(SeriesVerdict::Negative), "remembered in history");
        assert_eq!(t.open_series(), 2);
        // b comes back: evicts c (idle longest), and reopens from the history.
        let ev = t.observe("b", obs(2, true), 20_040);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert!(matches!(&ev[0], SeriesEvent::Closed { series, .. } if series == "c"));
        assert!(matches!(&ev[1], SeriesEvent::Reopened { series, summary } if series == "b" && summary.slices == 2));
    }

    #[test]
    fn slices_beyond_the_bound_are_counted_not_stored_but_still_count_for_the_rule() {
        let mut t = SeriesTracker::new(SeriesConfig { max_slices_per_series: 4, ..config(2, 5) });
        let ev = feed(&mut t, "s", &[(1, false), (2, false), (3, false), (4, false), (5, false), (9, true)]);
        assert!(ev.is_empty());
        let s = t.summary("s");
        assert_eq!(s.map(|s| (s.slices, s.overflow_slices, s.suspicious_slices)), Some((6, 2, 1)));
        assert_eq!(t.stored_slices("s").len(), 4);
        // Another unstored suspicious slice: only the stored ones and the new one are known, so
        // 9 (unstored) and 10 (unstored) do not meet the rule — the bound's documented cost.
        assert!(t.observe("s", obs(10, true), 7).is_empty());
        // A stored suspicious instance within the window does.
        let ev = t.observe("s", obs(3, true), 8);
        assert_eq!(positives(&ev), 0, "instance 3 alone in its windows");
        let ev = t.observe("s", obs(4, true), 9);
        assert_eq!(positives(&ev), 1);
        assert_eq!(t.stored_slices("s").len(), 4, "storage never grows past the bound");
    }

    #[test]
    fn duplicate_instances_merge() {
        let mut t = SeriesTracker::new(config(2, 5));
        t.observe("s", obs(3, false), 0);
        t.observe("s", SliceObservation { p: 0.95, ..obs(3, true) }, 1);
        let stored = t.stored_slices("s");
        assert_eq!(stored.len(), 1);
        assert!(stored[0].suspicious && stored[0].p == 0.95);
        assert_eq!(t.summary("s").map(|s| (s.slices, s.duplicate_slices, s.max_p)), Some((2, 1, 0.95)));
    }

    #[test]
    fn history_is_bounded() {
        let mut t = SeriesTracker::new(SeriesConfig { max_open_series: 1, closed_history: 2, ..config(2, 5) });
        for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
            t.observe(name, obs(1, true), i as u64);
        }
        // d holds the slot; c and b are in the history; a was forgotten.
        assert!(t.summary("a").is_none());
        assert!(t.summary("b").is_some() && t.summary("c").is_some() && t.summary("d").is_some());
    }

    #[test]
    fn config_validation_names_the_key() {
        let bad = [
            (SeriesConfig { suspicious_min: 0, ..SeriesConfig::default() }, "suspicious_min"),
            (SeriesConfig { window_slices: 65, ..SeriesConfig::default() }, "window_slices"),
            (SeriesConfig { quiet_ms: 10, ..SeriesConfig::default() }, "quiet_ms"),
            (SeriesConfig { max_open_series: 0, ..SeriesConfig::default() }, "max_open_series"),
            (SeriesConfig { suspicious_min: 6, window_slices: 5, ..SeriesConfig::default() }, "window_slices"),
        ];
        for (cfg, key) in bad {
            let msg = cfg.validate().map_err(|e| e.to_string()).err().unwrap_or_default();
            assert!(msg.contains(key), "{msg}");
        }
        let parsed: Result<SeriesConfig, _> = toml::from_str("suspicious_min = 3\nwindow_slices = 7");
        assert_eq!(parsed.map(|c| (c.suspicious_min, c.window_slices, c.quiet_ms)).ok(), Some((3, 7, 20_000)));
        assert!(toml::from_str::<SeriesConfig>("k = 3").is_err());
    }

    #[test]
    fn position_maps_to_an_order() {
        assert_eq!(order_from_position(-120.0, 1.25), Some(-96));
        assert_eq!(order_from_position(10.6, 1.0), Some(11));
        assert_eq!(order_from_position(1.0, 0.0), None);
        assert_eq!(order_from_position(f64::NAN, 1.0), None);
        assert_eq!(order_from_position(1e12, 1.0), None);
    }

    #[test]
    fn verdict_names_round_trip() {
        for v in [
            SeriesVerdict::Open,
            SeriesVerdict::Positive,
            SeriesVerdict::Negative,
            SeriesVerdict::NotAnalysed,
            SeriesVerdict::DemoModel,
        ] {
            assert_eq!(SeriesVerdict::parse(v.as_str()), Some(v));
        }
        assert_eq!(SeriesVerdict::parse("maybe"), None);
    }
}
