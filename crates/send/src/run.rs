//! The sender's loop: takes `pending/` in order, sends a batch over one association, and for
//! each object records the attempt in the ledger before it touches the file (removed once
//! confirmed, parked once refused for good). The first object that cannot go now holds the ones
//! behind it, so an SR never reaches the PACS before the Secondary Capture it refers to; it is
//! tried again after a backoff that doubles per failure up to `retry_max_s`, kept in the ledger
//! across restarts.
//!
//! Sent twice: only if the process dies between the PACS's confirmation and the ledger's commit
//! (a few milliseconds). The object then goes again with the same SOP Instance UID, which a
//! PACS treats as the same instance (stored once, or answered "duplicate"). Touches the outbox
//! folder, the ledger and the one TCP connection to the PACS.

use crate::config::SendConfig;
use crate::ledger::{Attempt, ItemState, Ledger, LedgerError, Outcome};
use crate::outbox;
use crate::scu::{proposal, LinkError, Outgoing, Session, Stored, TlsClient};
use crate::status::{self, Class};
use dicom_dictionary_std::tags;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Objects sent over one association before it is released and the folder looked at again.
const BATCH: usize = 32;
/// How often an empty outbox is looked at.
const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("outbox {}: {err}; check that the folder exists and is writable by the sender", .path.display())]
    Folder { path: PathBuf, err: std::io::Error },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Counters of one run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub delivered: u64,
    pub parked: u64,
    pub retries: u64,
    pub unreachable: u64,
}

pub struct Sender {
    cfg: SendConfig,
    /// `[dicom.send.tls]`, loaded at start; `None`: plain TCP.
    tls: Option<TlsClient>,
    outbox: PathBuf,
    ledger: Ledger,
    peer: String,
    pub stats: Stats,
}

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn name_of(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// An object read from `pending/`, or why it cannot be sent.
struct Loaded {
    path: PathBuf,
    name: String,
    sha256: String,
    out: Outgoing,
}

fn load(path: &Path) -> Result<Loaded, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let sha256: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    let object = dicom_object::OpenFileOptions::new()
        .from_reader(&bytes[128.min(bytes.len())..])
        .map_err(|e| format!("not a DICOM file: {e}"))?;
    let meta = object.meta();
    let trim = |s: &str| s.trim_end_matches(['\0', ' ']).to_string();
    let sop_class = trim(&meta.media_storage_sop_class_uid);
    let sop_instance = trim(&meta.media_storage_sop_instance_uid);
    let transfer_syntax = trim(&meta.transfer_syntax);
    let in_set = object.element(tags::SOP_INSTANCE_UID).ok().and_then(|e| e.to_str().ok()).map(|s| trim(&s));
    if in_set.as_deref() != Some(sop_instance.as_str()) {
        return Err(format!("SOP Instance UID {in_set:?} of the data set differs from the file meta's {sop_instance}"));
    }
    Ok(Loaded {
        path: path.to_path_buf(),
        name: name_of(path),
        sha256,
        out: Outgoing { object, sop_class, sop_instance, transfer_syntax },
    })
}

/// The ledger row of an attempt on a loaded object, ending now.
fn row<'a>(
    peer: &'a str,
    l: &'a Loaded,
    started: i64,
    outcome: Outcome,
    status: Option<u16>,
    detail: &'a str,
) -> Attempt<'a> {
    Attempt {
        file: &l.name,
        sop_instance: Some(&l.out.sop_instance),
        sop_class: Some(&l.out.sop_class),
        peer,
        started_unix_ms: started,
        ended_unix_ms: unix_ms(),
        outcome,
        status,
        detail,
    }
}

impl Sender {
    pub fn open(cfg: SendConfig, tls: Option<TlsClient>, outbox_dir: &Path) -> Result<Sender, SendError> {
        outbox::create(outbox_dir).map_err(|err| SendError::Folder { path: outbox_dir.into(), err })?;
        let ledger = Ledger::open(outbox_dir)?;
        Ok(Sender { peer: cfg.peer(), cfg, tls, outbox: outbox_dir.to_path_buf(), ledger, stats: Stats::default() })
    }

    /// Runs until `stop` is set; the object in hand is finished first.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<Stats, SendError> {
        while !stop.load(Ordering::Relaxed) {
            let wait = self.round(stop)?;
            let until = std::time::Instant::now() + wait;
            while std::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100).min(wait));
            }
        }
        Ok(self.stats)
    }

    /// One pass over the head of the queue; returns how long to wait before the next.
    pub fn round(&mut self, stop: &AtomicBool) -> Result<Duration, SendError> {
        let files =
            outbox::pending(&self.outbox).map_err(|err| SendError::Folder { path: self.outbox.clone(), err })?;
        let Some(head) = files.first() else { return Ok(POLL) };
        let now = unix_ms();
        let head_state = self.ledger.item(&name_of(head))?;
        if head_state.next_try_unix_ms > now {
            return Ok(Duration::from_millis((head_state.next_try_unix_ms - now) as u64).min(POLL));
        }
        let mut batch = Vec::new();
        for (i, f) in files.iter().take(BATCH).enumerate() {
            if i > 0 && self.ledger.item(&name_of(f))?.next_try_unix_ms > now {
                break;
            }
            match load(f) {
                Ok(l) if self.ledger.was_delivered(&l.out.sop_instance, &l.sha256)? => {
                    self.attempt(
                        &l,
                        now,
                        Outcome::AlreadyDelivered,
                        None,
                        "confirmed before a restart; not sent again",
                    )?;
                    self.remove(&l.path);
                }
                Ok(l) => batch.push(l),
                Err(reason) => {
                    let name = name_of(f);
                    self.park_file(f, &name, None, None, None, now, &reason)?;
                }
            }
        }
        if batch.is_empty() {
            return Ok(Duration::ZERO);
        }
        let mut contexts: Vec<(String, Vec<String>)> = Vec::new();
        for l in &batch {
            let p = proposal(&l.out);
            if !contexts.contains(&p) {
                contexts.push(p);
            }
        }
        let mut session = match Session::open(&self.cfg, self.tls.as_ref(), &contexts) {
            Ok(s) => s,
            Err(e) => return self.link_failed(&batch[0], now, &e),
        };
        for l in &batch {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let started = unix_ms();
            match session.store(&l.out) {
                Ok(Stored::Status(s)) => match status::classify(s) {
                    c @ (Class::Delivered | Class::Warning) => {
                        let outcome = if c == Class::Delivered { Outcome::Delivered } else { Outcome::Warning };
                        let detail = status::describe(s);
                        self.ledger.delivered(&row(&self.peer, l, started, outcome, Some(s), detail), &l.sha256)?;
                        log::info!("{}: delivered to {} (status {s:#06x}, {detail})", l.name, self.peer);
                        self.stats.delivered += 1;
                        self.remove(&l.path);
                    }
                    Class::Permanent => {
                        let reason =
                            format!("the PACS {} refused it: status {s:#06x} ({})", self.peer, status::describe(s));
                        self.park_loaded(l, started, Some(s), &reason)?;
                    }
                    Class::Transient => {
                        let mut st = self.ledger.item(&l.name)?;
                        st.refusals += 1;
                        st.failures += 1;
                        let reason = format!("status {s:#06x} ({})", status::describe(s));
                        if st.refusals >= self.cfg.max_attempts {
                            let why = format!("the PACS {} refused it {} times, last {reason}", self.peer, st.refusals);
                            self.park_loaded(l, started, Some(s), &why)?;
                            continue;
                        }
                        self.retry_later(l, started, Outcome::Retry, Some(s), &reason, st)?;
                        break;
                    }
                },
                Ok(Stored::NotNegotiated(reason)) => self.park_loaded(l, started, None, &reason)?,
                Err(e) => {
                    let st = self.ledger.item(&l.name)?;
                    let st = ItemState { failures: st.failures + 1, ..st };
                    self.stats.unreachable += 1;
                    self.retry_later(l, started, Outcome::Unreachable, None, &e.to_string(), st)?;
                    session.abort();
                    return Ok(Duration::ZERO);
                }
            }
        }
        session.release();
        Ok(Duration::ZERO)
    }

    fn attempt(
        &mut self,
        l: &Loaded,
        started: i64,
        outcome: Outcome,
        status: Option<u16>,
        detail: &str,
    ) -> Result<(), SendError> {
        log::info!("{}: {} ({detail})", l.name, outcome.as_str());
        Ok(self.ledger.record(&row(&self.peer, l, started, outcome, status, detail))?)
    }

    fn retry_later(
        &mut self,
        l: &Loaded,
        started: i64,
        outcome: Outcome,
        status: Option<u16>,
        reason: &str,
        mut st: ItemState,
    ) -> Result<(), SendError> {
        let pause = self.cfg.backoff(st.failures);
        st.next_try_unix_ms = unix_ms() + pause.as_millis() as i64;
        let detail = format!("{reason}; try {} in {:.1} s", st.failures + 1, pause.as_secs_f64());
        log::warn!("{}: not delivered to {}: {detail}", l.name, self.peer);
        self.stats.retries += 1;
        Ok(self.ledger.failed(&row(&self.peer, l, started, outcome, status, &detail), st)?)
    }

    /// A failure to associate: recorded against the head object, which waits; nothing is parked.
    fn link_failed(&mut self, head: &Loaded, started: i64, e: &LinkError) -> Result<Duration, SendError> {
        let st = self.ledger.item(&head.name)?;
        let st = ItemState { failures: st.failures + 1, ..st };
        self.stats.unreachable += 1;
        self.retry_later(head, started, Outcome::Unreachable, None, &e.to_string(), st)?;
        Ok(Duration::ZERO)
    }

    fn park_loaded(&mut self, l: &Loaded, started: i64, status: Option<u16>, reason: &str) -> Result<(), SendError> {
        let (sop_i, sop_c) = (l.out.sop_instance.clone(), l.out.sop_class.clone());
        self.park_file(&l.path, &l.name, Some(&sop_i), Some(&sop_c), status, started, reason)
    }

    #[allow(clippy::too_many_arguments)]
    fn park_file(
        &mut self,
        path: &Path,
        name: &str,
        sop_instance: Option<&str>,
        sop_class: Option<&str>,
        status: Option<u16>,
        started: i64,
        reason: &str,
    ) -> Result<(), SendError> {
        log::error!(
            "{name}: PARKED in {}: {reason}; move it back to pending/ once the cause is fixed",
            self.outbox.join(outbox::PARKED).display()
        );
        self.ledger.record(&Attempt {
            file: name,
            sop_instance,
            sop_class,
            peer: &self.peer,
            started_unix_ms: started,
            ended_unix_ms: unix_ms(),
            outcome: Outcome::Parked,
            status,
            detail: reason,
        })?;
        outbox::park(&self.outbox, path, reason).map_err(|err| SendError::Folder { path: path.into(), err })?;
        self.ledger.forget(name)?;
        self.stats.parked += 1;
        Ok(())
    }

    /// Removes a delivered object (its delivery is already committed in the ledger).
    fn remove(&self, path: &Path) {
        if let Err(e) = std::fs::remove_file(path) {
            log::warn!(
                "{}: delivered, but cannot remove it ({e}); it will be skipped as already delivered",
                path.display()
            );
        }
    }
}
