//! The manifest's TOML as written (`Raw*`, every table `deny_unknown_fields`) and the validator
//! that turns it into a checked `Manifest`, naming the key and the TOML line of each problem.
//! Pure: reads only the text it is given.

use super::*;
// Raw serde form: every value checked later keeps its span.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawManifest {
    model: RawModel,
    input: RawInput,
    preprocess: RawPreprocess,
    output: Option<Spanned<RawOutput>>,
    labels: RawLabels,
    detector: Option<Spanned<RawDetector>>,
    provenance: Provenance,
    #[serde(default)]
    metrics: BTreeMap<String, f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    name: String,
    kind: Spanned<ModelKind>,
    file: Spanned<String>,
    sha256: Spanned<String>,
    precision: Precision,
    opset: Spanned<u32>,
    /// Absent: `unknown`.
    #[serde(default)]
    training_domain: TrainingDomain,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    name: Spanned<String>,
    shape: Spanned<Vec<usize>>,
    layout: Layout,
    dtype: DType,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPreprocess {
    window_center_hu: Spanned<f32>,
    window_width_hu: Spanned<f32>,
    resize: ResizeMode,
    #[serde(default)]
    filter: ResizeFilter,
    scale: Spanned<f32>,
    mean: Spanned<Vec<f32>>,
    std: Spanned<Vec<f32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    name: Spanned<String>,
    kind: OutputKind,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLabels {
    names: Spanned<Vec<String>>,
    positive: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDetector {
    anchors: Spanned<Vec<[f32; 2]>>,
    confidence_threshold: Spanned<f32>,
    nms_iou: Spanned<f32>,
    heads: Spanned<Vec<RawHead>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHead {
    output: Spanned<String>,
    stride: Spanned<usize>,
    mask: Spanned<Vec<usize>>,
    scale_x_y: Spanned<f32>,
}

// ---------------------------------------------------------------------------------------------
// Validation.

pub(super) struct Validator<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
}

impl Validator<'_> {
    fn err(
        &self,
        key: impl Into<String>,
        span: Option<Range<usize>>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> ManifestError {
        ManifestError::Invalid {
            path: self.path.to_owned(),
            key: key.into(),
            line: span.map(|s| line_of(self.text, s.start)),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    pub(super) fn validate(&self, raw: RawManifest) -> Result<Manifest, ManifestError> {
        let mut warnings = Vec::new();
        let (model, onnx_path) = self.model(raw.model)?;
        let input = self.input(raw.input)?;
        let preprocess = self.preprocess(raw.preprocess, input.channels())?;
        let labels = self.labels(raw.labels, &mut warnings)?;
        let head = match model.kind {
            ModelKind::Classifier => {
                if let Some(det) = &raw.detector {
                    return Err(self.err(
                        "detector",
                        Some(det.span()),
                        "a classifier manifest has a [detector] table",
                        "remove it, or set `[model] kind = \"detector\"`",
                    ));
                }
                let Some(out) = raw.output else {
                    return Err(self.err(
                        "output",
                        None,
                        "a classifier manifest has no [output] table",
                        "add [output] with `name` and `kind = \"probabilities\"|\"logits\"`",
                    ));
                };
                let out = out.into_inner();
                if out.name.get_ref().is_empty() {
                    return Err(self.err(
                        "output.name",
                        Some(out.name.span()),
                        "the output name is empty",
                        "give the ONNX output tensor's name",
                    ));
                }
                if labels.names.len() < 2 {
                    return Err(self.err(
                        "labels.names",
                        None,
                        format!("a classifier needs at least 2 labels, found {}", labels.names.len()),
                        "list every output index's label in order",
                    ));
                }
                Head::Classifier(ClassifierOutput { name: out.name.into_inner(), kind: out.kind })
            }
            ModelKind::Detector => {
                if let Some(out) = &raw.output {
                    return Err(self.err(
                        "output",
                        Some(out.span()),
                        "a detector manifest has an [output] table",
                        "describe the outputs in [[detector.heads]] instead, or set `[model] kind = \"classifier\"`",
                    ));
                }
                let Some(det) = raw.detector else {
                    return Err(self.err(
                        "detector",
                        None,
                        "a detector manifest has no [detector] table",
                        "add [detector] with anchors, thresholds and [[detector.heads]]",
                    ));
                };
                Head::Detector(self.detector(det.into_inner(), &input)?)
            }
        };
        Ok(Manifest {
            path: self.path.to_owned(),
            onnx_path,
            model,
            input,
            preprocess,
            head,
            labels,
            provenance: raw.provenance,
            metrics: raw.metrics,
            warnings,
        })
    }

    fn model(&self, m: RawModel) -> Result<(ModelInfo, PathBuf), ManifestError> {
        let file = PathBuf::from(m.file.get_ref());
        let plain = !m.file.get_ref().is_empty() && file.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(self.err(
                "model.file",
                Some(m.file.span()),
                format!("{:?} is not a plain relative path", m.file.get_ref()),
                "name the ONNX file relative to the manifest's folder, without `..` or a leading `/`",
            ));
        }
        let sha = m.sha256.get_ref().to_ascii_lowercase();
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.err(
                "model.sha256",
                Some(m.sha256.span()),
                format!("{:?} is not 64 hex digits", m.sha256.get_ref()),
                "write the output of `sha256sum` on the ONNX file",
            ));
        }
        if *m.opset.get_ref() == 0 {
            return Err(self.err(
                "model.opset",
                Some(m.opset.span()),
                "opset 0 does not exist",
                "write the ONNX opset the model was exported with (e.g. 13)",
            ));
        }
        let folder = self.path.parent().unwrap_or_else(|| Path::new(""));
        let onnx_path = folder.join(&file);
        Ok((
            ModelInfo {
                name: m.name,
                kind: *m.kind.get_ref(),
                file,
                sha256: sha,
                precision: m.precision,
                opset: *m.opset.get_ref(),
                training_domain: m.training_domain,
            },
            onnx_path,
        ))
    }

    fn input(&self, i: RawInput) -> Result<InputSpec, ManifestError> {
        if i.name.get_ref().is_empty() {
            return Err(self.err(
                "input.name",
                Some(i.name.span()),
                "the input name is empty",
                "give the ONNX input tensor's name",
            ));
        }
        let span = Some(i.shape.span());
        let dims = i.shape.get_ref();
        let shape: [usize; 4] = dims.as_slice().try_into().map_err(|_| {
            self.err(
                "input.shape",
                span.clone(),
                format!("expected 4 dimensions, found {}", dims.len()),
                "write [1, C, H, W] for nchw or [1, H, W, C] for nhwc",
            )
        })?;
        if shape[0] != 1 {
            return Err(self.err(
                "input.shape",
                span,
                format!("batch size {} is not supported", shape[0]),
                "export the model with batch size 1",
            ));
        }
        let spec = InputSpec { name: i.name.into_inner(), shape, layout: i.layout, dtype: i.dtype };
        if !matches!(spec.channels(), 1 | 3) {
            return Err(self.err(
                "input.shape",
                span,
                format!("{} channels (layout {:?}) is neither 1 nor 3", spec.channels(), spec.layout),
                "check `layout` against the shape's channel axis",
            ));
        }
        if spec.height() == 0 || spec.width() == 0 || spec.height() > 8192 || spec.width() > 8192 {
            return Err(self.err(
                "input.shape",
                span,
                format!("input size {}x{} is out of range", spec.width(), spec.height()),
                "use a height and width between 1 and 8192",
            ));
        }
        Ok(spec)
    }

    fn preprocess(&self, p: RawPreprocess, channels: usize) -> Result<PreprocessSpec, ManifestError> {
        if !p.window_center_hu.get_ref().is_finite() {
            return Err(self.err(
                "preprocess.window_center_hu",
                Some(p.window_center_hu.span()),
                "the window centre is not a finite number",
                "write the HU window centre, e.g. 100.0",
            ));
        }
        let width = *p.window_width_hu.get_ref();
        if !(width.is_finite() && width > 0.0) {
            return Err(self.err(
                "preprocess.window_width_hu",
                Some(p.window_width_hu.span()),
                format!("window width {width} is not a positive number"),
                "write the HU window width, e.g. 700.0",
            ));
        }
        let scale = *p.scale.get_ref();
        if !(scale.is_finite() && scale > 0.0) {
            return Err(self.err(
                "preprocess.scale",
                Some(p.scale.span()),
                format!("scale {scale} is not a positive number"),
                "write the factor applied to gray 0..255, e.g. 1/255 = 0.00392156862745098",
            ));
        }
        for (key, values, positive) in [("mean", &p.mean, false), ("std", &p.std, true)] {
            let v = values.get_ref();
            if v.len() != 1 && v.len() != channels {
                return Err(self.err(
                    format!("preprocess.{key}"),
                    Some(values.span()),
                    format!("{} values for a {channels}-channel input", v.len()),
                    format!("give one value per channel ({channels}) or one for all"),
                ));
            }
            if v.iter().any(|x| !x.is_finite() || (positive && *x <= 0.0)) {
                return Err(self.err(
                    format!("preprocess.{key}"),
                    Some(values.span()),
                    format!("{v:?} holds a value that is not finite{}", if positive { " and > 0" } else { "" }),
                    "fix the normalization constants used in training",
                ));
            }
        }
        Ok(PreprocessSpec {
            window_center_hu: *p.window_center_hu.get_ref(),
            window_width_hu: width,
            resize: p.resize,
            filter: p.filter,
            scale,
            mean: p.mean.into_inner(),
            std: p.std.into_inner(),
        })
    }

    fn labels(&self, l: RawLabels, warnings: &mut Vec<ManifestWarning>) -> Result<Labels, ManifestError> {
        let names = l.names.get_ref();
        if names.is_empty() {
            return Err(self.err(
                "labels.names",
                Some(l.names.span()),
                "no labels",
                "list the label of each output index, in order",
            ));
        }
        let mut seen = HashSet::new();
        if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
            return Err(self.err(
                "labels.names",
                Some(l.names.span()),
                format!("label {dup:?} appears twice"),
                "give each output index its own label",
            ));
        }
        let positive = match l.positive {
            Some(p) => {
                if !names.contains(p.get_ref()) {
                    return Err(self.err(
                        "labels.positive",
                        Some(p.span()),
                        format!("{:?} is not one of the labels {names:?}", p.get_ref()),
                        "name the label that means PE, spelled as in `names`",
                    ));
                }
                Some(p.into_inner())
            }
            None => {
                warnings
                    .push(ManifestWarning::PositiveLabelMissing { path: self.path.to_owned(), names: names.clone() });
                None
            }
        };
        Ok(Labels { names: l.names.into_inner(), positive })
    }

    fn detector(&self, d: RawDetector, input: &InputSpec) -> Result<DetectorSpec, ManifestError> {
        let anchors = d.anchors.get_ref();
        if anchors.is_empty() || anchors.iter().flatten().any(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(self.err(
                "detector.anchors",
                Some(d.anchors.span()),
                "anchors must be a non-empty list of [w, h] pairs, all > 0",
                "copy `anchors` from the darknet cfg, in network pixels",
            ));
        }
        for (key, v) in [("detector.confidence_threshold", &d.confidence_threshold), ("detector.nms_iou", &d.nms_iou)] {
            let x = *v.get_ref();
            if !(0.0..=1.0).contains(&x) {
                return Err(self.err(
                    key,
                    Some(v.span()),
                    format!("{x} is outside 0..=1"),
                    "write a fraction between 0 and 1",
                ));
            }
        }
        let raw_heads = d.heads.get_ref();
        if raw_heads.is_empty() {
            return Err(self.err(
                "detector.heads",
                Some(d.heads.span()),
                "no heads",
                "add one [[detector.heads]] per YOLO output",
            ));
        }
        let mut heads = Vec::with_capacity(raw_heads.len());
        let mut outputs = HashSet::new();
        for (ix, h) in d.heads.into_inner().into_iter().enumerate() {
            let key = |k: &str| format!("detector.heads[{ix}].{k}");
            if h.output.get_ref().is_empty() || !outputs.insert(h.output.get_ref().clone()) {
                return Err(self.err(
                    key("output"),
                    Some(h.output.span()),
                    format!("output name {:?} is empty or used by another head", h.output.get_ref()),
                    "give each head its own ONNX output tensor name",
                ));
            }
            let stride = *h.stride.get_ref();
            if stride == 0 || !input.height().is_multiple_of(stride) || !input.width().is_multiple_of(stride) {
                return Err(self.err(
                    key("stride"),
                    Some(h.stride.span()),
                    format!("stride {stride} does not divide the input size {}x{}", input.width(), input.height()),
                    "use the head's downsampling factor (8, 16 or 32 for YOLOv4)",
                ));
            }
            let mask = h.mask.get_ref();
            if mask.is_empty() || mask.iter().any(|&m| m >= anchors.len()) {
                return Err(self.err(
                    key("mask"),
                    Some(h.mask.span()),
                    format!("mask {mask:?} must be non-empty and index into {} anchors", anchors.len()),
                    "copy `mask` from the darknet cfg",
                ));
            }
            let s = *h.scale_x_y.get_ref();
            if !(s.is_finite() && (1.0..=2.0).contains(&s)) {
                return Err(self.err(
                    key("scale_x_y"),
                    Some(h.scale_x_y.span()),
                    format!("scale_x_y {s} is outside 1.0..=2.0"),
                    "copy `scale_x_y` from the darknet cfg (1.0 when absent)",
                ));
            }
            heads.push(DetectorHead { output: h.output.into_inner(), stride, mask: h.mask.into_inner(), scale_x_y: s });
        }
        Ok(DetectorSpec {
            anchors: d.anchors.into_inner(),
            confidence_threshold: d.confidence_threshold.into_inner(),
            nms_iou: d.nms_iou.into_inner(),
            heads,
        })
    }
}
