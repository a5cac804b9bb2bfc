//! The bedside alert state machine: a positive series raises ALERT, which stays latched until
//! someone acknowledges it (an `ACK` line from the display, or `pe-sentinel ack`) or until the
//! configured timeout passes. A positive series arriving while another is latched is queued, not
//! lost, and is latched in turn when the first is cleared. Pure computation on values handed in:
//! the caller supplies monotonic milliseconds; touches no clock, file or device.
//!
//! Bounds: at most [`QUEUE_CAPACITY`] series wait behind the latched one. Beyond that the machine
//! counts them (`overflow`) and the screen says so; the journal and the log keep every alert.

use heapless::{Deque, String};

/// Positive series that can wait behind the latched one.
pub const QUEUE_CAPACITY: usize = 8;

/// A series label: the SeriesInstanceUID (at most 64 characters by the DICOM standard) or a
/// folder name; longer labels keep their last 64 characters, where series usually differ.
pub type SeriesLabel = String<64>;

/// Makes a label from any text, keeping its tail and only printable ASCII.
pub fn label(text: &str) -> SeriesLabel {
    let clean: std::string::String =
        text.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect();
    let start = clean.len().saturating_sub(64);
    let mut out = SeriesLabel::new();
    // The string is ASCII now and cut to capacity, so the push cannot fail.
    let _ = out.push_str(&clean[start..]);
    out
}

/// What one alert is about: the series and its figures when it turned positive.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub series: SeriesLabel,
    pub slices: u32,
    pub max_p: f32,
    pub boxes: u32,
}

/// Why the latch was cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearedBy {
    Ack,
    Timeout,
}

/// The outcome of an acknowledgement or a timeout.
#[derive(Debug, Clone, PartialEq)]
pub enum Cleared {
    /// Nothing was latched.
    Nothing,
    /// `alert` was cleared; `next` is now latched (it was queued), if any.
    Alert { alert: Alert, by: ClearedBy, next: Option<SeriesLabel> },
}

#[derive(Debug)]
pub struct AlertMachine {
    latched: Option<(Alert, u64)>,
    queue: Deque<Alert, QUEUE_CAPACITY>,
    /// Positive series that found the queue full (still in the journal and log).
    overflow: u32,
    timeout_ms: Option<u64>,
}

impl AlertMachine {
    /// `timeout_ms`: `None` keeps an alert latched until acknowledged.
    pub fn new(timeout_ms: Option<u64>) -> Self {
        Self { latched: None, queue: Deque::new(), overflow: 0, timeout_ms }
    }

    pub fn latched(&self) -> Option<&Alert> {
        self.latched.as_ref().map(|(a, _)| a)
    }

    /// Series waiting behind the latched one, overflow included.
    pub fn waiting(&self) -> u32 {
        self.queue.len() as u32 + self.overflow
    }

    /// A series turned positive. Returns false when it was already latched or queued.
    pub fn positive(&mut self, alert: Alert, now_ms: u64) -> bool {
        let same = |a: &Alert| a.series == alert.series;
        if self.latched.as_ref().is_some_and(|(a, _)| same(a)) || self.queue.iter().any(same) {
            return false;
        }
        if self.latched.is_none() {
            self.latched = Some((alert, now_ms));
        } else if self.queue.push_back(alert).is_err() {
            self.overflow += 1;
        }
        true
    }

    /// Someone acknowledged: clears the latched alert and latches the next queued one.
    pub fn ack(&mut self, now_ms: u64) -> Cleared {
        self.clear(ClearedBy::Ack, now_ms)
    }

    /// Clears the latched alert if it has been latched for the timeout; call it now and then.
    pub fn tick(&mut self, now_ms: u64) -> Cleared {
        match (self.timeout_ms, &self.latched) {
            (Some(t), Some((_, since))) if now_ms.saturating_sub(*since) >= t => self.clear(ClearedBy::Timeout, now_ms),
            _ => Cleared::Nothing,
        }
    }

    fn clear(&mut self, by: ClearedBy, now_ms: u64) -> Cleared {
        let Some((alert, _)) = self.latched.take() else {
            return Cleared::Nothing;
        };
        let next = self.queue.pop_front();
        // Overflowed series were not kept by name: their count stays on screen until the queue has
        // drained, so the staff know to look at the journal (`pe-sentinel history`).
        if self.queue.is_empty() && next.is_none() {
            self.overflow = 0;
        }
        let label = next.as_ref().map(|a| a.series.clone());
        if let Some(n) = next {
            self.latched = Some((n, now_ms));
        }
        Cleared::Alert { alert, by, next: label }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Alert {
        Alert { series: label(s), slices: 10, max_p: 0.9, boxes: 2 }
    }

    #[test]
    fn an_alert_stays_latched_until_acknowledged_and_a_second_one_waits_its_turn() {
        let mut m = AlertMachine::new(None);
        assert_eq!(m.ack(0), Cleared::Nothing);
        assert!(m.positive(a("s1"), 0));
        assert!(!m.positive(a("s1"), 5), "the same series does not queue behind itself");
        assert!(m.positive(a("s2"), 10));
        assert!(!m.positive(a("s2"), 11));
        assert_eq!(m.latched().map(|x| x.series.as_str()), Some("s1"));
        assert_eq!(m.waiting(), 1);
        assert_eq!(m.tick(1_000_000_000), Cleared::Nothing, "no timeout configured");
        match m.ack(20) {
            Cleared::Alert { alert, by: ClearedBy::Ack, next } => {
                assert_eq!(alert.series.as_str(), "s1");
                assert_eq!(next.as_deref(), Some("s2"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(m.latched().map(|x| x.series.as_str()), Some("s2"));
        assert_eq!(m.waiting(), 0);
        assert!(matches!(m.ack(30), Cleared::Alert { next: None, .. }));
        assert!(m.latched().is_none());
    }

    #[test]
    fn the_timeout_clears_each_alert_a_full_timeout_after_it_was_latched() {
        let mut m = AlertMachine::new(Some(1000));
        m.positive(a("s1"), 100);
        m.positive(a("s2"), 600);
        assert_eq!(m.tick(1099), Cleared::Nothing);
        assert!(matches!(m.tick(1100), Cleared::Alert { by: ClearedBy::Timeout, .. }));
        // s2 was latched at 1100, not at 600 when it queued.
        assert_eq!(m.tick(2099), Cleared::Nothing);
        assert!(matches!(m.tick(2100), Cleared::Alert { by: ClearedBy::Timeout, next: None, .. }));
    }

    #[test]
    fn a_full_queue_counts_what_it_cannot_hold() {
        let mut m = AlertMachine::new(None);
        for i in 0..(QUEUE_CAPACITY + 4) {
            assert!(m.positive(a(&format!("s{i}")), i as u64));
        }
        assert_eq!(m.waiting(), QUEUE_CAPACITY as u32 + 3);
        for _ in 0..QUEUE_CAPACITY {
            assert!(matches!(m.ack(0), Cleared::Alert { next: Some(_), .. }));
        }
        assert_eq!(m.waiting(), 3, "the overflow stays visible until the queue has drained");
        assert!(matches!(m.ack(0), Cleared::Alert { next: None, .. }));
        assert_eq!(m.waiting(), 0);
    }

    #[test]
    fn labels_keep_the_tail_and_printable_ascii() {
        let long = format!("1.2.840.{}", "9".repeat(80));
        let l = label(&long);
        assert_eq!(l.len(), 64);
        assert!(long.ends_with(l.as_str()));
        assert_eq!(label("é\u{7}x").as_str(), "??x");
    }
}
