//! The model manifest: everything a model needs that its ONNX file does not say.
//!
//! In: a TOML file (schema below, unknown keys rejected with their line). Out: a validated
//! [`Manifest`] plus a list of [`ManifestWarning`]s for `check`, and the ONNX bytes once their
//! sha256 matches ([`Manifest::read_verified_onnx`]). Touches: the manifest and the ONNX file it
//! names, read only. Nothing here prints.
//!
//! ```toml
//! [model]        # name, kind = "classifier"|"detector", file (relative to the manifest's folder),
//!                # sha256 (64 hex), precision = "fp32"|"int8", opset
//! [input]        # name, shape = [1, C, H, W] or [1, H, W, C], layout = "nchw"|"nhwc", dtype = "f32"
//! [preprocess]   # window_center_hu, window_width_hu, resize = "stretch"|"letterbox", scale, mean, std,
//!                #   filter = "bilinear"|"triangle" (optional, default "bilinear")
//! [output]       # classifier only: name, kind = "probabilities"|"logits"
//! [labels]       # names (output index order), positive (optional; `check` warns when absent)
//! [detector]     # detector only: anchors, confidence_threshold, nms_iou, [[detector.heads]]
//!                #   output, stride, mask, scale_x_y
//! [provenance]   # script, commit, train_seeds, eval_seeds, date, framework (all strings)
//! [metrics]      # free-form: key = number
//! ```
//!
//! A manifest is parsed in two steps, as ripgrep turns low-level args into high-level ones: a raw
//! serde form that keeps the TOML span of every value that is checked later, then the public,
//! validated types, so an error can name the key *and* its line.
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

/// Where the schema is documented, for error messages.
const SCHEMA_HINT: &str = "see the schema at the top of src/model/manifest.rs";

// ---------------------------------------------------------------------------------------------
// Public, validated types.

/// What kind of network a manifest describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Classifier,
    Detector,
}

/// Numeric precision of the ONNX weights (INT8 means Q/DQ ONNX).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    Int8,
}

/// Memory order of the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Nchw,
    Nhwc,
}

/// Element type of the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
}

/// How a slice is fitted to the network input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeMode {
    /// Each axis scaled on its own to fill the input (aspect ratio not kept).
    Stretch,
    /// One scale for both axes, centred, the rest padded (aspect ratio kept).
    Letterbox,
}

/// Which resampling filter fits the slice to the network input: it must be the one the model was
/// trained with (a classifier trained on one and fed the other lost 3 points of accuracy here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeFilter {
    /// 2x2 taps at half-pixel centres, no antialiasing: PyTorch `F.interpolate(mode="bilinear",
    /// align_corners=False)`, OpenCV `INTER_LINEAR`, ONNX `Resize` linear/half_pixel. The default,
    /// what a manifest without `filter` means.
    #[default]
    Bilinear,
    /// The triangle filter stretched by the downscale factor (antialiased; equal to `bilinear`
    /// when upscaling): Pillow `Image.resize(.., Image.BILINEAR)`, torchvision `antialias=True`,
    /// the `image` crate's `FilterType::Triangle`.
    Triangle,
}

/// What a classifier's output holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Already normalized (softmax inside the graph).
    Probabilities,
    /// Raw scores; softmax is applied by the head.
    Logits,
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub name: String,
    pub kind: ModelKind,
    /// As written in the manifest (relative to its folder); see [`Manifest::onnx_path`].
    pub file: PathBuf,
    /// Lower-case hex.
    pub sha256: String,
    pub precision: Precision,
    pub opset: u32,
    /// What the model was trained on (`training_domain`; absent: `unknown`).
    pub training_domain: TrainingDomain,
}

/// `[model] training_domain`: what a model learned from, which decides whether it may alert on a
/// patient's scan (see `crate::eligibility` and docs/intended-use.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrainingDomain {
    /// Synthetic phantoms only (the shipped demo models): never an alert on a patient's scan.
    SyntheticPhantom,
    /// Real patients' CT pulmonary angiograms, validated by whoever supplies the model.
    ClinicalCtpa,
    /// Not stated (a manifest without the key, an imported model nobody described).
    #[default]
    Unknown,
}

impl TrainingDomain {
    pub fn as_str(self) -> &'static str {
        match self {
            TrainingDomain::SyntheticPhantom => "synthetic-phantom",
            TrainingDomain::ClinicalCtpa => "clinical-ctpa",
            TrainingDomain::Unknown => "unknown",
        }
    }

    /// Demo models: trained on synthetic phantoms only.
    pub fn is_demo(self) -> bool {
        self == TrainingDomain::SyntheticPhantom
    }
}

/// `[input]`.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    pub name: String,
    pub shape: [usize; 4],
    pub layout: Layout,
    pub dtype: DType,
}

impl InputSpec {
    pub fn channels(&self) -> usize {
        match self.layout {
            Layout::Nchw => self.shape[1],
            Layout::Nhwc => self.shape[3],
        }
    }

    pub fn height(&self) -> usize {
        match self.layout {
            Layout::Nchw => self.shape[2],
            Layout::Nhwc => self.shape[1],
        }
    }

    pub fn width(&self) -> usize {
        match self.layout {
            Layout::Nchw => self.shape[3],
            Layout::Nhwc => self.shape[2],
        }
    }

    /// Number of f32 elements in one input tensor.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Always false for a validated spec; here for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `[preprocess]`: `tensor = (gray * scale - mean[c]) / std[c]`, gray in 0..=255.
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessSpec {
    pub window_center_hu: f32,
    pub window_width_hu: f32,
    pub resize: ResizeMode,
    pub filter: ResizeFilter,
    pub scale: f32,
    /// One value per channel, or one value for all channels.
    pub mean: Vec<f32>,
    /// One value per channel, or one value for all channels; all > 0.
    pub std: Vec<f32>,
}

/// `[output]` of a classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierOutput {
    pub name: String,
    pub kind: OutputKind,
}

/// One `[[detector.heads]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorHead {
    /// ONNX output tensor name; shape `[1, mask.len() * (5 + classes), H / stride, W / stride]`.
    pub output: String,
    pub stride: usize,
    /// Indices into [`DetectorSpec::anchors`].
    pub mask: Vec<usize>,
    pub scale_x_y: f32,
}

/// `[detector]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorSpec {
    /// `[w, h]` in network-input pixels.
    pub anchors: Vec<[f32; 2]>,
    pub confidence_threshold: f32,
    pub nms_iou: f32,
    pub heads: Vec<DetectorHead>,
}

/// The model's output side, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Head {
    Classifier(ClassifierOutput),
    Detector(DetectorSpec),
}

/// `[labels]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    /// In output index order.
    pub names: Vec<String>,
    pub positive: Option<String>,
}

/// `[provenance]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    pub script: String,
    pub commit: String,
    pub train_seeds: String,
    pub eval_seeds: String,
    pub date: String,
    pub framework: String,
}

/// An output tensor the model must produce: name and exact shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    pub name: String,
    pub shape: Vec<usize>,
}

/// Something `check` should report that does not stop the model from loading.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManifestWarning {
    /// `[labels] positive` is absent: no head can tell which label means PE.
    PositiveLabelMissing { path: PathBuf, names: Vec<String> },
}

impl fmt::Display for ManifestWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestWarning::PositiveLabelMissing { path, names } => write!(
                f,
                "model manifest {}: [labels] has no `positive` key, so no score can be read as \
                 P(PE); add `positive = \"...\"` naming one of {:?}",
                path.display(),
                names
            ),
        }
    }
}

/// A validated model manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    path: PathBuf,
    onnx_path: PathBuf,
    model: ModelInfo,
    input: InputSpec,
    preprocess: PreprocessSpec,
    head: Head,
    labels: Labels,
    provenance: Provenance,
    metrics: BTreeMap<String, f64>,
    warnings: Vec<ManifestWarning>,
}

/// Errors from reading or validating a manifest or its ONNX file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("cannot read model manifest {}: {source}; check the path and its permissions", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("model manifest {}{}: {message}; fix the file ({SCHEMA_HINT})", path.display(), at_line(*line))]
    Syntax { path: PathBuf, line: Option<usize>, message: String },
    #[error("model manifest {}, key `{key}`{}: {problem}; {fix}", path.display(), at_line(*line))]
    Invalid { path: PathBuf, key: String, line: Option<usize>, problem: String, fix: String },
    #[error("cannot read model file {} named by manifest {}: {source}; check `[model] file` and that the file was copied", onnx.display(), manifest.display())]
    OnnxRead {
        onnx: PathBuf,
        manifest: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("model file {} has sha256 {found}, but manifest {} expects {expected}; the file is damaged or is not the model the manifest describes: copy the right file, or update `[model] sha256` if the model was deliberately replaced", onnx.display(), manifest.display())]
    Sha256Mismatch { onnx: PathBuf, manifest: PathBuf, expected: String, found: String },
}

fn at_line(line: Option<usize>) -> String {
    match line {
        Some(l) => format!(", line {l}"),
        None => String::new(),
    }
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

impl Manifest {
    /// Reads, parses and validates the manifest at `path`. Does not read the ONNX file.
    pub fn load(path: impl AsRef<Path>) -> Result<Manifest, ManifestError> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|source| ManifestError::Read { path: path.to_owned(), source })?;
        Manifest::parse(&text, path)
    }

    /// Parses and validates manifest `text`; `path` is where it came from (for messages, and the
    /// folder the ONNX path is relative to).
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Manifest, ManifestError> {
        let path = path.as_ref();
        let raw: RawManifest = toml::from_str(text).map_err(|e| ManifestError::Syntax {
            path: path.to_owned(),
            line: e.span().map(|s| line_of(text, s.start)),
            message: e.message().trim_end().to_string(),
        })?;
        Validator { path, text }.validate(raw)
    }

    /// The manifest file this came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The ONNX file, resolved against the manifest's folder.
    pub fn onnx_path(&self) -> &Path {
        &self.onnx_path
    }

    pub fn model(&self) -> &ModelInfo {
        &self.model
    }

    pub fn input(&self) -> &InputSpec {
        &self.input
    }

    pub fn preprocess(&self) -> &PreprocessSpec {
        &self.preprocess
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    pub fn metrics(&self) -> &BTreeMap<String, f64> {
        &self.metrics
    }

    /// Problems worth reporting that do not stop the model from loading.
    pub fn warnings(&self) -> &[ManifestWarning] {
        &self.warnings
    }

    /// Index of the positive label in output order, when the manifest names one.
    pub fn positive_index(&self) -> Option<usize> {
        let positive = self.labels.positive.as_ref()?;
        self.labels.names.iter().position(|n| n == positive)
    }

    /// The output tensors this model must produce, with their exact shapes, in manifest order.
    pub fn expected_outputs(&self) -> Vec<OutputSpec> {
        let classes = self.labels.names.len();
        match &self.head {
            Head::Classifier(out) => vec![OutputSpec { name: out.name.clone(), shape: vec![1, classes] }],
            Head::Detector(det) => det
                .heads
                .iter()
                .map(|h| OutputSpec {
                    name: h.output.clone(),
                    shape: vec![
                        1,
                        h.mask.len() * (5 + classes),
                        self.input.height() / h.stride,
                        self.input.width() / h.stride,
                    ],
                })
                .collect(),
        }
    }

    /// Reads the ONNX file and checks its sha256 against the manifest; returns the bytes, so the
    /// engine loads exactly what was checked.
    pub fn read_verified_onnx(&self) -> Result<Vec<u8>, ManifestError> {
        let bytes = std::fs::read(&self.onnx_path).map_err(|source| ManifestError::OnnxRead {
            onnx: self.onnx_path.clone(),
            manifest: self.path.clone(),
            source,
        })?;
        let found = sha256_hex(&bytes);
        if found != self.model.sha256 {
            return Err(ManifestError::Sha256Mismatch {
                onnx: self.onnx_path.clone(),
                manifest: self.path.clone(),
                expected: self.model.sha256.clone(),
                found,
            });
        }
        Ok(bytes)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

mod raw;
use raw::{RawManifest, Validator};

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const CLASSIFIER: &str = r#"
[model]
name = "pe-classifier-mobilenetv2"
kind = "classifier"
file = "classifier-fp32.onnx"
sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
precision = "fp32"
opset = 13

[input]
name = "input"
shape = [1, 1, 224, 224]
layout = "nchw"
dtype = "f32"

[preprocess]
window_center_hu = 100.0
window_width_hu = 700.0
resize = "stretch"
scale = 0.003921568627451
mean = [0.0]
std = [1.0]

[output]
name = "probs"
kind = "probabilities"

[labels]
names = ["negative", "positive"]
positive = "positive"

[provenance]
script = "models/train/x.py"
commit = "abc"
train_seeds = "1000-1199"
eval_seeds = "1-20"
date = "2026-11-26"
framework = "torch 2.x / onnxruntime 1.x"

[metrics]
slice_accuracy = 0.97
"#;

    pub(crate) const DETECTOR: &str = r#"
[model]
name = "pe-detector"
kind = "detector"
file = "det.onnx"
sha256 = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
precision = "int8"
opset = 13

[input]
name = "input"
shape = [1, 1, 416, 416]
layout = "nchw"
dtype = "f32"

[preprocess]
window_center_hu = 100
window_width_hu = 700
resize = "letterbox"
scale = 0.003921568627451
mean = [0.0]
std = [1.0]

[labels]
names = ["embolus"]
positive = "embolus"

[detector]
anchors = [[10, 14], [23, 27], [37, 58], [81, 82], [135, 169], [344, 319]]
confidence_threshold = 0.6
nms_iou = 0.45
[[detector.heads]]
output = "head_s32"
stride = 32
mask = [3, 4, 5]
scale_x_y = 1.05
[[detector.heads]]
output = "head_s16"
stride = 16
mask = [0, 1, 2]
scale_x_y = 1.1

[provenance]
script = "s"
commit = "c"
train_seeds = "1"
eval_seeds = "2"
date = "d"
framework = "f"
"#;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, "/models/m.toml")
    }

    #[test]
    fn parses_classifier() {
        let m = parse(CLASSIFIER).unwrap();
        assert_eq!(m.model().kind, ModelKind::Classifier);
        assert_eq!(m.onnx_path(), Path::new("/models/classifier-fp32.onnx"));
        assert_eq!(m.input().height(), 224);
        assert_eq!(m.input().channels(), 1);
        assert_eq!(m.positive_index(), Some(1));
        assert!(m.warnings().is_empty());
        assert_eq!(m.metrics()["slice_accuracy"], 0.97);
        assert_eq!(m.expected_outputs(), vec![OutputSpec { name: "probs".into(), shape: vec![1, 2] }]);
    }

    #[test]
    fn parses_detector_with_integer_floats_and_upper_hex() {
        let m = parse(DETECTOR).unwrap();
        assert_eq!(m.model().precision, Precision::Int8);
        assert_eq!(m.model().sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(m.preprocess().window_width_hu, 700.0);
        let Head::Detector(d) = m.head() else { panic!("not a detector") };
        assert_eq!(d.anchors[5], [344.0, 319.0]);
        assert_eq!(
            m.expected_outputs(),
            vec![
                OutputSpec { name: "head_s32".into(), shape: vec![1, 18, 13, 13] },
                OutputSpec { name: "head_s16".into(), shape: vec![1, 18, 26, 26] },
            ]
        );
    }

    #[test]
    fn missing_positive_is_a_warning() {
        let text = CLASSIFIER.replace("positive = \"positive\"\n", "");
        let m = parse(&text).unwrap();
        assert_eq!(m.positive_index(), None);
        assert_eq!(m.warnings().len(), 1);
        assert!(m.warnings()[0].to_string().contains("positive"));
    }

    fn invalid(text: &str) -> (String, Option<usize>, String) {
        match parse(text) {
            Err(e @ ManifestError::Invalid { .. }) => {
                let msg = e.to_string();
                let ManifestError::Invalid { key, line, .. } = e else { unreachable!() };
                (key, line, msg)
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn unknown_key_is_rejected_with_line() {
        let text = CLASSIFIER.replace("dtype = \"f32\"", "dtype = \"f32\"\ncolour = \"red\"");
        let err = parse(&text).unwrap_err();
        let ManifestError::Syntax { line, .. } = &err else { panic!("{err:?}") };
        assert_eq!(*line, Some(15));
        let msg = err.to_string();
        assert!(msg.contains("colour") && msg.contains("line 15"), "{msg}");
    }

    #[test]
    fn bad_enum_value_names_the_choices() {
        let text = CLASSIFIER.replace("layout = \"nchw\"", "layout = \"chw\"");
        let msg = parse(&text).unwrap_err().to_string();
        assert!(msg.contains("nchw") && msg.contains("nhwc") && msg.contains("line 13"), "{msg}");
    }

    #[test]
    fn positive_must_be_a_label() {
        let text = CLASSIFIER.replace("positive = \"positive\"", "positive = \"pe\"");
        let (key, line, msg) = invalid(&text);
        assert_eq!(key, "labels.positive");
        assert_eq!(line, Some(30));
        assert!(msg.contains("\"pe\"") && msg.contains("m.toml"), "{msg}");
    }

    #[test]
    fn mask_must_index_into_anchors() {
        let text = DETECTOR.replace("mask = [0, 1, 2]", "mask = [0, 1, 6]");
        let (key, _, msg) = invalid(&text);
        assert_eq!(key, "detector.heads[1].mask");
        assert!(msg.contains("6 anchors"), "{msg}");
    }

    #[test]
    fn rejects_bad_values() {
        let cases = [
            (CLASSIFIER.replace("[1, 1, 224, 224]", "[1, 224, 224]"), "input.shape"),
            (CLASSIFIER.replace("[1, 1, 224, 224]", "[2, 1, 224, 224]"), "input.shape"),
            (CLASSIFIER.replace("[1, 1, 224, 224]", "[1, 2, 224, 224]"), "input.shape"),
            (CLASSIFIER.replace("window_width_hu = 700.0", "window_width_hu = 0.0"), "preprocess.window_width_hu"),
            (CLASSIFIER.replace("std = [1.0]", "std = [0.0]"), "preprocess.std"),
            (CLASSIFIER.replace("mean = [0.0]", "mean = [0.0, 0.0]"), "preprocess.mean"),
            (CLASSIFIER.replace("classifier-fp32.onnx", "../x.onnx"), "model.file"),
            (CLASSIFIER.replace("e3b0c4", "zzb0c4"), "model.sha256"),
            (
                CLASSIFIER.replace("names = [\"negative\", \"positive\"]", "names = [\"positive\", \"positive\"]"),
                "labels.names",
            ),
            (
                DETECTOR.replace("confidence_threshold = 0.6", "confidence_threshold = 1.6"),
                "detector.confidence_threshold",
            ),
            (DETECTOR.replace("nms_iou = 0.45", "nms_iou = -0.1"), "detector.nms_iou"),
            (DETECTOR.replace("stride = 32", "stride = 30"), "detector.heads[0].stride"),
            (DETECTOR.replace("scale_x_y = 1.05", "scale_x_y = 0.5"), "detector.heads[0].scale_x_y"),
            (DETECTOR.replace("output = \"head_s16\"", "output = \"head_s32\""), "detector.heads[1].output"),
            (DETECTOR.replace("kind = \"detector\"", "kind = \"classifier\""), "detector"),
        ];
        for (text, want) in cases {
            let (key, line, msg) = invalid(&text);
            assert_eq!(key, want, "{msg}");
            if want != "labels.names" {
                assert!(line.is_some(), "{msg}");
            }
        }
    }

    #[test]
    fn sha256_is_checked_before_use() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("classifier-fp32.onnx"), b"not the model").unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, CLASSIFIER).unwrap();
        let m = Manifest::load(&path).unwrap();
        let err = m.read_verified_onnx().unwrap_err();
        let found = sha256_hex(b"not the model");
        let msg = err.to_string();
        assert!(msg.contains(&found) && msg.contains(&m.model().sha256), "{msg}");
        assert!(msg.contains("classifier-fp32.onnx") && msg.contains("m.toml"), "{msg}");

        std::fs::write(dir.path().join("classifier-fp32.onnx"), b"").unwrap();
        assert_eq!(m.read_verified_onnx().unwrap(), b"");
    }

    #[test]
    fn missing_manifest_says_which_file() {
        let msg = Manifest::load("/nonexistent/m.toml").unwrap_err().to_string();
        assert!(msg.contains("/nonexistent/m.toml"), "{msg}");
    }
}
