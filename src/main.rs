//! Command-line entry point: parse, call the library, map the result to an exit code.
//! Only this file prints to the terminal; exit codes: 0 success, 1 failure, 2 bad usage.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use pe_sentinel::phantom;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "pe-sentinel", version, about = "Pulmonary-embolism alerts beside the CT scanner console")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write synthetic CTPA series with known emboli (DICOM, PNG, YOLO labels, truth JSON).
    Phantom(PhantomArgs),
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
        Command::Phantom(a) => run_phantom(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_phantom(a: PhantomArgs) -> anyhow::Result<()> {
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
    println!(
        "wrote {} series x {} slices ({} slices) to {} in {:.1} s",
        summary.series.len(),
        summary.slices,
        total,
        a.out.display(),
        start.elapsed().as_secs_f64()
    );
    for s in &summary.series {
        println!(
            "  {}  {}  emboli {}  labelled slices {}",
            s.folder,
            if s.positive { "positive" } else { "negative" },
            s.emboli,
            s.labelled_slices
        );
    }
    Ok(())
}
