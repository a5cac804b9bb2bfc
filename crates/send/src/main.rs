//! `pe-sentinel-send --config FILE [--outbox DIR]`: the results sender as a service. Parses,
//! opens the outbox and ledger, runs until SIGTERM/SIGINT; exit 0 on a clean stop, 1 on a fault
//! of its own storage, 2 on bad usage or configuration.

use clap::Parser;
use pe_sentinel_send::config::{outbox_in, SenderProfile};
use pe_sentinel_send::run::Sender;
use pe_sentinel_send::scu::TlsClient;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "pe-sentinel-send",
    version,
    about = "Sends pe-sentinel's results (SC + SR) from the outbox to the PACS"
)]
struct Cli {
    /// Board profile holding [paths] state_dir and [dicom.send].
    #[arg(long)]
    config: PathBuf,
    /// Outbox folder, overriding STATE_DIR/outbox.
    #[arg(long)]
    outbox: Option<PathBuf>,
    /// State folder, overriding the profile's (the outbox is STATE/outbox), as `pe-sentinel run --state`.
    #[arg(long)]
    state: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let profile = match SenderProfile::load(&cli.config) {
        Ok(p) => p,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let Some(send) = profile.send else {
        log::error!(
            "{}: no [dicom.send] table, so there is nowhere to send results; add one (docs/dicom-results.md) or disable pe-sentinel-send.service",
            cli.config.display()
        );
        return ExitCode::from(2);
    };
    // The PEM files are read once, here: a missing or bad one stops the start, named.
    let tls = match send.tls.as_ref().map(|t| pe_sentinel_send::tls::client_config(t, &send.host)).transpose() {
        Ok(t) => t.map(|(config, server_name)| TlsClient { config, server_name }),
        Err(e) => {
            log::error!("{}: {e}", cli.config.display());
            return ExitCode::from(2);
        }
    };
    let state = cli.state.unwrap_or(profile.state_dir);
    let outbox = cli.outbox.unwrap_or_else(|| outbox_in(&state));
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            log::error!("cannot install the signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    log::info!(
        "sending results from {} to {} as {} over {} (backoff {}..{} s, park after {} refusals)",
        outbox.display(),
        send.peer(),
        send.calling_ae,
        match (&tls, send.tls.as_ref()) {
            (Some(t), Some(c)) => format!(
                "TLS (trusting {}, certificate name {}{})",
                c.ca.display(),
                t.server_name,
                if c.cert.is_some() { ", client certificate" } else { "" }
            ),
            _ => "plain TCP (no [dicom.send.tls])".to_string(),
        },
        send.retry_initial_s,
        send.retry_max_s,
        send.max_attempts
    );
    let mut sender = match Sender::open(send, tls, &outbox) {
        Ok(s) => s,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match sender.run(&stop) {
        Ok(s) => {
            log::info!(
                "stopping: {} delivered, {} parked, {} retries, {} unreachable",
                s.delivered,
                s.parked,
                s.retries,
                s.unreachable
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
