//! The per-slice latency budget: every slice's time from arrival (file handed over complete, or
//! frame captured) to its verdict, on the monotonic clock, compared with `budget_ms`; misses
//! counted; sustained misses raise SLOW. Pure bookkeeping in fixed-size storage: nothing here
//! allocates after construction, reads a file or touches a device.

use std::time::Instant;

/// Longest window of recent slices SLOW is judged over.
pub const MAX_WINDOW: usize = 1024;

/// The `[budget]` settings, validated by the config parser.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetConfig {
    /// Arrival-to-verdict budget per slice.
    pub budget_ms: u32,
    /// SLOW is judged over this many most recent slices (1..=MAX_WINDOW).
    pub slow_window: u16,
    /// SLOW when more than this share of the window missed the budget.
    pub slow_miss_fraction: f32,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig { budget_ms: 500, slow_window: 100, slow_miss_fraction: 0.05 }
    }
}

/// Time spent in each stage of one slice's path, in microseconds (a journal row's latency columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct StageLatencyUs {
    pub decode: u32,
    pub preprocess: u32,
    pub classifier: u32,
    pub detector: u32,
    pub heads: u32,
    pub verdict: u32,
    /// Time up to handing the record to the journal (the commit itself cannot time itself).
    pub store: u32,
}

/// The stages of one slice and its `total` (a row of `bench`'s output). `total` runs from arrival
/// to verdict (store excluded: the verdict exists before it is written down; `store` is reported
/// on its own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SliceTimes {
    #[serde(flatten)]
    pub stages: StageLatencyUs,
    pub total: u32,
}

impl SliceTimes {
    /// Stage names in report order (matching [`SliceTimes::values`]).
    pub const STAGES: [&'static str; 8] =
        ["decode", "preprocess", "classifier", "detector", "heads", "verdict", "store", "total"];

    pub fn values(&self) -> [u32; 8] {
        let s = &self.stages;
        [s.decode, s.preprocess, s.classifier, s.detector, s.heads, s.verdict, s.store, self.total]
    }
}

/// Microseconds elapsed since `t`, saturating.
pub fn us_since(t: Instant) -> u32 {
    t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32
}

/// A change of the SLOW state, for the log and the display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowChange {
    /// More than the allowed share of recent slices missed the budget.
    EnteredSlow { misses: u16, window: u16 },
    /// Misses fell back to half the allowed count or fewer.
    LeftSlow { misses: u16, window: u16 },
}

/// Counts misses over the whole run and over a sliding window of recent slices.
#[derive(Debug, Clone)]
pub struct BudgetTracker {
    budget_us: u64,
    ring: [bool; MAX_WINDOW],
    window: usize,
    next: usize,
    filled: usize,
    misses_in_window: usize,
    /// SLOW when `misses_in_window > enter_above`.
    enter_above: usize,
    /// Back to normal when `misses_in_window <= leave_at`.
    leave_at: usize,
    slow: bool,
    slices: u64,
    missed: u64,
}

impl BudgetTracker {
    pub fn new(config: BudgetConfig) -> BudgetTracker {
        let window = usize::from(config.slow_window).clamp(1, MAX_WINDOW);
        let fraction =
            if config.slow_miss_fraction.is_finite() { config.slow_miss_fraction.clamp(0.0, 1.0) } else { 0.05 };
        let enter_above = (fraction as f64 * window as f64).floor() as usize;
        BudgetTracker {
            budget_us: u64::from(config.budget_ms) * 1000,
            ring: [false; MAX_WINDOW],
            window,
            next: 0,
            filled: 0,
            misses_in_window: 0,
            enter_above,
            leave_at: enter_above / 2,
            slow: false,
            slices: 0,
            missed: 0,
        }
    }

    pub fn budget_ms(&self) -> u32 {
        (self.budget_us / 1000) as u32
    }

    /// Records one slice's arrival-to-verdict time; returns whether it missed and any change of
    /// the SLOW state.
    pub fn record(&mut self, total_us: u32) -> (bool, Option<SlowChange>) {
        let missed = u64::from(total_us) > self.budget_us;
        self.slices += 1;
        if missed {
            self.missed += 1;
        }
        if self.filled == self.window {
            if self.ring[self.next] {
                self.misses_in_window -= 1;
            }
        } else {
            self.filled += 1;
        }
        self.ring[self.next] = missed;
        if missed {
            self.misses_in_window += 1;
        }
        self.next = (self.next + 1) % self.window;
        let (m, w) = (self.misses_in_window.min(usize::from(u16::MAX)) as u16, self.window as u16);
        let change = if !self.slow && self.misses_in_window > self.enter_above {
            self.slow = true;
            Some(SlowChange::EnteredSlow { misses: m, window: w })
        } else if self.slow && self.misses_in_window <= self.leave_at {
            self.slow = false;
            Some(SlowChange::LeftSlow { misses: m, window: w })
        } else {
            None
        };
        (missed, change)
    }

    pub fn is_slow(&self) -> bool {
        self.slow
    }

    /// Slices recorded in this run.
    pub fn slices(&self) -> u64 {
        self.slices
    }

    /// Slices over budget in this run.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// Misses among the most recent `window` slices.
    pub fn misses_in_window(&self) -> usize {
        self.misses_in_window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(budget_ms: u32, window: u16, fraction: f32) -> BudgetTracker {
        BudgetTracker::new(BudgetConfig { budget_ms, slow_window: window, slow_miss_fraction: fraction })
    }

    #[test]
    fn every_miss_is_counted_and_an_impossible_budget_turns_slow_after_the_allowed_share() {
        let mut t = tracker(1, 100, 0.05);
        let mut entered_at = None;
        for i in 0..20 {
            let (missed, change) = t.record(2_000);
            assert!(missed);
            if let Some(SlowChange::EnteredSlow { misses, window }) = change {
                assert_eq!((misses, window), (6, 100));
                entered_at = Some(i);
            }
        }
        // More than 5 of the last 100: the sixth miss.
        assert_eq!(entered_at, Some(5));
        assert!(t.is_slow());
        assert_eq!((t.slices(), t.missed()), (20, 20));
    }

    #[test]
    fn slow_ends_once_misses_leave_the_window() {
        let mut t = tracker(10, 10, 0.2); // SLOW above 2 misses in 10; back at 1 or fewer.
        for _ in 0..3 {
            t.record(20_000);
        }
        assert!(t.is_slow());
        let mut left = None;
        for i in 0..10 {
            let (missed, change) = t.record(5_000);
            assert!(!missed);
            if matches!(change, Some(SlowChange::LeftSlow { .. })) {
                left = Some(i);
            }
        }
        // The window is [miss, miss, miss, ok...]: after 9 good slices one miss is left in it.
        assert_eq!(left, Some(8));
        assert!(!t.is_slow());
        assert_eq!(t.misses_in_window(), 0);
        assert_eq!(t.missed(), 3);
    }

    #[test]
    fn exactly_at_budget_is_not_a_miss() {
        let mut t = tracker(5, 100, 0.05);
        assert!(!t.record(5_000).0);
        assert!(t.record(5_001).0);
    }
}
