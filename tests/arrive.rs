//! `Pipeline::arrive` / `run_arrived` (the daemon's and bench's file path: decode and prepare the
//! first slice while the sha256 runs) against `Pipeline::run`, on the real shipped models through
//! tract and DICOM files written by the phantom's encoder.

use pe_sentinel::phantom::dicom_writer::{encode, CtSlice};
use pe_sentinel::pipeline::{ModelSet, Pipeline, SliceError, SliceScores};
use pe_sentinel::slice::SeriesId;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn models() -> ModelSet {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    ModelSet::load(&root.join("models/classifier-fp32.toml"), &root.join("models/detector-fp32.toml"))
        .unwrap_or_else(|e| panic!("shipped manifests: {e}"))
}

/// A 512x512 CT slice: a bright disc (contrast-filled vessel) on soft tissue, varying with `k`.
fn dicom(k: u32) -> Vec<u8> {
    let side = 512u16;
    let mut stored = vec![0u16; 512 * 512];
    for (i, v) in stored.iter_mut().enumerate() {
        let (x, y) = ((i % 512) as i64, (i / 512) as i64);
        let (cx, cy) = (200 + 20 * i64::from(k), 260);
        let inside = (x - cx).pow(2) + (y - cy).pow(2) < 40 * 40;
        // stored = HU + 1024 (the phantom's intercept)
        *v = if inside { 1024 + 300 } else { 1024 + 40 + ((x + y) % 7) as u16 };
    }
    let mut out = Vec::new();
    encode(&CtSlice::fixed(&stored, side, k + 1), &mut out);
    out
}

#[test]
fn arrived_files_score_as_whole_runs_and_carry_their_sha256() {
    let models = models();
    let mut a = Pipeline::new(&models, 1).unwrap_or_else(|e| panic!("{e}"));
    let mut b = Pipeline::new(&models, 1).unwrap_or_else(|e| panic!("{e}"));
    let path = Path::new("slice.dcm");
    let (mut sa, mut sb) = (SliceScores::default(), SliceScores::default());
    let mut ps = Vec::new();
    for k in 0..3 {
        let bytes = std::sync::Arc::new(dicom(k));
        let arrived = a.arrive(&bytes, path, SeriesId("s".into()));
        let want: [u8; 32] = Sha256::digest(bytes.as_slice()).into();
        assert_eq!(arrived.sha256, want, "slice {k}: sha256");
        let slices = arrived.slices.as_ref().unwrap_or_else(|e| panic!("slice {k}: {e}"));
        assert_eq!(slices.len(), 1);
        a.run_arrived(&arrived, 0, &mut sa).unwrap_or_else(|e| panic!("{e}"));
        b.run(&slices[0], &mut sb).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sa.p, sb.p, "slice {k}: P");
        assert_eq!(sa.detections.boxes.len(), sb.detections.boxes.len(), "slice {k}: boxes");
        assert!(sa.times.preprocess_us > 0, "slice {k}: the prepared slice's preprocessing is reported");
        ps.push(sa.p);
    }
    // Each slice was inferred on its own inputs, not the previous file's.
    assert!(ps[0] != ps[1] || ps[1] != ps[2], "P did not change across different slices: {ps:?}");
}

#[test]
fn inference_without_prepared_inputs_is_an_error_and_a_bad_file_is_reported() {
    let models = models();
    let mut p = Pipeline::new(&models, 1).unwrap_or_else(|e| panic!("{e}"));
    let mut s = SliceScores::default();
    match p.infer(Path::new("x.dcm"), &mut s) {
        Err(SliceError::NotPrepared { file }) => assert_eq!(file, PathBuf::from("x.dcm")),
        other => panic!("expected NotPrepared, got {other:?}"),
    }
    // One file inferred: its prepared inputs are used up.
    let bytes = std::sync::Arc::new(dicom(0));
    let arrived = p.arrive(&bytes, Path::new("a.dcm"), SeriesId("s".into()));
    p.run_arrived(&arrived, 0, &mut s).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(p.infer(Path::new("a.dcm"), &mut s), Err(SliceError::NotPrepared { .. })));
    // A damaged file: its sha256 is still known (the daemon records the rejection under it).
    let mut bad = dicom(1);
    bad.truncate(bad.len() / 3);
    let bad = std::sync::Arc::new(bad);
    let arrived = p.arrive(&bad, Path::new("bad.dcm"), SeriesId("s".into()));
    let want: [u8; 32] = Sha256::digest(bad.as_slice()).into();
    assert_eq!(arrived.sha256, want);
    assert!(arrived.slices.is_err(), "a third of a DICOM file decoded");
}
