//! Command-line entry point: parse, call the library, map the result to an exit code.
//! Only this file prints to the terminal; exit codes: 0 success, 1 failure, 2 bad usage.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use pe_sentinel::config::{self, Precision, Resolved};
use pe_sentinel::daemon::{self, Daemon};
use pe_sentinel::evaluate::{self, InputKind};
use pe_sentinel::pipeline::{ModelSet, Pipeline, SliceScores};
use pe_sentinel::store::journal::Journal;
use pe_sentinel::{infer, phantom};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Prints a line on stdout; a closed pipe (`| head`) ends the program quietly, as in ripgrep.
fn emit(line: &str) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{line}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

macro_rules! outln {
    ($($t:tt)*) => { emit(&format!($($t)*)) };
}

#[derive(Parser)]
#[command(name = "pe-sentinel", version, about = "Pulmonary-embolism alerts beside the CT scanner console")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The daemon: watch the drop folder, analyse every slice, record verdicts.
    Run {
        /// Board profile (default: the shipped x86 CPU profile).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Drop folder, overriding the profile's.
        #[arg(long)]
        drop: Option<PathBuf>,
        /// State folder (journal, overlays), overriding the profile's.
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Analyse files once: one JSON object per slice on stdout.
    Infer {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, value_enum)]
        precision: Option<PrecisionArg>,
        /// Also write each slice's model inputs and raw outputs as little-endian f32 files here
        /// (for parity checks against onnxruntime).
        #[arg(long, hide = true)]
        dump: Option<PathBuf>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Validate a board profile, its models, folders and engines; non-zero exit on problems.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Accuracy against ground truth on a labelled dataset (`pe-sentinel phantom` layout).
    Eval {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, value_enum)]
        precision: Option<PrecisionArg>,
        /// Which files of each series to read.
        #[arg(long, value_enum, default_value = "png")]
        input: InputArg,
        /// Also write the figures as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Recent series and their verdicts from the journal.
    History {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        state: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Write synthetic CTPA series with known emboli (DICOM, PNG, YOLO labels, truth JSON).
    Phantom(PhantomArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum PrecisionArg {
    Fp32,
    Int8,
}

#[derive(Clone, Copy, ValueEnum)]
enum InputArg {
    Png,
    Dicom,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Dicom,
    Png,
    Both,
}

#[derive(clap::Args)]
#[command(allow_negative_numbers = true)]
struct PhantomArgs {
    /// Output folder (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Number of series.
    #[arg(long, default_value_t = 3)]
    series: u32,
    /// Slices per series.
    #[arg(long, default_value_t = 64)]
    slices: u32,
    /// Seed: the same seed and arguments give byte-identical output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// What to write for each slice (labels and truth are always written).
    #[arg(long, value_enum, default_value = "both")]
    format: FormatArg,
    /// Fraction of series that contain emboli; the others have none.
    #[arg(long, default_value_t = 0.67)]
    pe_fraction: f32,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Also write the generated HU of every slice as raw little-endian f32 (for cross-checks).
    #[arg(long, hide = true)]
    emit_hu: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let result = match cli.command {
        Command::Run { config, drop, state } => run(config, drop, state),
        Command::Infer { config, precision, dump, files } => run_infer(config, precision, dump, &files),
        Command::Check { config } => run_check(config),
        Command::Eval { data, config, precision, input, json } => run_eval(&data, config, precision, input, json),
        Command::History { config, state, json, limit } => run_history(config, state, json, limit),
        Command::Phantom(a) => run_phantom(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: Option<PathBuf>, drop: Option<&Path>, state: Option<&Path>) -> anyhow::Result<Resolved> {
    let path = path.unwrap_or_else(config::default_profile_path);
    Ok(Resolved::load(&path, drop, state)?)
}

fn with_precision(mut cfg: Resolved, precision: Option<PrecisionArg>) -> anyhow::Result<Resolved> {
    match precision {
        Some(PrecisionArg::Fp32) => cfg.set_precision(Precision::Fp32),
        Some(PrecisionArg::Int8) => cfg.set_precision(Precision::Int8),
        None => {}
    }
    Ok(cfg)
}

fn pipeline_for(cfg: &Resolved) -> anyhow::Result<Pipeline> {
    let models = ModelSet::load(&cfg.classifier_manifest, &cfg.detector_manifest)?;
    Ok(Pipeline::new(&models, cfg.profile.engine.threads)?)
}

fn run(config: Option<PathBuf>, drop: Option<PathBuf>, state: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let cfg = load_config(config, drop.as_deref(), state.as_deref())?;
    let stop = daemon::stop_flag()?;
    let mut d = Daemon::open(&cfg)?;
    d.run(&stop)?;
    Ok(ExitCode::SUCCESS)
}

fn dump_tensors(dir: &Path, stem: &str, pipeline: &Pipeline) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: String, v: &[f32]| -> anyhow::Result<()> {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let p = dir.join(name);
        std::fs::write(&p, bytes).with_context(|| format!("cannot write {}", p.display()))
    };
    let (ci, di) = pipeline.last_inputs();
    write(format!("{stem}.classifier.input.f32"), ci)?;
    write(format!("{stem}.detector.input.f32"), di)?;
    let (co, dout) = pipeline.last_outputs();
    for (model, outs) in [("classifier", co), ("detector", dout)] {
        for t in outs.tensors() {
            write(format!("{stem}.{model}.{}.f32", t.spec.name), &t.data)?;
        }
    }
    Ok(())
}

fn run_infer(
    config: Option<PathBuf>,
    precision: Option<PrecisionArg>,
    dump: Option<PathBuf>,
    files: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let cfg = with_precision(load_config(config, None, None)?, precision)?;
    let mut pipeline = pipeline_for(&cfg)?;
    let fusion = cfg.profile.verdict.fusion_config();
    let mut scores = SliceScores::default();
    let mut failed = 0;
    for f in files {
        match infer::infer_file(&mut pipeline, &fusion, f, &mut scores) {
            Ok(answers) => {
                if let Some(dir) = &dump {
                    // The pipeline holds the last slice's tensors: dump single-slice files only.
                    let stem = f.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                    dump_tensors(dir, &stem, &pipeline)?;
                }
                for a in answers {
                    outln!("{}", serde_json::to_string(&a)?);
                }
            }
            Err(reason) => {
                eprintln!("error: {reason}");
                failed += 1;
            }
        }
    }
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn run_check(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let path = config.unwrap_or_else(config::default_profile_path);
    let mut problems = 0;
    let mut line = |ok: bool, what: String| {
        outln!("{} {what}", if ok { "ok     " } else { "PROBLEM" });
        if !ok {
            problems += 1;
        }
    };
    let cfg = match Resolved::load(&path, None, None) {
        Ok(c) => {
            line(true, format!("profile {} ({})", path.display(), c.profile.board.name));
            c
        }
        Err(e) => {
            line(false, format!("{e}"));
            return Ok(ExitCode::FAILURE);
        }
    };
    let p = &cfg.profile;
    line(
        true,
        format!(
            "engine {:?}, precision {}, {} thread(s)",
            p.engine.kind,
            p.engine.precision.as_str(),
            p.engine.threads
        ),
    );
    match ModelSet::load(&cfg.classifier_manifest, &cfg.detector_manifest) {
        Ok(models) => {
            for m in [&models.classifier, &models.detector] {
                line(
                    true,
                    format!("model {} ({}): sha256 {} matches", m.model().name, m.path().display(), m.model().sha256),
                );
                for w in m.warnings() {
                    outln!("warning {}: {w}", m.path().display());
                }
            }
            let t = std::time::Instant::now();
            match Pipeline::new(&models, p.engine.threads) {
                Ok(pl) => line(
                    true,
                    format!("engine {} loaded and warmed up in {} ms", pl.engine_name(), t.elapsed().as_millis()),
                ),
                Err(e) => line(false, format!("{e}")),
            }
        }
        Err(e) => line(false, format!("{e}")),
    }
    for (what, dir) in [("drop folder", &cfg.drop_dir), ("state folder", &cfg.state_dir)] {
        let probe = dir.join(".pe-sentinel-check");
        let ok = std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(&probe, b"x"))
            .and_then(|_| std::fs::remove_file(&probe));
        match ok {
            Ok(()) => line(true, format!("{what} {} is writable", dir.display())),
            Err(e) => {
                line(false, format!("{what} {}: {e}; create it and give the daemon's user write access", dir.display()))
            }
        }
    }
    let jp = Journal::path_in(&cfg.state_dir);
    if jp.exists() {
        match Journal::open(&jp).and_then(|j| j.integrity_check()) {
            Ok(true) => line(true, format!("journal {} passes integrity_check", jp.display())),
            Ok(false) => {
                line(false, format!("journal {} fails integrity_check; move it aside and restart", jp.display()))
            }
            Err(e) => line(false, format!("{e}")),
        }
    }
    outln!("{}", if problems == 0 { "check passed".to_string() } else { format!("check found {problems} problem(s)") });
    Ok(if problems == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn run_eval(
    data: &Path,
    config: Option<PathBuf>,
    precision: Option<PrecisionArg>,
    input: InputArg,
    json: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let cfg = with_precision(load_config(config, None, None)?, precision)?;
    let mut pipeline = pipeline_for(&cfg)?;
    let v = &cfg.profile.verdict;
    let kind = match input {
        InputArg::Png => InputKind::Png,
        InputArg::Dicom => InputKind::Dicom,
    };
    let mut out = evaluate::evaluate(data, kind, &mut pipeline, &v.fusion_config(), &v.series_config(), |name, n| {
        log::info!("eval {name}: {n} slice(s)")
    })?;
    out.precision = cfg.profile.engine.precision.as_str().to_string();
    let r = &out.report;
    let f = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    outln!(
        "eval of {} ({} series, {} slices, {} input, {} models)",
        data.display(),
        r.series,
        r.slices,
        out.input,
        out.precision
    );
    outln!("  detector AP50 (darknet -map, all-point) {}", f(r.ap50_voc));
    outln!("  detector AP50 (COCO 101-point)          {}", f(r.ap50_coco));
    outln!("  classifier slice accuracy               {}", f(r.slice_accuracy));
    outln!("  classifier slice sensitivity            {}", f(r.slice_sensitivity));
    outln!("  classifier slice specificity            {}", f(r.slice_specificity));
    outln!("  fused slice accuracy                    {}", f(out.fused_slice_accuracy));
    outln!("  series sensitivity                      {}", f(r.series_sensitivity));
    outln!("  series specificity                      {}", f(r.series_specificity));
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_string_pretty(&out)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn run_history(config: Option<PathBuf>, state: Option<PathBuf>, json: bool, limit: usize) -> anyhow::Result<ExitCode> {
    let state = match state {
        Some(s) => s,
        None => load_config(config, None, None)?.state_dir,
    };
    let path = Journal::path_in(&state);
    if !path.exists() {
        anyhow::bail!("no journal at {}; give the daemon's --state folder", path.display());
    }
    let rows = Journal::open(&path)?.recent_series(limit)?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        outln!("{:<66} {:>6} {:>10} {:>6} {:>6}  verdict", "series", "slices", "suspicious", "max P", "boxes");
        for r in rows {
            outln!(
                "{:<66} {:>6} {:>10} {:>6.3} {:>6}  {}",
                r.series,
                r.slices,
                r.suspicious_slices,
                r.max_p,
                r.boxes,
                r.verdict.as_str()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_phantom(a: PhantomArgs) -> anyhow::Result<ExitCode> {
    let mut o = phantom::PhantomOptions::new(&a.out);
    o.series = a.series;
    o.slices = a.slices;
    o.seed = a.seed;
    o.format = match a.format {
        FormatArg::Dicom => phantom::Format::Dicom,
        FormatArg::Png => phantom::Format::Png,
        FormatArg::Both => phantom::Format::Both,
    };
    o.pe_fraction = a.pe_fraction;
    o.threads = a.threads;
    o.emit_hu = a.emit_hu;
    let start = std::time::Instant::now();
    let summary = phantom::generate(&o).with_context(|| format!("phantom into {}", a.out.display()))?;
    let total = summary.series.len() as u32 * summary.slices;
    outln!(
        "wrote {} series x {} slices ({} slices) to {} in {:.1} s",
        summary.series.len(),
        summary.slices,
        total,
        a.out.display(),
        start.elapsed().as_secs_f64()
    );
    for s in &summary.series {
        outln!(
            "  {}  {}  emboli {}  labelled slices {}",
            s.folder,
            if s.positive { "positive" } else { "negative" },
            s.emboli,
            s.labelled_slices
        );
    }
    Ok(ExitCode::SUCCESS)
}
