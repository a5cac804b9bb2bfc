//! Regression benchmarks (criterion) of the project's own per-slice steps, on the shipped models'
//! manifests: preprocessing a 512x512 HU slice for the classifier (224) and the detector (416)
//! (and the same with 2x2 bilinear instead of the manifests' triangle filter), YOLO decode + NMS of
//! the detector's real raw outputs on a phantom slice, the verdict step (fusion + series rule),
//! and the decode stage on a phantom 512x512 DICOM file: its parts (sha256 of the bytes, DICOM
//! decode to HU, reading the file) and the whole stage as the daemon runs it, and the length
//! checks before dicom-rs against the decode they guard (native and JPEG 2000). Run:
//! `cargo bench --bench hot_path`. The whole path per engine is `pe-sentinel bench`'s job.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use pe_sentinel::engine::{Engine, Outputs, TractOptions, TractPlan};
use pe_sentinel::model::{Manifest, PreprocessSpec, ResizeFilter};
use pe_sentinel::phantom::dicom_writer::{self, CtSlice};
use pe_sentinel::phantom::render::{Canvas, SIZE};
use pe_sentinel::phantom::SeriesPlan;
use pe_sentinel::postprocess::{Detections, YoloDecoder};
use pe_sentinel::preprocess::{Pixels, Preprocessor, SliceView};
use pe_sentinel::verdict::fusion::{fuse, FusionConfig, FusionPolicy, SliceScores};
use pe_sentinel::verdict::series::{SeriesConfig, SeriesTracker, SliceObservation};
use sha2::{Digest, Sha256};
use std::path::Path;

fn manifest(name: &str) -> Manifest {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(name);
    Manifest::load(&p).unwrap_or_else(|e| panic!("{e}"))
}

/// A positive phantom slice in HU (the same scene the tests and the demo use).
fn phantom_slice() -> Vec<f32> {
    let plan = SeriesPlan::new(7, 0, 64, true);
    let mut canvas = Canvas::default();
    let mut boxes = Vec::new();
    plan.render(32, &mut canvas, &mut boxes);
    canvas.hu
}

fn hot_path(c: &mut Criterion) {
    let cls = manifest("classifier-fp32.toml");
    let det = manifest("detector-fp32.toml");
    let hu = phantom_slice();
    let view = SliceView { width: SIZE, height: SIZE, pixels: Pixels::Hu(&hu) };
    let mut pre_c = Preprocessor::new(&cls);
    let mut pre_d = Preprocessor::new(&det);
    let mut in_c = vec![0.0; pre_c.input_len()];
    let mut in_d = vec![0.0; pre_d.input_len()];
    c.bench_function("preprocess 512x512 HU -> 224 + 416", |b| {
        b.iter(|| {
            pre_c.run(black_box(view), &mut in_c).expect("preprocess");
            pre_d.run(black_box(view), &mut in_d).expect("preprocess")
        })
    });
    // The peer: the same manifests with the 2x2 bilinear filter (what the shipped models' triangle
    // filter costs over it).
    let bilinear = |m: &Manifest| {
        let spec = PreprocessSpec { filter: ResizeFilter::Bilinear, ..m.preprocess().clone() };
        let i = m.input();
        Preprocessor::from_spec(&spec, i.layout, i.channels(), i.width(), i.height())
    };
    let (mut bil_c, mut bil_d) = (bilinear(&cls), bilinear(&det));
    c.bench_function("preprocess 512x512 HU -> 224 + 416, 2x2 bilinear", |b| {
        b.iter(|| {
            bil_c.run(black_box(view), &mut in_c).expect("preprocess");
            bil_d.run(black_box(view), &mut in_d).expect("preprocess")
        })
    });

    // Real raw detector outputs for this slice, computed once.
    let lb = pre_d.run(view, &mut in_d).expect("preprocess");
    let mut engine =
        TractPlan::load(&det, &TractOptions::default().threads(1)).and_then(|p| p.spawn()).expect("detector");
    let mut outs = Outputs::new(engine.output_specs());
    engine.run(&in_d, &mut outs).expect("run");
    let mut dec = YoloDecoder::new(&det).expect("decoder");
    // A low threshold so NMS has real work (the manifest's 0.6 leaves few candidates).
    dec.set_threshold(0.05);
    let mut dets = Detections::default();
    c.bench_function("yolo decode + NMS (threshold 0.05)", |b| {
        b.iter(|| dec.decode(black_box(outs.data()), &lb, &mut dets).expect("decode"))
    });

    // The decode stage on the phantom slice as a DICOM file (the bytes as read from disk).
    let mut stored = vec![0u16; hu.len()];
    dicom_writer::store_hu(&hu, &mut stored);
    let ct = CtSlice::fixed(&stored, SIZE as u16, 1);
    let mut bytes = Vec::new();
    dicom_writer::encode(&ct, &mut bytes);
    let path = Path::new("bench.dcm");
    c.bench_function("sha256 of a 512x512 DICOM file", |b| b.iter(|| Sha256::digest(black_box(&bytes))));
    c.bench_function("DICOM decode 512x512 -> HU", |b| {
        b.iter(|| {
            pe_sentinel::source::decode::decode_any_bytes(
                black_box(&bytes),
                path,
                pe_sentinel::slice::SeriesId(String::new()),
            )
            .expect("decode")
        })
    });
    // The whole decode stage as the daemon runs it (read from the page cache, sha256 on the kept
    // hashing thread while dicom-rs decodes), to set against the parts above.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("slice.dcm");
    std::fs::write(&file, &bytes).expect("write");
    c.bench_function("read a 512x512 DICOM file", |b| b.iter(|| std::fs::read(black_box(&file)).expect("read")));
    let mut hasher = pe_sentinel::source::decode::Hasher::default();
    c.bench_function("decode stage: read + hash_while(DICOM decode)", |b| {
        b.iter(|| {
            let bytes = std::sync::Arc::new(std::fs::read(black_box(&file)).expect("read"));
            hasher.hash_while(&bytes, || {
                pe_sentinel::source::decode::decode_any_bytes(
                    &bytes,
                    &file,
                    pe_sentinel::slice::SeriesId(String::new()),
                )
            })
        })
    });

    // The length checks before dicom-rs (the walk, then the token guard) against the whole
    // decode they guard: on the phantom file (native pixel data: both stop at the pixel data)
    // and on a real compressed CT slice (JPEG 2000 lossless, 512x512, pydicom's test file: the
    // guard reads the whole data set, and dicom-rs then parses it again).
    use pe_sentinel::source::decode::dicom_lengths;
    c.bench_function("length checks, native 512x512 (fast path)", |b| {
        b.iter(|| dicom_lengths::check_and_locate(black_box(&bytes)).expect("check"))
    });
    let j2k_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dicom/J2K_pixelrep_mismatch.dcm");
    let j2k = std::fs::read(&j2k_path).expect("tests/data/dicom/J2K_pixelrep_mismatch.dcm");
    c.bench_function("length checks, JPEG 2000 CT 512x512", |b| {
        b.iter(|| dicom_lengths::check_and_locate(black_box(&j2k)).expect("check"))
    });
    c.bench_function("DICOM decode, JPEG 2000 CT 512x512 -> HU", |b| {
        b.iter(|| {
            pe_sentinel::source::decode::decode_any_bytes(
                black_box(&j2k),
                &j2k_path,
                pe_sentinel::slice::SeriesId(String::new()),
            )
            .expect("decode")
        })
    });

    let fusion = FusionConfig::new(FusionPolicy::Either, 0.5);
    let mut tracker = SeriesTracker::new(SeriesConfig::default());
    let mut k = 0i32;
    c.bench_function("verdict: fusion + series rule", |b| {
        b.iter(|| {
            k = (k + 1) % 500;
            let s = SliceScores { p: 0.3 + (k % 7) as f32 * 0.1, boxes: (k % 3) as u32, max_confidence: 0.7 };
            let v = fuse(&fusion, black_box(&s));
            let obs =
                SliceObservation { instance: k, suspicious: v.suspicious, p: s.p, boxes: s.boxes, max_confidence: 0.7 };
            tracker.observe("1.2.3.4", obs, k as u64)
        })
    });
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
