//! The one slice-to-verdict step, shared by the daemon, `bench`, `eval` and `infer`: one slice's
//! model answers (classifier P and detector boxes) are fused into a per-slice flag and observed by
//! the series tracker at the slice's place in its series ([`crate::slice::Slice::order`], computed
//! at decode). Keeping it in one place keeps the four callers' verdicts equal (they once differed
//! in how a slice's place was derived, and a multi-frame series was judged on one place: issue 20).
//! Pure computation on values handed in: time is the caller's monotonic milliseconds.

use super::fusion::{fuse, FusionConfig, SliceScores, SliceVerdict};
use super::series::{ObserveEvents, SeriesConfig, SeriesEvent, SeriesSummary, SeriesTracker, SliceObservation};
use crate::postprocess::Detections;
use crate::slice::Slice;

/// Fusion and the series rule, with the state of every series in flight.
#[derive(Debug)]
pub struct Judge {
    fusion: FusionConfig,
    series: SeriesConfig,
    tracker: SeriesTracker,
    /// Boxes below this confidence do not vote (`eval` runs the detector at a low threshold for AP
    /// and judges at the profile's); 0 elsewhere, where the detector already applied it.
    min_box_confidence: f32,
}

/// What one slice was judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// The slice's place in its series, as the tracker saw it.
    pub order: i32,
    /// What fusion looked at (boxes at or above the judge's box threshold).
    pub scores: SliceScores,
    pub verdict: SliceVerdict,
    /// What the series rule says must happen now (alert, close, reopen).
    pub events: ObserveEvents,
}

impl Judge {
    pub fn new(fusion: FusionConfig, series: SeriesConfig) -> Judge {
        Judge { fusion, series, tracker: SeriesTracker::new(series), min_box_confidence: 0.0 }
    }

    /// Boxes below `t` are ignored by fusion (they stay in the caller's detections).
    pub fn with_box_threshold(mut self, t: f32) -> Judge {
        self.min_box_confidence = t;
        self
    }

    pub fn fusion(&self) -> &FusionConfig {
        &self.fusion
    }

    /// Fusion alone: the flag for one slice's answers, without touching any series.
    pub fn fuse(&self, p: f32, detections: &Detections) -> (SliceScores, SliceVerdict) {
        let (mut boxes, mut max_confidence) = (0u32, 0.0f32);
        for d in detections.boxes.iter().filter(|d| d.confidence >= self.min_box_confidence) {
            boxes += 1;
            max_confidence = max_confidence.max(d.confidence);
        }
        let scores = SliceScores { p, boxes, max_confidence };
        (scores, fuse(&self.fusion, &scores))
    }

    /// Judges one slice of `slice.series` at `slice.order` from the models' answers.
    pub fn judge(&mut self, slice: &Slice, p: f32, detections: &Detections, now_ms: u64) -> Judgement {
        let (scores, verdict) = self.fuse(p, detections);
        let obs = SliceObservation {
            instance: slice.order,
            suspicious: verdict.suspicious,
            p: scores.p,
            boxes: scores.boxes,
            max_confidence: scores.max_confidence,
        };
        let events = self.tracker.observe(&slice.series.0, obs, now_ms);
        Judgement { order: slice.order, scores, verdict, events }
    }

    /// Replays a slice judged before (read back from the journal after a restart or a FAULT): the
    /// series state comes back; the events were acted on then and are not returned.
    pub fn replay(&mut self, series: &str, obs: SliceObservation, now_ms: u64) {
        let _ = self.tracker.observe(series, obs, now_ms);
    }

    /// Closes the series quiet for the configured time.
    pub fn close_quiet(&mut self, now_ms: u64) -> Vec<SeriesEvent> {
        self.tracker.close_quiet(now_ms)
    }

    /// How long a series stays open without a new slice (`[verdict] quiet_s`).
    pub fn quiet_ms(&self) -> u64 {
        self.series.quiet_ms
    }

    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.tracker.next_deadline_ms()
    }

    pub fn summary(&self, series: &str) -> Option<SeriesSummary> {
        self.tracker.summary(series)
    }

    /// Forgets every series (after a FAULT: the journal is the truth, replayed on next sight).
    pub fn forget(&mut self) {
        self.tracker = SeriesTracker::new(self.series);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postprocess::{BBox, Detection};
    use crate::slice::{Pixels, SeriesId};
    use crate::verdict::{FusionPolicy, SeriesVerdict};

    fn slice(order: i32) -> Slice {
        Slice {
            source: "x.dcm".into(),
            frame: 0,
            width: 1,
            height: 1,
            pixels: Pixels::Gray8(vec![0]),
            series: SeriesId("s".into()),
            instance: Some(1),
            order,
            position_z: None,
        }
    }

    fn boxes(conf: &[f32]) -> Detections {
        let mut d = Detections::default();
        for &c in conf {
            let _ =
                d.boxes.push(Detection { bbox: BBox { x0: 0.0, y0: 0.0, x1: 1.0, y1: 1.0 }, confidence: c, class: 0 });
        }
        d
    }

    #[test]
    fn slices_are_placed_by_their_order_not_their_instance_number() {
        // Three suspicious frames of one file (one InstanceNumber): k = 3 of n = 5 needs three places.
        let cfg = SeriesConfig { suspicious_min: 3, window_slices: 5, ..SeriesConfig::default() };
        let mut j = Judge::new(FusionConfig::new(FusionPolicy::ClassifierOnly, 0.5), cfg);
        let events: Vec<_> = (1..=3).flat_map(|o| j.judge(&slice(o), 0.9, &boxes(&[]), 0).events).collect();
        assert!(matches!(&events[..], [SeriesEvent::Positive { .. }]), "{events:?}");
        assert_eq!(j.summary("s").map(|s| s.verdict), Some(SeriesVerdict::Positive));
    }

    #[test]
    fn boxes_below_the_box_threshold_do_not_vote() {
        let j = Judge::new(FusionConfig::new(FusionPolicy::DetectorOnly, 0.5), SeriesConfig::default())
            .with_box_threshold(0.6);
        let (s, v) = j.fuse(0.0, &boxes(&[0.3, 0.5]));
        assert_eq!((s.boxes, v.suspicious), (0, false));
        let (s, v) = j.fuse(0.0, &boxes(&[0.3, 0.7]));
        assert_eq!((s.boxes, s.max_confidence, v.suspicious), (1, 0.7, true));
    }
}
