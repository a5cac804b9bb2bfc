//! Command-line entry point: parse, call the library, map the result to an exit code.
//! Only this file prints to the terminal; exit codes: 0 success, 1 failure, 2 bad usage.

use anyhow::Context;
use clap::{CommandFactory, Parser};
use cli::*;
use pe_sentinel::config::{self, Precision, Resolved};
use pe_sentinel::daemon::{self, Daemon};
use pe_sentinel::eval::{self, InputKind};
use pe_sentinel::pipeline::{ModelSet, Pipeline, SliceScores};
use pe_sentinel::store::journal::Journal;
use pe_sentinel::{bench, import, infer, phantom};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod cli;

// Counts heap allocations per thread so `bench` can report what the engines allocate per slice.
#[global_allocator]
static ALLOCATOR: pe_sentinel::alloc_count::CountingAllocator = pe_sentinel::alloc_count::CountingAllocator;

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let result = match cli.command {
        Command::Run { config, drop, state } => run(config, drop, state),
        Command::Infer { config, precision, dump, files } => run_infer(config, precision, dump, &files),
        Command::Check { config, capture: true, out } => run_check_capture(config, out),
        Command::Check { config, .. } => run_check(config),
        Command::Eval { data, config, precision, input, json, int8_baseline } => {
            run_eval(&data, config, precision, input, json, int8_baseline)
        }
        Command::History { config, state, json, limit, associations: true } => {
            run_associations(config, state, json, limit)
        }
        Command::History { config, state, json, limit, .. } => run_history(config, state, json, limit),
        Command::Receive { args } => run_receive(&args),
        Command::Phantom(a) => run_phantom(a),
        Command::Bench(a) => run_bench(a),
        Command::ImportDarknet(a) => run_import_darknet(a),
        Command::RunModel { manifest, input, out } => run_model(&manifest, &input, &out),
        Command::BuildEngines { config, state, force } => run_build_engines(config, state, force),
        Command::Ack { config, state } => run_ack(config, state),
        Command::GenerateDocs { out } => pe_sentinel::cli_docs::write_all(Cli::command(), &out)
            .with_context(|| format!("cannot write the man pages and completions into {}", out.display()))
            .map(|_| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Progress bars only on a terminal (src/progress.rs): logs, pipes and journald get none.
fn on_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}

fn load_config(path: Option<PathBuf>, drop: Option<&Path>, state: Option<&Path>) -> anyhow::Result<Resolved> {
    let path = path.unwrap_or_else(config::default_profile_path);
    Ok(Resolved::load(&path, drop, state)?)
}

fn with_precision(cfg: Resolved, precision: Option<PrecisionArg>) -> anyhow::Result<Resolved> {
    Ok(match precision {
        Some(PrecisionArg::Fp32) => cfg.with_precision(Precision::Fp32),
        Some(PrecisionArg::Int8) => cfg.with_precision(Precision::Int8),
        None => cfg,
    })
}

fn pipeline_for(cfg: &Resolved) -> anyhow::Result<Pipeline> {
    let models = ModelSet::load(cfg.classifier_manifest(), cfg.detector_manifest())?;
    let (cls, det, choice) = pe_sentinel::engine::open(cfg, &models)?;
    log::info!("{choice}");
    let mut pipeline = Pipeline::with_engines(&models, cls, det)?;
    pipeline.apply_profile(cfg);
    Ok(pipeline)
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
    // What each model says on every slice (parity checks dump both models' tensors), as `eval`.
    pipeline.set_cascade_gate(None);
    let v = cfg.verdict();
    let mut judge = pe_sentinel::verdict::Judge::new(v.fusion_config(), v.series_config());
    let models = ModelSet::load(cfg.classifier_manifest(), cfg.detector_manifest())?;
    let gate = pe_sentinel::eligibility::gate_for(cfg.eligibility(), &models);
    let mut scores = SliceScores::default();
    let mut failed = 0;
    for f in files {
        match infer::infer_file(&mut pipeline, &mut judge, &gate, f, &mut scores) {
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
    let report = pe_sentinel::check::run(&config.unwrap_or_else(config::default_profile_path));
    for line in &report.lines {
        outln!("{line}");
    }
    outln!("{}", report.verdict());
    Ok(if report.problems == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn run_check_capture(config: Option<PathBuf>, out: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    use pe_sentinel::source::capture::{convert::GrayConverter, open, viewport, CaptureError};
    let cfg = load_config(config, None, None)?;
    let Some(c) = cfg.capture() else {
        anyhow::bail!("{}: no [capture] table; add one (see docs/capture.md)", cfg.profile_path().display());
    };
    let mut src = open::open_source(c)?;
    let f = src.format();
    let mut conv = GrayConverter::new(f.width, f.height);
    // A few frames first: cards deliver stale or black frames right after STREAMON.
    let mut got = false;
    for n in 0..10 {
        match src.next_frame() {
            Ok(frame) => match conv.convert(&frame) {
                Ok(_) => got = n >= 4,
                Err(e) => log::warn!("{e}"),
            },
            Err(CaptureError::Ended { .. }) => break,
            Err(e) => return Err(e.into()),
        }
        if got {
            break;
        }
    }
    if conv.gray.pixels.is_empty() {
        anyhow::bail!("capture device {}: no frame could be read", c.device);
    }
    let proposal = viewport::find_viewport(&conv.gray);
    let pic = viewport::check_picture(&conv.gray, Some(&c.viewport), &c.masks);
    let path = out.unwrap_or_else(|| cfg.state_dir().join("capture-check.png"));
    pic.save(&path).with_context(|| format!("cannot write {}", path.display()))?;
    outln!("capture frame {}x{} ({}) saved with the viewport drawn: {}", f.width, f.height, f.pixel, path.display());
    outln!("configured viewport {}", c.viewport);
    match proposal {
        Some(v) => outln!("automatic finder proposes viewport {v}"),
        None => outln!("automatic finder found no dark, roughly square region with image content"),
    }
    Ok(ExitCode::SUCCESS)
}

fn run_eval(
    data: &Path,
    config: Option<PathBuf>,
    precision: Option<PrecisionArg>,
    input: Option<InputArg>,
    json: Option<PathBuf>,
    int8_baseline: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let cfg = with_precision(load_config(config, None, None)?, precision)?;
    let mut pipeline = pipeline_for(&cfg)?;
    let v = cfg.verdict();
    let kind = input.map(|i| match i {
        InputArg::Png => InputKind::Png,
        InputArg::Dicom => InputKind::Dicom,
    });
    let models = ModelSet::load(cfg.classifier_manifest(), cfg.detector_manifest())?;
    let gate = pe_sentinel::eligibility::gate_for(cfg.eligibility(), &models);
    let bar = pe_sentinel::progress::bar(on_terminal(), 0, "eval");
    let mut out = eval::evaluate(data, kind, &mut pipeline, &v.fusion_config(), &v.series_config(), &gate, &bar)?;
    bar.finish_and_clear();
    out.precision = cfg.engine().precision.as_str().to_string();
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
    outln!("  classifier slice accuracy, P >= 0.5     {}", f(out.classifier_argmax_accuracy));
    let t = out.classifier_threshold;
    outln!("  classifier slice accuracy, P >= {t:<7} {}", f(r.slice_accuracy));
    outln!("  classifier slice sensitivity, P >= {t:<4} {}", f(r.slice_sensitivity));
    outln!("  classifier slice specificity, P >= {t:<4} {}", f(r.slice_specificity));
    outln!("  fused slice accuracy                    {}", f(out.fused_slice_accuracy));
    outln!("  series sensitivity                      {}", f(r.series_sensitivity));
    outln!("  series specificity                      {}", f(r.series_specificity));
    outln!(
        "  not analysed (intended use)             {} slice(s){}",
        out.not_analysed_slices,
        if out.not_analysed_slices > 0 { ", left out of every figure above" } else { "" }
    );
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_string_pretty(&out)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(base) = int8_baseline {
        let text = std::fs::read_to_string(&base).with_context(|| format!("cannot read {}", base.display()))?;
        let fp32: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not the JSON of `pe-sentinel eval --json`", base.display()))?;
        let figures = pe_sentinel::engine::tensorrt::eval_figures(&fp32, &serde_json::to_value(&out)?);
        let margin = cfg.tensorrt().int8_max_loss;
        match pe_sentinel::engine::tensorrt::check_int8_margin(&figures, margin) {
            Ok(n) => outln!("  INT8 within int8_max_loss = {margin} of FP32 ({}) on {n} figure(s)", base.display()),
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_history(config: Option<PathBuf>, state: Option<PathBuf>, json: bool, limit: usize) -> anyhow::Result<ExitCode> {
    let state = match state {
        Some(s) => s,
        None => load_config(config, None, None)?.state_dir().to_path_buf(),
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
                "{:<66} {:>6} {:>10} {:>6.3} {:>6}  {}{}",
                r.series,
                r.slices,
                r.suspicious_slices,
                r.max_p,
                r.boxes,
                r.verdict.as_str(),
                r.reasons.as_deref().map(|w| format!(" ({w})")).unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `pe-sentinel receive`: the receiver is its own binary (it must not carry the analyser), so this
/// replaces the process with it: `pe-sentinel-receive` beside this binary, else on PATH.
fn run_receive(args: &[std::ffi::OsString]) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let beside = std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join("pe-sentinel-receive")));
    let program = beside.filter(|p| p.exists()).unwrap_or_else(|| PathBuf::from("pe-sentinel-receive"));
    let err = std::process::Command::new(&program).args(args).exec();
    anyhow::bail!("cannot run {}: {err}; install the pe-sentinel-receive binary beside pe-sentinel", program.display())
}

/// `history --associations`: the receiver's audit, newest first.
fn run_associations(
    config: Option<PathBuf>,
    state: Option<PathBuf>,
    json: bool,
    limit: usize,
) -> anyhow::Result<ExitCode> {
    use pe_sentinel_receive::audit::Audit;
    let state = match state {
        Some(s) => s,
        None => {
            let path = config.unwrap_or_else(config::default_profile_path);
            let d = pe_sentinel_receive::config::ReceiveProfile::load(&path).map_err(anyhow::Error::msg)?.dicom;
            d.state_dir
        }
    };
    let path = Audit::path_in(&state);
    if !path.exists() {
        anyhow::bail!("no association audit at {}; give the receiver's --state folder", path.display());
    }
    let rows = Audit::open_read(&path)?.recent(limit)?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        outln!(
            "{:<24} {:<16} {:<22} {:>8} {:>9} {:>6} {:>6} {:>12}  outcome",
            "started (UTC)",
            "calling AE",
            "peer",
            "seconds",
            "instances",
            "aside",
            "failed",
            "bytes"
        );
        for r in rows {
            outln!(
                "{:<24} {:<16} {:<22} {:>8.1} {:>9} {:>6} {:>6} {:>12}  {}",
                pe_sentinel::civil::utc_datetime_ms(r.started_unix_ms),
                r.calling_ae,
                r.peer,
                (r.ended_unix_ms - r.started_unix_ms) as f64 / 1000.0,
                r.instances,
                r.set_aside,
                r.failed,
                r.bytes,
                r.outcome
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_build_engines(config: Option<PathBuf>, state: Option<PathBuf>, force: bool) -> anyhow::Result<ExitCode> {
    let cfg = load_config(config, None, state.as_deref())?;
    let models = ModelSet::load(cfg.classifier_manifest(), cfg.detector_manifest())?;
    let spin = pe_sentinel::progress::spinner(on_terminal(), "building the TensorRT plans (minutes on a Jetson)");
    let built = pe_sentinel::engine::choice::build_tensorrt_engines(&cfg, &models, force);
    spin.finish_and_clear();
    let lines = built.map_err(anyhow::Error::msg)?;
    for l in lines {
        outln!("{l}");
    }
    Ok(ExitCode::SUCCESS)
}

fn run_ack(config: Option<PathBuf>, state: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let state = match state {
        Some(s) => s,
        None => load_config(config, None, None)?.state_dir().to_path_buf(),
    };
    let answer = pe_sentinel::display::control::send_ack(&state)?;
    outln!("{answer}");
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
    o.acquisition = {
        use phantom::dicom_writer::Acquisition as A;
        match a.acquisition {
            AcquisitionArg::Ctpa => A::Ctpa,
            AcquisitionArg::ContrastUnstated => A::ContrastUnstated,
            AcquisitionArg::CoronalReformat => A::CoronalReformat,
            AcquisitionArg::Scout => A::Scout,
            AcquisitionArg::ThickNonContrast => A::ThickNonContrast,
        }
    };
    o.progress = pe_sentinel::progress::bar(on_terminal(), u64::from(a.series) * u64::from(a.slices), "phantom");
    let start = std::time::Instant::now();
    let summary = phantom::generate(&o).with_context(|| format!("phantom into {}", a.out.display()))?;
    o.progress.finish_and_clear();
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

fn run_bench(a: BenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(BenchAction::Compare { a: pa, b: pb }) = a.action {
        let (sa, sb) = (bench::report::load_summary(&pa)?, bench::report::load_summary(&pb)?);
        outln!("{}", bench::report::compare(&sa, &sb, &pa.display().to_string(), &pb.display().to_string()));
        return Ok(ExitCode::SUCCESS);
    }
    if !(1..=bench::MAX_ROUNDS).contains(&a.rounds) {
        anyhow::bail!("--rounds {}: give 1 to {} rounds", a.rounds, bench::MAX_ROUNDS);
    }
    let cfg = with_precision(load_config(a.config, None, None)?, a.precision)?;
    let input = match (a.input, a.phantom) {
        (Some(dir), None) => bench::BenchInput::Dir(dir),
        (None, Some(n)) if n >= 4 => bench::BenchInput::Phantom { slices: n, seed: a.seed },
        (None, Some(n)) => anyhow::bail!("--phantom {n}: give at least 4 slices (2 are warm-up)"),
        _ => anyhow::bail!("give --input DIR (slices to time) or --phantom N (a fresh phantom series)"),
    };
    if a.rate.is_some_and(|r| !(0.1..=10_000.0).contains(&r)) {
        anyhow::bail!("--rate {}: give 0.1 to 10000 slices per second", a.rate.unwrap_or_default());
    }
    let models = ModelSet::load(cfg.classifier_manifest(), cfg.detector_manifest())?;
    let engines = if a.engine.is_empty() { vec![engine_kind_name(&cfg)] } else { a.engine.clone() };
    let opts = bench::BenchOptions {
        input,
        engines,
        out: a.out.clone(),
        peer_python: a.peer.clone(),
        progress: on_terminal(),
        rate: a.rate,
        cascade: bench::cascade_settings(&a.cascade, cfg.budget().cascade_gate)?,
    };
    std::fs::create_dir_all(&opts.out).with_context(|| format!("cannot create {}", opts.out.display()))?;
    let files = bench::collect_inputs(&opts.input, &opts.out)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ort_peer.py");
    let label = bench::session::input_label(&opts.input, opts.rate);
    let session =
        bench::session::run(&cfg, &models, &opts, &files, a.rounds, &script, label, &mut |line| eprintln!("{line}"))?;
    bench::session::write(&session, &opts.out)?;
    outln!("{}", bench::report::table(&session.summary));
    outln!("wrote {}/slices.csv, summary.json, latency.svg", opts.out.display());
    Ok(ExitCode::SUCCESS)
}

fn engine_kind_name(cfg: &Resolved) -> String {
    cfg.engine().kind.as_str().to_string()
}

fn run_import_darknet(a: ImportDarknetArgs) -> anyhow::Result<ExitCode> {
    let labels = match &a.names {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read --names {}", p.display()))?;
            Some(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect())
        }
        None => None,
    };
    let options = import::DarknetOptions {
        name: a.name,
        labels,
        positive: a.positive,
        confidence_threshold: a.confidence,
        nms_iou: a.nms_iou,
        training_domain: match a.training_domain {
            TrainingDomainArg::SyntheticPhantom => pe_sentinel::model::TrainingDomain::SyntheticPhantom,
            TrainingDomainArg::ClinicalCtpa => pe_sentinel::model::TrainingDomain::ClinicalCtpa,
            TrainingDomainArg::Unknown => pe_sentinel::model::TrainingDomain::Unknown,
        },
    };
    let r = import::import_darknet(&a.cfg, &a.weights, &a.out, &options)?;
    outln!(
        "imported {} layers ({} convolutions, {} weight bytes) into {} and {}",
        r.layers,
        r.convolutions,
        r.weights_bytes,
        r.onnx.display(),
        r.manifest.display()
    );
    for (name, [c, h, w]) in &r.heads {
        outln!("  head {name}: {c}x{h}x{w}");
    }
    outln!("check [labels] and [preprocess] in the manifest against how the model was trained (docs/byom.md)");
    Ok(ExitCode::SUCCESS)
}

fn run_model(manifest: &Path, input: &Path, out: &Path) -> anyhow::Result<ExitCode> {
    use pe_sentinel::engine::{Engine, Outputs, TractOptions, TractPlan};
    let m = pe_sentinel::model::Manifest::load(manifest)?;
    let mut engine = TractPlan::load(&m, &TractOptions::default())?.spawn()?;
    let bytes = std::fs::read(input).with_context(|| format!("cannot read input tensor {}", input.display()))?;
    if bytes.len() != engine.input_len() * 4 {
        anyhow::bail!(
            "input tensor {} has {} bytes, the model takes {} f32 values ({} bytes) in the manifest's layout",
            input.display(),
            bytes.len(),
            engine.input_len(),
            engine.input_len() * 4
        );
    }
    let values: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let mut outputs = Outputs::new(engine.output_specs());
    engine.run(&values, &mut outputs)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for t in outputs.tensors() {
        let p = out.join(format!("{}.f32", t.spec.name));
        let b: Vec<u8> = t.data.iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(&p, b).with_context(|| format!("cannot write {}", p.display()))?;
        outln!("{} {:?}", t.spec.name, t.spec.shape);
    }
    Ok(ExitCode::SUCCESS)
}
