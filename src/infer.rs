//! One-shot analysis of files (`pe-sentinel infer`, `eval`, `bench`): decode a DICOM, PNG or JPEG
//! file into slices and run each through the pipeline, returning plain results. Reads the files
//! it is given; writes nothing.

use crate::pipeline::{Pipeline, SliceScores};
use crate::slice::{SeriesId, Slice};
use crate::source::decode::{dicom, raster};
use crate::verdict::Judge;
use serde::Serialize;
use std::path::Path;

/// One slice's answer, as `infer` prints it (one JSON object per line).
#[derive(Debug, Clone, Serialize)]
pub struct SliceAnswer {
    pub file: String,
    pub frame: u32,
    pub series: String,
    pub instance: Option<i32>,
    /// The slice's place in its series (`Slice::order`: the InstanceNumber of a single-frame
    /// file; a frame's own place in a multi-frame one).
    pub order: i32,
    /// What the models are meant for, by the profile's `[eligibility]` rules.
    pub eligible: bool,
    /// Why not (empty when eligible).
    pub reasons: Vec<String>,
    /// Classifier P(positive); `null` when the slice is not eligible (the models did not run).
    pub p: Option<f32>,
    /// Detector boxes `[x0, y0, x1, y1, confidence]` in the slice's pixels.
    pub boxes: Vec<[f32; 5]>,
    /// "suspicious" or "clear", by the profile's fusion policy; "not-analysed" when not eligible.
    pub verdict: &'static str,
    /// The series' verdict after this slice, by the profile's series rule over the slices given
    /// so far: "open" or "positive" (a one-shot run never closes a series); "not-analysed" for a
    /// slice that is not eligible.
    pub series_verdict: &'static str,
}

/// Decodes any supported file: DICOM by its preamble or `.dcm`, else PNG/JPEG (series = parent folder).
pub fn decode_any(path: &Path) -> Result<Vec<Slice>, String> {
    let mut head = [0u8; 132];
    let is_dicom = match std::fs::File::open(path) {
        Ok(mut f) => {
            use std::io::Read;
            let n = f.read(&mut head).unwrap_or(0);
            n == 132 && &head[128..132] == b"DICM"
        }
        Err(e) => return Err(format!("{}: cannot open ({e})", path.display())),
    } || path.extension().is_some_and(|e| e.eq_ignore_ascii_case("dcm"));
    if is_dicom {
        dicom::decode_file(path, dicom::Accept::CtOnly).map_err(|e| e.to_string())
    } else {
        let series =
            path.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        raster::decode_file(path, SeriesId(series)).map(|s| vec![s]).map_err(|e| e.to_string())
    }
}

/// Runs every eligible slice of `path` (by `gate`'s rules; an ineligible one is answered with its
/// reasons, the models not run) and judges it with `judge` (series state carries over between
/// files); an unreadable file is an `Err` with a one-line reason.
pub fn infer_file(
    pipeline: &mut Pipeline,
    judge: &mut Judge,
    gate: &crate::eligibility::Gate,
    path: &Path,
    scores: &mut SliceScores,
) -> Result<Vec<SliceAnswer>, String> {
    let slices = decode_any(path)?;
    let reasons = gate.check_file(path, &slices);
    let mut out = Vec::with_capacity(slices.len());
    for s in &slices {
        if !reasons.is_empty() {
            out.push(SliceAnswer {
                file: s.source.display().to_string(),
                frame: s.frame,
                series: s.series.0.clone(),
                instance: s.instance,
                order: s.order,
                eligible: false,
                reasons: reasons.iter().map(|r| r.to_string()).collect(),
                p: None,
                boxes: Vec::new(),
                verdict: "not-analysed",
                series_verdict: "not-analysed",
            });
            continue;
        }
        pipeline.run(s, scores).map_err(|e| e.to_string())?;
        out.push(answer(s, scores, judge));
    }
    Ok(out)
}

/// One slice's answer, judged by `judge`.
pub fn answer(s: &Slice, scores: &SliceScores, judge: &mut Judge) -> SliceAnswer {
    let d = &scores.detections.boxes;
    let judged = judge.judge(s, scores.p, &scores.detections, 0);
    let positive = judge.summary(&s.series.0).is_some_and(|x| x.verdict == crate::verdict::SeriesVerdict::Positive);
    SliceAnswer {
        file: s.source.display().to_string(),
        frame: s.frame,
        series: s.series.0.clone(),
        instance: s.instance,
        order: judged.order,
        eligible: true,
        reasons: Vec::new(),
        p: Some(scores.p),
        boxes: d.iter().map(|b| [b.bbox.x0, b.bbox.y0, b.bbox.x1, b.bbox.y1, b.confidence]).collect(),
        verdict: if judged.verdict.suspicious { "suspicious" } else { "clear" },
        series_verdict: if positive { "positive" } else { "open" },
    }
}
