//! `pe-sentinel bench`: every slice of an input folder (or of a fresh phantom series) through the
//! daemon's full path — read, hash and decode; preprocess; classifier; detector; heads; fusion and
//! series verdict; journal row — on each requested engine, timing every stage. Writes
//! `slices.csv`, `summary.json` (schema in docs/bench.md) and `latency.svg` into the output
//! folder, and optionally times onnxruntime's own Python inference on the same preprocessed inputs
//! as a peer (`scripts/ort_peer.py`). Touches the input files (read only), the output folder, and
//! a throw-away journal in it.

pub mod report;
pub mod session;
pub mod stats;
pub mod svg;

use crate::budget::{us_since, BudgetTracker, SliceTimes, StageLatencyUs};
use crate::config::Resolved;
use crate::daemon::sink::{Job, Sink};
use crate::pipeline::{ModelSet, Pipeline, SliceScores};
use crate::slice::Slice;
use crate::store::journal::SeriesRow;
use crate::store::journal::{Journal, SliceRecord};
use crate::verdict::series::{SeriesEvent, SeriesSummary};
use crate::verdict::Judge;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use std::time::Instant;

/// Version tag of `summary.json`.
pub const SCHEMA: &str = "pe-sentinel-bench/1";
/// Slices whose preprocessed inputs are handed to the onnxruntime peer.
pub const PEER_SLICES: usize = 16;
/// Slices run before timing starts (engine caches, page faults).
pub const WARMUP_SLICES: usize = 2;
/// Most rounds `--rounds` accepts (each round runs every engine over every slice, then the peer).
pub const MAX_ROUNDS: u32 = 20;

/// Where the slices come from.
#[derive(Debug, Clone)]
pub enum BenchInput {
    /// Every DICOM/PNG/JPEG file under a folder (dotfiles skipped), in path order.
    Dir(PathBuf),
    /// One phantom series of this many DICOM slices, written to `<out>/phantom`.
    Phantom { slices: u32, seed: u64 },
}

/// A pipeline built for one engine name, and why that engine (for the report).
pub struct BuiltPipeline {
    pub pipeline: Pipeline,
    /// The engine that actually runs (e.g. "tract" when "auto" fell back).
    pub engine: String,
    pub reason: String,
}

/// What to run.
pub struct BenchOptions {
    pub input: BenchInput,
    /// Engine names, each run in turn over the same slices ("tract", "onnxruntime", ...).
    pub engines: Vec<String>,
    pub out: PathBuf,
    /// Python with onnxruntime for the peer timing (None: no peer).
    pub peer_python: Option<PathBuf>,
    /// Draw a progress bar on stderr (src/progress.rs).
    pub progress: bool,
    /// Slices per second arriving on their own clock, as a scanner pushes them (`--rate`): each
    /// file arrives at its scheduled time whether or not the one before has been analysed, so
    /// arrival-to-verdict includes any queueing. `None`: back to back (each file arrives when
    /// the previous one is handed to the sink).
    pub rate: Option<f64>,
    /// The cascade settings each engine runs with, in turn (`None`: off, the detector on every
    /// slice; `Some(g)`: the detector only when the classifier's P >= g). Empty: the profile's.
    pub cascade: Vec<Option<f32>>,
}

/// One timed slice.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SliceRow {
    pub engine: String,
    pub index: usize,
    pub file: String,
    pub frame: u32,
    pub times: SliceTimes,
    pub missed: bool,
    pub p: f32,
    pub boxes: u32,
    pub suspicious: bool,
    /// Heap allocations during the pipeline step (preprocess, engines, heads) of this slice: the
    /// engines' own, as the project's code allocates nothing there.
    pub engine_allocations: u64,
    /// Whether the detector ran on this slice (false: the cascade gate skipped it).
    #[serde(default = "ran")]
    pub detector_ran: bool,
}

fn ran() -> bool {
    true
}

/// One engine's run over all slices.
pub struct EngineRun {
    pub requested: String,
    pub engine: String,
    /// The cascade gate this run used (None: off).
    pub cascade_gate: Option<f32>,
    pub reason: String,
    pub rows: Vec<SliceRow>,
    /// From the first arrival to the last commit (the sink drained).
    pub wall_s: f64,
    /// The sink's transactions and the most slices one of them held (grouped commits).
    pub commits: u64,
    pub largest_batch: usize,
    pub budget_misses: u64,
    pub slow_at_end: bool,
}

/// Every file to read, in order.
pub fn collect_inputs(input: &BenchInput, out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let root = match input {
        BenchInput::Dir(d) => d.clone(),
        BenchInput::Phantom { slices, seed } => {
            let dir = out.join("phantom");
            if dir.exists() {
                std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
            }
            let mut o = crate::phantom::PhantomOptions::new(&dir);
            o.series = 1;
            o.slices = *slices;
            o.seed = *seed;
            o.format = crate::phantom::Format::Dicom;
            o.pe_fraction = 1.0;
            crate::phantom::generate(&o).map_err(|e| anyhow::anyhow!("phantom for bench: {e}"))?;
            dir
        }
    };
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot list bench input folder {}; check --input", dir.display()))?;
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() && is_image_name(&name) {
                files.push(p);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        anyhow::bail!(
            "no DICOM (.dcm), PNG or JPEG files under {}; point --input at a folder of slices",
            root.display()
        );
    }
    Ok(files)
}

fn is_image_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".dcm", ".png", ".jpg", ".jpeg"].iter().any(|e| lower.ends_with(e)) || !lower.contains('.')
}

/// The series a bench file belongs to: its folder's name.
fn series_of(path: &Path, root_series: &str) -> crate::slice::SeriesId {
    crate::slice::SeriesId(
        path.parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| root_series.to_string()),
    )
}

/// The cascade settings of `bench --cascade LIST`: each `off` or a gate from 0 to 1. An empty
/// list gives cascade off, then the profile's gate when it sets one (so a profile with a cascade
/// is reported against the detector on every slice).
pub fn cascade_settings(list: &[String], profile_gate: Option<f32>) -> anyhow::Result<Vec<Option<f32>>> {
    if list.is_empty() {
        return Ok(std::iter::once(None).chain(profile_gate.map(Some)).collect());
    }
    list.iter()
        .map(|item| match item.trim() {
            "off" => Ok(None),
            v => match v.parse::<f32>() {
                Ok(g) if (0.0..=1.0).contains(&g) => Ok(Some(g)),
                _ => anyhow::bail!("--cascade {v}: give `off` or a classifier P gate from 0 to 1, comma-separated"),
            },
        })
        .collect()
}

/// A run's name in reports: the engine, and the cascade gate when one was on
/// ("onnxruntime", "onnxruntime+cascade0.05").
pub fn run_label(engine: &str, cascade_gate: Option<f32>) -> String {
    match cascade_gate {
        Some(g) => format!("{engine}+cascade{g}"),
        None => engine.to_string(),
    }
}

/// Runs every requested engine over `files`, once per cascade setting of `opts` (the profile's
/// when none is given); `build` makes the pipeline for an engine name.
pub fn run(
    cfg: &Resolved,
    models: &ModelSet,
    opts: &BenchOptions,
    files: &[PathBuf],
    build: &dyn Fn(&str) -> anyhow::Result<BuiltPipeline>,
) -> anyhow::Result<Vec<EngineRun>> {
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create bench output folder {}", opts.out.display()))?;
    let cascade = if opts.cascade.is_empty() { vec![cfg.budget().cascade_gate] } else { opts.cascade.clone() };
    let mut runs = Vec::new();
    for (k, requested) in opts.engines.iter().enumerate() {
        let mut built = build(requested)?;
        for (c, gate) in cascade.iter().enumerate() {
            let dump_peer = k == 0 && c == 0 && opts.peer_python.is_some();
            runs.push(run_engine(cfg, models, opts, files, requested, &mut built, *gate, dump_peer)?);
        }
    }
    Ok(runs)
}

#[allow(clippy::too_many_arguments)]
fn run_engine(
    cfg: &Resolved,
    models: &ModelSet,
    opts: &BenchOptions,
    files: &[PathBuf],
    requested: &str,
    built: &mut BuiltPipeline,
    cascade_gate: Option<f32>,
    dump_peer: bool,
) -> anyhow::Result<EngineRun> {
    let BuiltPipeline { pipeline, engine, reason } = built;
    pipeline.apply_profile(cfg);
    pipeline.set_cascade_gate(cascade_gate);
    let engine = run_label(engine, cascade_gate);
    let mut judge = Judge::new(cfg.verdict().fusion_config(), cfg.verdict().series_config());
    let mut budget = BudgetTracker::new(cfg.budget().config());
    let journal_path = opts.out.join(format!("journal-{engine}.sqlite3"));
    for suffix in ["", "-wal", "-shm"] {
        let f = PathBuf::from(format!("{}{suffix}", journal_path.display()));
        if f.exists() {
            std::fs::remove_file(&f).with_context(|| format!("cannot remove old {}", f.display()))?;
        }
    }
    // The daemon's sink: commits on its own thread, grouped when the disk is slow.
    let mut sink = Sink::start(Journal::open(&journal_path)?, None, opts.out.join("overlays"))
        .context("bench: cannot start the sink thread")?;
    let mut peer_cls: Vec<f32> = Vec::new();
    let mut peer_det: Vec<f32> = Vec::new();
    let mut scores = SliceScores::default();
    let mut rows = Vec::with_capacity(files.len());
    let counting = crate::alloc_count::installed();
    let cls_sha = models.classifier.model().sha256.clone();
    let det_sha = models.detector.model().sha256.clone();
    let started = Instant::now();
    let mut index = 0usize;
    let mut warm = 0usize;
    let bar = crate::progress::bar(opts.progress, files.len() as u64, &engine);
    let mut scheduled = 0usize;
    for path in bar.wrap_iter(files.iter()) {
        // As the daemon: read, then decode and prepare the first slice while the sha256 runs.
        let arrival = match opts.rate {
            Some(r) => {
                let at = started + Duration::from_secs_f64(scheduled as f64 / r);
                if let Some(early) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(early);
                }
                at
            }
            None => Instant::now(),
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => std::sync::Arc::new(b),
            Err(e) => {
                log::warn!("bench: skipping {}: cannot read ({e})", path.display());
                continue;
            }
        };
        let read = us_since(arrival);
        let arrived = pipeline.arrive(&bytes, path, series_of(path, "bench"));
        let (sha, decode) = (arrived.sha256, arrived.decode_us.saturating_add(read));
        let slices = match &arrived.slices {
            Ok(s) => s,
            Err(reason) => {
                log::warn!("bench: skipping {reason}");
                continue;
            }
        };
        scheduled += slices.len();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        for (i, slice) in slices.iter().enumerate() {
            let allocs_before = crate::alloc_count::this_thread().0;
            pipeline.run_arrived(&arrived, i, &mut scores).with_context(|| format!("bench: {}", path.display()))?;
            let allocs = crate::alloc_count::this_thread().0 - allocs_before;
            if dump_peer && peer_cls.len() < PEER_SLICES * pipeline.last_inputs().0.len() {
                let (c, d) = pipeline.last_inputs();
                peer_cls.extend_from_slice(c);
                peer_det.extend_from_slice(d);
            }
            let t_verdict = Instant::now();
            let det = &scores.detections;
            let judged = judge.judge(slice, scores.p, det, started.elapsed().as_millis() as u64);
            let (fs, v, instance) = (judged.scores, judged.verdict, judged.order);
            let verdict = us_since(t_verdict);
            let total = us_since(arrival);
            let rec = Box::new(SliceRecord {
                source_file: name.clone(),
                // One row per slice and engine run: the frame keeps multi-frame files apart.
                sha256: sha,
                frame: slice.frame,
                series: slice.series.0.clone(),
                instance: Some(instance),
                p: fs.p,
                boxes: det.boxes.iter().map(|d| [d.bbox.x0, d.bbox.y0, d.bbox.x1, d.bbox.y1, d.confidence]).collect(),
                suspicious: v.suspicious,
                latency: scores.times.with(decode, verdict),
                classifier_sha256: cls_sha.clone(),
                detector_sha256: det_sha.clone(),
                created_unix_ms: 0,
            });
            let latency = rec.latency;
            // The store stage as the hot path sees it: handing the row to the sink (it waits only
            // when the sink's queue is full, i.e. the disk is slower than slices arrive).
            let job = Job::Slice { record: rec, series: None, overlay: None, sent: Instant::now() };
            let store = sink.send(job, || {}).map_err(|e| anyhow::anyhow!("bench: {e}"))?;
            for e in judged.events {
                if let SeriesEvent::Positive { summary, .. } | SeriesEvent::Closed { summary, .. } = e {
                    let row = series_row(&slice.series.0, &summary);
                    sink.send(Job::Series(row), || {}).map_err(|e| anyhow::anyhow!("bench: {e}"))?;
                }
            }
            let stages = StageLatencyUs { store, ..latency };
            if warm < WARMUP_SLICES {
                warm += 1;
                continue;
            }
            let times = SliceTimes { stages, total };
            let (missed, _) = budget.record(total);
            rows.push(SliceRow {
                engine: engine.clone(),
                index,
                file: name.clone(),
                frame: slice.frame,
                times,
                missed,
                p: fs.p,
                boxes: fs.boxes,
                suspicious: v.suspicious,
                engine_allocations: if counting { allocs } else { 0 },
                detector_ran: scores.detector_ran,
            });
            index += 1;
        }
    }
    bar.finish_and_clear();
    sink.flush(|| {}).map_err(|e| anyhow::anyhow!("bench: {e}"))?;
    let wall_s = started.elapsed().as_secs_f64();
    let sunk = sink.take_state();
    sink.finish();
    if rows.is_empty() {
        anyhow::bail!(
            "bench: no slice could be timed on {engine} (need more than {WARMUP_SLICES} readable slices); check --input"
        );
    }
    if dump_peer && !peer_cls.is_empty() {
        write_peer_inputs(&opts.out, models, &peer_cls, &peer_det, cfg.engine().threads)?;
    }
    Ok(EngineRun {
        requested: requested.to_string(),
        engine,
        cascade_gate,
        reason: reason.clone(),
        rows,
        wall_s,
        commits: sunk.commits,
        largest_batch: sunk.largest_batch,
        budget_misses: budget.missed(),
        slow_at_end: budget.is_slow(),
    })
}

/// A series row for bench's journal (times are the run's monotonic milliseconds).
fn series_row(series: &str, s: &SeriesSummary) -> SeriesRow {
    SeriesRow::from_summary(series, s, |ms| ms as i64)
}

/// One engine run per requested engine, pooled over rounds (round `r`'s runs in `rounds[r]`, the
/// engines in the same order each round): every round's timed slices, in round order and indexed
/// anew; wall time and budget misses summed; "slow at end" as the last round left it.
pub fn pool_rounds(rounds: Vec<Vec<EngineRun>>) -> Vec<EngineRun> {
    let mut pooled: Vec<EngineRun> = Vec::new();
    for round in rounds {
        for (k, run) in round.into_iter().enumerate() {
            match pooled.get_mut(k) {
                None => pooled.push(run),
                Some(p) => {
                    let base = p.rows.len();
                    p.rows.extend(run.rows.into_iter().enumerate().map(|(i, r)| SliceRow { index: base + i, ..r }));
                    p.wall_s += run.wall_s;
                    p.commits += run.commits;
                    p.largest_batch = p.largest_batch.max(run.largest_batch);
                    p.budget_misses += run.budget_misses;
                    p.slow_at_end = run.slow_at_end;
                }
            }
        }
    }
    pooled
}

/// The peer's request: model files, input shapes and the raw f32 inputs it should time.
#[derive(Debug, Serialize, Deserialize)]
pub struct PeerRequest {
    pub threads: usize,
    pub models: Vec<PeerModel>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PeerModel {
    pub role: String,
    pub onnx: PathBuf,
    pub input_name: String,
    pub input_shape: Vec<usize>,
    /// Little-endian f32, `slices` inputs back to back.
    pub inputs: PathBuf,
    pub slices: usize,
}

fn write_peer_inputs(out: &Path, models: &ModelSet, cls: &[f32], det: &[f32], threads: usize) -> anyhow::Result<()> {
    let dir = out.join("peer");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut list = Vec::new();
    for (role, m, data) in [("classifier", &models.classifier, cls), ("detector", &models.detector, det)] {
        let per: usize = m.input().shape.iter().product();
        let file = dir.join(format!("{role}.f32"));
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&file, bytes).with_context(|| format!("cannot write {}", file.display()))?;
        list.push(PeerModel {
            role: role.into(),
            onnx: m.onnx_path().to_path_buf(),
            input_name: m.input().name.clone(),
            input_shape: m.input().shape.to_vec(),
            inputs: file,
            slices: data.len() / per.max(1),
        });
    }
    let req = PeerRequest { threads, models: list };
    let path = dir.join("request.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&req)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The peer's answer (`peer/peer.json`, written by scripts/ort_peer.py).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerResult {
    pub runtime: String,
    pub version: String,
    pub threads: usize,
    pub models: Vec<PeerTiming>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerTiming {
    pub role: String,
    pub runs: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Runs scripts/ort_peer.py with `python` on the inputs written by the first engine's run.
pub fn run_peer(python: &Path, script: &Path, out: &Path) -> anyhow::Result<PeerResult> {
    let req = out.join("peer/request.json");
    let res = out.join("peer/peer.json");
    let st = std::process::Command::new(python)
        .arg(script)
        .arg(&req)
        .arg(&res)
        .status()
        .with_context(|| format!("cannot run the onnxruntime peer: {} {}", python.display(), script.display()))?;
    if !st.success() {
        anyhow::bail!(
            "the onnxruntime peer ({} {}) failed ({st}); is onnxruntime installed for that Python? (pip install -r tests/py/requirements.txt)",
            python.display(),
            script.display()
        );
    }
    let text = std::fs::read_to_string(&res).with_context(|| format!("peer wrote no {}", res.display()))?;
    serde_json::from_str(&text).with_context(|| format!("cannot parse {}", res.display()))
}

/// Times `runs` passes of one positive phantom slice (512x512 HU) through `pipeline` — the
/// model part of a slice's budget (no decode, verdict or store) — for `check` and the daemon's
/// start-up warning.
pub fn warmup_probe(pipeline: &mut Pipeline, runs: usize) -> anyhow::Result<stats::Summary> {
    let plan = crate::phantom::SeriesPlan::new(7, 0, 64, true);
    let mut canvas = crate::phantom::render::Canvas::default();
    let mut boxes = Vec::new();
    plan.render(32, &mut canvas, &mut boxes);
    let side = crate::phantom::render::SIZE as u32;
    let slice = Slice {
        source: PathBuf::from("warm-up phantom slice"),
        frame: 0,
        series: crate::slice::SeriesId("warm-up".into()),
        instance: None,
        order: 1,
        position_z: None,
        width: side,
        height: side,
        pixels: crate::slice::Pixels::Hu(std::mem::take(&mut canvas.hu)),
    };
    let mut scores = SliceScores::default();
    let mut us = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        pipeline.run(&slice, &mut scores)?;
        us.push(us_since(t));
    }
    Ok(stats::summarize(&us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cascade_settings_default_to_off_then_the_profiles_gate_and_refuse_nonsense() {
        assert_eq!(cascade_settings(&[], None).expect("none"), [None]);
        assert_eq!(cascade_settings(&[], Some(0.1)).expect("profile"), [None, Some(0.1)]);
        let list = ["off".to_string(), "0.05".into(), " 1".into()];
        assert_eq!(cascade_settings(&list, Some(0.1)).expect("list"), [None, Some(0.05), Some(1.0)]);
        for bad in ["1.5", "-0.1", "on", ""] {
            let e = cascade_settings(&[bad.to_string()], None).expect_err(bad).to_string();
            assert!(e.contains("--cascade") && e.contains("from 0 to 1"), "{e}");
        }
        assert_eq!(run_label("onnxruntime", Some(0.05)), "onnxruntime+cascade0.05");
        assert_eq!(run_label("tract", None), "tract");
    }
}
