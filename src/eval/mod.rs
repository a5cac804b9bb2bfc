//! `pe-sentinel eval`: runs the models over a labelled dataset in the phantom's layout
//! (`DIR/<series>/{png,dicom}/NAME` with darknet labels in `DIR/<series>/labels/NAME.txt`) and
//! measures them: detector AP at IoU 0.5 (darknet-style and COCO-style), the classifier's slice
//! accuracy, sensitivity and specificity, and series sensitivity and specificity under the
//! profile's fusion and series rule. Reads the dataset; writes nothing.

pub mod metrics;

use crate::infer::decode_any;
use crate::pipeline::{Pipeline, SliceScores};
use crate::verdict::fusion::FusionConfig;
use crate::verdict::series::{SeriesConfig, SeriesVerdict};
use crate::verdict::Judge;
use metrics::{Detection, EvalReport, Outcome, TruthBox};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Detector threshold while evaluating AP: darknet's `-map` keeps boxes down to 0.005.
pub const AP_THRESHOLD: f32 = 0.005;

/// Which slices of each series to read: `png/` or `dicom/`.
pub use crate::phantom::layout::SliceFolder as InputKind;

#[derive(Debug, thiserror::Error)]
pub enum EvalRunError {
    #[error(transparent)]
    Layout(#[from] crate::phantom::layout::LayoutError),
    #[error("dataset {path}: {reason}")]
    Bad { path: PathBuf, reason: String },
    #[error(transparent)]
    Metrics(#[from] metrics::EvalError),
}

/// The report plus what the fused decision gave per slice.
#[derive(Debug, Clone, Serialize)]
pub struct EvalOutcome {
    #[serde(flatten)]
    pub report: EvalReport,
    /// Slice accuracy of the fused decision (classifier and detector by the fusion policy).
    pub fused_slice_accuracy: Option<f64>,
    /// The classifier's own slice accuracy at its argmax (P >= 0.5), the model card's figure;
    /// `report.slice_accuracy` is at the profile's verdict threshold.
    pub classifier_argmax_accuracy: Option<f64>,
    /// The verdict's classifier threshold `report`'s slice figures are at.
    pub classifier_threshold: f32,
    pub precision: String,
    pub input: String,
    /// Every slice's scores, for tuning fusion and the series rule offline.
    pub slices: Vec<SliceScoreRow>,
    /// Slices left out: not what the models are meant for (the profile's `[eligibility]`).
    pub not_analysed_slices: usize,
}

/// One slice's scores and truth (`eval --json`).
#[derive(Debug, Clone, Serialize)]
pub struct SliceScoreRow {
    pub series: String,
    pub instance: i32,
    /// Whether the slice carries a labelled embolus.
    pub truth: bool,
    /// Classifier P(positive).
    pub p: f32,
    /// Highest detector confidence among all boxes kept at the evaluation's low threshold.
    pub max_confidence: f32,
}

fn label_boxes(path: &Path, w: f64, h: f64, image: u64, out: &mut Vec<TruthBox>) -> Result<usize, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let f: Vec<f64> = line.split_whitespace().filter_map(|t| t.parse().ok()).collect();
        if line.trim().is_empty() {
            continue;
        }
        if f.len() != 5 {
            return Err(format!("{} line {}: expected `class cx cy w h`", path.display(), i + 1));
        }
        let (cx, cy, bw, bh) = (f[1] * w, f[2] * h, f[3] * w, f[4] * h);
        out.push(TruthBox { image, bbox: [cx - bw / 2.0, cy - bh / 2.0, cx + bw / 2.0, cy + bh / 2.0] });
        n += 1;
    }
    Ok(n)
}

/// Evaluates every series folder under `data`, reading `input` slices (default: PNG when the
/// dataset has them, else DICOM).
pub fn evaluate(
    data: &Path,
    input: Option<InputKind>,
    pipeline: &mut Pipeline,
    fusion: &FusionConfig,
    series_cfg: &SeriesConfig,
    gate: &crate::eligibility::Gate,
    progress: &indicatif::ProgressBar,
) -> Result<EvalOutcome, EvalRunError> {
    let (kind, series_dirs) = crate::phantom::layout::choose(data, input)?;
    let sub = kind.name();
    let detector_threshold = pipeline.detector_threshold();
    // AP needs the detector's answer on every slice: no cascade here.
    pipeline.set_cascade_gate(None);
    pipeline.set_detector_threshold(AP_THRESHOLD);
    let (mut truths, mut dets) = (Vec::new(), Vec::new());
    let (mut slice_out, mut fused_out, mut series_out) = (Vec::new(), Vec::new(), Vec::new());
    let mut rows = Vec::new();
    let mut scores = SliceScores::default();
    let mut image: u64 = 0;
    let mut not_analysed = 0usize;
    let mut listed = Vec::with_capacity(series_dirs.len());
    for dir in &series_dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(sub))
            .map_err(|e| EvalRunError::Bad { path: dir.clone(), reason: e.to_string() })?
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        listed.push(files);
    }
    progress.set_length(listed.iter().map(|f| f.len() as u64).sum());
    for (dir, files) in series_dirs.iter().zip(&listed) {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        progress.set_message(name.clone());
        // The profile's detector threshold decides the verdict; AP sees every box down to AP_THRESHOLD.
        let mut judge = Judge::new(*fusion, *series_cfg).with_box_threshold(detector_threshold);
        let mut truth_positive = false;
        for f in files.iter() {
            progress.inc(1);
            let stem = f.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let slices = decode_any(f).map_err(|reason| EvalRunError::Bad { path: f.clone(), reason })?;
            if !gate.check_file(f, &slices).is_empty() {
                not_analysed += slices.len();
                continue;
            }
            for mut s in slices {
                // A dataset's series is its folder (PNG slices would otherwise share `png`).
                s.series = crate::slice::SeriesId(name.clone());
                let s = &s;
                pipeline
                    .run(s, &mut scores)
                    .map_err(|e| EvalRunError::Bad { path: f.clone(), reason: e.to_string() })?;
                let n_truth = label_boxes(
                    &dir.join("labels").join(format!("{stem}.txt")),
                    f64::from(s.width),
                    f64::from(s.height),
                    image,
                    &mut truths,
                )
                .map_err(|reason| EvalRunError::Bad { path: f.clone(), reason })?;
                let truth = n_truth > 0;
                truth_positive |= truth;
                for d in &scores.detections.boxes {
                    let b = d.bbox;
                    dets.push(Detection {
                        image,
                        bbox: [f64::from(b.x0), f64::from(b.y0), f64::from(b.x1), f64::from(b.y1)],
                        score: f64::from(d.confidence),
                    });
                }
                let judged = judge.judge(s, scores.p, &scores.detections, 0);
                let v = judged.verdict;
                slice_out.push(Outcome { predicted: scores.p >= fusion.classifier_p, truth });
                fused_out.push(Outcome { predicted: v.suspicious, truth });
                rows.push(SliceScoreRow {
                    series: name.clone(),
                    instance: judged.order,
                    truth,
                    p: scores.p,
                    max_confidence: scores.detections.boxes.iter().map(|d| d.confidence).fold(0.0, f32::max),
                });
                image += 1;
            }
        }
        let Some(summary) = judge.summary(&name) else {
            // No slice of the series was analysed (intended use): not a series of the evaluation.
            continue;
        };
        series_out.push(Outcome { predicted: summary.verdict == SeriesVerdict::Positive, truth: truth_positive });
    }
    pipeline.set_detector_threshold(detector_threshold);
    let report = EvalReport::compute(&truths, &dets, &slice_out, &series_out)?;
    let fused = metrics::Confusion::from_outcomes(&fused_out);
    let argmax: Vec<Outcome> = rows.iter().map(|r| Outcome { predicted: r.p >= 0.5, truth: r.truth }).collect();
    Ok(EvalOutcome {
        report,
        fused_slice_accuracy: fused.accuracy(),
        classifier_argmax_accuracy: metrics::Confusion::from_outcomes(&argmax).accuracy(),
        classifier_threshold: fusion.classifier_p,
        precision: String::new(),
        input: sub.to_string(),
        slices: rows,
        not_analysed_slices: not_analysed,
    })
}
