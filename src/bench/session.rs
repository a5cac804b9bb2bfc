//! One `pe-sentinel bench` invocation as a library call: the input label, every round (each
//! engine and cascade setting over every file, then the onnxruntime peer), pooled into the
//! summary that `summary.json`, `slices.csv` and `latency.svg` are written from. main.rs parses
//! the flags, calls [`run`] and [`write`], and prints [`super::report::table`]. Touches what
//! [`super::run`] and [`super::run_peer`] touch, and the three output files in the output folder.

use super::report::{self, BenchSummary, ModelRef};
use super::{BenchInput, BenchOptions, BuiltPipeline, EngineRun, SliceRow};
use crate::config::{EngineKind, Resolved};
use crate::pipeline::{ModelSet, Pipeline};
use anyhow::Context;
use std::path::Path;

/// What a bench invocation produced: the summary and the pooled runs behind it.
pub struct Session {
    pub summary: BenchSummary,
    pub runs: Vec<EngineRun>,
}

/// The input as `summary.json` names it.
pub fn input_label(input: &BenchInput, rate: Option<f64>) -> String {
    let mut label = match input {
        BenchInput::Dir(d) => d.display().to_string(),
        BenchInput::Phantom { slices, seed } => format!("phantom, {slices} DICOM slices, seed {seed}"),
    };
    if let Some(r) = rate {
        label.push_str(&format!(", arriving at {r} slices/s"));
    }
    label
}

/// The pipeline for one engine name, as `bench --engine` asks for it: the profile with its
/// engine kind replaced, through the same engine choice the daemon makes.
pub fn pipeline_for_engine(cfg: &Resolved, models: &ModelSet, engine: &str) -> anyhow::Result<BuiltPipeline> {
    let kind = match engine {
        "tract" => EngineKind::Tract,
        "onnxruntime" => EngineKind::Onnxruntime,
        "auto" => EngineKind::Auto,
        "tensorrt" => EngineKind::Tensorrt,
        other => anyhow::bail!("--engine {other}: not an engine; use tract, onnxruntime, tensorrt or auto"),
    };
    let (cls, det, choice) = crate::engine::open(&cfg.with_engine_kind(kind), models)?;
    Ok(BuiltPipeline {
        pipeline: Pipeline::with_engines(models, cls, det)?,
        engine: choice.engine.to_string(),
        reason: choice.reason.clone(),
    })
}

/// Runs `rounds` rounds over `files` (the peer after each, with `peer_script`, when
/// `opts.peer_python` is set) and pools them. `note` hears progress and warnings ("round 2 of
/// 5", a round without peer figures) for the caller to print.
#[allow(clippy::too_many_arguments)]
pub fn run(
    cfg: &Resolved,
    models: &ModelSet,
    opts: &BenchOptions,
    files: &[std::path::PathBuf],
    rounds: u32,
    peer_script: &Path,
    input: String,
    note: &mut dyn FnMut(&str),
) -> anyhow::Result<Session> {
    let build = |engine: &str| pipeline_for_engine(cfg, models, engine);
    let (mut round_runs, mut peers, mut round_ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        if rounds > 1 {
            note(&format!("round {round} of {rounds}"));
        }
        let runs = super::run(cfg, models, opts, files, &build)?;
        if let Some(py) = &opts.peer_python {
            match super::run_peer(py, peer_script, &opts.out) {
                Ok(p) => {
                    let summaries: Vec<_> = runs.iter().map(report::summarize_run).collect();
                    round_ratios.push(report::peer_ratios(&summaries, &p));
                    peers.push(p);
                }
                Err(e) => note(&format!("warning: no peer figures in round {round}: {e:#}")),
            }
        }
        round_runs.push(runs);
    }
    let runs = super::pool_rounds(round_runs);
    let (ratios, ratio_rounds) = report::median_over_rounds(&round_ratios);
    let model_ref = |m: &crate::model::Manifest| ModelRef {
        name: m.model().name.clone(),
        file: m.onnx_path().display().to_string(),
        sha256: m.model().sha256.clone(),
    };
    let summary = BenchSummary {
        schema: super::SCHEMA.into(),
        created_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        pe_sentinel_version: env!("CARGO_PKG_VERSION").into(),
        hardware: report::Hardware::probe(),
        board: cfg.board().name.clone(),
        board_profile: cfg.profile_path().display().to_string(),
        precision: cfg.engine().precision.as_str().into(),
        threads: cfg.engine().threads,
        budget_ms: cfg.budget().budget_ms,
        cascade_gate: cfg.budget().cascade_gate,
        input,
        classifier: model_ref(&models.classifier),
        detector: model_ref(&models.detector),
        runs: runs.iter().map(report::summarize_run).collect(),
        peer: report::peer_over_rounds(&peers),
        ratios_to_peer: ratios,
        rounds,
        ratio_rounds,
    };
    Ok(Session { summary, runs })
}

/// Writes `slices.csv`, `summary.json` and `latency.svg` into `out`.
pub fn write(session: &Session, out: &Path) -> anyhow::Result<()> {
    let rows: Vec<&SliceRow> = session.runs.iter().flat_map(|r| r.rows.iter()).collect();
    report::write_csv(&out.join("slices.csv"), &rows)
        .with_context(|| format!("cannot write {}", out.join("slices.csv").display()))?;
    std::fs::write(out.join("summary.json"), serde_json::to_vec_pretty(&session.summary)?)
        .with_context(|| format!("cannot write {}", out.join("summary.json").display()))?;
    std::fs::write(out.join("latency.svg"), super::svg::svg(&session.runs, session.summary.budget_ms))
        .with_context(|| format!("cannot write {}", out.join("latency.svg").display()))?;
    Ok(())
}
