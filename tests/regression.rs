//! Regressions, named after the issue that found them.

use pe_sentinel::config::Resolved;
use pe_sentinel::infer::decode_any;
use pe_sentinel::pipeline::{ModelSet, Pipeline, SliceScores};
use pe_sentinel::slice::Slice;
use pe_sentinel::verdict::series::SliceObservation;
use pe_sentinel::verdict::{Judge, SeriesVerdict};
use std::path::{Path, PathBuf};

/// A test seed (1-99: never trained or tuned on; see models/README.md).
const SEED: u64 = 21;
const SLICES: u32 = 40;

fn shipped() -> (Resolved, Pipeline) {
    let cfg = Resolved::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("board/x86-cpu.toml"), None, None)
        .expect("shipped profile");
    let models = ModelSet::load(cfg.classifier_manifest(), cfg.detector_manifest()).expect("shipped models");
    let mut pipeline = Pipeline::new(&models, 1).expect("tract pipeline");
    pipeline.apply_profile(&cfg);
    (cfg, pipeline)
}

/// Each slice's (place, P, suspicious) in frame/file order, and the series verdict once closed.
fn judge_all(
    cfg: &Resolved,
    pipeline: &mut Pipeline,
    files: &[PathBuf],
) -> (Vec<Slice>, Vec<(f32, bool)>, SeriesVerdict) {
    let v = &cfg.verdict();
    let mut judge = Judge::new(v.fusion_config(), v.series_config());
    let mut scores = SliceScores::default();
    let (mut slices, mut answers) = (Vec::new(), Vec::new());
    for f in files {
        for s in decode_any(f).expect("decode") {
            pipeline.run(&s, &mut scores).expect("pipeline");
            let j = judge.judge(&s, scores.p, &scores.detections, 0);
            answers.push((scores.p, j.verdict.suspicious));
            slices.push(s);
        }
    }
    let series = slices[0].series.0.clone();
    let _ = judge.close_quiet(u64::MAX / 2);
    (slices, answers, judge.summary(&series).expect("series").verdict)
}

fn single_files(dir: &Path) -> Vec<PathBuf> {
    let mut o = pe_sentinel::phantom::PhantomOptions::new(dir);
    o.series = 1;
    o.slices = SLICES;
    o.seed = SEED;
    o.pe_fraction = 1.0;
    o.format = pe_sentinel::phantom::Format::Dicom;
    pe_sentinel::phantom::generate(&o).expect("phantom");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir.join("series-000/dicom")).expect("dicom folder").flatten().map(|e| e.path()).collect();
    files.sort();
    files
}

/// Issue 20: a positive series dropped as ONE multi-frame DICOM file (one InstanceNumber,
/// NumberOfFrames 40) closed NEGATIVE while the same slices as single files were POSITIVE: every
/// frame took the file's InstanceNumber, so the k-of-n window saw one slice. Now each frame has
/// its own place (from its Per-frame Functional Groups position, else its index) and the verdict
/// equals the single-file series', slice for slice.
#[test]
fn issue_20_a_positive_series_as_one_multi_frame_file_is_positive_like_its_single_files() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (cfg, mut pipeline) = shipped();
    let files = single_files(tmp.path());
    assert_eq!(files.len(), SLICES as usize);
    let (single, single_answers, single_verdict) = judge_all(&cfg, &mut pipeline, &files);
    assert_eq!(single_verdict, SeriesVerdict::Positive, "the single-file series must be positive to begin with");
    let suspicious = single_answers.iter().filter(|a| a.1).count();
    assert!(suspicious >= 3 && suspicious < SLICES as usize, "{suspicious} suspicious slices");

    for per_frame_positions in [true, false] {
        let mf = tmp.path().join(format!("multi-{per_frame_positions}.dcm"));
        pe_sentinel::phantom::write_multiframe_series(SEED, 0, SLICES, true, per_frame_positions, &mf)
            .expect("multi-frame file");
        let (frames, answers, verdict) = judge_all(&cfg, &mut pipeline, &[mf]);
        let what = if per_frame_positions { "with per-frame positions" } else { "frame index only" };
        assert_eq!(frames.len(), SLICES as usize, "{what}");
        assert!(frames.iter().all(|f| f.instance == Some(1) && f.series == single[0].series), "{what}");
        // The same pixels give the same answers, slice for slice.
        assert_eq!(answers, single_answers, "{what}");
        assert_eq!(verdict, SeriesVerdict::Positive, "{what}");
        // Every frame has its own place, and places keep the slices' adjacency.
        let mut places: Vec<i32> = frames.iter().map(|f| f.order).collect();
        let steps: Vec<i32> = places.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
        assert!(steps.iter().all(|&d| d == 1), "{what}: places {places:?}");
        places.sort_unstable();
        places.dedup();
        assert_eq!(places.len(), SLICES as usize, "{what}");
        if per_frame_positions {
            let z: Vec<f64> = frames.iter().map(|f| f.position_z.expect("per-frame z")).collect();
            let z_single: Vec<f64> = single.iter().map(|f| f.position_z.expect("z")).collect();
            assert_eq!(z, z_single, "each frame's own position");
        }
    }

    // The control: the same per-slice flags, all at one place (the old behaviour), never meet the
    // rule, so the assertions above can fail.
    let v = &cfg.verdict();
    let mut judge = Judge::new(v.fusion_config(), v.series_config());
    for &(p, suspicious) in &single_answers {
        judge.replay("one-place", SliceObservation { instance: 1, suspicious, p, boxes: 0, max_confidence: 0.0 }, 0);
    }
    let _ = judge.close_quiet(u64::MAX / 2);
    assert_eq!(judge.summary("one-place").map(|s| s.verdict), Some(SeriesVerdict::Negative));
}

/// A classifier engine that fails its `fail_from`-th run and the `failures - 1` runs after it, as
/// a GPU does on a CUDA error, and otherwise runs the real engine (only the GPU is mocked).
struct FailingGpu {
    inner: Box<dyn pe_sentinel::engine::Engine>,
    runs: std::sync::Arc<std::sync::atomic::AtomicU32>,
    fail_from: u32,
    failures: u32,
}

impl pe_sentinel::engine::Engine for FailingGpu {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn input_len(&self) -> usize {
        self.inner.input_len()
    }
    fn output_specs(&self) -> &[pe_sentinel::model::OutputSpec] {
        self.inner.output_specs()
    }
    fn run(
        &mut self,
        input: &[f32],
        outputs: &mut pe_sentinel::engine::Outputs,
    ) -> Result<(), pe_sentinel::engine::EngineError> {
        let n = self.runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if n >= self.fail_from && n < self.fail_from + self.failures {
            return Err(pe_sentinel::engine::EngineError::Run {
                model: PathBuf::from("classifier (test GPU)"),
                detail: "CUDA error 700: an illegal memory access was encountered".into(),
            });
        }
        self.inner.run(input, outputs)
    }
}

fn tiny_profile(dir: &Path) -> PathBuf {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let p = dir.join("profile.toml");
    let text = format!(
        "[board]\nname = \"test\"\n[engine]\nkind = \"tract\"\nprecision = \"fp32\"\nthreads = 1\n\
         [models]\ndir = \"{m}\"\nclassifier = \"{m}/tiny-classifier.toml\"\ndetector = \"{m}/tiny-detector.toml\"\n\
         [paths]\ndrop_dir = \"{dir}/drop\"\nstate_dir = \"{dir}/state\"\n[verdict]\nquiet_s = 60.0\n",
        m = data.display(),
        dir = dir.display()
    );
    std::fs::write(&p, text).expect("profile");
    p
}

fn count(state: &Path, sql: &str) -> i64 {
    let db = rusqlite::Connection::open(state.join("journal.sqlite3")).expect("journal");
    db.query_row(sql, [], |r| r.get(0)).expect("query")
}

/// Issue 20: any error while running a slice moved the file to rejected/, so an engine fault (a
/// CUDA error on a Jetson) would have rejected good patient files. Now an engine fault is a FAULT:
/// the file stays in the drop folder and is retried; the slices committed before the fault are
/// not analysed twice, and after the engine recovers the file ends in done/ with every frame once.
#[test]
fn issue_20_an_engine_fault_during_a_slice_leaves_the_file_in_the_drop_folder_and_it_is_retried() {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::Arc;
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = Resolved::load(&tiny_profile(tmp.path()), None, None).expect("profile");
    let models = ModelSet::load(cfg.classifier_manifest(), cfg.detector_manifest()).expect("models");
    let opts = pe_sentinel::engine::TractOptions::default().threads(1);
    let runs = Arc::new(AtomicU32::new(0));
    let open = |m| -> Box<dyn pe_sentinel::engine::Engine> {
        Box::new(pe_sentinel::engine::TractPlan::load(m, &opts).expect("plan").spawn().expect("engine"))
    };
    // The daemon's warm-up runs the classifier 3 times; then the file's frames: the third fails,
    // and so does the retry's first run (two faults), then the engine works again.
    let cls =
        Box::new(FailingGpu { inner: open(&models.classifier), runs: Arc::clone(&runs), fail_from: 6, failures: 2 });
    let det = open(&models.detector);
    let mut daemon = pe_sentinel::daemon::Daemon::with_engines(&cfg, models, cls, det).expect("daemon");
    let frames = 6;
    let file = cfg.drop_dir().join("series.dcm");
    let part = cfg.drop_dir().join("series.dcm.part");
    pe_sentinel::phantom::write_multiframe_series(SEED, 0, frames, true, true, &part).expect("multi-frame file");
    std::fs::rename(&part, &file).expect("drop the file");
    let stop = Arc::new(AtomicBool::new(false));
    let stop_daemon = Arc::clone(&stop);
    let runner = std::thread::spawn(move || daemon.run(&stop_daemon).map_err(|e| format!("{e:#}")));

    let state = cfg.state_dir().to_path_buf();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while runs.load(Ordering::SeqCst) < 6 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // The fault: the daemon pauses a second before the retry, the file is still where it was.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(file.exists(), "the file must stay in the drop folder after an engine fault");
    assert!(!cfg.drop_dir().join("rejected/series.dcm").exists(), "an engine fault must not reject the file");
    assert_eq!(count(&state, "SELECT count(*) FROM slices"), 2, "the frames before the fault are committed");

    while !cfg.drop_dir().join("done/series.dcm").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    let stats = runner.join().expect("daemon thread").expect("daemon run");
    assert!(cfg.drop_dir().join("done/series.dcm").exists(), "retried until the engine recovered");
    assert_eq!(stats.faults, 2, "{stats:?}");
    assert_eq!((stats.rejected, stats.slices), (0, u64::from(frames)), "{stats:?}");
    assert_eq!(count(&state, "SELECT count(*) FROM slices"), i64::from(frames));
    assert_eq!(count(&state, "SELECT count(DISTINCT frame) FROM slices"), i64::from(frames));
    assert_eq!(count(&state, "SELECT count(DISTINCT instance) FROM slices"), i64::from(frames), "one place per frame");
    assert_eq!(count(&state, "SELECT count(*) FROM rejected"), 0);
}
