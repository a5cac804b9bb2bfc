//! Accuracy against ground truth: detection AP at IoU 0.5 (darknet `-map` style and COCO style),
//! slice-level and series-level accuracy, sensitivity and specificity. Pure computation on lists
//! handed in; reads no files and runs no models (the `eval` command does that and calls here).
//!
//! Boxes are `[x0, y0, x1, y1]` in pixels, for one class ("embolus"). Two AP conventions are
//! given because published numbers use both and they differ on the same detections:
//!
//! - [`ap50_voc`]: as AlexeyAB darknet's `detector map` (`-points 0`, the default) computes it.
//!   Each detection is paired with the truth box of its image that it overlaps most, if that IoU is
//!   strictly above 0.5 (whether or not that truth is already taken); detections are then ranked
//!   by descending confidence, and a detection is a true positive when its truth was not taken by
//!   a higher-ranked one, else a false positive (a duplicate). AP is the area under the
//!   precision envelope over every distinct recall (VOC2010+ "all points"), including the first
//!   step from recall 0. This is also the matching of the VOC devkit. darknet computes IoU in
//!   `float` on relative centre-size boxes; here it is `f64` on pixels, so an IoU within about
//!   1e-7 of 0.5 may fall on the other side.
//!   See: AlexeyAB/darknet `src/detector.c` `validate_detector_map`.
//! - [`ap50_coco`]: as pycocotools' `COCOeval` computes AP for `iouThrs = [0.5]`, one category,
//!   area range "all". Per image, detections sorted by descending score (stable) and cut to
//!   `max_dets` each; each is matched to the *still unmatched* truth box with the highest IoU,
//!   IoU >= 0.5 (ties go to the later truth box); IoU from `[x, y, w, h]` boxes without the old
//!   "+1 pixel" convention. Then all images' detections are ranked by descending score (stable, in
//!   ascending image id order), precision is made monotone, and the AP is the mean of the
//!   precision at the first recall >= each of the 101 thresholds `np.linspace(0, 1, 101)` (0 where
//!   recall never gets there). The Python test `tests/py/test_eval_pycocotools.py` holds this to
//!   pycocotools within 1e-6.
//!
//! Both return `None` when there is no truth box at all (AP is undefined; pycocotools says -1).

use serde::{Deserialize, Serialize};

/// An image (slice) identifier. For COCO-style ranking, ties in score are broken by ascending id.
pub type ImageId = u64;

/// pycocotools' default (and largest) `maxDets`.
pub const COCO_MAX_DETS: usize = 100;

/// A ground-truth box.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TruthBox {
    pub image: ImageId,
    /// `[x0, y0, x1, y1]` in pixels.
    #[serde(rename = "box")]
    pub bbox: [f64; 4],
}

/// A detector box with its confidence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub image: ImageId,
    /// `[x0, y0, x1, y1]` in pixels.
    #[serde(rename = "box")]
    pub bbox: [f64; 4],
    pub score: f64,
}

/// Input that cannot be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error(
        "{what} {index} (image {image}) has box {bbox:?}: a box must be four finite numbers [x0, y0, x1, y1] \
         with x0 <= x1 and y0 <= y1; fix the {what} list"
    )]
    InvalidBox { what: &'static str, index: usize, image: ImageId, bbox: [f64; 4] },
    #[error("detection {index} (image {image}) has score {score}: scores must be finite; fix the detection list")]
    InvalidScore { index: usize, image: ImageId, score: f64 },
}

fn check(truths: &[TruthBox], detections: &[Detection]) -> Result<(), EvalError> {
    let ok = |b: &[f64; 4]| b.iter().all(|v| v.is_finite()) && b[0] <= b[2] && b[1] <= b[3];
    if let Some((index, t)) = truths.iter().enumerate().find(|(_, t)| !ok(&t.bbox)) {
        return Err(EvalError::InvalidBox { what: "truth", index, image: t.image, bbox: t.bbox });
    }
    for (index, d) in detections.iter().enumerate() {
        if !ok(&d.bbox) {
            return Err(EvalError::InvalidBox { what: "detection", index, image: d.image, bbox: d.bbox });
        }
        if !d.score.is_finite() {
            return Err(EvalError::InvalidScore { index, image: d.image, score: d.score });
        }
    }
    Ok(())
}

/// Detection indices by descending score, then ascending image id, then input order: the order
/// pycocotools' two stable sorts produce (and a deterministic one for darknet's unstable qsort).
fn ranked(detections: &[Detection]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..detections.len()).collect();
    order.sort_by(|&a, &b| {
        let (da, db) = (&detections[a], &detections[b]);
        db.score
            .partial_cmp(&da.score)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(da.image.cmp(&db.image))
            .then(a.cmp(&b))
    });
    order
}

/// IoU of two corner boxes in `f64` (darknet's definition, no +1 pixel).
fn iou_corners(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let w = a[2].min(b[2]) - a[0].max(b[0]);
    let h = a[3].min(b[3]) - a[1].max(b[1]);
    if w <= 0.0 || h <= 0.0 {
        return 0.0;
    }
    let inter = w * h;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// IoU exactly as pycocotools' `maskApi.c` `bbIou` computes it from `[x, y, w, h]` boxes, with
/// `w = x1 - x0` as a caller converting corner boxes would compute it.
fn iou_coco(d: &[f64; 4], g: &[f64; 4]) -> f64 {
    let (dx, dy, dw, dh) = (d[0], d[1], d[2] - d[0], d[3] - d[1]);
    let (gx, gy, gw, gh) = (g[0], g[1], g[2] - g[0], g[3] - g[1]);
    let (da, ga) = (dw * dh, gw * gh);
    let w = (dw + dx).min(gw + gx) - dx.max(gx);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (dh + dy).min(gh + gy) - dy.max(gy);
    if h <= 0.0 {
        return 0.0;
    }
    let i = w * h;
    i / (da + ga - i)
}

/// AP at IoU 0.5 as darknet's `detector map` computes it (see the module docs). `Ok(None)` when
/// there is no truth box; `Ok(Some(0.0))` when there are truths but no detections.
pub fn ap50_voc(truths: &[TruthBox], detections: &[Detection]) -> Result<Option<f64>, EvalError> {
    check(truths, detections)?;
    if truths.is_empty() {
        return Ok(None);
    }
    // darknet pairs each detection with its best truth before ranking (strictly above 0.5; the
    // first of equal IoUs wins).
    let best_truth: Vec<Option<usize>> = detections
        .iter()
        .map(|d| {
            let mut best = None;
            let mut best_iou = 0.0;
            for (j, t) in truths.iter().enumerate().filter(|(_, t)| t.image == d.image) {
                let iou = iou_corners(&d.bbox, &t.bbox);
                if iou > 0.5 && iou > best_iou {
                    best_iou = iou;
                    best = Some(j);
                }
            }
            best
        })
        .collect();
    let order = ranked(detections);
    let total = truths.len() as f64;
    let mut taken = vec![false; truths.len()];
    let (mut tp, mut fp) = (0u32, 0u32);
    let mut precision = Vec::with_capacity(order.len());
    let mut recall = Vec::with_capacity(order.len());
    for &i in &order {
        match best_truth[i] {
            Some(j) if !taken[j] => {
                taken[j] = true;
                tp += 1;
            }
            _ => fp += 1,
        }
        precision.push(f64::from(tp) / f64::from(tp + fp));
        recall.push(f64::from(tp) / total);
    }
    let Some((&last_r, &last_p)) = recall.last().zip(precision.last()) else {
        return Ok(Some(0.0));
    };
    let (mut last_recall, mut last_precision) = (last_r, last_p);
    let mut ap = 0.0;
    for rank in (0..order.len().saturating_sub(1)).rev() {
        let delta = last_recall - recall[rank];
        last_recall = recall[rank];
        if precision[rank] > last_precision {
            last_precision = precision[rank];
        }
        ap += delta * last_precision;
    }
    // The step from recall 0 to the first rank's recall (AlexeyAB darknet since 2020).
    ap += last_recall * last_precision;
    Ok(Some(ap))
}

/// The 101 recall thresholds, bit for bit as `np.linspace(0, 1, 101)` (which is `i * 0.01`, not
/// `i / 100`, with the last set to exactly 1).
fn coco_recall_thresholds() -> [f64; 101] {
    let step = 1.0 / 100.0;
    let mut t = [0.0; 101];
    for (i, v) in t.iter_mut().enumerate() {
        *v = i as f64 * step;
    }
    t[100] = 1.0;
    t
}

/// AP at IoU 0.5 as pycocotools computes it (see the module docs), keeping at most `max_dets`
/// detections per image ([`COCO_MAX_DETS`] is pycocotools' default). `Ok(None)` when there is no
/// truth box.
pub fn ap50_coco(truths: &[TruthBox], detections: &[Detection], max_dets: usize) -> Result<Option<f64>, EvalError> {
    check(truths, detections)?;
    if truths.is_empty() {
        return Ok(None);
    }
    // Per image: rank its detections, keep the first max_dets, match greedily.
    let order = ranked(detections);
    let mut kept_in_image: std::collections::HashMap<ImageId, usize> = std::collections::HashMap::new();
    let mut truth_taken = vec![false; truths.len()];
    // (index into detections, true positive?) in global rank order.
    let mut outcome: Vec<(usize, bool)> = Vec::with_capacity(order.len());
    // Detections are processed in global rank order; within one image that is the per-image
    // rank order, and matching in one image never depends on another image.
    for &i in &order {
        let d = &detections[i];
        let kept = kept_in_image.entry(d.image).or_insert(0);
        if *kept >= max_dets {
            continue;
        }
        *kept += 1;
        let mut best = None;
        let mut best_iou = 0.5_f64.min(1.0 - 1e-10);
        for (j, t) in truths.iter().enumerate().filter(|(_, t)| t.image == d.image) {
            if truth_taken[j] {
                continue;
            }
            let iou = iou_coco(&d.bbox, &t.bbox);
            if iou < best_iou {
                continue;
            }
            best_iou = iou;
            best = Some(j);
        }
        if let Some(j) = best {
            truth_taken[j] = true;
        }
        outcome.push((i, best.is_some()));
    }
    let npig = truths.len() as f64;
    let (mut tp, mut fp) = (0.0_f64, 0.0_f64);
    let mut recall = Vec::with_capacity(outcome.len());
    let mut precision = Vec::with_capacity(outcome.len());
    for &(_, is_tp) in &outcome {
        if is_tp {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        recall.push(tp / npig);
        precision.push(tp / (fp + tp + f64::EPSILON));
    }
    for i in (1..precision.len()).rev() {
        if precision[i] > precision[i - 1] {
            precision[i - 1] = precision[i];
        }
    }
    let mut sum = 0.0;
    for threshold in coco_recall_thresholds() {
        // np.searchsorted(rc, t, side='left'): the first rank whose recall reaches t.
        let at = recall.partition_point(|&r| r < threshold);
        match precision.get(at) {
            Some(p) => sum += p,
            None => break,
        }
    }
    Ok(Some(sum / 101.0))
}

/// A predicted flag against the truth, for one slice or one series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub predicted: bool,
    pub truth: bool,
}

/// A 2x2 confusion table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Confusion {
    pub tp: u32,
    pub fp: u32,
    pub tn: u32,
    #[serde(rename = "fn")]
    pub fn_: u32,
}

impl Confusion {
    pub fn from_outcomes(outcomes: &[Outcome]) -> Confusion {
        let mut c = Confusion::default();
        for o in outcomes {
            c.add(*o);
        }
        c
    }

    pub fn add(&mut self, o: Outcome) {
        let cell = match (o.predicted, o.truth) {
            (true, true) => &mut self.tp,
            (true, false) => &mut self.fp,
            (false, false) => &mut self.tn,
            (false, true) => &mut self.fn_,
        };
        *cell = cell.saturating_add(1);
    }

    pub fn total(&self) -> u32 {
        self.tp.saturating_add(self.fp).saturating_add(self.tn).saturating_add(self.fn_)
    }

    /// (TP + TN) / all; `None` without cases.
    pub fn accuracy(&self) -> Option<f64> {
        ratio(self.tp.saturating_add(self.tn), self.total())
    }

    /// TP / (TP + FN); `None` without positive cases.
    pub fn sensitivity(&self) -> Option<f64> {
        ratio(self.tp, self.tp.saturating_add(self.fn_))
    }

    /// TN / (TN + FP); `None` without negative cases.
    pub fn specificity(&self) -> Option<f64> {
        ratio(self.tn, self.tn.saturating_add(self.fp))
    }
}

fn ratio(num: u32, den: u32) -> Option<f64> {
    (den > 0).then(|| f64::from(num) / f64::from(den))
}

/// Everything `eval` reports. A figure that is undefined for the data (no truth boxes, no
/// positive or no negative cases) is `None` (JSON `null`), never a made-up 0 or 1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    pub ap50_voc: Option<f64>,
    pub ap50_coco: Option<f64>,
    pub slice_accuracy: Option<f64>,
    pub slice_sensitivity: Option<f64>,
    pub slice_specificity: Option<f64>,
    pub series_accuracy: Option<f64>,
    pub series_sensitivity: Option<f64>,
    pub series_specificity: Option<f64>,
    /// Slices evaluated.
    pub slices: u32,
    /// Series evaluated.
    pub series: u32,
    pub truth_boxes: usize,
    pub detections: usize,
    pub slice_confusion: Confusion,
    pub series_confusion: Confusion,
}

impl EvalReport {
    /// Computes every figure. `slices` and `series` pair each slice's (series') predicted flag
    /// with its truth; detections are kept up to [`COCO_MAX_DETS`] per image for the COCO figure.
    pub fn compute(
        truths: &[TruthBox],
        detections: &[Detection],
        slices: &[Outcome],
        series: &[Outcome],
    ) -> Result<EvalReport, EvalError> {
        let slice_confusion = Confusion::from_outcomes(slices);
        let series_confusion = Confusion::from_outcomes(series);
        Ok(EvalReport {
            ap50_voc: ap50_voc(truths, detections)?,
            ap50_coco: ap50_coco(truths, detections, COCO_MAX_DETS)?,
            slice_accuracy: slice_confusion.accuracy(),
            slice_sensitivity: slice_confusion.sensitivity(),
            slice_specificity: slice_confusion.specificity(),
            series_accuracy: series_confusion.accuracy(),
            series_sensitivity: series_confusion.sensitivity(),
            series_specificity: series_confusion.specificity(),
            slices: slice_confusion.total(),
            series: series_confusion.total(),
            truth_boxes: truths.len(),
            detections: detections.len(),
            slice_confusion,
            series_confusion,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(image: ImageId, bbox: [f64; 4]) -> TruthBox {
        TruthBox { image, bbox }
    }

    fn d(image: ImageId, bbox: [f64; 4], score: f64) -> Detection {
        Detection { image, bbox, score }
    }

    fn both(truths: &[TruthBox], dets: &[Detection]) -> (f64, f64) {
        let voc = ap50_voc(truths, dets).ok().flatten().unwrap_or(f64::NAN);
        let coco = ap50_coco(truths, dets, COCO_MAX_DETS).ok().flatten().unwrap_or(f64::NAN);
        (voc, coco)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    const A: [f64; 4] = [10.0, 10.0, 20.0, 20.0];
    const B: [f64; 4] = [50.0, 50.0, 70.0, 60.0];

    #[test]
    fn perfect_detections_give_one() {
        let truths = [t(1, A), t(2, B)];
        let (voc, coco) = both(&truths, &[d(1, A, 0.9), d(2, B, 0.8)]);
        assert!(close(voc, 1.0) && close(coco, 1.0), "{voc} {coco}");
    }

    #[test]
    fn a_false_positive_between_two_hits() {
        // Ranks: TP (p 1, r .5), FP (p .5, r .5), TP (p 2/3, r 1).
        let truths = [t(1, A), t(2, B)];
        let dets = [d(1, A, 0.9), d(1, B, 0.8), d(2, B, 0.7)];
        let (voc, coco) = both(&truths, &dets);
        // VOC: 0.5 * 1 + 0.5 * 2/3.
        assert!(close(voc, 0.5 + 0.5 * 2.0 / 3.0), "{voc}");
        // COCO: thresholds 0.00..=0.50 (51) see precision 1, 0.51..=1.00 (50) see 2/3.
        assert!((coco - (51.0 + 50.0 * 2.0 / 3.0) / 101.0).abs() < 1e-12, "{coco}");
    }

    #[test]
    fn a_duplicate_is_a_false_positive_in_both() {
        let truths = [t(1, A)];
        let dets = [d(1, A, 0.9), d(1, [10.0, 10.0, 20.0, 19.0], 0.8)];
        let (voc, coco) = both(&truths, &dets);
        assert!(close(voc, 1.0) && close(coco, 1.0), "the duplicate ranks after the hit: {voc} {coco}");
        let dets = [d(1, [10.0, 10.0, 20.0, 19.0], 0.95), d(1, A, 0.9), d(1, [0.0, 0.0, 5.0, 5.0], 0.99)];
        // Ranks: a miss (0.99), the hit (0.95, IoU 0.9), a duplicate (0.9):
        // precision 0, 1/2, 1/3; recall 0, 1, 1.
        let (voc, coco) = both(&truths, &dets);
        assert!(close(voc, 0.5), "{voc}");
        assert!((coco - 0.5).abs() < 1e-12, "{coco}");
    }

    #[test]
    fn darknet_does_not_fall_back_to_the_second_best_truth_but_coco_does() {
        let g1 = [0.0, 0.0, 10.0, 10.0];
        let g2 = [2.0, 0.0, 12.0, 10.0];
        let truths = [t(1, g1), t(1, g2)];
        // d2 overlaps g1 most (0.905) and g2 enough (0.739); g1 is taken by d1.
        let dets = [d(1, g1, 0.9), d(1, [0.5, 0.0, 10.5, 10.0], 0.8)];
        let (voc, coco) = both(&truths, &dets);
        assert!(close(voc, 0.5), "darknet: d2 is a duplicate of g1: {voc}");
        assert!(close(coco, 1.0), "pycocotools: d2 takes g2: {coco}");
    }

    #[test]
    fn iou_of_exactly_one_half_counts_for_coco_only() {
        let truths = [t(1, [0.0, 0.0, 10.0, 10.0])];
        let dets = [d(1, [0.0, 0.0, 10.0, 5.0], 0.9)];
        assert_eq!(iou_coco(&dets[0].bbox, &truths[0].bbox), 0.5);
        let (voc, coco) = both(&truths, &dets);
        assert!(close(voc, 0.0) && close(coco, 1.0), "{voc} {coco}");
    }

    #[test]
    fn ties_in_score_are_ranked_by_image_id_for_coco() {
        // Equal scores: image 1's false positive ranks before image 2's hit.
        let truths = [t(2, A)];
        let dets = [d(2, A, 0.5), d(1, A, 0.5)];
        let coco = ap50_coco(&truths, &dets, COCO_MAX_DETS).ok().flatten();
        assert!(coco.is_some_and(|v| (v - 0.5).abs() < 1e-12), "{coco:?}");
        let dets = [d(1, A, 0.5), d(2, A, 0.5)];
        assert_eq!(ap50_coco(&truths, &dets, COCO_MAX_DETS).ok().flatten(), coco, "input order does not matter");
    }

    #[test]
    fn max_dets_keeps_the_best_per_image() {
        let truths = [t(1, A), t(1, B)];
        let dets = [d(1, A, 0.9), d(1, B, 0.8)];
        let one = ap50_coco(&truths, &dets, 1).ok().flatten();
        // Only the first detection counts: recall 0.5 at precision 1 -> 51 of 101 thresholds.
        assert!(one.is_some_and(|v| (v - 51.0 / 101.0).abs() < 1e-12), "{one:?}");
    }

    #[test]
    fn undefined_and_empty_cases() {
        assert_eq!(ap50_voc(&[], &[d(1, A, 0.9)]), Ok(None));
        assert_eq!(ap50_coco(&[], &[d(1, A, 0.9)], COCO_MAX_DETS), Ok(None));
        assert_eq!(ap50_voc(&[t(1, A)], &[]), Ok(Some(0.0)));
        assert_eq!(ap50_coco(&[t(1, A)], &[], COCO_MAX_DETS), Ok(Some(0.0)));
        // A detection in an image without truth is a false positive.
        let (voc, coco) = both(&[t(1, A)], &[d(2, A, 0.9)]);
        assert!(close(voc, 0.0) && close(coco, 0.0));
    }

    #[test]
    fn invalid_input_is_named() {
        let bad = ap50_voc(&[t(3, [5.0, 0.0, 1.0, 1.0])], &[]).map_err(|e| e.to_string());
        assert!(bad.as_ref().is_err_and(|e| e.contains("truth 0 (image 3)") && e.contains("x0 <= x1")), "{bad:?}");
        let bad = ap50_coco(&[t(1, A)], &[d(1, A, f64::NAN)], 100).map_err(|e| e.to_string());
        assert!(bad.is_err_and(|e| e.contains("detection 0") && e.contains("score NaN")));
        let bad = ap50_coco(&[t(1, A)], &[d(1, [0.0, f64::INFINITY, 1.0, 1.0], 0.5)], 100);
        assert!(matches!(bad, Err(EvalError::InvalidBox { what: "detection", .. })));
    }

    #[test]
    fn recall_thresholds_match_numpy() {
        let t = coco_recall_thresholds();
        assert_eq!((t[0], t[100]), (0.0, 1.0));
        // np.linspace(0, 1, 101)[35] is 35 * 0.01, which is not 35 / 100 (one of ten such).
        assert_eq!(t[35], 35.0 * 0.01);
        assert_ne!(t[35], 35.0 / 100.0);
    }

    #[test]
    fn confusion_figures() {
        let o = |predicted, truth| Outcome { predicted, truth };
        let slices = [o(true, true), o(true, true), o(false, true), o(true, false), o(false, false), o(false, false)];
        let c = Confusion::from_outcomes(&slices);
        assert_eq!((c.tp, c.fp, c.tn, c.fn_), (2, 1, 2, 1));
        assert_eq!(c.accuracy(), Some(4.0 / 6.0));
        assert_eq!(c.sensitivity(), Some(2.0 / 3.0));
        assert_eq!(c.specificity(), Some(2.0 / 3.0));
        let only_negative = Confusion::from_outcomes(&[o(false, false)]);
        assert_eq!(only_negative.sensitivity(), None);
        assert_eq!(only_negative.specificity(), Some(1.0));
        assert_eq!(Confusion::default().accuracy(), None);
    }

    #[test]
    fn report_has_the_documented_keys() {
        let o = |predicted, truth| Outcome { predicted, truth };
        let r = EvalReport::compute(&[t(1, A)], &[d(1, A, 0.9)], &[o(true, true), o(false, false)], &[o(true, true)]);
        let json = r.map(|r| serde_json::to_value(&r).unwrap_or_default()).unwrap_or_default();
        for key in [
            "ap50_voc",
            "ap50_coco",
            "slice_accuracy",
            "slice_sensitivity",
            "slice_specificity",
            "series_sensitivity",
            "series_specificity",
            "slices",
            "series",
        ] {
            assert!(json.get(key).is_some(), "missing {key} in {json}");
        }
        assert_eq!(json["slices"], 2);
        assert_eq!(json["series"], 1);
        assert_eq!(json["series_specificity"], serde_json::Value::Null);
        assert_eq!(json["slice_confusion"]["fn"], 0);
    }
}
