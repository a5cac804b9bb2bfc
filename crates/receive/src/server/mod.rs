//! The receiver: a listening socket (systemd's, or bound from --listen / `[dicom] listen`), one
//! thread per association up to `max_associations` (one more gets a transient rejection), the
//! spool in the drop folder, and the association audit in the receiver's state folder; with
//! `[dicom.tls]` every connection is TLS ([`tls`]). Touches the socket, the drop folder, its own
//! state folder and (at start) the TLS certificate and key files only.

mod association;
pub mod classes;
mod header;
pub mod session;
pub mod spool;
mod storage_classes;
pub mod sys;
pub mod tls;

use crate::audit::{AssociationRow, Audit};
use crate::config::{Allowed, Tls};
use spool::Spool;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Everything the receiver runs with, resolved from the profile and the flags.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub ae_title: String,
    pub allowed: Vec<Allowed>,
    pub max_associations: usize,
    pub artim: Duration,
    pub idle: Duration,
    pub max_pdu_bytes: u32,
    pub tcp_nodelay: bool,
    /// TCP_QUICKACK after each PDU read (no delayed ACK toward a sender that waits for one).
    pub quickack: bool,
    pub drop_dir: PathBuf,
    pub state_dir: PathBuf,
    pub min_free_bytes: u64,
    pub max_instance_bytes: u64,
    /// `[dicom.tls]`: DICOM over TLS on every connection; absent: plain TCP.
    pub tls: Option<Tls>,
}

/// What every association thread shares.
pub struct Shared {
    pub cfg: ServerConfig,
    pub spool: Spool,
    audit: Mutex<Audit>,
    /// The TLS configuration built from `cfg.tls` once, at start.
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Shared {
    /// One audit row; a failure to write it is logged (the association itself is done).
    pub fn record(&self, row: &AssociationRow) {
        match self.audit.lock() {
            Ok(a) => {
                if let Err(e) = a.record(row) {
                    log::error!("{e}");
                }
            }
            Err(_) => log::error!("association audit unavailable (a thread panicked while writing it)"),
        }
    }
}

/// Connections being rejected for the limit at once; beyond this they are closed unanswered.
const MAX_REJECTING: usize = 16;

/// A counted place (association or rejection); given back when dropped, even if its thread
/// panics (or could not be started: the closure holding it is dropped).
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Opens the spool and the audit (errors here stop the receiver with a message).
pub fn prepare(cfg: ServerConfig) -> Result<Arc<Shared>, String> {
    let spool = Spool::open(&cfg.drop_dir, cfg.min_free_bytes, cfg.max_instance_bytes)?;
    std::fs::create_dir_all(&cfg.state_dir)
        .map_err(|e| format!("cannot create the receiver's state folder {}: {e}", cfg.state_dir.display()))?;
    let audit = Audit::open(&Audit::path_in(&cfg.state_dir)).map_err(|e| e.to_string())?;
    let tls = cfg.tls.as_ref().map(tls::server_config).transpose()?;
    Ok(Arc::new(Shared { cfg, spool, audit: Mutex::new(audit), tls }))
}

/// Accepts connections until the listener fails.
pub fn run(listener: TcpListener, shared: Arc<Shared>) -> Result<(), String> {
    let active = Arc::new(AtomicUsize::new(0));
    let rejecting = Arc::new(AtomicUsize::new(0));
    let max = shared.cfg.max_associations;
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and the like: wait and go on; the connection stays in the backlog.
                log::warn!("accept failed: {e}; retrying in 100 ms");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let sh = Arc::clone(&shared);
        if active.fetch_add(1, Ordering::SeqCst) >= max {
            active.fetch_sub(1, Ordering::SeqCst);
            if rejecting.fetch_add(1, Ordering::SeqCst) >= MAX_REJECTING {
                rejecting.fetch_sub(1, Ordering::SeqCst);
                log::warn!("{peer}: closed unanswered ({MAX_REJECTING} connections already being rejected)");
                continue;
            }
            let slot = Slot(Arc::clone(&rejecting));
            let spawned = std::thread::Builder::new().name("reject".into()).spawn(move || {
                let _slot = slot;
                association::reject_busy(stream, &sh);
            });
            if let Err(e) = spawned {
                log::error!("{peer}: cannot start a thread to reject it: {e}");
            }
            continue;
        }
        let slot = Slot(Arc::clone(&active));
        let spawned = std::thread::Builder::new().name(format!("assoc {peer}")).spawn(move || {
            let row = association::serve(stream, &sh);
            drop(slot);
            sh.record(&row);
        });
        if let Err(e) = spawned {
            log::error!("{peer}: cannot start a thread for the association: {e}");
        }
    }
}
