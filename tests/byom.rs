//! Bring your own model, end to end with the real parts:
//! - a Keras-style classifier (NHWC input, three channels with the gray replicated, divide by 255,
//!   alphabetical labels `["No", "Yes"]`) written here as a tiny ONNX model, run through the
//!   daemon's preprocessing and the tract engine, checked against values computed from the image;
//! - `pe-sentinel check` warning when a manifest does not say which label is positive;
//! - a darknet detector imported with `pe-sentinel import-darknet` (random weights) and that
//!   classifier, named in a board profile, analysing a phantom slice with `pe-sentinel infer`.

use std::path::{Path, PathBuf};
use std::process::Command;

use pe_sentinel::engine::{Engine, Outputs, TractOptions, TractPlan};
use pe_sentinel::import::onnx::{Attr, GraphBuilder};
use pe_sentinel::import::weights;
use pe_sentinel::model::manifest::sha256_hex;
use pe_sentinel::model::Manifest;
use pe_sentinel::postprocess::classifier::ClassifierHead;
use pe_sentinel::preprocess::{Pixels, Preprocessor, SliceView};

const SIDE: usize = 24;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pe-sentinel"))
}

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// A small deterministic generator (xorshift), so the test needs no crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// Keras-style: input `[1, SIDE, SIDE, 3]` (NHWC) -> flatten -> dense(2) -> softmax, as Keras'
/// `Flatten` + `Dense(2, activation="softmax")` export. Returns the ONNX bytes and (W, b).
fn keras_classifier() -> (Vec<u8>, Vec<f32>, [f32; 2]) {
    let n = SIDE * SIDE * 3;
    let mut rng = Rng(0x5eed);
    let w: Vec<f32> = (0..n * 2).map(|_| rng.next() * 0.05).collect();
    let b = [0.1f32, -0.2];
    let mut g = GraphBuilder::default();
    g.input("input_1", &[1, SIDE, SIDE, 3]);
    let shape = g.i64_init("shape", &[1, -1]);
    let flat = g.node("Reshape", &["input_1", &shape], vec![]);
    let wn = g.f32_init("dense_w", &[n, 2], &w);
    let bn = g.f32_init("dense_b", &[2], &b);
    let mm = g.node("MatMul", &[&flat, &wn], vec![]);
    let logits = g.node("Add", &[&mm, &bn], vec![]);
    let out = g.node_named("Softmax", &[&logits], "dense".to_string(), vec![("axis", Attr::Int(-1))]);
    g.output(&out, &[1, 2]);
    (g.encode("keras", "tests/byom.rs"), w, b)
}

fn keras_manifest(onnx_sha: &str, positive: Option<&str>) -> String {
    format!(
        r#"# A Keras ImageDataGenerator/flow_from_directory classifier: folders "No" and "Yes" sorted
# alphabetically, so output index 0 is "No" (the seed paper's tool assumed index 0 = "Yes").
[model]
name = "keras-style"
kind = "classifier"
file = "keras.onnx"
sha256 = "{onnx_sha}"
precision = "fp32"
opset = 13

[input]
name = "input_1"
shape = [1, {SIDE}, {SIDE}, 3]
layout = "nhwc"
dtype = "f32"

[preprocess]
window_center_hu = 100.0
window_width_hu = 700.0
resize = "stretch"
scale = 0.00392156862745098
mean = [0.0]
std = [1.0]

[output]
name = "dense"
kind = "probabilities"

[labels]
names = ["No", "Yes"]
{positive}

[provenance]
script = "tests/byom.rs"
commit = "n/a"
train_seeds = "none"
eval_seeds = "none"
date = "2026-11-26"
framework = "hand-written ONNX"
"#,
        positive = positive.map(|p| format!("positive = \"{p}\"")).unwrap_or_default()
    )
}

fn write_keras(dir: &Path, positive: Option<&str>) -> (PathBuf, Vec<f32>, [f32; 2]) {
    let (onnx, w, b) = keras_classifier();
    std::fs::write(dir.join("keras.onnx"), &onnx).unwrap();
    let m = dir.join("keras.toml");
    std::fs::write(&m, keras_manifest(&sha256_hex(&onnx), positive)).unwrap();
    (m, w, b)
}

#[test]
fn keras_style_nhwc_classifier_through_preprocess_and_engine() {
    let dir = tempfile::tempdir().unwrap();
    let (path, w, b) = write_keras(dir.path(), Some("Yes"));
    let manifest = Manifest::load(&path).unwrap();
    assert!(manifest.warnings().is_empty());

    // A gray image with structure along both axes, so an NCHW/NHWC mix-up changes the answer.
    let gray: Vec<u8> = (0..SIDE * SIDE).map(|i| ((i % SIDE) * 9 + (i / SIDE) * 4 + (i * 7) % 13) as u8).collect();
    let mut pre = Preprocessor::new(&manifest);
    let mut input = vec![0.0f32; pre.input_len()];
    let view = SliceView { width: SIDE, height: SIDE, pixels: Pixels::Gray8(&gray) };
    pre.run(view, &mut input).unwrap();
    // NHWC, gray replicated into the three channels, divided by 255.
    for (i, g) in gray.iter().enumerate() {
        for c in 0..3 {
            let v = input[i * 3 + c];
            assert!((v - f32::from(*g) / 255.0).abs() <= 1e-6, "pixel {i} channel {c}: {v}");
        }
    }

    let plan = TractPlan::load(&manifest, &TractOptions::default()).unwrap();
    let mut engine = plan.spawn().unwrap();
    let mut outputs = Outputs::new(engine.output_specs());
    engine.run(&input, &mut outputs).unwrap();
    let probs = outputs.get("dense").unwrap();

    // Expected from the image itself, in f64.
    let mut logits = [f64::from(b[0]), f64::from(b[1])];
    for (i, g) in gray.iter().enumerate() {
        for c in 0..3 {
            let x = f64::from(*g) / 255.0;
            for (k, l) in logits.iter_mut().enumerate() {
                *l += x * f64::from(w[(i * 3 + c) * 2 + k]);
            }
        }
    }
    let m = logits[0].max(logits[1]);
    let e = [(logits[0] - m).exp(), (logits[1] - m).exp()];
    let want = [e[0] / (e[0] + e[1]), e[1] / (e[0] + e[1])];
    assert!((want[0] - want[1]).abs() > 0.05, "the test model must not be indifferent: {want:?}");
    for k in 0..2 {
        assert!((f64::from(probs[k]) - want[k]).abs() <= 1e-5, "output {k}: {} vs {}", probs[k], want[k]);
    }

    // The manifest's order decides: "Yes" is index 1 here, not the paper tool's index 0.
    let head = ClassifierHead::new(&manifest).unwrap();
    assert_eq!(head.positive_index(), 1);
    let p = head.p_positive(probs).unwrap();
    assert!((f64::from(p) - want[1]).abs() <= 1e-5);
}

fn profile(dir: &Path, classifier: &Path, detector: &Path) -> PathBuf {
    let p = dir.join("profile.toml");
    let text = format!(
        "[board]\nname = \"byom-test\"\n[engine]\nkind = \"tract\"\nprecision = \"fp32\"\nthreads = 1\n\
         [models]\ndir = \"{m}\"\nclassifier = \"{c}\"\ndetector = \"{d}\"\n\
         [paths]\ndrop_dir = \"{dir}/drop\"\nstate_dir = \"{dir}/state\"\n",
        m = repo("models").display(),
        c = classifier.display(),
        d = detector.display(),
        dir = dir.display()
    );
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn check_warns_when_no_label_is_positive_and_refuses_the_classifier() {
    let dir = tempfile::tempdir().unwrap();
    for (positive, warns) in [(None, true), (Some("Yes"), false)] {
        let (m, _, _) = write_keras(dir.path(), positive);
        let cfg = profile(dir.path(), &m, &repo("models/detector-fp32.toml"));
        let out = bin().args(["check", "--config"]).arg(&cfg).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let warned = stdout.lines().any(|l| l.starts_with("warning") && l.contains("`positive`"));
        assert_eq!(warned, warns, "{stdout}");
        // A classifier without a positive label cannot give P(PE): the engine stage refuses it too.
        assert_eq!(out.status.success(), !warns, "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    }
}

/// A one-class, one-channel yolov4-tiny (the fixture's layout with the paper's input).
fn tiny_gray_cfg() -> String {
    std::fs::read_to_string(repo("tests/data/darknet/yolov4-tiny.cfg"))
        .unwrap()
        .replace("channels=3", "channels=1")
        .replace("classes=80", "classes=1")
        .replace("filters=255", "filters=18")
}

/// Random darknet weights for `tiny_gray_cfg` (conv shapes listed by hand from the layout).
fn tiny_gray_weights() -> Vec<u8> {
    // (filters, input channels, size, batch-norm)
    let mut convs = vec![(32, 1, 3, true), (64, 32, 3, true)];
    for f in [64usize, 128, 256] {
        // Each block's first conv sees f channels (conv 1's 64, then the 2x64 and 2x128 concats).
        convs.extend([(f, f, 3, true), (f / 2, f / 2, 3, true), (f / 2, f / 2, 3, true), (f, f, 1, true)]);
    }
    convs.extend([(512, 512, 3, true), (256, 512, 1, true), (512, 256, 3, true), (18, 512, 1, false)]);
    convs.extend([(128, 256, 1, true), (256, 384, 3, true), (18, 256, 1, false)]);
    let mut rng = Rng(42);
    let mut out = Vec::new();
    weights::write_header(&mut out, 0);
    for (f, cin, size, bn) in convs {
        let fan_in = cin * size * size;
        let mut put = |v: f32| out.extend_from_slice(&v.to_le_bytes());
        (0..f).for_each(|_| put(rng.next() * 0.05));
        if bn {
            (0..f).for_each(|_| put(1.0 + 0.2 * rng.next()));
            (0..f).for_each(|_| put(0.05 * rng.next()));
            (0..f).for_each(|_| put(1.0 + 0.2 * rng.next()));
        }
        let k = (6.0 / fan_in as f32).sqrt();
        (0..f * fan_in).for_each(|_| put(rng.next() * k));
    }
    out
}

#[test]
fn imported_darknet_detector_and_keras_classifier_run_in_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tiny-gray.cfg");
    std::fs::write(&cfg, tiny_gray_cfg()).unwrap();
    let weights = dir.path().join("tiny-gray.weights");
    std::fs::write(&weights, tiny_gray_weights()).unwrap();
    let names = dir.path().join("pe.names");
    std::fs::write(&names, "embolus\n").unwrap();
    let models = dir.path().join("models");
    let out = bin()
        .args(["import-darknet", "--cfg"])
        .arg(&cfg)
        .arg("--weights")
        .arg(&weights)
        .arg("--out")
        .arg(&models)
        .arg("--names")
        .arg(&names)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let detector = models.join("tiny-gray.toml");
    let m = Manifest::load(&detector).unwrap();
    assert_eq!(m.labels().positive.as_deref(), Some("embolus"));
    assert_eq!(m.input().shape, [1, 1, 416, 416]);

    // Importing again into the same folder refuses to overwrite.
    let again = bin()
        .args(["import-darknet", "--cfg"])
        .arg(&cfg)
        .arg("--weights")
        .arg(&weights)
        .arg("--out")
        .arg(&models)
        .output()
        .unwrap();
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let (classifier, _, _) = write_keras(dir.path(), Some("Yes"));
    let profile = profile(dir.path(), &classifier, &detector);
    let check = bin().args(["check", "--config"]).arg(&profile).output().unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{stdout}");
    assert!(stdout.contains("model tiny-gray") && stdout.contains("model keras-style"), "{stdout}");

    let ph = dir.path().join("ph");
    let gen = bin()
        .args(["phantom", "--series", "1", "--slices", "2", "--format", "png", "--out"])
        .arg(&ph)
        .output()
        .unwrap();
    assert!(gen.status.success());
    let png = std::fs::read_dir(ph.join("series-000/png")).unwrap().next().unwrap().unwrap().path();
    let infer = bin().args(["infer", "--config"]).arg(&profile).arg(&png).output().unwrap();
    assert!(infer.status.success(), "{}", String::from_utf8_lossy(&infer.stderr));
    let line = String::from_utf8_lossy(&infer.stdout).lines().next().unwrap_or_default().to_string();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let p = v["p"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p), "{line}");
}

#[test]
fn malformed_cfg_is_refused_with_layer_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.cfg");
    let text = tiny_gray_cfg().replacen("activation=leaky", "activation=swish", 3);
    std::fs::write(&cfg, text).unwrap();
    let weights = dir.path().join("w.weights");
    std::fs::write(&weights, tiny_gray_weights()).unwrap();
    let out = bin()
        .args(["import-darknet", "--cfg"])
        .arg(&cfg)
        .arg("--weights")
        .arg(&weights)
        .arg("--out")
        .arg(dir.path().join("o"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("layer 0 [convolutional]") && stderr.contains("swish") && stderr.contains("line "),
        "{stderr}"
    );
    assert!(!dir.path().join("o").exists());
}
