//! Bring-your-own-model importers. Today: darknet YOLO (`.cfg` + `.weights`, as the seed paper
//! released its detector) to an ONNX file plus its model manifest.
//!
//! In: the cfg text, the weights bytes and [`DarknetOptions`]. Out: the ONNX model (convolution
//! with batch-norm folded using darknet's epsilon 1e-5; mish, leaky, linear, logistic, relu
//! activations; route with groups; shortcut; maxpool with darknet's padding; nearest upsample; each
//! `[yolo]` layer's input as a raw output `head_s<stride>`) and a manifest carrying anchors, masks,
//! `scale_x_y`, classes and the input size and channels from the cfg; the daemon decodes the raw
//! heads. Touches: reads the two input files, writes two new files in the output folder (never
//! overwrites). Submodules: [`cfg`] (parser), [`weights`] (reader), [`onnx`] (writer),
//! `manifest` (the manifest's text).
use std::path::{Path, PathBuf};

pub mod cfg;
mod manifest;
pub mod onnx;
pub mod weights;

use self::cfg::{Activation, Cfg, CfgProblem, LayerKind};
use self::manifest::{manifest_text, ManifestText};
use self::onnx::{Attr, GraphBuilder};
use crate::model::manifest::sha256_hex;

/// Darknet's batch-norm epsilon (`normalize_cpu`: `sqrt(variance + .00001f)`).
pub const DARKNET_BN_EPSILON: f32 = 1e-5;

/// Choices the cfg does not make.
#[derive(Debug, Clone, PartialEq)]
pub struct DarknetOptions {
    /// File stem of the two outputs and the manifest's model name (default: the cfg's stem).
    pub name: Option<String>,
    /// Class names in output order (darknet's `.names` file); default `class0`, `class1`, ...
    pub labels: Option<Vec<String>>,
    /// The label that means PE; default: the only label of a one-class model.
    pub positive: Option<String>,
    pub confidence_threshold: f32,
    pub nms_iou: f32,
    /// What the weights were trained on (`[model] training_domain`); default `unknown`.
    pub training_domain: crate::model::TrainingDomain,
}

impl Default for DarknetOptions {
    fn default() -> Self {
        // darknet's `detector test` defaults: thresh 0.25, nms 0.45.
        DarknetOptions {
            name: None,
            labels: None,
            positive: None,
            confidence_threshold: 0.25,
            nms_iou: 0.45,
            training_domain: crate::model::TrainingDomain::Unknown,
        }
    }
}

/// A raw head: ONNX output name and `[channels, height, width]`.
pub type HeadShape = (String, [usize; 3]);

/// What an import wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct DarknetImport {
    pub onnx: PathBuf,
    pub manifest: PathBuf,
    pub layers: usize,
    pub convolutions: usize,
    /// Bytes of the weights file used (all of it).
    pub weights_bytes: usize,
    /// `(output name, [channels, height, width])`, cfg order.
    pub heads: Vec<HeadShape>,
}

/// Import errors; each names the file, the layer where it applies, and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    #[error("cannot read {}: {source}; check the path", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("darknet cfg {}, line {}{}: {}; {}", path.display(), problem.line, layer_part(&problem.layer), problem.problem, problem.fix)]
    Cfg { path: PathBuf, problem: CfgProblem },
    #[error("darknet cfg {}, {layer}: {problem}; {fix}", path.display())]
    Graph { path: PathBuf, layer: String, problem: String, fix: String },
    #[error("weights file {} is {found} bytes, shorter than its header; the cfg expects exactly {expected} bytes; give the .weights file trained with this cfg", path.display())]
    WeightsHeader { path: PathBuf, found: usize, expected: usize },
    #[error("weights file {} ends at byte {found}, but {layer} needs bytes {start}..{end}; the cfg expects exactly {expected} bytes ({header}-byte header + {floats} floats); the weights were trained with another cfg or the file is truncated", path.display())]
    WeightsShort {
        path: PathBuf,
        layer: String,
        start: usize,
        end: usize,
        found: usize,
        expected: usize,
        header: usize,
        floats: usize,
    },
    #[error("weights file {} is {found} bytes, {} more than the {expected} the cfg expects ({header}-byte header + {floats} floats, the last for {layer}); the weights were trained with another cfg", path.display(), found - expected)]
    WeightsLong { path: PathBuf, layer: String, found: usize, expected: usize, header: usize, floats: usize },
    #[error("{what}: {problem}; {fix}")]
    Options { what: String, problem: String, fix: String },
    #[error("cannot write {}: {source}; check the output folder and its permissions", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} already exists; choose another --out folder or --name, or remove the old file", path.display())]
    Exists { path: PathBuf },
}

fn layer_part(layer: &str) -> String {
    if layer.is_empty() {
        String::new()
    } else {
        format!(" ({layer})")
    }
}

/// Shape of one layer's output, and the ONNX tensor holding it.
#[derive(Debug, Clone)]
struct Shape {
    c: usize,
    h: usize,
    w: usize,
}

/// One layer's planned output and the floats it reads from the weights file.
#[derive(Debug, Clone)]
struct Planned {
    out: Shape,
    floats: usize,
}

fn label(cfg: &Cfg, ix: usize) -> String {
    let l = &cfg.layers[ix];
    format!("layer {ix} [{}] (cfg line {})", l.section(), l.line)
}

/// Computes every layer's output shape and weight count, checking the cfg's arithmetic.
fn plan(cfg: &Cfg, path: &Path) -> Result<Vec<Planned>, ImportError> {
    let mut out: Vec<Planned> = Vec::with_capacity(cfg.layers.len());
    let input = Shape { c: cfg.net.channels, h: cfg.net.height, w: cfg.net.width };
    for (ix, layer) in cfg.layers.iter().enumerate() {
        let err = |problem: String, fix: &str| ImportError::Graph {
            path: path.to_owned(),
            layer: label(cfg, ix),
            problem,
            fix: fix.to_string(),
        };
        let prev = if ix == 0 { &input } else { &out[ix - 1].out };
        let is_yolo = |j: usize| matches!(cfg.layers[j].kind, LayerKind::Yolo(_));
        let planned = match &layer.kind {
            LayerKind::Conv(c) => {
                if prev.c % c.groups != 0 || c.filters % c.groups != 0 {
                    return Err(err(
                        format!(
                            "groups={} does not divide {} input channels and {} filters",
                            c.groups, prev.c, c.filters
                        ),
                        "use a groups value dividing both",
                    ));
                }
                if prev.h + 2 * c.padding < c.size || prev.w + 2 * c.padding < c.size {
                    return Err(err(
                        format!("kernel {} is larger than the padded {}x{} input", c.size, prev.w, prev.h),
                        "check size, pad and the input size in [net]",
                    ));
                }
                let oh = (prev.h + 2 * c.padding - c.size) / c.stride + 1;
                let ow = (prev.w + 2 * c.padding - c.size) / c.stride + 1;
                let per_filter = if c.batch_normalize { 4 } else { 1 };
                let floats = c.filters * per_filter + c.filters * (prev.c / c.groups) * c.size * c.size;
                Planned { out: Shape { c: c.filters, h: oh, w: ow }, floats }
            }
            LayerKind::Route(r) => {
                let mut c = 0;
                let first = &out[r.layers[0]].out;
                for &j in &r.layers {
                    if is_yolo(j) {
                        return Err(err(format!("route to yolo layer {j}"), "route to the convolution before it"));
                    }
                    let s = &out[j].out;
                    if (s.h, s.w) != (first.h, first.w) {
                        return Err(err(
                            format!("joins layers of different sizes ({}x{} and {}x{})", first.w, first.h, s.w, s.h),
                            "route only layers of the same width and height",
                        ));
                    }
                    if !s.c.is_multiple_of(r.groups) {
                        return Err(err(
                            format!("groups={} does not divide layer {j}'s {} channels", r.groups, s.c),
                            "use a groups value dividing the channels",
                        ));
                    }
                    c += s.c / r.groups;
                }
                Planned { out: Shape { c, h: first.h, w: first.w }, floats: 0 }
            }
            LayerKind::Shortcut { from, .. } => {
                let s = &out[*from].out;
                if is_yolo(*from) || (s.c, s.h, s.w) != (prev.c, prev.h, prev.w) {
                    return Err(err(
                        format!(
                            "adds layer {from} ({}x{}x{}) to the previous layer ({}x{}x{})",
                            s.c, s.h, s.w, prev.c, prev.h, prev.w
                        ),
                        "the importer supports shortcuts between layers of the same shape only",
                    ));
                }
                Planned { out: prev.clone(), floats: 0 }
            }
            LayerKind::MaxPool(m) => {
                if prev.h + m.padding < m.size || prev.w + m.padding < m.size {
                    return Err(err(format!("pool size {} is larger than the padded input", m.size), "check size"));
                }
                let oh = (prev.h + m.padding - m.size) / m.stride + 1;
                let ow = (prev.w + m.padding - m.size) / m.stride + 1;
                Planned { out: Shape { c: prev.c, h: oh, w: ow }, floats: 0 }
            }
            LayerKind::Upsample { stride } => {
                Planned { out: Shape { c: prev.c, h: prev.h * stride, w: prev.w * stride }, floats: 0 }
            }
            LayerKind::Yolo(y) => {
                let want = y.mask.len() * (5 + y.classes);
                if prev.c != want {
                    return Err(err(
                        format!(
                            "the layer before has {} filters, but {} masked anchors x (5 + {} classes) = {want}",
                            prev.c,
                            y.mask.len(),
                            y.classes
                        ),
                        "set `filters` of the convolution before each [yolo] to (classes + 5) * len(mask)",
                    ));
                }
                if !cfg.net.height.is_multiple_of(prev.h)
                    || !cfg.net.width.is_multiple_of(prev.w)
                    || cfg.net.height / prev.h != cfg.net.width / prev.w
                {
                    return Err(err(
                        format!(
                            "a {}x{} head is not a whole stride of the {}x{} input",
                            prev.w, prev.h, cfg.net.width, cfg.net.height
                        ),
                        "use an input size divisible by 32",
                    ));
                }
                Planned { out: prev.clone(), floats: 0 }
            }
        };
        out.push(planned);
    }
    Ok(out)
}

/// What the weights file holds for one convolutional layer, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvWeights {
    /// Darknet layer index.
    pub layer: usize,
    pub filters: usize,
    /// Input channels per group.
    pub in_channels: usize,
    pub size: usize,
    /// Whether scales, rolling mean and rolling variance follow the biases.
    pub batch_normalize: bool,
}

/// The convolutional layers' weight shapes, in weights-file order (e.g. to write random weights
/// for a cfg whose trained weights are not public); checks the cfg's arithmetic as the import does.
pub fn conv_weights(cfg: &Cfg, cfg_path: &Path) -> Result<Vec<ConvWeights>, ImportError> {
    let planned = plan(cfg, cfg_path)?;
    let mut out = Vec::new();
    for (ix, layer) in cfg.layers.iter().enumerate() {
        if let LayerKind::Conv(c) = &layer.kind {
            let prev_c = if ix == 0 { cfg.net.channels } else { planned[ix - 1].out.c };
            out.push(ConvWeights {
                layer: ix,
                filters: c.filters,
                in_channels: prev_c / c.groups,
                size: c.size,
                batch_normalize: c.batch_normalize,
            });
        }
    }
    Ok(out)
}

fn activation(g: &mut GraphBuilder, x: String, a: Activation) -> String {
    match a {
        Activation::Linear => x,
        Activation::Leaky => g.node("LeakyRelu", &[&x], vec![("alpha", Attr::Float(0.1))]),
        Activation::Relu => g.node("Relu", &[&x], vec![]),
        Activation::Logistic => g.node("Sigmoid", &[&x], vec![]),
        Activation::Mish => {
            // Mish (opset 18) = x * tanh(softplus(x)), from opset-13 operators.
            let sp = g.node("Softplus", &[&x], vec![]);
            let t = g.node("Tanh", &[&sp], vec![]);
            g.node("Mul", &[&x, &t], vec![])
        }
    }
}

/// Converts a parsed cfg and its weights to ONNX bytes; returns them with the heads.
/// `cfg_path` and `weights_path` are for messages only.
pub fn darknet_to_onnx(
    cfg: &Cfg,
    weights_bytes: &[u8],
    cfg_path: &Path,
    weights_path: &Path,
) -> Result<(Vec<u8>, Vec<HeadShape>), ImportError> {
    let planned = plan(cfg, cfg_path)?;
    let floats: usize = planned.iter().map(|p| p.floats).sum();
    let header = weights::header(weights_bytes).ok_or_else(|| ImportError::WeightsHeader {
        path: weights_path.to_owned(),
        found: weights_bytes.len(),
        expected: 20 + 4 * floats,
    })?;
    let expected = header.len + 4 * floats;
    let last_conv = (0..cfg.layers.len()).rev().find(|&i| planned[i].floats > 0);
    if weights_bytes.len() < expected {
        let mut start = header.len;
        for (ix, p) in planned.iter().enumerate() {
            let end = start + 4 * p.floats;
            if end > weights_bytes.len() {
                return Err(ImportError::WeightsShort {
                    path: weights_path.to_owned(),
                    layer: label(cfg, ix),
                    start,
                    end,
                    found: weights_bytes.len(),
                    expected,
                    header: header.len,
                    floats,
                });
            }
            start = end;
        }
    }
    if weights_bytes.len() > expected {
        return Err(ImportError::WeightsLong {
            path: weights_path.to_owned(),
            layer: last_conv.map_or_else(|| "no layer".to_string(), |i| label(cfg, i)),
            found: weights_bytes.len(),
            expected,
            header: header.len,
            floats,
        });
    }

    let mut reader = weights::Floats::new(weights_bytes, &header);
    let mut g = GraphBuilder::default();
    let input = [1, cfg.net.channels, cfg.net.height, cfg.net.width];
    g.input("input", &input);
    let mut names: Vec<String> = Vec::with_capacity(cfg.layers.len());
    let mut heads = Vec::new();
    for (ix, layer) in cfg.layers.iter().enumerate() {
        let prev_name = if ix == 0 { "input".to_string() } else { names[ix - 1].clone() };
        let prev_c = if ix == 0 { cfg.net.channels } else { planned[ix - 1].out.c };
        let name = match &layer.kind {
            LayerKind::Conv(c) => {
                let start = reader.offset;
                let short = || ImportError::WeightsShort {
                    path: weights_path.to_owned(),
                    layer: label(cfg, ix),
                    start,
                    end: start + 4 * planned[ix].floats,
                    found: weights_bytes.len(),
                    expected,
                    header: header.len,
                    floats,
                };
                let f = c.filters;
                let mut bias = reader.take(f).ok_or_else(short)?;
                let per_filter = (prev_c / c.groups) * c.size * c.size;
                let mut w;
                if c.batch_normalize {
                    let scales = reader.take(f).ok_or_else(short)?;
                    let mean = reader.take(f).ok_or_else(short)?;
                    let var = reader.take(f).ok_or_else(short)?;
                    w = reader.take(f * per_filter).ok_or_else(short)?;
                    for o in 0..f {
                        let k = scales[o] / (var[o] + DARKNET_BN_EPSILON).sqrt();
                        w[o * per_filter..(o + 1) * per_filter].iter_mut().for_each(|v| *v *= k);
                        bias[o] -= mean[o] * k;
                    }
                } else {
                    w = reader.take(f * per_filter).ok_or_else(short)?;
                }
                if let Some(bad) = w.iter().chain(bias.iter()).position(|v| !v.is_finite()) {
                    return Err(ImportError::Graph {
                        path: weights_path.to_owned(),
                        layer: label(cfg, ix),
                        problem: format!("weight {bad} is not finite after folding batch-norm"),
                        fix: "the weights file is damaged or was not trained with this cfg".into(),
                    });
                }
                let wn = g.f32_init("w", &[f, prev_c / c.groups, c.size, c.size], &w);
                let bn = g.f32_init("b", &[f], &bias);
                let p = c.padding as i64;
                let y = g.node(
                    "Conv",
                    &[&prev_name, &wn, &bn],
                    vec![
                        ("kernel_shape", Attr::Ints(vec![c.size as i64; 2])),
                        ("strides", Attr::Ints(vec![c.stride as i64; 2])),
                        ("pads", Attr::Ints(vec![p; 4])),
                        ("group", Attr::Int(c.groups as i64)),
                    ],
                );
                activation(&mut g, y, c.activation)
            }
            LayerKind::Route(r) => {
                let mut parts = Vec::with_capacity(r.layers.len());
                for &j in &r.layers {
                    if r.groups == 1 {
                        parts.push(names[j].clone());
                    } else {
                        let part = (planned[j].out.c / r.groups) as i64;
                        let starts = g.i64_init("starts", &[r.group_id as i64 * part]);
                        let ends = g.i64_init("ends", &[(r.group_id as i64 + 1) * part]);
                        let axes = g.i64_init("axes", &[1]);
                        parts.push(g.node("Slice", &[&names[j], &starts, &ends, &axes], vec![]));
                    }
                }
                if parts.len() == 1 {
                    parts.remove(0)
                } else {
                    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                    g.node("Concat", &refs, vec![("axis", Attr::Int(1))])
                }
            }
            LayerKind::Shortcut { from, activation: a } => {
                let y = g.node("Add", &[&prev_name, &names[*from]], vec![]);
                activation(&mut g, y, *a)
            }
            LayerKind::MaxPool(m) => {
                let (before, after) = ((m.padding / 2) as i64, (m.padding - m.padding / 2) as i64);
                g.node(
                    "MaxPool",
                    &[&prev_name],
                    vec![
                        ("kernel_shape", Attr::Ints(vec![m.size as i64; 2])),
                        ("strides", Attr::Ints(vec![m.stride as i64; 2])),
                        ("pads", Attr::Ints(vec![before, before, after, after])),
                    ],
                )
            }
            LayerKind::Upsample { stride } => {
                let s = *stride as f32;
                let scales = g.f32_init("scales", &[4], &[1.0, 1.0, s, s]);
                g.node(
                    "Resize",
                    &[&prev_name, "", &scales],
                    vec![
                        ("mode", Attr::Str("nearest")),
                        ("coordinate_transformation_mode", Attr::Str("asymmetric")),
                        ("nearest_mode", Attr::Str("floor")),
                    ],
                )
            }
            LayerKind::Yolo(_) => {
                let s = &planned[ix].out;
                let out = format!("head_s{}", cfg.net.height / s.h);
                if heads.iter().any(|(n, _)| *n == out) {
                    return Err(ImportError::Graph {
                        path: cfg_path.to_owned(),
                        layer: label(cfg, ix),
                        problem: format!("a second [yolo] layer at stride {}", cfg.net.height / s.h),
                        fix: "the importer supports one [yolo] layer per stride".into(),
                    });
                }
                let y = g.node_named("Identity", &[&prev_name], out.clone(), vec![]);
                g.output(&y, &[1, s.c, s.h, s.w]);
                heads.push((out, [s.c, s.h, s.w]));
                y
            }
        };
        names.push(name);
    }
    if heads.is_empty() {
        return Err(ImportError::Graph {
            path: cfg_path.to_owned(),
            layer: "the whole cfg".into(),
            problem: "no [yolo] layer".into(),
            fix: "the importer converts YOLO detectors; the cfg must end in [yolo] layers".into(),
        });
    }
    Ok((g.encode("darknet", "pe-sentinel import-darknet"), heads))
}

fn opt_err(what: &str, problem: String, fix: &str) -> ImportError {
    ImportError::Options { what: what.to_string(), problem, fix: fix.to_string() }
}

/// Reads `cfg_path` and `weights_path`, writes `<name>.onnx` and `<name>.toml` into `out_dir`
/// (created if missing; existing files are never overwritten).
pub fn import_darknet(
    cfg_path: &Path,
    weights_path: &Path,
    out_dir: &Path,
    options: &DarknetOptions,
) -> Result<DarknetImport, ImportError> {
    let text =
        std::fs::read_to_string(cfg_path).map_err(|source| ImportError::Read { path: cfg_path.to_owned(), source })?;
    let cfg = cfg::parse(&text).map_err(|problem| ImportError::Cfg { path: cfg_path.to_owned(), problem })?;
    let yolos = cfg.yolos();
    if let Some(first) = yolos.first() {
        if let Some(other) = yolos.iter().find(|y| y.anchors != first.anchors || y.classes != first.classes) {
            return Err(ImportError::Graph {
                path: cfg_path.to_owned(),
                layer: "the [yolo] layers".into(),
                problem: format!(
                    "disagree on anchors or classes ({:?}/{} vs {:?}/{})",
                    first.anchors, first.classes, other.anchors, other.classes
                ),
                fix: "give every [yolo] layer the same anchors and classes".into(),
            });
        }
    }
    let classes = yolos.first().map_or(0, |y| y.classes);
    let labels: Vec<String> = match &options.labels {
        Some(l) if l.len() != classes => {
            return Err(opt_err(
                "--names",
                format!("{} names for a cfg with classes={classes}", l.len()),
                "give one name per line, one per class, in class-index order",
            ))
        }
        Some(l) => l.clone(),
        None => (0..classes).map(|i| format!("class{i}")).collect(),
    };
    let positive = match &options.positive {
        Some(p) if !labels.contains(p) => {
            return Err(opt_err("--positive", format!("{p:?} is not one of {labels:?}"), "name one of the class names"))
        }
        Some(p) => Some(p.clone()),
        None if labels.len() == 1 => Some(labels[0].clone()),
        None => None,
    };
    for (what, v) in [("--confidence", options.confidence_threshold), ("--nms-iou", options.nms_iou)] {
        if !(0.0..=1.0).contains(&v) {
            return Err(opt_err(what, format!("{v} is outside 0..=1"), "give a fraction"));
        }
    }
    let weights =
        std::fs::read(weights_path).map_err(|source| ImportError::Read { path: weights_path.to_owned(), source })?;
    let (onnx, heads) = darknet_to_onnx(&cfg, &weights, cfg_path, weights_path)?;

    let name = match &options.name {
        Some(n) => n.clone(),
        None => cfg_path.file_stem().map_or("darknet".into(), |s| s.to_string_lossy().into_owned()),
    };
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(opt_err("--name", format!("{name:?} is not a plain file stem"), "give a name without slashes"));
    }
    std::fs::create_dir_all(out_dir).map_err(|source| ImportError::Write { path: out_dir.to_owned(), source })?;
    let onnx_file = format!("{name}.onnx");
    let onnx_path = out_dir.join(&onnx_file);
    let manifest_path = out_dir.join(format!("{name}.toml"));
    for p in [&onnx_path, &manifest_path] {
        if p.exists() {
            return Err(ImportError::Exists { path: p.clone() });
        }
    }
    let text = manifest_text(&ManifestText {
        cfg: &cfg,
        name: &name,
        onnx_file: &onnx_file,
        onnx_sha: &sha256_hex(&onnx),
        labels: &labels,
        positive: positive.as_deref(),
        heads: &heads,
        options,
        source: format!(
            "{} (sha256 {}) and {} (sha256 {})",
            cfg_path.file_name().map_or("?".into(), |f| f.to_string_lossy()),
            sha256_hex(text.as_bytes()),
            weights_path.file_name().map_or("?".into(), |f| f.to_string_lossy()),
            sha256_hex(&weights)
        ),
    });
    write_new(&onnx_path, &onnx)?;
    write_new(&manifest_path, text.as_bytes())?;
    Ok(DarknetImport {
        onnx: onnx_path,
        manifest: manifest_path,
        layers: cfg.layers.len(),
        convolutions: cfg.layers.iter().filter(|l| matches!(l.kind, LayerKind::Conv(_))).count(),
        weights_bytes: weights.len(),
        heads,
    })
}

/// Writes through a temporary name, then renames, so a failed write leaves no half file.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), ImportError> {
    let tmp = path.with_extension("part");
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|source| ImportError::Write { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights_file_len(text: &str) -> usize {
        let cfg = cfg::parse(text).unwrap();
        let floats: usize = conv_weights(&cfg, Path::new("t.cfg"))
            .unwrap()
            .iter()
            .map(|c| c.filters * if c.batch_normalize { 4 } else { 1 } + c.filters * c.in_channels * c.size * c.size)
            .sum();
        20 + 4 * floats
    }

    /// The layouts agree with the released COCO weights: yolov4.weights is 257,717,640 bytes and
    /// yolov4-tiny.weights 24,251,276 bytes (AlexeyAB darknet releases, 80 classes, 3 channels).
    #[test]
    fn expected_weights_sizes_match_the_released_coco_files() {
        let paper = include_str!("../../tests/data/darknet/yolov4-ctscans.cfg");
        let yolov4 = paper
            .replace("channels=1", "channels=3")
            .replace("classes=1", "classes=80")
            .replace("filters=18", "filters=255");
        assert_eq!(weights_file_len(&yolov4), 257_717_640);
        assert_eq!(weights_file_len(include_str!("../../tests/data/darknet/yolov4-tiny.cfg")), 24_251_276);
    }

    /// One 1x1 convolution with batch-norm over a 1x1 input, through the real engine: the output
    /// must be darknet's `scale * (w*x + 0 - mean) / sqrt(var + 1e-5) + bias`, then leaky.
    #[test]
    fn batch_norm_folds_with_darknet_epsilon() {
        use tract_onnx::prelude::*;
        let text = "[net]\nwidth=1\nheight=1\nchannels=1\n[convolutional]\nbatch_normalize=1\nfilters=2\n\
                    size=1\nactivation=leaky\n[convolutional]\nfilters=6\nsize=1\nactivation=linear\n\
                    [yolo]\nmask=0\nanchors=1,1\nnum=1\nclasses=1\n";
        let cfg = cfg::parse(text).unwrap();
        // conv0: bias, scale, mean, var (2 each), weights 2x1; conv1: bias 6, weights 6x2 (identity-ish).
        let var = [1e-4f32, 2e-5];
        let mut floats = vec![0.5, -0.25, 2.0, 3.0, 0.1, -0.2, var[0], var[1], 1.5, -1.0];
        floats.extend([0.0; 6]);
        floats.extend([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let mut bytes = Vec::new();
        weights::write_header(&mut bytes, 0);
        bytes.extend(floats.iter().flat_map(|v| v.to_le_bytes()));
        let (onnx, _) = darknet_to_onnx(&cfg, &bytes, Path::new("c"), Path::new("w")).unwrap();
        let model = tract_onnx::onnx().model_for_read(&mut onnx.as_slice()).unwrap().into_runnable().unwrap();
        let x = 0.3f32;
        let out = model.run(tvec!(Tensor::from_shape(&[1, 1, 1, 1], &[x]).unwrap().into())).unwrap();
        let got = out[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
        let leaky = |v: f32| if v > 0.0 { v } else { 0.1 * v };
        for (o, (w, (s, (m, (b, v))))) in [1.5f32, -1.0]
            .iter()
            .zip([2.0f32, 3.0].iter().zip([0.1f32, -0.2].iter().zip([0.5f32, -0.25].iter().zip(var))))
            .enumerate()
        {
            let want = leaky(s * (w * x - m) / (v + 1e-5).sqrt() + b);
            assert!((got[o] - want).abs() <= 1e-5 * want.abs().max(1.0), "filter {o}: {} vs {want}", got[o]);
            // With OpenCV's 1e-6 the value would differ by far more than the tolerance.
            let other = leaky(s * (w * x - m) / (v + 1e-6).sqrt() + b);
            assert!((other - want).abs() > 1e-2, "{other} {want}");
        }
        assert_eq!(&got[2..], &[0.0; 4]);
    }

    #[test]
    fn weights_length_errors_name_layer_and_bytes() {
        let text = "[net]\nwidth=8\nheight=8\nchannels=1\n[convolutional]\nbatch_normalize=1\nfilters=2\nsize=3\n\
                    pad=1\nactivation=leaky\n[convolutional]\nfilters=12\nsize=1\nactivation=linear\n\
                    [yolo]\nmask=0,1\nanchors=1,1,2,2\nnum=2\nclasses=1\n";
        let cfg = cfg::parse(text).unwrap();
        // conv0: 2*4 + 2*1*9 = 26 floats; conv1: 12 + 12*2 = 36 floats; header 20 bytes.
        let expected = 20 + 4 * (26 + 36);
        let mut bytes = Vec::new();
        weights::write_header(&mut bytes, 0);
        bytes.resize(expected, 0);
        for (i, v) in bytes[20..].chunks_exact_mut(4).enumerate() {
            v.copy_from_slice(&(0.01 * (i % 7) as f32 + 1.0).to_le_bytes());
        }
        let (p, w) = (Path::new("x.cfg"), Path::new("x.weights"));
        let (onnx, heads) = darknet_to_onnx(&cfg, &bytes, p, w).unwrap();
        assert!(!onnx.is_empty());
        assert_eq!(heads, vec![("head_s1".to_string(), [12, 8, 8])]);
        let e = darknet_to_onnx(&cfg, &bytes[..expected - 4], p, w).unwrap_err().to_string();
        assert!(e.contains("layer 1 [convolutional] (cfg line 11)"), "{e}");
        assert!(e.contains(&format!("exactly {expected} bytes")), "{e}");
        let mut long = bytes.clone();
        long.extend_from_slice(&[0; 8]);
        let e = darknet_to_onnx(&cfg, &long, p, w).unwrap_err().to_string();
        assert!(e.contains(&format!("8 more than the {expected}")) && e.contains("layer 1"), "{e}");
        let e = darknet_to_onnx(&cfg, &bytes[..10], p, w).unwrap_err().to_string();
        assert!(e.contains("shorter than its header") && e.contains(&expected.to_string()), "{e}");
    }
}
