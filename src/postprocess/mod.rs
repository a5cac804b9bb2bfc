//! Raw network outputs -> what the verdict needs: P(positive) per slice, and boxes in the
//! original slice's pixels.
//!
//! In: the engine's output buffers (borrowed), the manifest, and the preprocessing [`Letterbox`].
//! Out: an `f32` probability ([`classifier`]) or a fixed-capacity [`Detections`] list ([`yolo`],
//! [`nms`]). After construction nothing allocates. Touches nothing outside its arguments.
//!
//! [`Letterbox`]: crate::preprocess::Letterbox
use std::path::PathBuf;

pub mod classifier;
pub mod nms;
pub mod yolo;

pub use classifier::ClassifierHead;
pub use yolo::YoloDecoder;

/// Most boxes kept per slice; a real slice shows a handful of emboli, and more than this many
/// boxes means the model is misbehaving, which [`Detections::overflow`] counts.
pub const MAX_DETECTIONS: usize = 64;

/// An axis-aligned box by its corners, `x0 <= x1`, `y0 <= y1` (continuous pixel coordinates).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BBox {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

impl BBox {
    pub fn width(&self) -> f32 {
        (self.x1 - self.x0).max(0.0)
    }

    pub fn height(&self) -> f32 {
        (self.y1 - self.y0).max(0.0)
    }

    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }
}

/// One box with its score.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Detection {
    /// In the original slice's pixels, clipped to the slice.
    pub bbox: BBox,
    /// objectness x class probability, 0..=1.
    pub confidence: f32,
    /// Index into the manifest's `labels.names`.
    pub class: usize,
}

/// The boxes of one slice, strongest first.
#[derive(Debug, Clone, Default)]
pub struct Detections {
    pub boxes: heapless::Vec<Detection, MAX_DETECTIONS>,
    /// Boxes that survived NMS but did not fit in `boxes` (the weakest ones).
    pub overflow: usize,
    /// Boxes at or above the confidence threshold before NMS.
    pub candidates: usize,
}

impl Detections {
    pub fn clear(&mut self) {
        self.boxes.clear();
        self.overflow = 0;
        self.candidates = 0;
    }
}

/// Errors turning one slice's outputs into scores; or, from `new`, a manifest that does not fit.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HeadError {
    #[error("model manifest {} describes a {found}, not a {expected}; pass the right manifest", manifest.display())]
    WrongKind { manifest: PathBuf, expected: &'static str, found: &'static str },
    #[error("model manifest {} has no `positive` label, so P(positive) is undefined; add `positive = \"...\"` under [labels]", manifest.display())]
    NoPositiveLabel { manifest: PathBuf },
    #[error("output `{name}` holds {found} values, expected {expected}; the model does not match its manifest")]
    OutputLen { name: String, expected: usize, found: usize },
    #[error("output `{name}` holds a value that is not a finite number; the model or its input is broken")]
    NonFinite { name: String },
    #[error("got {found} detector head outputs, the manifest lists {expected}; pass every head in manifest order")]
    HeadCount { expected: usize, found: usize },
}
