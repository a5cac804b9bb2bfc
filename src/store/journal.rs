//! The journal: an SQLite database (`STATE_DIR/journal.sqlite3`) holding one row per analysed
//! slice, one per series, and one per rejected input. It is the daemon's memory across restarts:
//! a slice whose content (sha256) and frame are already here is not analysed again, and an input
//! file leaves the drop folder only after its row is committed.
//!
//! Touches only the database file it is given and SQLite's `-wal`/`-shm` files beside it. Opened in
//! WAL mode (readers such as `history` never block the daemon) with `synchronous=FULL` (a commit
//! has reached the disk when the call returns, so a power cut right after cannot lose it). Every
//! write is one transaction. The schema carries a `user_version` so later versions can migrate.
//!
//! See: <https://www.sqlite.org/wal.html>, <https://www.sqlite.org/pragma.html#pragma_synchronous>.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};

use crate::verdict::SeriesVerdict;

/// The file name inside the state directory.
pub const JOURNAL_FILE: &str = "journal.sqlite3";

/// The schema version this build writes and reads (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 2;

/// How long a write waits for another connection (e.g. `history` reading) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA_V1: &str = "
CREATE TABLE slices (
    id                  INTEGER PRIMARY KEY,
    source_file         TEXT    NOT NULL,
    sha256              TEXT    NOT NULL,
    frame               INTEGER NOT NULL,
    series              TEXT    NOT NULL,
    instance            INTEGER,
    p                   REAL,
    boxes               TEXT    NOT NULL,
    suspicious          INTEGER NOT NULL,
    decode_us           INTEGER NOT NULL,
    preprocess_us       INTEGER NOT NULL,
    classifier_us       INTEGER NOT NULL,
    detector_us         INTEGER NOT NULL,
    heads_us            INTEGER NOT NULL,
    verdict_us          INTEGER NOT NULL,
    store_us            INTEGER NOT NULL,
    classifier_sha256   TEXT    NOT NULL,
    detector_sha256     TEXT    NOT NULL,
    created_unix_ms     INTEGER NOT NULL,
    UNIQUE (sha256, frame)
);
CREATE INDEX slices_by_series ON slices (series, instance);
CREATE TABLE series (
    series              TEXT    PRIMARY KEY,
    slices              INTEGER NOT NULL,
    suspicious_slices   INTEGER NOT NULL,
    max_p               REAL,
    boxes               INTEGER NOT NULL,
    verdict             TEXT    NOT NULL CHECK (verdict IN ('open', 'positive', 'negative')),
    first_seen_unix_ms  INTEGER NOT NULL,
    last_seen_unix_ms   INTEGER NOT NULL,
    closed_unix_ms      INTEGER,
    alerted             INTEGER NOT NULL
);
CREATE INDEX series_by_last_seen ON series (last_seen_unix_ms);
CREATE TABLE rejected (
    id                  INTEGER PRIMARY KEY,
    source_file         TEXT    NOT NULL,
    sha256              TEXT,
    reason              TEXT    NOT NULL,
    created_unix_ms     INTEGER NOT NULL
);
";

/// Version 2: each rejected input carries a reason code (`crate::failure::RejectCode`; rows of
/// version 1 get `unknown`), and (intended use, issue 21) series verdicts `not-analysed` and `demo-model` with their
/// reasons, and a row per slice that was not analysed. SQLite cannot change a CHECK constraint in
/// place, so the series table is copied into its new shape.
const SCHEMA_V1_TO_V2: &str = "
ALTER TABLE rejected ADD COLUMN code TEXT NOT NULL DEFAULT 'unknown';
CREATE TABLE series_v2 (
    series              TEXT    PRIMARY KEY,
    slices              INTEGER NOT NULL,
    suspicious_slices   INTEGER NOT NULL,
    max_p               REAL,
    boxes               INTEGER NOT NULL,
    verdict             TEXT    NOT NULL
        CHECK (verdict IN ('open', 'positive', 'negative', 'not-analysed', 'demo-model')),
    first_seen_unix_ms  INTEGER NOT NULL,
    last_seen_unix_ms   INTEGER NOT NULL,
    closed_unix_ms      INTEGER,
    alerted             INTEGER NOT NULL,
    reasons             TEXT
);
INSERT INTO series_v2 (series, slices, suspicious_slices, max_p, boxes, verdict, first_seen_unix_ms,
    last_seen_unix_ms, closed_unix_ms, alerted)
    SELECT series, slices, suspicious_slices, max_p, boxes, verdict, first_seen_unix_ms, last_seen_unix_ms,
        closed_unix_ms, alerted FROM series;
DROP TABLE series;
ALTER TABLE series_v2 RENAME TO series;
CREATE INDEX series_by_last_seen ON series (last_seen_unix_ms);
CREATE TABLE skipped (
    id                  INTEGER PRIMARY KEY,
    source_file         TEXT    NOT NULL,
    sha256              TEXT    NOT NULL,
    frame               INTEGER NOT NULL,
    series              TEXT    NOT NULL,
    reasons             TEXT    NOT NULL,
    created_unix_ms     INTEGER NOT NULL,
    UNIQUE (sha256, frame)
);
";

pub use super::rows::{RejectedRow, SeriesRow, SkippedRow, SliceRecord, StageLatencyUs, StoredSlice, Write};

/// Why the journal could not do what was asked. Each names the database file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(
        "cannot open the journal {} ({source}); check that the state directory exists and that the daemon's \
         user may create and write files in it",
        .path.display()
    )]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error(
        "the journal {} is locked by another process while trying to {action}; another pe-sentinel daemon is \
         probably running on this state directory: stop it, or give this one its own --state",
        .path.display()
    )]
    Locked { path: PathBuf, action: &'static str },
    #[error(
        "the disk holding the journal {} is full (while trying to {action}); free space there (the daemon retries by itself): \
         inputs not yet recorded stay in the drop folder",
        .path.display()
    )]
    DiskFull { path: PathBuf, action: &'static str },
    #[error(
        "the journal {} is damaged ({detail}); stop pe-sentinel, move the file and its -wal/-shm files aside \
         for review, and restart: a new, empty journal is then created",
        .path.display()
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "the journal {} is read-only (while trying to {action}); give the daemon's user write access to the file \
         and its directory",
        .path.display()
    )]
    ReadOnly { path: PathBuf, action: &'static str },
    #[error(
        "the journal {} has schema version {found}, newer than this pe-sentinel knows ({known}); run the newer \
         pe-sentinel, or use another state directory",
        .path.display()
    )]
    NewerSchema { path: PathBuf, found: i64, known: i64 },
    #[error(
        "the journal {} stayed in `{mode}` journal mode instead of WAL; put the state directory on a local file \
         system (not NFS or a read-only mount)",
        .path.display()
    )]
    NotWal { path: PathBuf, mode: String },
    #[error(
        "a row of table `{table}` in the journal {} cannot be read back ({detail}); the file was changed \
         outside pe-sentinel: run an integrity check and consider moving it aside",
        .path.display()
    )]
    BadRow { path: PathBuf, table: &'static str, detail: String },
    #[error(
        "the journal {} failed to {action} ({source}); check the disk and the file's permissions, then retry",
        .path.display()
    )]
    Sql { path: PathBuf, action: &'static str, source: rusqlite::Error },
}

/// Sorts an SQLite failure into the variant that tells the operator what to do.
fn classify(path: &Path, action: &'static str, err: rusqlite::Error) -> JournalError {
    let path = path.to_path_buf();
    match err.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => JournalError::Locked { path, action },
        Some(ErrorCode::DiskFull) => JournalError::DiskFull { path, action },
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            JournalError::Corrupt { path, detail: format!("{action}: {err}") }
        }
        Some(ErrorCode::ReadOnly) => JournalError::ReadOnly { path, action },
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => JournalError::Open { path, source: err },
        _ => JournalError::Sql { path, action, source: err },
    }
}

/// An open journal. Owned by one thread (the sink); other processes may read the file meanwhile.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    conn: Connection,
}

impl Journal {
    /// The journal's path inside a state directory.
    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join(JOURNAL_FILE)
    }

    /// Opens (or creates) the journal at `path`: WAL mode, `synchronous=FULL`, schema created or
    /// checked against [`SCHEMA_VERSION`].
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let conn = Connection::open(path).map_err(|source| match source.sqlite_error_code() {
            Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) | None => {
                JournalError::Open { path: path.to_path_buf(), source }
            }
            Some(_) => classify(path, "open the database", source),
        })?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| classify(path, "set the busy timeout", e))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
            .map_err(|e| classify(path, "switch to WAL mode", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(JournalError::NotWal { path: path.to_path_buf(), mode });
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(|e| classify(path, "set synchronous=FULL", e))?;
        let mut journal = Journal { path: path.to_path_buf(), conn };
        journal.migrate()?;
        Ok(journal)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&mut self) -> Result<(), JournalError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify(&path, "start the schema transaction", e))?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|e| classify(&path, "read the schema version", e))?;
        match version {
            0 | 1 => {
                if version == 0 {
                    tx.execute_batch(SCHEMA_V1).map_err(|e| classify(&path, "create the schema", e))?;
                }
                tx.execute_batch(SCHEMA_V1_TO_V2).map_err(|e| classify(&path, "migrate the schema to version 2", e))?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                    .map_err(|e| classify(&path, "write the schema version", e))?;
            }
            SCHEMA_VERSION => {}
            found if found > SCHEMA_VERSION => {
                return Err(JournalError::NewerSchema { path, found, known: SCHEMA_VERSION });
            }
            found => {
                return Err(JournalError::Corrupt { path, detail: format!("unknown schema version {found}") });
            }
        }
        tx.commit().map_err(|e| classify(&path, "commit the schema", e))
    }

    /// Whether this content (by sha256) and frame was already analysed and recorded.
    pub fn seen(&self, sha256: &[u8; 32], frame: u32) -> Result<bool, JournalError> {
        self.conn
            .prepare_cached("SELECT 1 FROM slices WHERE sha256 = ?1 AND frame = ?2")
            .and_then(|mut stmt| stmt.query_row(params![hex(sha256), frame], |_| Ok(())).optional())
            .map(|found| found.is_some())
            .map_err(|e| classify(&self.path, "look up a slice's sha256", e))
    }

    /// Records one slice in its own transaction. `Ok(Some(id))` when inserted, `Ok(None)` when the
    /// same content and frame was already recorded (nothing is written).
    pub fn record_slice(&mut self, slice: &SliceRecord) -> Result<Option<i64>, JournalError> {
        self.write("record a slice", |tx| insert_slice(tx, slice))
    }

    /// Inserts or replaces one series row in its own transaction.
    pub fn update_series(&mut self, row: &SeriesRow) -> Result<(), JournalError> {
        self.write("update a series", |tx| upsert_series(tx, row))
    }

    /// Records a slice and its series' new state in one transaction (one disk sync instead of
    /// two): what the daemon commits before moving the input out of the drop folder.
    pub fn record_slice_with_series(
        &mut self,
        slice: &SliceRecord,
        row: &SeriesRow,
    ) -> Result<Option<i64>, JournalError> {
        self.write("record a slice and its series", |tx| {
            let id = insert_slice(tx, slice)?;
            upsert_series(tx, row)?;
            Ok(id)
        })
    }

    /// Records a slice that was not analysed (intended use) and its series' row, in one
    /// transaction. The same content and frame recorded again changes nothing but the series row.
    pub fn record_skipped(&mut self, slice: &SkippedRow, row: &SeriesRow) -> Result<(), JournalError> {
        self.commit(&[Write::Skipped(slice), Write::Series(row)])
    }

    /// How many slices of `series` were recorded as not analysed.
    pub fn skipped_slices(&self, series: &str) -> Result<u32, JournalError> {
        self.conn
            .prepare_cached("SELECT COUNT(*) FROM skipped WHERE series = ?1")
            .and_then(|mut stmt| stmt.query_row([series], |row| row.get(0)))
            .map_err(|e| classify(&self.path, "count the slices not analysed", e))
    }

    /// The slices of `series` recorded as not analysed, first recorded first: file name as
    /// dropped, sha256 (hex), frame and reasons.
    pub fn series_skipped(&self, series: &str) -> Result<Vec<(String, String, u32, String)>, JournalError> {
        self.conn
            .prepare_cached("SELECT source_file, sha256, frame, reasons FROM skipped WHERE series = ?1 ORDER BY id")
            .and_then(|mut stmt| {
                stmt.query_map([series], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| classify(&self.path, "read a series' slices not analysed", e))
    }

    /// Records an input that could not be analysed, with the reason given to the operator.
    pub fn record_rejected(&mut self, row: &RejectedRow) -> Result<(), JournalError> {
        self.commit(&[Write::Rejected(row)])
    }

    /// Commits several writes in ONE transaction (one disk sync for all): what the daemon's sink
    /// does when slices queue up behind a slow disk. All or nothing.
    pub fn commit(&mut self, writes: &[Write<'_>]) -> Result<(), JournalError> {
        self.write("commit queued results", |tx| {
            for w in writes {
                match w {
                    Write::Slice(s) => {
                        insert_slice(tx, s)?;
                    }
                    Write::Series(r) => upsert_series(tx, r)?,
                    Write::Skipped(k) => insert_skipped(tx, k)?,
                    Write::Rejected(r) => {
                        tx.prepare_cached(
                            "INSERT INTO rejected (source_file, sha256, code, reason, created_unix_ms)
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                        )?
                        .execute(params![
                            r.source_file,
                            r.sha256.as_ref().map(hex),
                            r.code,
                            r.reason,
                            r.created_unix_ms
                        ])?;
                    }
                }
            }
            Ok(())
        })
    }

    fn write<T>(
        &mut self,
        action: &'static str,
        body: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, JournalError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify(&self.path, action, e))?;
        let value = body(&tx).map_err(|e| classify(&self.path, action, e))?;
        tx.commit().map_err(|e| classify(&self.path, action, e))?;
        Ok(value)
    }

    /// The `limit` most recently active series, newest first.
    pub fn recent_series(&self, limit: usize) -> Result<Vec<SeriesRow>, JournalError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .conn
            .prepare_cached(
                "SELECT series, slices, suspicious_slices, max_p, boxes, verdict, first_seen_unix_ms,
                        last_seen_unix_ms, closed_unix_ms, alerted, reasons
                 FROM series ORDER BY last_seen_unix_ms DESC, series LIMIT ?1",
            )
            .and_then(|mut stmt| stmt.query_map([limit], read_series)?.collect::<Result<Vec<_>, _>>())
            .map_err(|e| classify(&self.path, "read recent series", e))?;
        rows.into_iter().map(|r| r.map_err(|detail| self.bad_row("series", detail))).collect()
    }

    /// One series row, if the series is known.
    pub fn series(&self, series: &str) -> Result<Option<SeriesRow>, JournalError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT series, slices, suspicious_slices, max_p, boxes, verdict, first_seen_unix_ms,
                        last_seen_unix_ms, closed_unix_ms, alerted, reasons
                 FROM series WHERE series = ?1",
            )
            .and_then(|mut stmt| stmt.query_row([series], read_series).optional())
            .map_err(|e| classify(&self.path, "read a series", e))?;
        row.map(|r| r.map_err(|detail| self.bad_row("series", detail))).transpose()
    }

    /// Every recorded slice of `series`, in instance order (then frame, then arrival).
    pub fn series_slices(&self, series: &str) -> Result<Vec<StoredSlice>, JournalError> {
        let rows = self
            .conn
            .prepare_cached(
                "SELECT id, source_file, sha256, frame, series, instance, p, boxes, suspicious,
                        decode_us, preprocess_us, classifier_us, detector_us, heads_us, verdict_us, store_us,
                        classifier_sha256, detector_sha256, created_unix_ms
                 FROM slices WHERE series = ?1 ORDER BY instance, frame, id",
            )
            .and_then(|mut stmt| stmt.query_map([series], read_slice)?.collect::<Result<Vec<_>, _>>())
            .map_err(|e| classify(&self.path, "read a series' slices", e))?;
        rows.into_iter().map(|r| r.map_err(|detail| self.bad_row("slices", detail))).collect()
    }

    /// The `limit` most recent rejected inputs, newest first.
    pub fn recent_rejected(&self, limit: usize) -> Result<Vec<RejectedRow>, JournalError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .conn
            .prepare_cached(
                "SELECT source_file, sha256, code, reason, created_unix_ms FROM rejected
                 ORDER BY created_unix_ms DESC, id DESC LIMIT ?1",
            )
            .and_then(|mut stmt| {
                stmt.query_map([limit], |row| {
                    let sha: Option<String> = row.get(1)?;
                    Ok((row.get(0)?, sha, row.get(2)?, row.get(3)?, row.get(4)?))
                })?
                .collect::<Result<Vec<(String, Option<String>, String, String, i64)>, _>>()
            })
            .map_err(|e| classify(&self.path, "read rejected inputs", e))?;
        rows.into_iter()
            .map(|(source_file, sha, code, reason, created_unix_ms)| {
                let sha256 = match sha {
                    Some(s) => Some(unhex(&s).ok_or_else(|| self.bad_row("rejected", format!("sha256 `{s}`")))?),
                    None => None,
                };
                Ok(RejectedRow { source_file, sha256, code, reason, created_unix_ms })
            })
            .collect()
    }

    /// Runs SQLite's `PRAGMA integrity_check`: `Ok(true)` when the database is sound.
    pub fn integrity_check(&self) -> Result<bool, JournalError> {
        let lines = self
            .conn
            .prepare("PRAGMA integrity_check")
            .and_then(|mut stmt| stmt.query_map([], |row| row.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>())
            .map_err(|e| classify(&self.path, "run the integrity check", e))?;
        Ok(lines.len() == 1 && lines[0] == "ok")
    }

    fn bad_row(&self, table: &'static str, detail: String) -> JournalError {
        JournalError::BadRow { path: self.path.clone(), table, detail }
    }
}

fn insert_skipped(tx: &rusqlite::Transaction<'_>, k: &SkippedRow) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO skipped (source_file, sha256, frame, series, reasons, created_unix_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (sha256, frame) DO NOTHING",
    )?
    .execute(params![k.source_file, hex(&k.sha256), k.frame, k.series, k.reasons, k.created_unix_ms])?;
    Ok(())
}

fn insert_slice(tx: &rusqlite::Transaction<'_>, s: &SliceRecord) -> rusqlite::Result<Option<i64>> {
    let boxes = boxes_json(&s.boxes);
    let l = &s.latency;
    let inserted = tx
        .prepare_cached(
            "INSERT INTO slices (source_file, sha256, frame, series, instance, p, boxes, suspicious,
                 decode_us, preprocess_us, classifier_us, detector_us, heads_us, verdict_us, store_us,
                 classifier_sha256, detector_sha256, created_unix_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
             ON CONFLICT (sha256, frame) DO NOTHING",
        )?
        .execute(params![
            s.source_file,
            hex(&s.sha256),
            s.frame,
            s.series,
            s.instance,
            if s.p.is_nan() { None } else { Some(f64::from(s.p)) },
            boxes,
            s.suspicious,
            l.decode,
            l.preprocess,
            l.classifier,
            l.detector,
            l.heads,
            l.verdict,
            l.store,
            s.classifier_sha256,
            s.detector_sha256,
            s.created_unix_ms,
        ])?;
    Ok((inserted == 1).then(|| tx.last_insert_rowid()))
}

fn upsert_series(tx: &rusqlite::Transaction<'_>, r: &SeriesRow) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO series (series, slices, suspicious_slices, max_p, boxes, verdict, first_seen_unix_ms,
             last_seen_unix_ms, closed_unix_ms, alerted, reasons)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (series) DO UPDATE SET slices = excluded.slices, suspicious_slices = excluded.suspicious_slices,
             max_p = excluded.max_p, boxes = excluded.boxes, verdict = excluded.verdict,
             first_seen_unix_ms = excluded.first_seen_unix_ms, last_seen_unix_ms = excluded.last_seen_unix_ms,
             closed_unix_ms = excluded.closed_unix_ms, alerted = excluded.alerted, reasons = excluded.reasons",
    )?
    .execute(params![
        r.series,
        r.slices,
        r.suspicious_slices,
        if r.max_p.is_nan() { None } else { Some(f64::from(r.max_p)) },
        r.boxes,
        r.verdict.as_str(),
        r.first_seen_unix_ms,
        r.last_seen_unix_ms,
        r.closed_unix_ms,
        r.alerted,
        r.reasons,
    ])?;
    Ok(())
}

/// Boxes as `[[x0,y0,x1,y1,conf],...]`. Non-finite numbers (which NMS never yields) become 0
/// rather than an unreadable `null`.
fn boxes_json(boxes: &[[f32; 5]]) -> String {
    let clean: Vec<[f32; 5]> = boxes.iter().map(|b| b.map(|v| if v.is_finite() { v } else { 0.0 })).collect();
    serde_json::to_string(&clean).unwrap_or_else(|_| "[]".to_owned())
}

/// Reads a series row; the inner `Err` is a value the schema allows but this build cannot read.
fn read_series(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<SeriesRow, String>> {
    let verdict: String = row.get(5)?;
    let max_p: Option<f64> = row.get(3)?;
    let Some(verdict) = SeriesVerdict::parse(&verdict) else {
        return Ok(Err(format!("verdict `{verdict}`")));
    };
    Ok(Ok(SeriesRow {
        series: row.get(0)?,
        slices: row.get(1)?,
        suspicious_slices: row.get(2)?,
        max_p: max_p.map_or(f32::NAN, |p| p as f32),
        boxes: row.get(4)?,
        verdict,
        first_seen_unix_ms: row.get(6)?,
        last_seen_unix_ms: row.get(7)?,
        closed_unix_ms: row.get(8)?,
        alerted: row.get(9)?,
        reasons: row.get(10)?,
    }))
}

fn read_slice(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<StoredSlice, String>> {
    let sha: String = row.get(2)?;
    let boxes: String = row.get(7)?;
    let p: Option<f64> = row.get(6)?;
    let Some(sha256) = unhex(&sha) else {
        return Ok(Err(format!("sha256 `{sha}`")));
    };
    let boxes: Vec<[f32; 5]> = match serde_json::from_str(&boxes) {
        Ok(b) => b,
        Err(e) => return Ok(Err(format!("boxes `{boxes}`: {e}"))),
    };
    Ok(Ok(StoredSlice {
        id: row.get(0)?,
        record: SliceRecord {
            source_file: row.get(1)?,
            sha256,
            frame: row.get(3)?,
            series: row.get(4)?,
            instance: row.get(5)?,
            p: p.map_or(f32::NAN, |p| p as f32),
            boxes,
            suspicious: row.get(8)?,
            latency: StageLatencyUs {
                decode: row.get(9)?,
                preprocess: row.get(10)?,
                classifier: row.get(11)?,
                detector: row.get(12)?,
                heads: row.get(13)?,
                verdict: row.get(14)?,
                store: row.get(15)?,
            },
            classifier_sha256: row.get(16)?,
            detector_sha256: row.get(17)?,
            created_unix_ms: row.get(18)?,
        },
    }))
}

/// Lowercase hex, as `sha256sum` prints it.
pub fn hex(bytes: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        *o = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(sha: u8, frame: u32, series: &str, instance: i32) -> SliceRecord {
        SliceRecord {
            source_file: format!("slice-{instance:04}.dcm"),
            sha256: [sha; 32],
            frame,
            series: series.to_owned(),
            instance: Some(instance),
            p: 0.875,
            boxes: vec![[10.5, 20.0, 30.25, 41.0, 0.75], [100.0, 110.0, 120.0, 130.0, 0.625]],
            suspicious: true,
            latency: StageLatencyUs {
                decode: 1,
                preprocess: 2,
                classifier: 3,
                detector: 4,
                heads: 5,
                verdict: 6,
                store: 7,
            },
            classifier_sha256: "c".repeat(64),
            detector_sha256: "d".repeat(64),
            created_unix_ms: 1_700_000_000_000 + i64::from(instance),
        }
    }

    fn series_row(series: &str, verdict: SeriesVerdict, last: i64) -> SeriesRow {
        SeriesRow {
            series: series.to_owned(),
            slices: 3,
            suspicious_slices: 2,
            max_p: 0.875,
            boxes: 4,
            verdict,
            first_seen_unix_ms: 1_000,
            last_seen_unix_ms: last,
            closed_unix_ms: None,
            alerted: verdict == SeriesVerdict::Positive,
            reasons: None,
        }
    }

    #[test]
    fn a_version_1_journal_is_migrated_with_its_rows_and_takes_the_new_verdicts(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let (_dir, path) = temp();
        {
            let c = Connection::open(&path)?;
            c.execute_batch(SCHEMA_V1)?;
            c.pragma_update(None, "user_version", 1)?;
            c.execute("INSERT INTO series VALUES ('old', 3, 3, 0.9, 1, 'positive', 1, 2, 3, 1)", [])?;
            // Version 1 refuses the new verdicts: the migration is what makes room for them.
            assert!(c
                .execute("INSERT INTO series VALUES ('x', 1, 0, 0, 0, 'not-analysed', 1, 2, NULL, 0)", [])
                .is_err());
        }
        let mut j = open(&path);
        let old = j.series("old")?.ok_or("the old row survives")?;
        assert_eq!((old.verdict, old.alerted, old.reasons), (SeriesVerdict::Positive, true, None));
        let mut row = series_row("thick", SeriesVerdict::NotAnalysed, 5);
        row.reasons = Some("SliceThickness 5 mm is outside 0.3..3 mm".into());
        let skipped = SkippedRow {
            source_file: "1-01.dcm".into(),
            sha256: [7; 32],
            frame: 0,
            series: "thick".into(),
            reasons: "SliceThickness 5 mm".into(),
            created_unix_ms: 9,
        };
        j.record_skipped(&skipped, &row)?;
        j.record_skipped(&skipped, &row)?;
        assert_eq!(j.skipped_slices("thick")?, 1, "the same content is recorded once");
        let rows = j.series_skipped("thick")?;
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].1.as_str(), rows[0].2), (hex(&[7; 32]).as_str(), 0));
        assert!(j.series_skipped("other")?.is_empty());
        assert!(!j.seen(&[7; 32], 0)?, "a skipped slice is not an analysed one");
        let mut demo = series_row("patient", SeriesVerdict::DemoModel, 6);
        demo.reasons = Some("demo models".into());
        j.update_series(&demo)?;
        drop(j);
        let j = open(&path);
        let got = j.series("thick")?.ok_or("row")?;
        assert_eq!(got, row);
        assert_eq!(j.series("patient")?.map(|r| r.verdict), Some(SeriesVerdict::DemoModel));
        let json = serde_json::to_string(&j.recent_series(10)?)?;
        assert!(json.contains("\"verdict\":\"not-analysed\"") && json.contains("\"verdict\":\"demo-model\""), "{json}");
        assert!(json.contains("\"reasons\":\"SliceThickness 5 mm is outside"), "{json}");
        assert!(j.integrity_check()?);
        Ok(())
    }

    fn temp() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = Journal::path_in(dir.path());
        (dir, path)
    }

    fn open(path: &Path) -> Journal {
        Journal::open(path).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn round_trip_of_slices_series_and_rejected() -> Result<(), JournalError> {
        let (_dir, path) = temp();
        let mut j = open(&path);
        let a = slice(1, 0, "1.2.3", 2);
        let b =
            SliceRecord { p: f32::NAN, boxes: vec![], suspicious: false, instance: None, ..slice(2, 0, "1.2.3", 1) };
        let id_a = j.record_slice(&a)?;
        assert!(id_a.is_some());
        j.record_slice(&b)?;
        let stored = j.series_slices("1.2.3")?;
        assert_eq!(stored.len(), 2);
        // NULL instance sorts first.
        assert_eq!(stored[0].record.instance, None);
        assert!(stored[0].record.p.is_nan() && stored[0].record.boxes.is_empty());
        assert_eq!(stored[1].record, a);
        assert_eq!(Some(stored[1].id), id_a);
        assert!(j.series_slices("other")?.is_empty());

        let mut row = series_row("1.2.3", SeriesVerdict::Open, 5_000);
        j.update_series(&row)?;
        row.verdict = SeriesVerdict::Positive;
        row.alerted = true;
        row.closed_unix_ms = Some(30_000);
        j.update_series(&row)?;
        j.update_series(&series_row("older", SeriesVerdict::Negative, 4_000))?;
        j.update_series(&series_row("newer", SeriesVerdict::Open, 6_000))?;
        let recent = j.recent_series(10)?;
        let names: Vec<&str> = recent.iter().map(|r| r.series.as_str()).collect();
        assert_eq!(names, ["newer", "1.2.3", "older"]);
        assert_eq!(recent[1], row);
        assert_eq!(j.recent_series(1)?.len(), 1);
        assert_eq!(j.series("1.2.3")?, Some(row));
        assert_eq!(j.series("missing")?, None);

        let rej = RejectedRow {
            source_file: "garbage.dcm".into(),
            sha256: Some([0xab; 32]),
            code: "unreadable".into(),
            reason: "not a DICOM file: no DICM magic".into(),
            created_unix_ms: 9,
        };
        j.record_rejected(&rej)?;
        j.record_rejected(&RejectedRow { sha256: None, created_unix_ms: 10, ..rej.clone() })?;
        let rejected = j.recent_rejected(10)?;
        assert_eq!(rejected.len(), 2);
        assert_eq!(rejected[1], rej);
        assert_eq!(rejected[0].sha256, None);
        Ok(())
    }

    #[test]
    fn boxes_are_stored_as_json_arrays() -> Result<(), Box<dyn std::error::Error>> {
        let (_dir, path) = temp();
        let mut j = open(&path);
        j.record_slice(&slice(1, 0, "s", 1))?;
        let raw = Connection::open(&path)?;
        let text: String = raw.query_row("SELECT boxes FROM slices", [], |r| r.get(0))?;
        assert_eq!(text, "[[10.5,20.0,30.25,41.0,0.75],[100.0,110.0,120.0,130.0,0.625]]");
        let sha: String = raw.query_row("SELECT sha256 FROM slices", [], |r| r.get(0))?;
        assert_eq!(sha, "01".repeat(32));
        Ok(())
    }

    #[test]
    fn same_content_and_frame_is_recorded_once() -> Result<(), JournalError> {
        let (_dir, path) = temp();
        let mut j = open(&path);
        let a = slice(7, 0, "s", 1);
        assert!(!j.seen(&a.sha256, 0)?);
        assert!(j.record_slice(&a)?.is_some());
        assert!(j.seen(&a.sha256, 0)?);
        assert!(!j.seen(&a.sha256, 1)?, "another frame of the same file is another slice");
        // Dropped again under another name: not recorded twice.
        let again = SliceRecord { source_file: "copy.dcm".into(), ..a.clone() };
        assert_eq!(j.record_slice(&again)?, None);
        assert!(j.record_slice(&slice(7, 1, "s", 2))?.is_some());
        assert_eq!(j.series_slices("s")?.len(), 2);
        assert_eq!(j.series_slices("s")?[0].record.source_file, "slice-0001.dcm");
        Ok(())
    }

    #[test]
    fn committed_rows_survive_a_crash_and_a_reopen() -> Result<(), JournalError> {
        let (_dir, path) = temp();
        {
            let mut j = open(&path);
            j.record_slice_with_series(&slice(1, 0, "s", 1), &series_row("s", SeriesVerdict::Open, 1))?;
            // A crash: the connection is never closed, so nothing is checkpointed into the main
            // file; the rows must be found in the WAL by the next process.
            std::mem::forget(j);
        }
        assert!(path.with_extension("sqlite3-wal").exists(), "the WAL file holds the commit");
        let mut j = open(&path);
        assert!(j.seen(&[1; 32], 0)?);
        assert_eq!(j.series("s")?.map(|r| r.verdict), Some(SeriesVerdict::Open));
        j.record_slice(&slice(2, 0, "s", 2))?;
        drop(j);
        let j = open(&path);
        assert_eq!(j.series_slices("s")?.len(), 2);
        assert!(j.integrity_check()?);
        Ok(())
    }

    #[test]
    fn wal_mode_and_full_sync_are_really_on() -> Result<(), Box<dyn std::error::Error>> {
        let (_dir, path) = temp();
        let j = open(&path);
        let sync: i64 = j.conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
        assert_eq!(sync, 2, "synchronous=FULL is 2");
        // WAL is a property of the file: another connection sees it.
        let other = Connection::open(&path)?;
        let mode: String = other.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        assert_eq!(mode, "wal");
        let version: i64 = other.pragma_query_value(None, "user_version", |r| r.get(0))?;
        assert_eq!(version, SCHEMA_VERSION);
        // A reader does not block the writer.
        other.execute_batch("BEGIN")?;
        let before: i64 = other.query_row("SELECT count(*) FROM slices", [], |r| r.get(0))?;
        assert_eq!(before, 0);
        let mut j = j;
        j.record_slice(&slice(3, 0, "s", 1))?;
        other.execute_batch("COMMIT;")?;
        Ok(())
    }

    #[test]
    fn integrity_check_passes_on_a_sound_file_and_a_damaged_file_is_named() -> Result<(), JournalError> {
        let (dir, path) = temp();
        let mut j = open(&path);
        for i in 0..50u8 {
            j.record_slice(&slice(i, 0, "s", i32::from(i)))?;
        }
        assert!(j.integrity_check()?);
        drop(j);

        let garbage = dir.path().join("garbage.sqlite3");
        std::fs::write(&garbage, vec![0x5a; 8192]).unwrap_or_else(|e| panic!("{e}"));
        let err = Journal::open(&garbage).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("garbage.sqlite3") && err.contains("damaged") && err.contains("move the file"), "{err}");
        Ok(())
    }

    #[test]
    fn a_version_1_journal_is_migrated_and_keeps_its_rejected_rows() -> Result<(), Box<dyn std::error::Error>> {
        let (_dir, path) = temp();
        let raw = Connection::open(&path)?;
        raw.execute_batch(SCHEMA_V1)?;
        raw.execute(
            "INSERT INTO rejected (source_file, reason, created_unix_ms) VALUES ('old.dcm', 'damaged', 5)",
            [],
        )?;
        raw.pragma_update(None, "user_version", 1)?;
        drop(raw);
        let mut j = open(&path);
        let rows = j.recent_rejected(10)?;
        assert_eq!((rows.len(), rows[0].code.as_str(), rows[0].reason.as_str()), (1, "unknown", "damaged"));
        j.record_rejected(&RejectedRow {
            source_file: "new.dcm".into(),
            sha256: None,
            code: "not-ct".into(),
            reason: "MR".into(),
            created_unix_ms: 6,
        })?;
        assert_eq!(j.recent_rejected(1)?[0].code, "not-ct");
        drop(j);
        let version: i64 = Connection::open(&path)?.pragma_query_value(None, "user_version", |r| r.get(0))?;
        assert_eq!(version, SCHEMA_VERSION);
        Ok(())
    }

    #[test]
    fn newer_schema_and_unopenable_path_say_what_to_do() {
        let (dir, path) = temp();
        drop(open(&path));
        let raw = Connection::open(&path).unwrap_or_else(|e| panic!("{e}"));
        raw.pragma_update(None, "user_version", 99).unwrap_or_else(|e| panic!("{e}"));
        drop(raw);
        let err = Journal::open(&path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("schema version 99") && err.contains("journal.sqlite3"), "{err}");

        let missing = dir.path().join("no-such-dir").join(JOURNAL_FILE);
        let err = Journal::open(&missing).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("no-such-dir") && err.contains("state directory exists"), "{err}");
    }

    #[test]
    fn failures_are_sorted_into_what_to_do() {
        let fail = |code: i32| {
            let e = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
            classify(Path::new("/var/lib/pe-sentinel/journal.sqlite3"), "record a slice", e).to_string()
        };
        let busy = fail(rusqlite::ffi::SQLITE_BUSY);
        assert!(busy.contains("another pe-sentinel daemon") && busy.contains("/var/lib/pe-sentinel"), "{busy}");
        assert!(fail(rusqlite::ffi::SQLITE_FULL).contains("free space"));
        assert!(fail(rusqlite::ffi::SQLITE_CORRUPT).contains("damaged"));
        assert!(fail(rusqlite::ffi::SQLITE_READONLY).contains("write access"));
        assert!(fail(rusqlite::ffi::SQLITE_IOERR).contains("check the disk"));
    }

    #[test]
    fn hex_round_trips() {
        let mut b = [0u8; 32];
        for (i, v) in b.iter_mut().enumerate() {
            *v = (i * 37) as u8;
        }
        assert_eq!(unhex(&hex(&b)), Some(b));
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(&"g".repeat(64)), None);
    }
}
