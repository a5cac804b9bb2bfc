//! One TCP connection: the A-ASSOCIATE negotiation (called AE, calling AE and its address checked
//! against `[dicom]`), then PDUs through a [`Session`] until release, abort, timeout or a broken
//! peer, and one audit row at the end. A connection over the association limit gets a transient
//! rejection (local limit exceeded) without negotiation. Touches the socket and, through the
//! session, the spool.

use super::classes::{self, Handling};
use super::session::{Context, Counts, Session};
use super::Shared;
use crate::audit::AssociationRow;
use crate::config::Allowed;
use dicom_ul::association::server::AccessControl;
use dicom_ul::association::ServerAssociation;
use dicom_ul::association::{Association, CloseSocket, Error as UlError};
use dicom_ul::pdu::{
    AbortRQServiceProviderReason, AbortRQSource, AssociationRJ, AssociationRJResult,
    AssociationRJServiceProviderPresentationReason, AssociationRJServiceUserReason, AssociationRJSource,
    PresentationContextResultReason, UserIdentity,
};
use dicom_ul::{Pdu, ServerAssociationOptions};
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The called AE must be ours; the calling AE must be listed with the peer's address.
struct Gate<'a> {
    allowed: &'a [Allowed],
    peer: Option<IpAddr>,
}

impl AccessControl for Gate<'_> {
    fn check_access(
        &self,
        this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        if called_ae_title.trim() != this_ae_title.trim() {
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        }
        let calling = calling_ae_title.trim();
        let ok = self.peer.is_some_and(|ip| {
            self.allowed.iter().any(|a| a.ae_title == calling && a.networks.iter().any(|n| n.contains(ip)))
        });
        if ok {
            Ok(())
        } else {
            Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized)
        }
    }
}

/// Serves one accepted connection to its end; returns its audit row (recorded by the caller once
/// the association's place is free, so a sender that reconnects at once is not refused).
pub fn serve(stream: TcpStream, shared: &Shared) -> AssociationRow {
    let started = unix_ms();
    let peer = stream.peer_addr().ok();
    let peer_s = peer.map(|p| p.to_string()).unwrap_or_else(|| "?".into());
    let cfg = &shared.cfg;
    if cfg.tcp_nodelay {
        if let Err(e) = stream.set_nodelay(true) {
            log::warn!("{peer_s}: cannot set TCP_NODELAY: {e}");
        }
    }
    let gate = Gate { allowed: &cfg.allowed, peer: peer.map(|p| p.ip()) };
    let mut options = ServerAssociationOptions::new()
        .ae_access_control(gate)
        .ae_title(cfg.ae_title.as_str())
        .max_pdu_length(cfg.max_pdu_bytes)
        .strict(false)
        .read_timeout(cfg.artim)
        .write_timeout(cfg.idle);
    options = options.with_abstract_syntax(classes::VERIFICATION);
    for uid in classes::storage_classes() {
        options = options.with_abstract_syntax(uid);
    }
    for ts in classes::TRANSFER_SYNTAXES {
        options = options.with_transfer_syntax(ts);
    }
    let mut row = AssociationRow { peer: peer_s.clone(), started_unix_ms: started, ..Default::default() };
    // A second handle on the socket for timeouts, quick ACKs and the shutdown, whatever carries
    // the PDUs (the socket itself, or TLS over it).
    let tcp = match stream.try_clone() {
        Ok(t) => t,
        Err(e) => {
            row.outcome = format!("not established: cannot use the connection: {e}");
            log::warn!("{peer_s}: association {}", row.outcome);
            row.ended_unix_ms = unix_ms();
            return row;
        }
    };
    let established = match &shared.tls {
        None => options.establish(stream).map(|a| converse(a, &tcp, shared, &mut row)),
        Some(tls) => {
            options.tls_config(Arc::clone(tls)).establish_tls(stream).map(|a| converse(a, &tcp, shared, &mut row))
        }
    };
    if let Err(e) = established {
        row.outcome = match &e {
            UlError::Rejected { association_rj, .. } => format!("rejected: {}", rj_text(association_rj)),
            other => format!("not established: {}", snafu_chain(other)),
        };
        log::warn!("{peer_s}: association {}", row.outcome);
        let _ = tcp.shutdown(Shutdown::Both);
        row.ended_unix_ms = unix_ms();
    }
    row
}

/// An established association to its end: PDUs through a [`Session`] until release, abort,
/// timeout or a broken peer. Fills in the audit row.
fn converse<S>(mut assoc: ServerAssociation<S>, tcp: &TcpStream, shared: &Shared, row: &mut AssociationRow)
where
    S: Read + Write + CloseSocket,
{
    let cfg = &shared.cfg;
    let peer_s = row.peer.clone();
    row.calling_ae = assoc.peer_ae_title().trim().to_string();
    row.called_ae = assoc.called_ae_title().trim().to_string();
    let contexts: Vec<Context> = assoc
        .presentation_contexts()
        .iter()
        .filter(|pc| pc.reason == PresentationContextResultReason::Acceptance)
        .filter_map(|pc| {
            classes::handling(&pc.abstract_syntax).map(|handling| Context {
                id: pc.id,
                abstract_syntax: pc.abstract_syntax.clone(),
                transfer_syntax: pc.transfer_syntax.clone(),
                handling,
            })
        })
        .collect();
    let set_aside = contexts.iter().filter(|c| c.handling == Handling::SetAside).count();
    log::info!(
        "{peer_s}: association from {} accepted ({} presentation context(s), {set_aside} set aside; their max PDU {}, ours {})",
        row.calling_ae,
        contexts.len(),
        assoc.requestor_max_pdu_length(),
        cfg.max_pdu_bytes
    );
    if let Err(e) = tcp.set_read_timeout(Some(cfg.idle)) {
        log::warn!("{peer_s}: cannot set the idle timeout: {e}");
    }
    let mut session = Session::new(&shared.spool, contexts, &row.calling_ae);
    let mut out = Vec::with_capacity(4);
    let outcome = loop {
        let pdu = assoc.receive();
        if cfg.quickack {
            let _ = super::sys::quickack(tcp);
        }
        match pdu {
            Ok(Pdu::PData { data }) => {
                if let Err(v) = session.on_pdata(data, &mut out) {
                    let _ = assoc.send(&abort(AbortRQServiceProviderReason::UnexpectedPduParameter));
                    break format!("aborted: {v}");
                }
                let mut failed = None;
                for pdu in out.drain(..) {
                    if let Err(e) = assoc.send(&pdu) {
                        failed = Some(format!("connection lost sending a response: {e}"));
                        break;
                    }
                }
                if let Some(f) = failed {
                    break f;
                }
            }
            Ok(Pdu::ReleaseRQ) => {
                let _ = assoc.send(&Pdu::ReleaseRP);
                break if session.in_message() { "released mid-message".into() } else { "released".into() };
            }
            Ok(Pdu::AbortRQ { .. }) => break "aborted by peer".into(),
            Ok(other) => {
                let _ = assoc.send(&abort(AbortRQServiceProviderReason::UnexpectedPdu));
                break format!("aborted: unexpected {}", other.short_description());
            }
            Err(e) => {
                let text = e.to_string();
                let timed_out =
                    std::error::Error::source(&e).and_then(|s| s.downcast_ref::<std::io::Error>()).is_some_and(|io| {
                        matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
                    }) || text.contains("timed out")
                        || text.contains("Resource temporarily unavailable");
                let _ = assoc.send(&abort(AbortRQServiceProviderReason::UnrecognizedPdu));
                break if timed_out {
                    format!("aborted: idle for {} s", cfg.idle.as_secs())
                } else {
                    format!("aborted: {}", snafu_chain(&e))
                };
            }
        }
    };
    let _ = tcp.shutdown(Shutdown::Both);
    let Counts { instances, set_aside, failed, bytes } = session.counts;
    drop(session);
    row.instances = instances;
    row.set_aside = set_aside;
    row.failed = failed;
    row.bytes = bytes;
    row.outcome = outcome;
    row.ended_unix_ms = unix_ms();
    log::info!(
        "{peer_s}: association from {} {}: {instances} stored, {set_aside} set aside, {failed} failed, {bytes} bytes in {} ms",
        row.calling_ae,
        row.outcome,
        row.ended_unix_ms - row.started_unix_ms
    );
}

fn abort(reason: AbortRQServiceProviderReason) -> Pdu {
    Pdu::AbortRQ { source: AbortRQSource::ServiceProvider(reason) }
}

fn snafu_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn rj_text(rj: &AssociationRJ) -> String {
    let result = match rj.result {
        AssociationRJResult::Permanent => "permanent",
        AssociationRJResult::Transient => "transient",
    };
    let source = match &rj.source {
        AssociationRJSource::ServiceUser(r) => format!("service user: {r}"),
        AssociationRJSource::ServiceProviderASCE(r) => format!("service provider (ACSE): {r}"),
        AssociationRJSource::ServiceProviderPresentation(r) => format!("service provider (presentation): {r}"),
    };
    format!("{result}, {source}")
}

/// Over the association limit: read the A-ASSOCIATE-RQ (so closing does not reset the connection
/// before the peer reads our answer) and answer A-ASSOCIATE-RJ, transient, local limit exceeded.
/// With `[dicom.tls]` the rejection travels inside TLS like every other PDU.
pub fn reject_busy(stream: TcpStream, shared: &Shared) {
    let started = unix_ms();
    let peer_s = stream.peer_addr().map(|p| p.to_string()).unwrap_or_else(|_| "?".into());
    let _ = stream.set_read_timeout(Some(shared.cfg.artim));
    let _ = stream.set_write_timeout(Some(shared.cfg.artim));
    let rj = AssociationRJ {
        result: AssociationRJResult::Transient,
        source: AssociationRJSource::ServiceProviderPresentation(
            AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
        ),
    };
    let (calling, called) = match &shared.tls {
        None => {
            let tcp = stream.try_clone();
            let mut s = stream;
            let titles = reject_on(&mut s, &rj);
            let _ = s.shutdown(Shutdown::Write);
            if let Ok(t) = tcp {
                drain(t);
            }
            titles
        }
        Some(tls) => match (rustls::ServerConnection::new(Arc::clone(tls)), stream.try_clone()) {
            (Ok(conn), Ok(tcp)) => {
                let mut s = rustls::StreamOwned::new(conn, stream);
                let titles = reject_on(&mut s, &rj);
                s.conn.send_close_notify();
                let _ = s.flush();
                let _ = tcp.shutdown(Shutdown::Write);
                drain(tcp);
                titles
            }
            _ => (String::new(), String::new()),
        },
    };
    let outcome = format!("rejected: {} (limit {} associations)", rj_text(&rj), shared.cfg.max_associations);
    log::warn!("{peer_s}: association from {calling} {outcome}");
    shared.record(&AssociationRow {
        calling_ae: calling,
        called_ae: called,
        peer: peer_s,
        started_unix_ms: started,
        ended_unix_ms: unix_ms(),
        outcome,
        ..Default::default()
    });
}

/// Reads the A-ASSOCIATE-RQ's fixed part (bounded) and writes the rejection; returns the calling
/// and called AE titles read (empty when the peer sent something else).
fn reject_on<S: Read + Write>(stream: &mut S, rj: &AssociationRJ) -> (String, String) {
    let mut head = [0u8; 6];
    let mut calling = String::new();
    let mut called = String::new();
    if stream.read_exact(&mut head).is_ok() && head[0] == 0x01 {
        let len = u32::from_be_bytes([head[2], head[3], head[4], head[5]]) as usize;
        // The fixed part holds the AE titles; the rest (contexts) is read and dropped, bounded.
        let mut body = vec![0u8; len.min(64 * 1024)];
        if stream.read_exact(&mut body).is_ok() && body.len() >= 68 {
            called = String::from_utf8_lossy(&body[4..20]).trim().to_string();
            calling = String::from_utf8_lossy(&body[20..36]).trim().to_string();
        }
    }
    let mut bytes = Vec::with_capacity(10);
    if dicom_ul::pdu::write_pdu(&mut bytes, &Pdu::AssociationRJ(rj.clone())).is_ok() {
        let _ = stream.write_all(&bytes);
        let _ = stream.flush();
    }
    (calling, called)
}

/// Lets the peer read the rejection and close first (at most 2 s).
fn drain(mut tcp: TcpStream) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
    let mut sink = [0u8; 512];
    while matches!(tcp.read(&mut sink), Ok(n) if n > 0) {}
}
