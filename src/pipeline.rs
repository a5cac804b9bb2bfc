//! One slice through preprocess -> engine -> heads for both models, with the time of each stage.
//! Everything is sized once from the manifests in `Pipeline::new` (input tensors, output
//! buffers, detections); `run` writes into those buffers and allocates nothing of its own. Loads
//! the model files named by the manifests (sha256 checked first), touches nothing else.

use crate::engine::{Engine, EngineError, Outputs, TractOptions, TractPlan};
use crate::model::{Head, Manifest, ManifestError, ModelKind};
use crate::postprocess::classifier::ClassifierHead;
use crate::postprocess::yolo::YoloDecoder;
use crate::postprocess::{Detections, HeadError};
use crate::preprocess::{PreprocessError, Preprocessor, SliceView};
use crate::slice::{Pixels, Slice};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Why the pipeline cannot be built (start-up: models, manifests, engines). Fatal before the
/// first slice; never seen per slice.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("model {path}: {problem}; point the board profile at a {expected} manifest")]
    WrongKind { path: PathBuf, problem: String, expected: &'static str },
    #[error("{0}")]
    Head(#[from] HeadError),
}

/// Why one slice could not be run. [`SliceError::is_input`] tells the daemon whose fault it is:
/// the slice's own (reject the file with a reason) or the machine's (an engine or head failure,
/// e.g. a CUDA error: FAULT, the file stays in the drop folder and is retried).
#[derive(Debug, thiserror::Error)]
pub enum SliceError {
    #[error("{file}: cannot preprocess ({err})")]
    Preprocess { file: PathBuf, err: PreprocessError },
    #[error("{file}: {err}")]
    Engine { file: PathBuf, err: Box<EngineError> },
    #[error("{file}: {err}")]
    Head { file: PathBuf, err: HeadError },
    #[error("{file}: inference asked before its inputs were prepared (a bug in the caller: please report it)")]
    NotPrepared { file: PathBuf },
}

impl SliceError {
    /// The slice itself cannot be analysed (its geometry or pixels): rejecting it is right, and
    /// retrying would fail the same way. Everything else is the engine's or a bug: retry.
    pub fn is_input(&self) -> bool {
        matches!(self, SliceError::Preprocess { .. })
    }
}

/// A file's bytes after [`Pipeline::arrive`].
#[derive(Debug)]
pub struct Arrived {
    pub sha256: [u8; 32],
    /// The decoded slices, or why the file cannot be decoded.
    pub slices: Result<Vec<Slice>, crate::source::decode::DecodeError>,
    /// Reading aside, how long decoding (and the hash beside it) held the file up, without the
    /// first slice's preprocessing (reported as its own stage).
    pub decode_us: u32,
}

/// The two models of a board profile, manifests loaded and validated.
#[derive(Debug, Clone)]
pub struct ModelSet {
    pub classifier: Manifest,
    pub detector: Manifest,
}

impl ModelSet {
    pub fn load(classifier: &Path, detector: &Path) -> Result<ModelSet, PipelineError> {
        let c = Manifest::load(classifier)?;
        let d = Manifest::load(detector)?;
        if c.model().kind != ModelKind::Classifier {
            return Err(PipelineError::WrongKind {
                path: classifier.to_path_buf(),
                problem: "is not a classifier".into(),
                expected: "classifier",
            });
        }
        if d.model().kind != ModelKind::Detector {
            return Err(PipelineError::WrongKind {
                path: detector.to_path_buf(),
                problem: "is not a detector".into(),
                expected: "detector",
            });
        }
        Ok(ModelSet { classifier: c, detector: d })
    }
}

/// Microseconds per stage of one slice (decode is timed by the caller).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimes {
    pub preprocess_us: u32,
    pub classifier_us: u32,
    pub detector_us: u32,
    pub heads_us: u32,
}

impl StageTimes {
    /// All stages of the slice: these four with the `decode` and `verdict` the caller timed;
    /// `store` is 0 until the caller has handed the record over.
    pub fn with(&self, decode: u32, verdict: u32) -> crate::budget::StageLatencyUs {
        crate::budget::StageLatencyUs {
            decode,
            preprocess: self.preprocess_us,
            classifier: self.classifier_us,
            detector: self.detector_us,
            heads: self.heads_us,
            verdict,
            store: 0,
        }
    }
}

/// What one slice gave.
#[derive(Debug, Clone, Default)]
pub struct SliceScores {
    /// Classifier P(positive label).
    pub p: f32,
    /// Detector boxes in the slice's pixels, after threshold and NMS.
    pub detections: Detections,
    /// False when the cascade gate skipped the detector for this slice (no boxes then).
    pub detector_ran: bool,
    pub times: StageTimes,
}

impl SliceScores {
    /// What the fusion rule looks at: P, the box count and the highest box confidence (0 if none).
    pub fn fusion_scores(&self) -> crate::verdict::fusion::SliceScores {
        let boxes = &self.detections.boxes;
        crate::verdict::fusion::SliceScores {
            p: self.p,
            boxes: boxes.len() as u32,
            max_confidence: boxes.iter().map(|d| d.confidence).fold(0.0, f32::max),
        }
    }
}

/// Both models ready on this thread, with every buffer they need.
pub struct Pipeline {
    cls_pre: Preprocessor,
    det_pre: Preprocessor,
    cls_in: Vec<f32>,
    det_in: Vec<f32>,
    cls: Box<dyn Engine>,
    det: Box<dyn Engine>,
    cls_out: Outputs,
    det_out: Outputs,
    cls_head: ClassifierHead,
    cls_output: String,
    yolo: YoloDecoder,
    engine_name: &'static str,
    cascade_gate: Option<f32>,
    /// The inputs `prepare` made last: the detector's letterbox and how long it took; `None`
    /// once `infer` has used them (so a slice is never inferred on another's inputs).
    prepared: Option<(crate::preprocess::Letterbox, u32)>,
    /// Hashes each arriving file on the second core while this thread decodes it.
    hasher: crate::source::decode::Hasher,
}

fn us(t: Instant) -> u32 {
    t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32
}

impl Pipeline {
    /// Loads, optimizes and warms up both models on tract with `threads` threads.
    pub fn new(models: &ModelSet, threads: usize) -> Result<Pipeline, PipelineError> {
        let opts = TractOptions::default().threads(threads);
        let cls: Box<dyn Engine> = Box::new(TractPlan::load(&models.classifier, &opts)?.spawn()?);
        let det: Box<dyn Engine> = Box::new(TractPlan::load(&models.detector, &opts)?.spawn()?);
        Pipeline::with_engines(models, cls, det)
    }

    /// Builds the pipeline around engines already loaded for `models` (any [`Engine`]
    /// implementation: the board profile's engine choice happens before this).
    pub fn with_engines(
        models: &ModelSet,
        cls: Box<dyn Engine>,
        det: Box<dyn Engine>,
    ) -> Result<Pipeline, PipelineError> {
        let cls_output = match models.classifier.head() {
            Head::Classifier(o) => o.name.clone(),
            Head::Detector(_) => {
                return Err(PipelineError::WrongKind {
                    path: models.classifier.path().to_path_buf(),
                    problem: "has a detector head".into(),
                    expected: "classifier",
                })
            }
        };
        let cls_pre = Preprocessor::new(&models.classifier);
        let det_pre = Preprocessor::new(&models.detector);
        Ok(Pipeline {
            cls_in: vec![0.0; cls_pre.input_len()],
            det_in: vec![0.0; det_pre.input_len()],
            cls_pre,
            det_pre,
            cls_out: Outputs::new(cls.output_specs()),
            det_out: Outputs::new(det.output_specs()),
            cls_head: ClassifierHead::new(&models.classifier)?,
            cls_output,
            yolo: YoloDecoder::new(&models.detector)?,
            engine_name: cls.name(),
            cascade_gate: None,
            prepared: None,
            hasher: crate::source::decode::Hasher::default(),
            cls,
            det,
        })
    }

    /// Changes the detector's confidence threshold (see `YoloDecoder::set_threshold`).
    pub fn set_detector_threshold(&mut self, t: f32) {
        self.yolo.set_threshold(t);
    }

    /// Applies the board profile's settings that live in the pipeline: the cascade gate
    /// (`[budget] cascade_gate`) and a detector confidence threshold overriding the manifest's
    /// (`[verdict] detector_threshold`).
    pub fn apply_profile(&mut self, cfg: &crate::config::Resolved) {
        self.set_cascade_gate(cfg.budget().cascade_gate);
        if let Some(t) = cfg.verdict().detector_threshold {
            self.set_detector_threshold(t);
        }
    }

    /// Cascade: run the detector only on slices whose classifier P is at least `gate`
    /// (None: on every slice).
    pub fn set_cascade_gate(&mut self, gate: Option<f32>) {
        self.cascade_gate = gate;
    }

    pub fn detector_threshold(&self) -> f32 {
        self.yolo.threshold()
    }

    /// The last slice's model inputs (classifier, detector), as the engines received them.
    pub fn last_inputs(&self) -> (&[f32], &[f32]) {
        (&self.cls_in, &self.det_in)
    }

    /// The last slice's raw model outputs (classifier, detector), manifest order.
    pub fn last_outputs(&self) -> (&Outputs, &Outputs) {
        (&self.cls_out, &self.det_out)
    }

    pub fn engine_name(&self) -> &'static str {
        self.engine_name
    }

    /// Runs both models on one slice; results go into `out` (its buffers are reused).
    pub fn run(&mut self, slice: &Slice, out: &mut SliceScores) -> Result<(), SliceError> {
        self.prepare(slice)?;
        self.infer(&slice.source, out)
    }

    /// A file that has arrived: decoded from `bytes` while a second core computes their sha256,
    /// with the first slice's inputs prepared in the same window (the sha256 of a 512x512 slice
    /// takes longer than its decode). Infer its slices with [`Pipeline::run_arrived`] before the
    /// next `arrive` or `prepare`.
    pub fn arrive(&mut self, bytes: &Arc<Vec<u8>>, path: &Path, series: crate::slice::SeriesId) -> Arrived {
        let t = Instant::now();
        self.prepared = None;
        let mut hasher = std::mem::take(&mut self.hasher);
        let (sha256, slices) = hasher.hash_while(bytes, || {
            let slices = crate::source::decode::decode_any_bytes(bytes, path, series);
            if let Some(first) = slices.as_ref().ok().and_then(|s| s.first()) {
                // A failure leaves nothing prepared; `run_arrived` then runs the slice whole and
                // reports it.
                let _ = self.prepare(first);
            }
            slices
        });
        self.hasher = hasher;
        let preprocess_us = self.prepared.map_or(0, |(_, us)| us);
        Arrived { sha256, slices, decode_us: us(t).saturating_sub(preprocess_us) }
    }

    /// Runs slice `index` of an [`Arrived`] file: the first on the inputs `arrive` prepared,
    /// the others (or the first, if preparing it failed: the error is then reported here) whole.
    pub fn run_arrived(&mut self, arrived: &Arrived, index: usize, out: &mut SliceScores) -> Result<(), SliceError> {
        let Ok(slices) = &arrived.slices else { return Ok(()) };
        let Some(slice) = slices.get(index) else { return Ok(()) };
        // What `arrive` prepared is the first slice's: nothing else prepares in between.
        if index == 0 && self.prepared.is_some() {
            self.infer(&slice.source, out)
        } else {
            self.run(slice, out)
        }
    }

    /// The first half of [`Pipeline::run`]: both models' inputs from `slice`, into the buffers
    /// made once. The daemon prepares a file's first slice while a second core finishes the
    /// file's sha256, then checks for a duplicate before it infers.
    pub fn prepare(&mut self, slice: &Slice) -> Result<(), SliceError> {
        self.prepared = None;
        let view = SliceView {
            width: slice.width as usize,
            height: slice.height as usize,
            pixels: match &slice.pixels {
                Pixels::Hu(v) => crate::preprocess::Pixels::Hu(v),
                Pixels::Gray8(v) => crate::preprocess::Pixels::Gray8(v),
                Pixels::Gray16(v) => crate::preprocess::Pixels::Gray16(v),
            },
        };
        let pre_err = |err| SliceError::Preprocess { file: slice.source.clone(), err };
        let t = Instant::now();
        self.cls_pre.run(view, &mut self.cls_in).map_err(pre_err)?;
        let letterbox = self.det_pre.run(view, &mut self.det_in).map_err(pre_err)?;
        self.prepared = Some((letterbox, us(t)));
        Ok(())
    }

    /// The second half of [`Pipeline::run`]: both models on the inputs the last `prepare` made
    /// (`source` names the slice's file in errors). Without a `prepare` since the last `infer`,
    /// an error, not a stale answer.
    pub fn infer(&mut self, source: &Path, out: &mut SliceScores) -> Result<(), SliceError> {
        let Some((letterbox, preprocess_us)) = self.prepared.take() else {
            return Err(SliceError::NotPrepared { file: source.to_path_buf() });
        };
        let engine_err = |err| SliceError::Engine { file: source.to_path_buf(), err: Box::new(err) };
        let head_err = |err| SliceError::Head { file: source.to_path_buf(), err };
        out.times.preprocess_us = preprocess_us;
        let t = Instant::now();
        self.cls.run(&self.cls_in, &mut self.cls_out).map_err(engine_err)?;
        out.times.classifier_us = us(t);
        let t = Instant::now();
        let probs = self.cls_out.get(&self.cls_output).unwrap_or(&[]);
        out.p = self.cls_head.p_positive(probs).map_err(head_err)?;
        let mut heads_us = us(t);
        out.detector_ran = match self.cascade_gate {
            Some(g) => out.p >= g,
            None => true,
        };
        if out.detector_ran {
            let t = Instant::now();
            self.det.run(&self.det_in, &mut self.det_out).map_err(engine_err)?;
            out.times.detector_us = us(t);
            let t = Instant::now();
            self.yolo.decode(self.det_out.data(), &letterbox, &mut out.detections).map_err(head_err)?;
            heads_us += us(t);
        } else {
            out.times.detector_us = 0;
            out.detections.boxes.clear();
            out.detections.overflow = 0;
            out.detections.candidates = 0;
        }
        out.times.heads_us = heads_us;
        Ok(())
    }
}
