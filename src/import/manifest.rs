//! The model manifest `import-darknet` writes beside the ONNX file: anchors, masks, strides and
//! `scale_x_y` from the cfg's `[yolo]` layers, the input from `[net]`, darknet's preprocessing,
//! and provenance. Pure text; touches nothing.
use super::cfg::Cfg;
use super::{DarknetOptions, HeadShape};

/// A TOML basic string.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

pub(super) struct ManifestText<'a> {
    pub(super) cfg: &'a Cfg,
    pub(super) name: &'a str,
    pub(super) onnx_file: &'a str,
    pub(super) onnx_sha: &'a str,
    pub(super) labels: &'a [String],
    pub(super) positive: Option<&'a str>,
    pub(super) heads: &'a [HeadShape],
    pub(super) options: &'a DarknetOptions,
    pub(super) source: String,
}

pub(super) fn manifest_text(m: &ManifestText<'_>) -> String {
    let yolos = m.cfg.yolos();
    // The importer refuses a cfg without [yolo] layers before it gets here; an empty list otherwise.
    let anchors: Vec<String> =
        yolos.first().map_or(&[][..], |y| &y.anchors[..]).iter().map(|a| format!("[{}, {}]", a[0], a[1])).collect();
    let list = |v: &[String]| v.join(", ");
    let mut t = String::new();
    t.push_str(&format!("# Written by `pe-sentinel import-darknet` from {}.\n", m.source));
    t.push_str("# Regenerate rather than edit by hand; check `[labels]` and `[preprocess]` against how the model\n");
    t.push_str("# was trained (see docs/byom.md).\n");
    t.push_str(&format!(
        "[model]\nname = {}\nkind = \"detector\"\nfile = {}\nsha256 = {}\nprecision = \"fp32\"\nopset = 13\n\
         training_domain = {}   # \"clinical-ctpa\" only for weights trained and validated on patients' CTPA\n\n",
        q(m.name),
        q(m.onnx_file),
        q(m.onnx_sha),
        q(m.options.training_domain.as_str())
    ));
    let n = &m.cfg.net;
    t.push_str(&format!(
        "[input]\nname = \"input\"\nshape = [1, {}, {}, {}]\nlayout = \"nchw\"\ndtype = \"f32\"\n\n",
        n.channels, n.height, n.width
    ));
    t.push_str(
        "[preprocess]\n# darknet feeds gray 0..255 divided by 255, the image stretched to the input size.\n\
         window_center_hu = 100.0\nwindow_width_hu = 700.0\nresize = \"stretch\"\nscale = 0.00392156862745098\n\
         mean = [0.0]\nstd = [1.0]\n\n",
    );
    let names: Vec<String> = m.labels.iter().map(|l| q(l)).collect();
    t.push_str(&format!("[labels]\nnames = [{}]\n", list(&names)));
    if let Some(p) = m.positive {
        t.push_str(&format!("positive = {}\n", q(p)));
    }
    t.push_str(&format!(
        "\n[detector]\nanchors = [{}]\nconfidence_threshold = {}\nnms_iou = {}\n",
        list(&anchors),
        m.options.confidence_threshold,
        m.options.nms_iou
    ));
    for ((out, shape), y) in m.heads.iter().zip(&yolos) {
        let mask: Vec<String> = y.mask.iter().map(|x| x.to_string()).collect();
        t.push_str(&format!(
            "[[detector.heads]]\noutput = {}\nstride = {}\nmask = [{}]\nscale_x_y = {:?}\n",
            q(out),
            n.height / shape[1],
            list(&mask),
            y.scale_x_y
        ));
    }
    t.push_str(&format!(
        "\n[provenance]\nscript = \"pe-sentinel import-darknet\"\ncommit = \"n/a\"\ntrain_seeds = \"unknown\"\n\
         eval_seeds = \"unknown\"\ndate = {}\nframework = {}\n",
        q(&crate::civil::today()),
        q(&format!("darknet, imported by pe-sentinel {}", env!("CARGO_PKG_VERSION")))
    ));
    t
}
