//! The verdict stage: folds each slice's model answers into a per-slice flag (`fusion`) and the
//! flags of a series into a series verdict (`series`); `judge` is the one step doing both for a slice. Pure computation on values handed in:
//! no clock, no files, no devices. Time is always passed in by the caller, so tests never sleep.

pub mod fusion;
pub mod judge;
pub mod series;

pub use fusion::{FusionConfig, FusionPolicy, SliceScores, SliceVerdict};
pub use judge::{Judge, Judgement};
pub use series::{
    CloseReason, SeriesConfig, SeriesEvent, SeriesSummary, SeriesTracker, SeriesVerdict, SliceObservation, TrackedSlice,
};

/// A verdict setting that cannot work, found when the configuration is resolved (before the first
/// slice), never on the hot path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VerdictConfigError {
    #[error("verdict setting `{key}` is {found}, but {allowed}; fix it in the [verdict] table of the config")]
    OutOfRange { key: &'static str, found: String, allowed: String },
    #[error(
        "verdict setting `suspicious_min` ({k}) is larger than `window_slices` ({n}): the rule \"{k} suspicious \
         slices within {n} adjacent slices\" could never be met; make suspicious_min <= window_slices"
    )]
    WindowTooSmall { k: u16, n: u16 },
}
