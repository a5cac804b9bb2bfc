//! Darknet `.cfg` reader: sections and `key=value` lines into typed layers, each with the cfg line
//! it starts on, so every later error can name the layer. Pure: reads only the text it is given.
//!
//! Supported: `[net]`, `[convolutional]`, `[route]` (with `groups`/`group_id`), `[shortcut]`,
//! `[maxpool]`, `[upsample]`, `[yolo]`. Keys darknet uses only for training are ignored; keys
//! that change inference in a way this importer does not implement are refused.
use std::collections::BTreeMap;

/// One problem in the cfg: where, what, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CfgProblem {
    pub line: usize,
    /// `layer 12 [convolutional]`, or `[net]`, or empty when not in a section.
    pub layer: String,
    pub problem: String,
    pub fix: String,
}

/// `[net]`: the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Net {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
}

/// Darknet activations this importer writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Linear,
    Leaky,
    Mish,
    Logistic,
    Relu,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conv {
    pub filters: usize,
    pub size: usize,
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
    pub batch_normalize: bool,
    pub activation: Activation,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Absolute layer indices.
    pub layers: Vec<usize>,
    pub groups: usize,
    pub group_id: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxPool {
    pub size: usize,
    pub stride: usize,
    /// Total padding (darknet's `padding`, default `size - 1`); `padding / 2` before, the rest after.
    pub padding: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Yolo {
    pub mask: Vec<usize>,
    /// `[w, h]` pairs in network pixels.
    pub anchors: Vec<[f32; 2]>,
    pub classes: usize,
    pub scale_x_y: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LayerKind {
    Conv(Conv),
    Route(Route),
    /// Absolute index of the `from` layer; activation after the add.
    Shortcut {
        from: usize,
        activation: Activation,
    },
    MaxPool(MaxPool),
    Upsample {
        stride: usize,
    },
    Yolo(Yolo),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub kind: LayerKind,
    /// Line of the `[section]` header (1-based).
    pub line: usize,
}

impl Layer {
    pub fn section(&self) -> &'static str {
        match self.kind {
            LayerKind::Conv(_) => "convolutional",
            LayerKind::Route(_) => "route",
            LayerKind::Shortcut { .. } => "shortcut",
            LayerKind::MaxPool(_) => "maxpool",
            LayerKind::Upsample { .. } => "upsample",
            LayerKind::Yolo(_) => "yolo",
        }
    }
}

/// A parsed cfg.
#[derive(Debug, Clone, PartialEq)]
pub struct Cfg {
    pub net: Net,
    /// Darknet numbering: layer 0 is the first section after `[net]`.
    pub layers: Vec<Layer>,
}

impl Cfg {
    /// The `[yolo]` layers, in cfg order.
    pub fn yolos(&self) -> Vec<&Yolo> {
        self.layers
            .iter()
            .filter_map(|l| match &l.kind {
                LayerKind::Yolo(y) => Some(y),
                _ => None,
            })
            .collect()
    }
}

struct Section {
    name: String,
    line: usize,
    /// key -> (value, line)
    keys: BTreeMap<String, (String, usize)>,
}

struct Reader<'a> {
    section: &'a Section,
    label: String,
}

impl Reader<'_> {
    fn problem(&self, line: usize, problem: impl Into<String>, fix: impl Into<String>) -> CfgProblem {
        CfgProblem { line, layer: self.label.clone(), problem: problem.into(), fix: fix.into() }
    }

    fn raw(&self, key: &str) -> Option<&(String, usize)> {
        self.section.keys.get(key)
    }

    fn int(&self, key: &str, default: Option<i64>) -> Result<i64, CfgProblem> {
        match self.raw(key) {
            Some((v, line)) => v.trim().parse::<i64>().map_err(|_| {
                self.problem(
                    *line,
                    format!("`{key}={v}` is not an integer"),
                    format!("write `{key}` as a whole number"),
                )
            }),
            None => default.ok_or_else(|| {
                self.problem(
                    self.section.line,
                    format!("`{key}` is missing"),
                    format!("add `{key}=...` to the section"),
                )
            }),
        }
    }

    /// A positive integer (>= `min`).
    fn count(&self, key: &str, default: Option<i64>, min: i64) -> Result<usize, CfgProblem> {
        let v = self.int(key, default)?;
        if v < min {
            let line = self.raw(key).map_or(self.section.line, |r| r.1);
            return Err(self.problem(
                line,
                format!("`{key}={v}` is below {min}"),
                format!("use a `{key}` of at least {min}"),
            ));
        }
        Ok(v as usize)
    }

    fn float(&self, key: &str, default: f32) -> Result<f32, CfgProblem> {
        match self.raw(key) {
            Some((v, line)) => v.trim().parse::<f32>().ok().filter(|x| x.is_finite()).ok_or_else(|| {
                self.problem(*line, format!("`{key}={v}` is not a number"), format!("write `{key}` as a number"))
            }),
            None => Ok(default),
        }
    }

    fn ints(&self, key: &str) -> Result<Option<(Vec<i64>, usize)>, CfgProblem> {
        let Some((v, line)) = self.raw(key) else { return Ok(None) };
        let parsed: Result<Vec<i64>, _> =
            v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::parse::<i64>).collect();
        match parsed {
            Ok(list) if !list.is_empty() => Ok(Some((list, *line))),
            _ => Err(self.problem(
                *line,
                format!("`{key}={v}` is not a comma-separated list of integers"),
                format!("write `{key}` as e.g. `1,2,3`"),
            )),
        }
    }

    /// Refuses `key` unless absent or equal to `neutral`.
    fn refuse(&self, key: &str, neutral: &str, why: &str) -> Result<(), CfgProblem> {
        match self.raw(key) {
            Some((v, line)) if v.trim() != neutral => Err(self.problem(
                *line,
                format!("`{key}={v}` is not supported by the importer ({why})"),
                format!("remove `{key}` or set it to {neutral}, or convert the model another way"),
            )),
            _ => Ok(()),
        }
    }

    fn activation(&self) -> Result<Activation, CfgProblem> {
        // darknet's default activation for convolutional layers is logistic; for shortcut, linear.
        let default = if self.section.name == "shortcut" { "linear" } else { "logistic" };
        let (value, line) = self.raw("activation").map_or((default, self.section.line), |(v, l)| (v.trim(), *l));
        match value {
            "linear" => Ok(Activation::Linear),
            "leaky" => Ok(Activation::Leaky),
            "mish" => Ok(Activation::Mish),
            "logistic" => Ok(Activation::Logistic),
            "relu" => Ok(Activation::Relu),
            other => Err(self.problem(
                line,
                format!("activation `{other}` is not supported"),
                "use linear, leaky, mish, logistic or relu",
            )),
        }
    }

    /// A layer reference (negative: relative to `index`), as an absolute index below `index`.
    fn layer_ref(&self, r: i64, index: usize, line: usize, key: &str) -> Result<usize, CfgProblem> {
        let abs = if r < 0 { index as i64 + r } else { r };
        if abs < 0 || abs >= index as i64 {
            return Err(self.problem(
                line,
                format!("`{key}` refers to layer {r} (absolute {abs}), which is not an earlier layer"),
                format!("refer to a layer between 0 and {}, or a negative offset to one", index.saturating_sub(1)),
            ));
        }
        Ok(abs as usize)
    }
}

/// Splits the text into sections. Comments start with `#` or `;`.
fn sections(text: &str) -> Result<Vec<Section>, CfgProblem> {
    let mut out: Vec<Section> = Vec::new();
    for (ix, raw) in text.lines().enumerate() {
        let line = ix + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if let Some(rest) = l.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(CfgProblem {
                    line,
                    layer: String::new(),
                    problem: format!("section header {l:?} has no closing `]`"),
                    fix: "write section headers as `[name]`".into(),
                });
            };
            out.push(Section { name: name.trim().to_string(), line, keys: BTreeMap::new() });
            continue;
        }
        let Some(section) = out.last_mut() else {
            return Err(CfgProblem {
                line,
                layer: String::new(),
                problem: format!("{l:?} comes before any [section]"),
                fix: "start the file with `[net]`".into(),
            });
        };
        let Some((k, v)) = l.split_once('=') else {
            return Err(CfgProblem {
                line,
                layer: format!("[{}] at line {}", section.name, section.line),
                problem: format!("{l:?} is not `key=value`"),
                fix: "fix or remove the line".into(),
            });
        };
        // darknet strips all whitespace from option lines.
        let key: String = k.chars().filter(|c| !c.is_whitespace()).collect();
        let value: String = v.chars().filter(|c| !c.is_whitespace()).collect();
        section.keys.insert(key, (value, line));
    }
    Ok(out)
}

/// Parses a darknet cfg.
pub fn parse(text: &str) -> Result<Cfg, CfgProblem> {
    let secs = sections(text)?;
    let Some((first, rest)) = secs.split_first() else {
        return Err(CfgProblem {
            line: 1,
            layer: String::new(),
            problem: "no sections".into(),
            fix: "give a darknet cfg starting with [net]".into(),
        });
    };
    if first.name != "net" && first.name != "network" {
        return Err(CfgProblem {
            line: first.line,
            layer: format!("[{}]", first.name),
            problem: format!("the first section is [{}], not [net]", first.name),
            fix: "start the file with [net] (width, height, channels)".into(),
        });
    }
    let r = Reader { section: first, label: "[net]".into() };
    let net = Net {
        width: r.count("width", None, 1)?,
        height: r.count("height", None, 1)?,
        channels: r.count("channels", Some(3), 1)?,
    };
    let mut layers = Vec::with_capacity(rest.len());
    for (index, s) in rest.iter().enumerate() {
        let r = Reader { section: s, label: format!("layer {index} [{}] (cfg line {})", s.name, s.line) };
        let kind = match s.name.as_str() {
            "convolutional" | "conv" => {
                for (key, neutral, why) in [
                    ("dilation", "1", "dilated convolution"),
                    ("stride_x", "-1", "different horizontal and vertical strides"),
                    ("stride_y", "-1", "different horizontal and vertical strides"),
                    ("antialiasing", "0", "anti-aliased downsampling"),
                    ("binary", "0", "binary weights"),
                    ("xnor", "0", "XNOR layers"),
                    ("share_index", "-1000000000", "weights shared with another layer"),
                    ("deform", "0", "deformable convolution"),
                    ("sway", "0", "rotation-invariant convolution"),
                    ("rotate", "0", "rotation-invariant convolution"),
                    ("stretch", "0", "rotation-invariant convolution"),
                    ("stretch_sway", "0", "rotation-invariant convolution"),
                ] {
                    r.refuse(key, neutral, why)?;
                }
                let size = r.count("size", Some(1), 1)?;
                let pad = r.int("pad", Some(0))?;
                let padding = if pad != 0 { size / 2 } else { r.count("padding", Some(0), 0)? };
                LayerKind::Conv(Conv {
                    filters: r.count("filters", Some(1), 1)?,
                    size,
                    stride: r.count("stride", Some(1), 1)?,
                    padding,
                    groups: r.count("groups", Some(1), 1)?,
                    batch_normalize: r.int("batch_normalize", Some(0))? != 0,
                    activation: r.activation()?,
                })
            }
            "route" => {
                let Some((refs, line)) = r.ints("layers")? else {
                    return Err(r.problem(s.line, "`layers` is missing", "add `layers=-1,...`"));
                };
                let layers = refs.iter().map(|&x| r.layer_ref(x, index, line, "layers")).collect::<Result<_, _>>()?;
                let groups = r.count("groups", Some(1), 1)?;
                let group_id = r.count("group_id", Some(0), 0)?;
                if group_id >= groups {
                    let line = r.raw("group_id").map_or(s.line, |x| x.1);
                    return Err(r.problem(
                        line,
                        format!("group_id {group_id} is not below groups {groups}"),
                        "use a group_id between 0 and groups-1",
                    ));
                }
                LayerKind::Route(Route { layers, groups, group_id })
            }
            "shortcut" => {
                r.refuse("weights_type", "none", "weighted shortcut")?;
                let Some((refs, line)) = r.ints("from")? else {
                    return Err(r.problem(s.line, "`from` is missing", "add `from=-3` (for example)"));
                };
                if refs.len() != 1 {
                    return Err(r.problem(line, "a shortcut from several layers is not supported", "use one `from`"));
                }
                LayerKind::Shortcut { from: r.layer_ref(refs[0], index, line, "from")?, activation: r.activation()? }
            }
            "maxpool" | "max" => {
                for (key, neutral, why) in [
                    ("stride_x", "-1", "different horizontal and vertical strides"),
                    ("stride_y", "-1", "different horizontal and vertical strides"),
                    ("maxpool_depth", "0", "max over channels"),
                    ("antialiasing", "0", "anti-aliased downsampling"),
                ] {
                    r.refuse(key, neutral, why)?;
                }
                let stride = r.count("stride", Some(1), 1)?;
                let size = r.count("size", Some(stride as i64), 1)?;
                let padding = r.count("padding", Some(size as i64 - 1), 0)?;
                LayerKind::MaxPool(MaxPool { size, stride, padding })
            }
            "upsample" => {
                let scale = r.float("scale", 1.0)?;
                if scale != 1.0 {
                    let line = r.raw("scale").map_or(s.line, |x| x.1);
                    return Err(r.problem(line, format!("scale={scale} is not supported"), "remove `scale`"));
                }
                LayerKind::Upsample { stride: r.count("stride", Some(2), 1)? }
            }
            "yolo" => {
                r.refuse("new_coords", "0", "the scaled-YOLOv4 box encoding")?;
                let classes = r.count("classes", Some(20), 1)?;
                let num = r.count("num", Some(1), 1)?;
                let anchors = match r.ints("anchors") {
                    Ok(Some((a, line))) => (a, line),
                    Ok(None) => return Err(r.problem(s.line, "`anchors` is missing", "add the anchors list")),
                    Err(_) => {
                        // Anchors may be written as decimals.
                        let (v, line) = r.raw("anchors").cloned().unwrap_or_default();
                        let parsed: Option<Vec<f32>> =
                            v.split(',').filter(|x| !x.is_empty()).map(|x| x.parse::<f32>().ok()).collect();
                        match parsed {
                            Some(f) => (f.iter().map(|x| x.round() as i64).collect(), line),
                            None => return Err(r.problem(line, "`anchors` is not a list of numbers", "fix it")),
                        }
                    }
                };
                let (anchor_values, anchors_line) = anchors;
                if anchor_values.len() != 2 * num || anchor_values.iter().any(|&a| a <= 0) {
                    return Err(r.problem(
                        anchors_line,
                        format!("{} anchor values for num={num}, or a value <= 0", anchor_values.len()),
                        format!("give {} positive values (w,h pairs), one pair per anchor", 2 * num),
                    ));
                }
                let anchors = anchor_values.chunks_exact(2).map(|p| [p[0] as f32, p[1] as f32]).collect();
                let mask = match r.ints("mask")? {
                    Some((m, line)) => {
                        if m.iter().any(|&x| x < 0 || x as usize >= num) {
                            return Err(r.problem(
                                line,
                                format!("mask {m:?} indexes outside the {num} anchors"),
                                "use anchor indices between 0 and num-1",
                            ));
                        }
                        m.iter().map(|&x| x as usize).collect()
                    }
                    None => (0..num).collect(),
                };
                let scale_x_y = r.float("scale_x_y", 1.0)?;
                LayerKind::Yolo(Yolo { mask, anchors, classes, scale_x_y })
            }
            other => {
                return Err(r.problem(
                    s.line,
                    format!("section [{other}] is not supported"),
                    "the importer handles convolutional, route, shortcut, maxpool, upsample and yolo layers",
                ))
            }
        };
        layers.push(Layer { kind, line: s.line });
    }
    Ok(Cfg { net, layers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_and_defaults() {
        let cfg = parse(
            "[net]\nwidth=32\nheight = 16\nchannels=1\n# c\n[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\n\
             stride=2\npad=1\nactivation=mish\n[maxpool]\nsize=2\nstride=2\n[route]\nlayers = -1, 0\n\
             [upsample]\nstride=2\n[shortcut]\nfrom=-2\n",
        )
        .unwrap();
        assert_eq!(cfg.net, Net { width: 32, height: 16, channels: 1 });
        assert_eq!(
            cfg.layers[0].kind,
            LayerKind::Conv(Conv {
                filters: 8,
                size: 3,
                stride: 2,
                padding: 1,
                groups: 1,
                batch_normalize: true,
                activation: Activation::Mish
            })
        );
        assert_eq!(cfg.layers[1].kind, LayerKind::MaxPool(MaxPool { size: 2, stride: 2, padding: 1 }));
        assert_eq!(cfg.layers[2].kind, LayerKind::Route(Route { layers: vec![1, 0], groups: 1, group_id: 0 }));
        assert_eq!(cfg.layers[4].kind, LayerKind::Shortcut { from: 2, activation: Activation::Linear });
        assert_eq!(cfg.layers[4].line, 20);
    }

    #[test]
    fn errors_name_the_layer_and_line() {
        let e = parse("[net]\nwidth=8\nheight=8\n[convolutional]\nfilters=4\nactivation=swish\n").unwrap_err();
        assert_eq!(e.line, 6);
        assert!(e.layer.contains("layer 0 [convolutional]"), "{e:?}");
        assert!(e.problem.contains("swish"));
        let e = parse("[net]\nwidth=8\nheight=8\n[route]\nlayers=-1\n").unwrap_err();
        assert!(e.problem.contains("not an earlier layer"), "{e:?}");
        let e = parse("[net]\nwidth=8\n").unwrap_err();
        assert!(e.problem.contains("`height` is missing"), "{e:?}");
        let e = parse("[net]\nwidth=8\nheight=8\n[dropout]\n").unwrap_err();
        assert!(e.problem.contains("[dropout]"), "{e:?}");
        let e = parse("[net]\nwidth=8\nheight=8\n[convolutional]\nfilters=x\n").unwrap_err();
        assert_eq!((e.line, e.problem.contains("not an integer")), (5, true));
    }

    #[test]
    fn the_papers_cfg_parses() {
        let text = include_str!("../../tests/data/darknet/yolov4-ctscans.cfg");
        let cfg = parse(text).unwrap();
        assert_eq!(cfg.net, Net { width: 416, height: 416, channels: 1 });
        assert_eq!(cfg.layers.len(), 162);
        let yolos = cfg.yolos();
        assert_eq!(yolos.len(), 3);
        assert_eq!(yolos[0].mask, vec![0, 1, 2]);
        assert_eq!(yolos[0].scale_x_y, 1.2);
        assert_eq!(yolos[2].anchors[8], [459.0, 401.0]);
    }
}
