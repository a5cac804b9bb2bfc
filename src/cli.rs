//! The command line's shape: clap's definitions of every subcommand, flag and value of the
//! `pe-sentinel` binary (part of the binary, not of the library). Parsing only: `main.rs` maps each
//! command onto the library. Touches nothing.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "pe-sentinel", version, about = "Pulmonary-embolism alerts beside the CT scanner console")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
    /// Analyse files once: one JSON object per slice on stdout (both models on every slice: the
    /// profile's cascade gate is not applied, so each model's answer is always shown).
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
        /// Save one capture-card frame as PNG with the viewport (green) and masks (orange) drawn.
        #[arg(long)]
        capture: bool,
        /// Where `--capture` writes its picture (default: STATE/capture-check.png).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Accuracy against ground truth on a labelled dataset (`pe-sentinel phantom` layout).
    Eval {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, value_enum)]
        precision: Option<PrecisionArg>,
        /// Which files of each series to read (default: png/ when the dataset has it, else dicom/).
        #[arg(long, value_enum)]
        input: Option<InputArg>,
        /// Also write the figures as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// With --precision int8: the FP32 run's --json on the same data; fails when INT8 loses more
        /// than the profile's [tensorrt] int8_max_loss on any figure.
        #[arg(long)]
        int8_baseline: Option<PathBuf>,
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
        /// The DICOM receiver's associations instead (its audit; --state is then the receiver's).
        #[arg(long)]
        associations: bool,
    },
    /// The DICOM receiver: runs `pe-sentinel-receive` (installed beside this binary) with these
    /// flags: --config FILE [--listen ADDR:PORT] [--drop DIR] [--ae-title AE] [--allow AE@ADDRESS ...].
    #[command(disable_help_flag = true)]
    Receive {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Acknowledge the latched ALERT on the running daemon's display (as its button does).
    Ack {
        #[arg(long)]
        config: Option<PathBuf>,
        /// The daemon's state folder, overriding the profile's.
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Write synthetic CTPA series with known emboli (DICOM, PNG, YOLO labels, truth JSON).
    Phantom(PhantomArgs),
    /// Latency per slice and per stage through the full path (decode to verdict), per engine;
    /// `bench compare A.json B.json` puts two runs side by side.
    Bench(BenchArgs),
    /// Convert a darknet YOLO detector (.cfg + .weights) to an ONNX model and its manifest.
    ImportDarknet(ImportDarknetArgs),
    /// Run one model on a raw little-endian f32 input tensor and write each raw output as
    /// `<out>/<output name>.f32` (for parity checks against other implementations).
    #[command(hide = true)]
    RunModel {
        #[arg(long)]
        manifest: PathBuf,
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Build the TensorRT plans of the profile's models into <state>/engines (feature `tensorrt`).
    BuildEngines {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        state: Option<PathBuf>,
        /// Rebuild even when a current plan exists.
        #[arg(long)]
        force: bool,
    },
    /// Write the man pages and shell completions (bash, zsh, fish) into a folder (for packaging).
    #[command(hide = true)]
    GenerateDocs {
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    pub(crate) action: Option<BenchAction>,
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Folder of DICOM/PNG/JPEG slices to time (searched recursively).
    #[arg(long, conflicts_with = "phantom")]
    pub(crate) input: Option<PathBuf>,
    /// Instead of --input: a fresh phantom series of this many DICOM slices.
    #[arg(long)]
    pub(crate) phantom: Option<u32>,
    /// Phantom seed (with --phantom).
    #[arg(long, default_value_t = 7)]
    pub(crate) seed: u64,
    /// Engines to run in turn over the same slices, comma-separated (default: the profile's).
    #[arg(long, value_delimiter = ',')]
    pub(crate) engine: Vec<String>,
    #[arg(long, value_enum)]
    pub(crate) precision: Option<PrecisionArg>,
    /// Where slices.csv, summary.json and latency.svg go.
    #[arg(long, default_value = "bench-out")]
    pub(crate) out: PathBuf,
    /// Python with onnxruntime: also time onnxruntime's own inference on the same inputs.
    #[arg(long)]
    pub(crate) peer: Option<PathBuf>,
    /// Repeat (every engine over every slice, then the peer) this many times, 1 to 20: the
    /// stage figures pool all rounds, each ratio to the peer is the median of the rounds' ratios
    /// (each round against the peer measured right after it), for machines whose speed drifts.
    #[arg(long, default_value_t = 1)]
    pub(crate) rounds: u32,
    /// Slices per second arriving on their own clock, as a scanner pushes them (default: back
    /// to back); arrival-to-verdict then includes any queueing behind a slow stage or disk.
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Cascade settings to run each engine with, in turn, comma-separated: `off` (the detector on
    /// every slice) or a gate from 0 to 1 (the detector only when the classifier's P is at least
    /// that). Default: off, then the profile's `cascade_gate` when it sets one.
    #[arg(long, value_delimiter = ',')]
    pub(crate) cascade: Vec<String>,
}

#[derive(Subcommand)]
pub(crate) enum BenchAction {
    /// Two summary.json files side by side, with B/A ratios.
    Compare { a: PathBuf, b: PathBuf },
}

#[derive(clap::Args)]
pub(crate) struct ImportDarknetArgs {
    /// The darknet network description (.cfg).
    #[arg(long)]
    pub(crate) cfg: PathBuf,
    /// The trained weights for exactly that cfg (.weights).
    #[arg(long)]
    pub(crate) weights: PathBuf,
    /// Output folder for <name>.onnx and <name>.toml (created if missing; never overwritten).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Output file stem and model name (default: the cfg's file stem).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Class names, one per line in class-index order (darknet's .names file).
    #[arg(long)]
    pub(crate) names: Option<PathBuf>,
    /// The class name that means PE (default: the only class of a one-class model).
    #[arg(long)]
    pub(crate) positive: Option<String>,
    /// Box confidence threshold written to the manifest.
    #[arg(long, default_value_t = 0.25)]
    pub(crate) confidence: f32,
    /// NMS IoU threshold written to the manifest.
    #[arg(long, default_value_t = 0.45)]
    pub(crate) nms_iou: f32,
    /// What the weights were trained on, written to the manifest: `clinical-ctpa` only for weights
    /// trained and validated on patients' CT pulmonary angiograms; `synthetic-phantom` models never
    /// alert on a patient scan (see docs/intended-use.md).
    #[arg(long, value_enum, default_value = "unknown")]
    pub(crate) training_domain: TrainingDomainArg,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum TrainingDomainArg {
    SyntheticPhantom,
    ClinicalCtpa,
    Unknown,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum PrecisionArg {
    Fp32,
    Int8,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum InputArg {
    Png,
    Dicom,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum FormatArg {
    Dicom,
    Png,
    Both,
}

#[derive(clap::Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct PhantomArgs {
    /// Output folder (created if missing).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Number of series.
    #[arg(long, default_value_t = 3)]
    pub(crate) series: u32,
    /// Slices per series.
    #[arg(long, default_value_t = 64)]
    pub(crate) slices: u32,
    /// Seed: the same seed and arguments give byte-identical output.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// What to write for each slice (labels and truth are always written).
    #[arg(long, value_enum, default_value = "both")]
    pub(crate) format: FormatArg,
    /// Fraction of series that contain emboli; the others have none.
    #[arg(long, default_value_t = 0.67)]
    pub(crate) pe_fraction: f32,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub(crate) threads: usize,
    /// Also write the generated HU of every slice as raw little-endian f32 (for cross-checks).
    #[arg(long, hide = true)]
    pub(crate) emit_hu: bool,
    /// What the DICOM headers describe: a CTPA series, or an ineligible kind for testing the
    /// intended-use rules (same pixels; see docs/intended-use.md).
    #[arg(long, value_enum, default_value = "ctpa")]
    pub(crate) acquisition: AcquisitionArg,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum AcquisitionArg {
    Ctpa,
    ContrastUnstated,
    CoronalReformat,
    Scout,
    ThickNonContrast,
}
