//! Intersection over union and greedy non-maximum suppression, as darknet's `do_nms_sort`.
//!
//! In: candidate boxes in a caller-owned slice. Out: the same slice reordered, survivors first,
//! strongest first. Greedy: sort by *descending* confidence (ties keep their decode order), then
//! keep a box unless it overlaps an already kept box of the same class by IoU > threshold.
//! No allocation: `sort_unstable_by` with the decode order as the last key gives the same order
//! as a stable sort. Touches nothing else.
use super::{BBox, Detection};

/// A box before NMS, with its position in decode order (the tie-breaker).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Candidate {
    pub det: Detection,
    pub seq: u32,
}

/// IoU of two boxes; 0 when the union is empty (degenerate boxes).
pub fn iou(a: &BBox, b: &BBox) -> f32 {
    let iw = (a.x1.min(b.x1) - a.x0.max(b.x0)).max(0.0);
    let ih = (a.y1.min(b.y1) - a.y0.max(b.y0)).max(0.0);
    let inter = iw * ih;
    let union = a.area() + b.area() - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Greedy NMS in place. Returns `k`: `cands[..k]` are the survivors, strongest first.
pub fn nms_in_place(cands: &mut [Candidate], iou_threshold: f32) -> usize {
    cands.sort_unstable_by(|a, b| b.det.confidence.total_cmp(&a.det.confidence).then(a.seq.cmp(&b.seq)));
    let mut kept = 0;
    for i in 0..cands.len() {
        let c = cands[i].det;
        let suppressed =
            cands[..kept].iter().any(|k| k.det.class == c.class && iou(&k.det.bbox, &c.bbox) > iou_threshold);
        if !suppressed {
            cands.swap(kept, i);
            kept += 1;
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// IoU written another way: centre/size form in f64, as darknet's `box_iou`.
    fn naive_iou(a: &BBox, b: &BBox) -> f64 {
        let (ax, ay, aw, ah) = (
            (a.x0 as f64 + a.x1 as f64) / 2.0,
            (a.y0 as f64 + a.y1 as f64) / 2.0,
            a.x1 as f64 - a.x0 as f64,
            a.y1 as f64 - a.y0 as f64,
        );
        let (bx, by, bw, bh) = (
            (b.x0 as f64 + b.x1 as f64) / 2.0,
            (b.y0 as f64 + b.y1 as f64) / 2.0,
            b.x1 as f64 - b.x0 as f64,
            b.y1 as f64 - b.y0 as f64,
        );
        let overlap = |x1: f64, w1: f64, x2: f64, w2: f64| {
            let l = (x1 - w1 / 2.0).max(x2 - w2 / 2.0);
            let r = (x1 + w1 / 2.0).min(x2 + w2 / 2.0);
            (r - l).max(0.0)
        };
        let inter = overlap(ax, aw, bx, bw) * overlap(ay, ah, by, bh);
        let union = aw * ah + bw * bh - inter;
        if union > 0.0 {
            inter / union
        } else {
            0.0
        }
    }

    /// Greedy NMS from its textbook definition, with allocation and a stable sort.
    fn naive_nms(cands: &[Candidate], thr: f32) -> Vec<Candidate> {
        let mut sorted = cands.to_vec();
        sorted.sort_by(|a, b| b.det.confidence.partial_cmp(&a.det.confidence).unwrap());
        let mut alive = vec![true; sorted.len()];
        let mut out = Vec::new();
        for i in 0..sorted.len() {
            if !alive[i] {
                continue;
            }
            out.push(sorted[i]);
            for j in i + 1..sorted.len() {
                if sorted[j].det.class == sorted[i].det.class
                    && naive_iou(&sorted[i].det.bbox, &sorted[j].det.bbox) > thr as f64
                {
                    alive[j] = false;
                }
            }
        }
        out
    }

    fn bbox() -> impl Strategy<Value = BBox> {
        (0u16..100, 0u16..100, 0u16..60, 0u16..60).prop_map(|(x, y, w, h)| BBox {
            x0: x as f32,
            y0: y as f32,
            x1: (x + w) as f32,
            y1: (y + h) as f32,
        })
    }

    fn cands() -> impl Strategy<Value = Vec<Candidate>> {
        // Few distinct confidences, so ties are common and the tie rule is exercised.
        prop::collection::vec((bbox(), 0u8..8, 0usize..2), 0..60).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (bbox, c, class))| Candidate {
                    det: Detection { bbox, confidence: 0.5 + c as f32 / 16.0, class },
                    seq: i as u32,
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn iou_matches_reference(a in bbox(), b in bbox()) {
            let got = iou(&a, &b);
            prop_assert!((got as f64 - naive_iou(&a, &b)).abs() < 1e-6);
            prop_assert!((0.0..=1.0).contains(&got));
            prop_assert_eq!(got, iou(&b, &a));
        }

        #[test]
        fn nms_matches_reference(mut c in cands(), thr in 0.0f32..1.0) {
            let want = naive_nms(&c, thr);
            let k = nms_in_place(&mut c, thr);
            prop_assert_eq!(&c[..k], &want[..]);
        }
    }

    #[test]
    fn keeps_strongest_first_not_weakest() {
        let b = BBox { x0: 0.0, y0: 0.0, x1: 10.0, y1: 10.0 };
        let mut c =
            [0.7f32, 0.9, 0.8].map(|confidence| Candidate { det: Detection { bbox: b, confidence, class: 0 }, seq: 0 });
        assert_eq!(nms_in_place(&mut c, 0.45), 1);
        assert_eq!(c[0].det.confidence, 0.9);
    }

    #[test]
    fn iou_of_identical_and_disjoint() {
        let a = BBox { x0: 0.0, y0: 0.0, x1: 2.0, y1: 2.0 };
        let b = BBox { x0: 1.0, y0: 1.0, x1: 3.0, y1: 3.0 };
        assert_eq!(iou(&a, &a), 1.0);
        assert!((iou(&a, &b) - 1.0 / 7.0).abs() < 1e-7);
        let far = BBox { x0: 5.0, y0: 5.0, x1: 6.0, y1: 6.0 };
        assert_eq!(iou(&a, &far), 0.0);
        assert_eq!(iou(&BBox::default(), &BBox::default()), 0.0);
    }
}
