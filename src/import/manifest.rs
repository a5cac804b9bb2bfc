//! The model manifest `import-darknet` writes beside the ONNX file: anchors, masks, strides and
//! `scale_x_y` from the cfg's `[yolo]` layers, the input from `[net]`, darknet's preprocessing,
//! and provenance. Pure text; touches nothing.
use super::cfg::Cfg;
use super::{DarknetOptions, HeadShape};

/// A TOML basic string.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn today() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_date((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
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
        "[model]\nname = {}\nkind = \"detector\"\nfile = {}\nsha256 = {}\nprecision = \"fp32\"\nopset = 13\n\n",
        q(m.name),
        q(m.onnx_file),
        q(m.onnx_sha)
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
        q(&today()),
        q(&format!("darknet, imported by pe-sentinel {}", env!("CARGO_PKG_VERSION")))
    ));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(20_513), (2026, 3, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
    }
}
