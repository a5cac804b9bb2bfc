//! YOLO head decoding exactly as darknet's `[yolo]` layer, then NMS and the map back to slice pixels.
//!
//! In: each head's raw output `[1, A * (5 + C), H, W]` (flat, manifest head order) and the
//! preprocessing [`Letterbox`]. Out: [`Detections`] in the original slice's pixels.
//!
//! Per anchor `a` (from the head's mask), cell (`row`, `col`), with `s = scale_x_y`:
//! `x = (sigmoid(tx) * s - (s - 1) / 2 + col) / W`, `y` likewise with `row / H`,
//! `w = exp(tw) * anchor_w / net_w`, `h = exp(th) * anchor_h / net_h`,
//! `confidence = sigmoid(obj) * sigmoid(cls)`, kept when `>= confidence_threshold`.
//! (darknet's `get_yolo_detections` keeps `> thresh`; the project's contract is `>=`.)
//! See: darknet `src/yolo_layer.c` `get_yolo_box`, `correct_yolo_boxes`.
//!
//! As darknet does, boxes are first mapped to coordinates relative to the original slice
//! (0..1 on each axis) and NMS runs there; they are then scaled to pixels and clipped to the slice.
//! The candidate buffer is sized at construction for every cell, anchor and class, so decoding
//! never allocates.
use super::classifier::kind_name;
use super::nms::{nms_in_place, Candidate};
use super::{BBox, Detection, Detections, HeadError};
use crate::model::{Head, Manifest};
use crate::preprocess::Letterbox;

#[derive(Debug, Clone)]
struct HeadGeometry {
    name: String,
    grid_w: usize,
    grid_h: usize,
    /// `[w, h]` of each anchor in this head's mask, in network pixels.
    anchors: Vec<[f32; 2]>,
    scale_x_y: f32,
}

/// Decoder for one detector model, with its candidate scratch; one per inference thread.
#[derive(Debug, Clone)]
pub struct YoloDecoder {
    heads: Vec<HeadGeometry>,
    classes: usize,
    net_w: f32,
    net_h: f32,
    threshold: f32,
    nms_iou: f32,
    candidates: Vec<Candidate>,
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl YoloDecoder {
    /// Refuses a classifier manifest.
    pub fn new(manifest: &Manifest) -> Result<YoloDecoder, HeadError> {
        let Head::Detector(det) = manifest.head() else {
            return Err(HeadError::WrongKind {
                manifest: manifest.path().to_owned(),
                expected: "detector",
                found: kind_name(manifest.model().kind),
            });
        };
        let input = manifest.input();
        let classes = manifest.labels().names.len();
        let heads: Vec<HeadGeometry> = det
            .heads
            .iter()
            .map(|h| HeadGeometry {
                name: h.output.clone(),
                grid_w: input.width() / h.stride,
                grid_h: input.height() / h.stride,
                anchors: h.mask.iter().map(|&m| det.anchors[m]).collect(),
                scale_x_y: h.scale_x_y,
            })
            .collect();
        let capacity = heads.iter().map(|h| h.grid_w * h.grid_h * h.anchors.len() * classes).sum();
        Ok(YoloDecoder {
            heads,
            classes,
            net_w: input.width() as f32,
            net_h: input.height() as f32,
            threshold: det.confidence_threshold,
            nms_iou: det.nms_iou,
            candidates: Vec::with_capacity(capacity),
        })
    }

    /// Number of values each head's output must hold, in manifest order.
    /// Keeps boxes at or above `t` from now on (evaluation lowers it to trace the whole
    /// precision-recall curve, as darknet's `-map` does with 0.005).
    pub fn set_threshold(&mut self, t: f32) {
        self.threshold = t;
    }

    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    pub fn head_len(&self, head: usize) -> Option<usize> {
        self.heads.get(head).map(|h| h.anchors.len() * (5 + self.classes) * h.grid_w * h.grid_h)
    }

    /// Decodes every head (in manifest order), suppresses overlaps, and writes the survivors in
    /// slice pixels to `out` (cleared first).
    pub fn decode<'a>(
        &mut self,
        outputs: impl IntoIterator<Item = &'a [f32]>,
        letterbox: &Letterbox,
        out: &mut Detections,
    ) -> Result<(), HeadError> {
        out.clear();
        self.candidates.clear();
        let mut seen = 0;
        for (ix, data) in outputs.into_iter().enumerate() {
            let Some(head) = self.heads.get(ix) else {
                return Err(HeadError::HeadCount { expected: self.heads.len(), found: ix + 1 });
            };
            let expected = head.anchors.len() * (5 + self.classes) * head.grid_w * head.grid_h;
            if data.len() != expected {
                return Err(HeadError::OutputLen { name: head.name.clone(), expected, found: data.len() });
            }
            decode_head(
                head,
                data,
                self.classes,
                self.threshold,
                (self.net_w, self.net_h),
                letterbox,
                &mut self.candidates,
            );
            seen = ix + 1;
        }
        if seen != self.heads.len() {
            return Err(HeadError::HeadCount { expected: self.heads.len(), found: seen });
        }
        out.candidates = self.candidates.len();
        let kept = nms_in_place(&mut self.candidates, self.nms_iou);
        let (sw, sh) = (letterbox.slice_width as f32, letterbox.slice_height as f32);
        for c in &self.candidates[..kept] {
            let b = c.det.bbox;
            let det = Detection {
                bbox: BBox {
                    x0: (b.x0 * sw).clamp(0.0, sw),
                    y0: (b.y0 * sh).clamp(0.0, sh),
                    x1: (b.x1 * sw).clamp(0.0, sw),
                    y1: (b.y1 * sh).clamp(0.0, sh),
                },
                ..c.det
            };
            if out.boxes.push(det).is_err() {
                out.overflow += 1;
            }
        }
        Ok(())
    }
}

/// One head into `cands`, boxes relative to the slice (0..1 per axis, not clipped).
fn decode_head(
    head: &HeadGeometry,
    data: &[f32],
    classes: usize,
    threshold: f32,
    (net_w, net_h): (f32, f32),
    lb: &Letterbox,
    cands: &mut Vec<Candidate>,
) {
    let (gw, gh) = (head.grid_w, head.grid_h);
    let plane = gw * gh;
    let s = head.scale_x_y;
    let bias = (s - 1.0) / 2.0;
    // network-relative -> slice-relative, one affine map per axis.
    let (sx, ox) = (net_w / (lb.scale_x * lb.slice_width as f32), lb.pad_x / (lb.scale_x * lb.slice_width as f32));
    let (sy, oy) = (net_h / (lb.scale_y * lb.slice_height as f32), lb.pad_y / (lb.scale_y * lb.slice_height as f32));
    for (a, anchor) in head.anchors.iter().enumerate() {
        let base = a * (5 + classes) * plane;
        let at = |field: usize, cell: usize| data[base + field * plane + cell];
        for row in 0..gh {
            for col in 0..gw {
                let cell = row * gw + col;
                let obj = sigmoid(at(4, cell));
                // confidence = obj * cls <= obj: nothing below the threshold can pass.
                if obj.is_nan() || obj < threshold {
                    continue;
                }
                let x = (sigmoid(at(0, cell)) * s - bias + col as f32) / gw as f32;
                let y = (sigmoid(at(1, cell)) * s - bias + row as f32) / gh as f32;
                let w = at(2, cell).exp() * anchor[0] / net_w;
                let h = at(3, cell).exp() * anchor[1] / net_h;
                let bbox = BBox {
                    x0: (x - w / 2.0) * sx - ox,
                    y0: (y - h / 2.0) * sy - oy,
                    x1: (x + w / 2.0) * sx - ox,
                    y1: (y + h / 2.0) * sy - oy,
                };
                if ![bbox.x0, bbox.y0, bbox.x1, bbox.y1].iter().all(|v| v.is_finite()) {
                    continue;
                }
                for k in 0..classes {
                    let confidence = obj * sigmoid(at(5 + k, cell));
                    // The capacity covers every cell, anchor and class; the guard keeps the
                    // no-allocation promise even if that arithmetic is ever wrong.
                    if confidence >= threshold && cands.len() < cands.capacity() {
                        let seq = cands.len() as u32;
                        cands.push(Candidate { det: Detection { bbox, confidence, class: k }, seq });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::manifest::tests::DETECTOR;
    use crate::model::ResizeMode;

    fn logit(p: f32) -> f32 {
        (p / (1.0 - p)).ln()
    }

    /// A detector manifest, its decoder, and zeroed heads with every objectness at -20 (off).
    fn setup(resize: &str) -> (Manifest, YoloDecoder, Vec<f32>, Vec<f32>) {
        let m = Manifest::parse(&DETECTOR.replace("\"letterbox\"", resize), "d.toml").unwrap();
        let d = YoloDecoder::new(&m).unwrap();
        let mut s32 = vec![0.0; d.head_len(0).unwrap()];
        let mut s16 = vec![0.0; d.head_len(1).unwrap()];
        for (h, grid) in [(&mut s32, 13), (&mut s16, 26)] {
            for a in 0..3 {
                let start = (a * 6 + 4) * grid * grid;
                h[start..start + grid * grid].fill(-20.0);
            }
        }
        (m, d, s32, s16)
    }

    /// Sets one cell of one anchor: tx, ty, tw, th, obj, cls.
    fn set(h: &mut [f32], grid: usize, a: usize, row: usize, col: usize, v: [f32; 6]) {
        for (f, x) in v.iter().enumerate() {
            h[(a * 6 + f) * grid * grid + row * grid + col] = *x;
        }
    }

    #[test]
    fn decodes_one_box_as_darknet() {
        let (_, mut d, mut s32, s16) = setup("\"stretch\"");
        // Head s32, anchor slot 1 = anchors[4] = 135x169; cell row 6, col 4.
        let (tx, ty, tw, th) = (0.3f32, -0.2f32, 0.1f32, -0.4f32);
        set(&mut s32, 13, 1, 6, 4, [tx, ty, tw, th, logit(0.9), logit(0.8)]);
        let lb = Letterbox::new(ResizeMode::Stretch, 512, 512, 416, 416);
        let mut out = Detections::default();
        d.decode([&s32[..], &s16[..]], &lb, &mut out).unwrap();
        assert_eq!(out.boxes.len(), 1);
        let det = out.boxes[0];
        let s = 1.05f32;
        let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
        let x = (sig(tx) * s - (s - 1.0) / 2.0 + 4.0) / 13.0;
        let y = (sig(ty) * s - (s - 1.0) / 2.0 + 6.0) / 13.0;
        let w = tw.exp() * 135.0 / 416.0;
        let h = th.exp() * 169.0 / 416.0;
        let want = [(x - w / 2.0) * 512.0, (y - h / 2.0) * 512.0, (x + w / 2.0) * 512.0, (y + h / 2.0) * 512.0];
        let got = [det.bbox.x0, det.bbox.y0, det.bbox.x1, det.bbox.y1];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-3, "{got:?} vs {want:?}");
        }
        assert!((det.confidence - 0.72).abs() < 1e-5);
        assert_eq!(det.class, 0);
    }

    #[test]
    fn letterbox_maps_back_to_slice_pixels() {
        let (_, mut d, s32, mut s16) = setup("\"letterbox\"");
        // A 512x256 slice sits in rows 104..312 of the 416 input. Put a box centred at network
        // (208, 208) = slice (256, 128): cell centre of s16 row 12, col 12 is at (12.5)*16 = 200,
        // so use tx = ty = logit of the offset that lands on 13.0 cells.
        let s = 1.1f32;
        let frac = (1.0 + (s - 1.0) / 2.0) / s; // sigmoid value giving offset 1.0 within cell 12
        set(&mut s16, 26, 0, 12, 12, [logit(frac), logit(frac), 0.0, 0.0, logit(0.95), logit(0.95)]);
        let lb = Letterbox::new(ResizeMode::Letterbox, 512, 256, 416, 416);
        let mut out = Detections::default();
        d.decode([&s32[..], &s16[..]], &lb, &mut out).unwrap();
        assert_eq!(out.boxes.len(), 1);
        let b = out.boxes[0].bbox;
        let cx = (b.x0 + b.x1) / 2.0;
        let cy = (b.y0 + b.y1) / 2.0;
        assert!((cx - 256.0).abs() < 1e-2 && (cy - 128.0).abs() < 1e-2, "{b:?}");
        // Anchor 0 is 10x14 network pixels = 12.3x17.2 slice pixels at scale 416/512.
        assert!((b.width() - 10.0 * 512.0 / 416.0).abs() < 1e-2, "{b:?}");
        assert!((b.height() - 14.0 * 512.0 / 416.0).abs() < 1e-2, "{b:?}");
    }

    #[test]
    fn threshold_nms_and_overflow() {
        let (_, mut d, mut s32, mut s16) = setup("\"stretch\"");
        // Below threshold: 0.59.
        set(&mut s32, 13, 0, 0, 0, [0.0, 0.0, 0.0, 0.0, logit(0.99), logit(0.59 / 0.99)]);
        // Two overlapping boxes in the same place from neighbouring anchors: NMS keeps one.
        set(&mut s16, 26, 0, 5, 5, [0.0, 0.0, 0.0, 0.0, logit(0.9), logit(0.9)]);
        set(&mut s16, 26, 1, 5, 5, [0.0, 0.0, (10.0f32 / 23.0).ln(), (14.0f32 / 27.0).ln(), logit(0.9), logit(0.8)]);
        let lb = Letterbox::new(ResizeMode::Stretch, 416, 416, 416, 416);
        let mut out = Detections::default();
        d.decode([&s32[..], &s16[..]], &lb, &mut out).unwrap();
        assert_eq!(out.candidates, 2);
        assert_eq!(out.boxes.len(), 1);
        assert!((out.boxes[0].confidence - 0.81).abs() < 1e-5);

        // Every s16 cell of anchor 0 on: 676 separate small boxes, 64 kept, the rest counted.
        for row in 0..26 {
            for col in 0..26 {
                set(&mut s16, 26, 0, row, col, [0.0, 0.0, -2.0, -2.0, logit(0.9), logit(0.9)]);
            }
        }
        d.decode([&s32[..], &s16[..]], &lb, &mut out).unwrap();
        assert_eq!(out.boxes.len(), 64);
        assert_eq!(out.overflow, 676 + 1 - 64);
    }

    #[test]
    fn wrong_outputs_are_errors() {
        let (m, mut d, s32, s16) = setup("\"stretch\"");
        let lb = Letterbox::new(ResizeMode::Stretch, 416, 416, 416, 416);
        let mut out = Detections::default();
        assert!(matches!(d.decode([&s32[..]], &lb, &mut out), Err(HeadError::HeadCount { .. })));
        assert!(matches!(d.decode([&s16[..], &s32[..]], &lb, &mut out), Err(HeadError::OutputLen { .. })));
        assert!(matches!(d.decode([&s32[..], &s16[..], &s16[..]], &lb, &mut out), Err(HeadError::HeadCount { .. })));
        let c = Manifest::parse(crate::model::manifest::tests::CLASSIFIER, "c.toml").unwrap();
        assert!(matches!(YoloDecoder::new(&c), Err(HeadError::WrongKind { .. })));
        let _ = m;
    }

    #[test]
    fn garbage_outputs_do_not_panic() {
        let (_, mut d, mut s32, mut s16) = setup("\"stretch\"");
        for (i, v) in s32.iter_mut().chain(s16.iter_mut()).enumerate() {
            *v = match i % 5 {
                0 => f32::NAN,
                1 => f32::INFINITY,
                2 => 1e30,
                3 => -1e30,
                _ => 50.0,
            };
        }
        let lb = Letterbox::new(ResizeMode::Letterbox, 300, 200, 416, 416);
        let mut out = Detections::default();
        d.decode([&s32[..], &s16[..]], &lb, &mut out).unwrap();
        for det in &out.boxes {
            let b = det.bbox;
            assert!(b.x0 >= 0.0 && b.x1 <= 300.0 && b.y0 >= 0.0 && b.y1 <= 200.0, "{b:?}");
        }
    }
}
