//! `pe-sentinel-receive`: parse the flags, read `[paths] drop_dir` and `[dicom]` from the board
//! profile (flags override them), take the listening socket (systemd's, or bind one), and serve.
//! Also reached as `pe-sentinel receive` with the same flags.

use clap::Parser;
use pe_sentinel_receive::config::{merge_allowed, parse_allow_flag, ReceiveProfile};
use pe_sentinel_receive::server::{self, sys, ServerConfig};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// DICOM C-ECHO / C-STORE receiver: complete instances into the pe-sentinel drop folder.
#[derive(Parser, Debug)]
#[command(name = "pe-sentinel-receive", version)]
struct Args {
    /// Board profile (TOML): `[paths] drop_dir` and `[dicom]` are read.
    #[arg(long)]
    config: PathBuf,
    /// ADDR:PORT to listen on; without it the socket systemd passes (LISTEN_FDS), else `[dicom] listen`.
    #[arg(long)]
    listen: Option<String>,
    /// The drop folder instances are written into (overrides `[paths] drop_dir`).
    #[arg(long)]
    drop: Option<PathBuf>,
    /// Our AE title (overrides `[dicom] ae_title`).
    #[arg(long)]
    ae_title: Option<String>,
    /// An allowed sender, AE@ADDRESS or AE@NETWORK/PREFIX; repeatable; replaces `[dicom] allow`.
    #[arg(long = "allow", value_name = "AE@ADDRESS")]
    allow: Vec<String>,
    /// The receiver's state folder (association audit); overrides `[dicom] state_dir`.
    #[arg(long)]
    state: Option<PathBuf>,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("pe-sentinel-receive: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let profile = ReceiveProfile::load(&args.config)?;
    let d = &profile.dicom;
    let drop_dir =
        args.drop.clone().or(profile.drop_dir.clone()).ok_or_else(|| {
            format!("no drop folder: give --drop or set [paths] drop_dir in {}", args.config.display())
        })?;
    let ae_title = args.ae_title.clone().unwrap_or_else(|| d.ae_title.clone());
    pe_sentinel_receive::config::check_ae(&ae_title).map_err(|e| format!("--ae-title: {e}"))?;
    let allowed = if args.allow.is_empty() {
        profile.allowed.clone()
    } else {
        let mut list = Vec::new();
        for a in &args.allow {
            merge_allowed(&mut list, parse_allow_flag(a).map_err(|e| e.to_string())?);
        }
        list
    };
    if allowed.is_empty() {
        log::warn!(
            "no allowed senders ([[dicom.allow]] or --allow AE@ADDRESS): every association will be rejected \
             (calling AE title not recognised)"
        );
    }
    let cfg = ServerConfig {
        ae_title,
        allowed,
        max_associations: d.max_associations,
        artim: Duration::from_secs_f64(d.artim_timeout_s),
        idle: Duration::from_secs_f64(d.idle_timeout_s),
        max_pdu_bytes: d.max_pdu_bytes,
        tcp_nodelay: d.tcp_nodelay,
        quickack: d.tcp_nodelay,
        drop_dir,
        state_dir: args.state.clone().unwrap_or_else(|| d.state_dir.clone()),
        min_free_bytes: d.min_free_mb.saturating_mul(1_000_000),
        max_instance_bytes: d.max_instance_mb.saturating_mul(1_000_000),
        tls: d.tls.clone(),
    };
    let listener = match &args.listen {
        Some(a) => TcpListener::bind(a).map_err(|e| format!("cannot listen on {a}: {e}"))?,
        None => match sys::systemd_listener().map_err(|e| format!("the socket systemd passed: {e}"))? {
            Some(l) => l,
            None => match &d.listen {
                Some(a) => TcpListener::bind(a).map_err(|e| format!("cannot listen on {a} ([dicom] listen): {e}"))?,
                None => {
                    return Err("no socket: give --listen ADDR:PORT, set [dicom] listen, or start through \
                                pe-sentinel-receive.socket"
                        .into())
                }
            },
        },
    };
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
    let senders: Vec<String> = cfg
        .allowed
        .iter()
        .map(|a| format!("{}@{}", a.ae_title, a.networks.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",")))
        .collect();
    let drop_dir = cfg.drop_dir.display().to_string();
    let transport = match &cfg.tls {
        None => "plain TCP (no [dicom.tls])".to_string(),
        Some(t) => format!(
            "TLS (certificate {}, {})",
            t.cert.display(),
            match &t.client_ca {
                Some(ca) => format!("client certificates from {} required", ca.display()),
                None => "no client certificate asked".into(),
            }
        ),
    };
    let shared = server::prepare(cfg)?;
    let c = &shared.cfg;
    log::info!(
        "receiving as AE {} on {local} over {transport} into {drop_dir}; allowed: {}; at most {} associations, max PDU {} bytes, \
         TCP_NODELAY {}, ARTIM {} s, idle {} s, keeping {} MB free",
        c.ae_title,
        if senders.is_empty() { "nobody".to_string() } else { senders.join(" ") },
        c.max_associations,
        c.max_pdu_bytes,
        c.tcp_nodelay,
        c.artim.as_secs_f64(),
        c.idle.as_secs_f64(),
        c.min_free_bytes / 1_000_000
    );
    // Printed for scripts and tests that bind port 0.
    println!("listening on {local}");
    server::run(listener, shared)
}
