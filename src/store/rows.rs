//! The journal's rows as Rust values: what the daemon writes (a slice, a series, a skipped or
//! rejected input) and what readers such as `history` get back. Plain data; the SQL that stores
//! and reads them is in journal.rs. Touches nothing.

use serde::Serialize;

use crate::verdict::SeriesVerdict;

/// Time spent in each stage of one slice's path, in microseconds (defined with the budget).
pub use crate::budget::StageLatencyUs;

/// One analysed slice.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceRecord {
    /// The input file's name as it arrived in the drop folder.
    pub source_file: String,
    /// sha256 of the input file's content: with `frame`, the key that prevents analysing it twice.
    pub sha256: [u8; 32],
    /// Frame index within the file (multi-frame DICOM), else 0.
    pub frame: u32,
    pub series: String,
    pub instance: Option<i32>,
    /// Classifier P(positive); NaN is stored as NULL and read back as NaN.
    pub p: f32,
    /// Detector boxes `[x0, y0, x1, y1, confidence]` in the original slice's pixels.
    pub boxes: Vec<[f32; 5]>,
    pub suspicious: bool,
    pub latency: StageLatencyUs,
    /// sha256 (hex) of the model files, from their manifests.
    pub classifier_sha256: String,
    pub detector_sha256: String,
    pub created_unix_ms: i64,
}

/// One write of a [`Journal::commit`] batch.
#[derive(Debug, Clone, Copy)]
pub enum Write<'a> {
    /// A slice row (ignored when the same content and frame is already recorded).
    Slice(&'a SliceRecord),
    /// A series row, inserted or replaced.
    Series(&'a SeriesRow),
    Rejected(&'a RejectedRow),
    /// A slice not analysed (intended use); ignored when the same content and frame is recorded.
    Skipped(&'a SkippedRow),
}

/// A slice row as stored, with its row id.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSlice {
    pub id: i64,
    pub record: SliceRecord,
}

/// One series' state as the journal keeps it (and `history --json` prints it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesRow {
    pub series: String,
    pub slices: u32,
    pub suspicious_slices: u32,
    pub max_p: f32,
    pub boxes: u32,
    pub verdict: SeriesVerdict,
    pub first_seen_unix_ms: i64,
    pub last_seen_unix_ms: i64,
    pub closed_unix_ms: Option<i64>,
    pub alerted: bool,
    /// Why the series (or some of its slices) was not analysed, or why it cannot alert
    /// (`not-analysed`, `demo-model`); `None` when there is nothing to say.
    pub reasons: Option<String>,
}

impl SeriesRow {
    /// The row of `series` as its summary stands; `to_unix` turns the tracker's monotonic
    /// milliseconds into the journal's wall-clock ones. No intended-use reasons (the daemon adds them).
    pub fn from_summary(
        series: &str,
        s: &crate::verdict::series::SeriesSummary,
        to_unix: impl Fn(u64) -> i64,
    ) -> SeriesRow {
        SeriesRow {
            series: series.to_string(),
            slices: s.slices,
            suspicious_slices: s.suspicious_slices,
            max_p: s.max_p,
            boxes: s.boxes,
            verdict: s.verdict,
            first_seen_unix_ms: to_unix(s.first_seen_ms),
            last_seen_unix_ms: to_unix(s.last_seen_ms),
            closed_unix_ms: s.closed_at_ms.map(&to_unix),
            alerted: s.alerted,
            reasons: None,
        }
    }
}

/// A readable slice that is not what the models are meant for (intended use): recorded, not analysed.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedRow {
    pub source_file: String,
    pub sha256: [u8; 32],
    pub frame: u32,
    pub series: String,
    pub reasons: String,
    pub created_unix_ms: i64,
}

/// An input that could not be analysed.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRow {
    pub source_file: String,
    pub sha256: Option<[u8; 32]>,
    /// Reason code (`crate::failure::RejectCode::as_str`), `unknown` for rows of schema 1.
    pub code: String,
    pub reason: String,
    pub created_unix_ms: i64,
}
