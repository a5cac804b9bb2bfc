//! Latency per slice of the seed paper's full YOLOv4 (tests/data/darknet/yolov4-ctscans.cfg:
//! 416x416x1, one class; random weights, since the trained ones are not public), imported with
//! `import-darknet` and run on tract, next to the shipped default detector
//! (models/detector-fp32.onnx, a YOLOv4-tiny-class model) in the same run: median and p99 per
//! slice and their ratio. Random weights do not change the work: every convolution runs in full.
//! Run: `cargo bench --bench darknet_yolov4` (release). Env: `PE_BENCH_THREADS` (default 1),
//! `PE_BENCH_RUNS` (default 20).
use std::path::{Path, PathBuf};
use std::time::Instant;

use pe_sentinel::engine::{Engine, Outputs, TractOptions, TractPlan};
use pe_sentinel::import::{self, cfg, weights, DarknetOptions};
use pe_sentinel::model::Manifest;

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (p(0.5), p(0.99))
}

/// Random darknet weights for `cfg_path` (He-scaled, batch-norm near identity).
fn random_weights(cfg_path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(cfg_path).expect("read cfg");
    let parsed = cfg::parse(&text).expect("parse cfg");
    let convs = import::conv_weights(&parsed, cfg_path).expect("cfg arithmetic");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let mut out = Vec::new();
    weights::write_header(&mut out, 0);
    for c in convs {
        let fan_in = c.in_channels * c.size * c.size;
        let mut put = |v: f32| out.extend_from_slice(&v.to_le_bytes());
        (0..c.filters).for_each(|_| put(0.05 * rnd()));
        if c.batch_normalize {
            (0..c.filters).for_each(|_| put(1.0 + 0.2 * rnd()));
            (0..c.filters).for_each(|_| put(0.05 * rnd()));
            (0..c.filters).for_each(|_| put(1.0 + 0.2 * rnd()));
        }
        let k = (3.0 / fan_in as f32).sqrt();
        (0..c.filters * fan_in).for_each(|_| put(k * rnd()));
    }
    out
}

fn time_model(manifest: &Path, threads: usize, runs: usize) -> (String, f64, f64) {
    let m = Manifest::load(manifest).expect("manifest");
    let t = Instant::now();
    let plan = TractPlan::load(&m, &TractOptions::default().threads(threads)).expect("load");
    let mut engine = plan.spawn().expect("spawn");
    eprintln!("{}: loaded and warmed up in {:.1} s", m.model().name, t.elapsed().as_secs_f64());
    let mut outputs = Outputs::new(engine.output_specs());
    let input: Vec<f32> = (0..engine.input_len()).map(|i| ((i * 7919) % 256) as f32 / 255.0).collect();
    engine.run(&input, &mut outputs).expect("run");
    let ms: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            engine.run(&input, &mut outputs).expect("run");
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let (median, p99) = stats(ms);
    (m.model().name.clone(), median, p99)
}

fn main() {
    let threads = env_usize("PE_BENCH_THREADS", 1);
    let runs = env_usize("PE_BENCH_RUNS", 20);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg_path = repo("tests/data/darknet/yolov4-ctscans.cfg");
    let weights_path = dir.path().join("yolov4-ctscans.weights");
    std::fs::write(&weights_path, random_weights(&cfg_path)).expect("write weights");
    let imported = import::import_darknet(&cfg_path, &weights_path, dir.path(), &DarknetOptions::default())
        .expect("import the paper's cfg");
    let _ = std::fs::remove_file(&weights_path);

    let shipped = time_model(&repo("models/detector-fp32.toml"), threads, runs);
    let paper = time_model(&imported.manifest, threads, runs);
    println!("tract, {threads} thread(s), {runs} runs per model, one 416x416x1 slice per run");
    println!("{:<28} {:>10} {:>10}", "model", "median ms", "p99 ms");
    for (name, median, p99) in [&shipped, &paper] {
        println!("{name:<28} {median:>10.1} {p99:>10.1}");
    }
    println!("paper YOLOv4 / shipped detector ratio (median): {:.2}", paper.1 / shipped.1);
}
