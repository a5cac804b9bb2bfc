//! The receiver's association audit: one row per association (accepted or rejected) in its own
//! SQLite file, `STATE/associations.sqlite3` (the receiver's state folder, not the analyser's
//! journal: the process on the network never writes verdicts). Read back by
//! `pe-sentinel history --associations`. Touches only that file.

use rusqlite::{params, Connection, OpenFlags};
use serde::Serialize;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "associations.sqlite3";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("association audit {path}: {err}; check that the receiver's state folder exists and is writable")]
    Sql { path: PathBuf, err: rusqlite::Error },
}

/// One association, as recorded when it ends.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AssociationRow {
    pub calling_ae: String,
    pub called_ae: String,
    pub peer: String,
    pub started_unix_ms: i64,
    pub ended_unix_ms: i64,
    /// Instances stored into the drop folder (for analysis).
    pub instances: u64,
    /// Instances of other storage classes acknowledged and not kept.
    pub set_aside: u64,
    /// C-STORE requests answered with a failure status.
    pub failed: u64,
    /// Data set bytes received.
    pub bytes: u64,
    /// `released`, `aborted by peer`, `aborted: REASON`, `rejected: REASON`, `timed out`, …
    pub outcome: String,
}

pub struct Audit {
    path: PathBuf,
    conn: Connection,
}

impl Audit {
    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join(FILE_NAME)
    }

    /// Opens (creating) the audit for writing.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let sql = |err| AuditError::Sql { path: path.to_path_buf(), err };
        let conn = Connection::open(path).map_err(sql)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS associations (
                id INTEGER PRIMARY KEY,
                calling_ae TEXT NOT NULL, called_ae TEXT NOT NULL, peer TEXT NOT NULL,
                started_unix_ms INTEGER NOT NULL, ended_unix_ms INTEGER NOT NULL,
                instances INTEGER NOT NULL, set_aside INTEGER NOT NULL, failed INTEGER NOT NULL,
                bytes INTEGER NOT NULL, outcome TEXT NOT NULL);",
        )
        .map_err(sql)?;
        Ok(Audit { path: path.to_path_buf(), conn })
    }

    /// Opens an existing audit read-only (for `history`).
    pub fn open_read(path: &Path) -> Result<Self, AuditError> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|err| AuditError::Sql { path: path.to_path_buf(), err })?;
        Ok(Audit { path: path.to_path_buf(), conn })
    }

    pub fn record(&self, r: &AssociationRow) -> Result<(), AuditError> {
        self.conn
            .execute(
                "INSERT INTO associations (calling_ae, called_ae, peer, started_unix_ms, ended_unix_ms,
                 instances, set_aside, failed, bytes, outcome) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
                params![
                    r.calling_ae,
                    r.called_ae,
                    r.peer,
                    r.started_unix_ms,
                    r.ended_unix_ms,
                    r.instances as i64,
                    r.set_aside as i64,
                    r.failed as i64,
                    r.bytes as i64,
                    r.outcome
                ],
            )
            .map(|_| ())
            .map_err(|err| AuditError::Sql { path: self.path.clone(), err })
    }

    /// The most recent `limit` associations, newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<AssociationRow>, AuditError> {
        let sql = |err| AuditError::Sql { path: self.path.clone(), err };
        let mut st = self
            .conn
            .prepare(
                "SELECT calling_ae, called_ae, peer, started_unix_ms, ended_unix_ms, instances, set_aside,
                 failed, bytes, outcome FROM associations ORDER BY id DESC LIMIT ?1",
            )
            .map_err(sql)?;
        let rows = st
            .query_map([limit as i64], |r| {
                Ok(AssociationRow {
                    calling_ae: r.get(0)?,
                    called_ae: r.get(1)?,
                    peer: r.get(2)?,
                    started_unix_ms: r.get(3)?,
                    ended_unix_ms: r.get(4)?,
                    instances: r.get::<_, i64>(5)? as u64,
                    set_aside: r.get::<_, i64>(6)? as u64,
                    failed: r.get::<_, i64>(7)? as u64,
                    bytes: r.get::<_, i64>(8)? as u64,
                    outcome: r.get(9)?,
                })
            })
            .map_err(sql)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_newest_first() {
        let t = tempfile::tempdir().expect("tempdir");
        let path = Audit::path_in(t.path());
        let a = Audit::open(&path).expect("open");
        for i in 0..3 {
            a.record(&AssociationRow {
                calling_ae: format!("CT{i}"),
                instances: i,
                outcome: "released".into(),
                ..Default::default()
            })
            .expect("record");
        }
        drop(a);
        let r = Audit::open_read(&path).expect("read").recent(2).expect("recent");
        assert_eq!(r.iter().map(|r| r.calling_ae.as_str()).collect::<Vec<_>>(), vec!["CT2", "CT1"]);
        assert_eq!(r[0].instances, 2);
    }
}
