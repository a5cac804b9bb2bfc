//! The delivery ledger: the sender's own SQLite database (`OUTBOX/deliveries.sqlite3`). One row
//! per delivery attempt and its outcome (`attempts`), the retry state of each waiting object
//! (`items`: failures so far and when it may be tried again, so backoff survives a restart), and
//! every SOP instance the PACS confirmed (`delivered`), so an object whose confirmation was
//! committed but whose file was not yet removed when the power went is not sent again.
//!
//! Its own database, not a table in the analyser's journal: the sender is the process on the
//! network, and it gets no write access to the journal of verdicts (its sandbox can write only the
//! outbox). Touches only this file and SQLite's `-wal`/`-shm` beside it; WAL, `synchronous=FULL`.

use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const LEDGER_FILE: &str = "deliveries.sqlite3";
const SCHEMA_VERSION: i64 = 1;

const SCHEMA_V1: &str = "
CREATE TABLE attempts (
    id                INTEGER PRIMARY KEY,
    file              TEXT    NOT NULL,
    sop_instance_uid  TEXT,
    sop_class_uid     TEXT,
    peer              TEXT    NOT NULL,
    started_unix_ms   INTEGER NOT NULL,
    ended_unix_ms     INTEGER NOT NULL,
    outcome           TEXT    NOT NULL CHECK (outcome IN
                        ('delivered', 'warning', 'retry', 'parked', 'unreachable', 'already-delivered')),
    status            INTEGER,
    detail            TEXT    NOT NULL
);
CREATE INDEX attempts_by_sop ON attempts (sop_instance_uid);
CREATE TABLE items (
    file              TEXT    PRIMARY KEY,
    failures          INTEGER NOT NULL,
    refusals          INTEGER NOT NULL,
    next_try_unix_ms  INTEGER NOT NULL
);
CREATE TABLE delivered (
    sop_instance_uid  TEXT    PRIMARY KEY,
    file              TEXT    NOT NULL,
    sha256            TEXT    NOT NULL,
    status            INTEGER NOT NULL,
    delivered_unix_ms INTEGER NOT NULL
);
";

#[derive(Debug, thiserror::Error)]
#[error("delivery ledger {}: {err}; check that the outbox folder is writable by the sender and the disk is not full", .path.display())]
pub struct LedgerError {
    pub path: PathBuf,
    pub err: rusqlite::Error,
}

/// What happened in one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Warning,
    Retry,
    Parked,
    Unreachable,
    AlreadyDelivered,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Warning => "warning",
            Outcome::Retry => "retry",
            Outcome::Parked => "parked",
            Outcome::Unreachable => "unreachable",
            Outcome::AlreadyDelivered => "already-delivered",
        }
    }
}

/// One attempt's row.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    pub file: &'a str,
    pub sop_instance: Option<&'a str>,
    pub sop_class: Option<&'a str>,
    pub peer: &'a str,
    pub started_unix_ms: i64,
    pub ended_unix_ms: i64,
    pub outcome: Outcome,
    pub status: Option<u16>,
    pub detail: &'a str,
}

/// Retry state of a waiting object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ItemState {
    /// Failed tries in a row, whatever the cause: sets the backoff.
    pub failures: u32,
    /// Refusals by the PACS (failure statuses): parks the object at `max_attempts`.
    pub refusals: u32,
    pub next_try_unix_ms: i64,
}

pub struct Ledger {
    conn: Connection,
    path: PathBuf,
}

impl Ledger {
    pub fn open(outbox: &Path) -> Result<Ledger, LedgerError> {
        let path = outbox.join(LEDGER_FILE);
        let e = |err| LedgerError { path: path.clone(), err };
        let conn = Connection::open(&path).map_err(e)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(e)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(e)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(e)?;
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(e)?;
        if v == 0 {
            conn.execute_batch(&format!("BEGIN; {SCHEMA_V1} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"))
                .map_err(e)?;
        } else if v != SCHEMA_VERSION {
            return Err(e(rusqlite::Error::InvalidParameterName(format!(
                "schema version {v}, this build reads {SCHEMA_VERSION}"
            ))));
        }
        Ok(Ledger { conn, path })
    }

    fn err(&self, err: rusqlite::Error) -> LedgerError {
        LedgerError { path: self.path.clone(), err }
    }

    pub fn record(&mut self, a: &Attempt<'_>) -> Result<(), LedgerError> {
        insert_attempt(&self.conn, a).map_err(|e| self.err(e))
    }

    /// Records a confirmed delivery in one transaction: the attempt, the SOP instance, and the
    /// end of the object's retry state. Call before removing the file.
    pub fn delivered(&mut self, a: &Attempt<'_>, sha256: &str) -> Result<(), LedgerError> {
        let r = (|| {
            let tx = self.conn.transaction()?;
            insert_attempt(&tx, a)?;
            tx.execute(
                "INSERT OR REPLACE INTO delivered (sop_instance_uid, file, sha256, status, delivered_unix_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![a.sop_instance.unwrap_or(""), a.file, sha256, a.status.unwrap_or(0), a.ended_unix_ms],
            )?;
            tx.execute("DELETE FROM items WHERE file = ?1", params![a.file])?;
            tx.commit()
        })();
        r.map_err(|e| self.err(e))
    }

    /// Whether this SOP instance with this content was confirmed by the PACS before.
    pub fn was_delivered(&self, sop_instance: &str, sha256: &str) -> Result<bool, LedgerError> {
        self.conn
            .query_row(
                "SELECT 1 FROM delivered WHERE sop_instance_uid = ?1 AND sha256 = ?2",
                params![sop_instance, sha256],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(|e| self.err(e))
    }

    pub fn item(&self, file: &str) -> Result<ItemState, LedgerError> {
        self.conn
            .query_row("SELECT failures, refusals, next_try_unix_ms FROM items WHERE file = ?1", params![file], |r| {
                Ok(ItemState { failures: r.get(0)?, refusals: r.get(1)?, next_try_unix_ms: r.get(2)? })
            })
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(|e| self.err(e))
    }

    /// Records a failed attempt and the object's new retry state in one transaction.
    pub fn failed(&mut self, a: &Attempt<'_>, state: ItemState) -> Result<(), LedgerError> {
        let r = (|| {
            let tx = self.conn.transaction()?;
            insert_attempt(&tx, a)?;
            tx.execute(
                "INSERT OR REPLACE INTO items (file, failures, refusals, next_try_unix_ms) VALUES (?1, ?2, ?3, ?4)",
                params![a.file, state.failures, state.refusals, state.next_try_unix_ms],
            )?;
            tx.commit()
        })();
        r.map_err(|e| self.err(e))
    }

    /// Forgets an object's retry state (parked or gone).
    pub fn forget(&mut self, file: &str) -> Result<(), LedgerError> {
        self.conn.execute("DELETE FROM items WHERE file = ?1", params![file]).map(|_| ()).map_err(|e| self.err(e))
    }
}

fn insert_attempt(c: &Connection, a: &Attempt<'_>) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO attempts (file, sop_instance_uid, sop_class_uid, peer, started_unix_ms, ended_unix_ms, outcome, status, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            a.file,
            a.sop_instance,
            a.sop_class,
            a.peer,
            a.started_unix_ms,
            a.ended_unix_ms,
            a.outcome.as_str(),
            a.status,
            a.detail
        ],
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(outcome: Outcome) -> Attempt<'static> {
        Attempt {
            file: "1-sc.dcm",
            sop_instance: Some("2.25.1"),
            sop_class: Some("1.2.840.10008.5.1.4.1.1.7"),
            peer: "PACS@h:1",
            started_unix_ms: 1,
            ended_unix_ms: 2,
            outcome,
            status: Some(0),
            detail: "",
        }
    }

    #[test]
    fn retry_state_and_deliveries_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut l = Ledger::open(dir.path()).expect("open");
            let s = ItemState { failures: 2, refusals: 1, next_try_unix_ms: 99 };
            l.failed(&attempt(Outcome::Retry), s).expect("failed");
            assert_eq!(l.item("1-sc.dcm").expect("item"), s);
        }
        let mut l = Ledger::open(dir.path()).expect("reopen");
        assert_eq!(l.item("1-sc.dcm").expect("item").failures, 2);
        assert!(!l.was_delivered("2.25.1", "ab").expect("query"));
        l.delivered(&attempt(Outcome::Delivered), "ab").expect("delivered");
        assert!(l.was_delivered("2.25.1", "ab").expect("query"));
        assert!(!l.was_delivered("2.25.1", "other content").expect("query"));
        assert_eq!(l.item("1-sc.dcm").expect("item"), ItemState::default(), "retry state ends with delivery");
        let n: i64 = l.conn.query_row("SELECT count(*) FROM attempts", [], |r| r.get(0)).expect("count");
        assert_eq!(n, 2);
    }
}
