//! The sink stage: the daemon's thread for everything that waits on the disk — the journal commit
//! (SQLite, synchronous=FULL: an fsync per transaction), overlay PNGs, and moving each finished
//! input to `done/` or `rejected/`. The analysis thread hands jobs over through a bounded queue
//! and goes on with the next slice: inference never waits on a commit unless the queue is full.
//!
//! Order and safety: jobs are done in the order they were sent; a file's move comes after the
//! rows of every one of its slices (they were sent first), and a batch's moves happen only after
//! its transaction committed. So a kill -9 at any moment leaves each file either still in the drop
//! folder (analysed again on restart; rows already committed are skipped by sha256 and frame) or
//! moved with all its rows committed: nothing lost, nothing twice.
//!
//! Grouped commits: when jobs queue up (a slow eMMC or SD card), the sink takes up to
//! [`BATCH_MAX`] of them into ONE transaction, one fsync for all.
//!
//! Backpressure: the queue holds [`QUEUE_JOBS`] jobs; a full queue makes [`Sink::send`] wait (the
//! analysis thread's time from arrival to verdict then grows, and the budget's SLOW state shows
//! it). Memory is bounded by the queue: a job is one slice's row (plus, for a suspicious slice,
//! its pixels for the overlay).
//!
//! Faults: a failed commit or move (full disk, read-only folder) is retried in place with a
//! growing pause, in order, and shown through [`SinkState::fault`]; nothing is dropped. While
//! the daemon stops, a failing commit is given up after one retry: its files stay in the drop
//! folder for the next start.
//!
//! Touches the journal (its own connection), the overlays folder and the drop folder's files.

use crate::preprocess::HuWindow;
use crate::slice::Slice;
use crate::source::drop_folder::Mover;
use crate::store::journal::{Journal, RejectedRow, SeriesRow, SliceRecord, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Jobs waiting for the sink at most: the queue's bound.
pub const QUEUE_JOBS: usize = 64;
/// Jobs committed in one transaction at most.
pub const BATCH_MAX: usize = 32;
const FAULT_PAUSE_MIN: Duration = Duration::from_millis(500);
const FAULT_PAUSE_MAX: Duration = Duration::from_secs(15);

/// A suspicious slice's overlay, drawn by the sink after the commit.
pub struct Overlay {
    pub slice: Slice,
    pub name: String,
    pub window: HuWindow,
    pub boxes: Vec<crate::postprocess::Detection>,
}

/// One thing for the sink to do.
pub enum Job {
    /// A slice's row, with its series' new state when known, and an overlay to draw.
    /// `record.latency.store` is set by the sink: from `sent` to the start of its commit.
    Slice { record: Box<SliceRecord>, series: Option<Box<SeriesRow>>, overlay: Option<Box<Overlay>>, sent: Instant },
    /// A series' new state (positive, closed, reopened).
    Series(SeriesRow),
    /// A file not analysed (intended use): its row and its series' row.
    Skipped { slice: Box<crate::store::journal::SkippedRow>, series: Box<SeriesRow> },
    /// Every row of this file was sent before: move it to `done/`.
    Done(PathBuf),
    /// Record the rejection and move the file to `rejected/` with its reason.
    Rejected { path: PathBuf, row: Box<RejectedRow> },
    /// Answer once every job sent before is done (committed and moved).
    Flush(SyncSender<()>),
}

/// What the sink reports back; the analysis thread reads and clears it.
#[derive(Debug, Default)]
pub struct SinkState {
    /// Files that left the drop folder (for `DropFolder::release`).
    pub finished: Vec<PathBuf>,
    /// The sink's storage is failing (and retried): what failed. `None` when healthy.
    pub fault: Option<String>,
    /// Faults seen since the last read.
    pub faults: u64,
    /// Transactions and jobs committed, and the largest batch (for logs and bench).
    pub commits: u64,
    pub jobs: u64,
    pub largest_batch: usize,
}

/// The analysis thread's handle on the sink thread.
pub struct Sink {
    tx: Option<SyncSender<Job>>,
    state: Arc<Mutex<SinkState>>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The sink thread has gone (it panicked): results can no longer be committed.
#[derive(Debug, thiserror::Error)]
#[error("the journal's sink thread has stopped; results cannot be committed (restart the daemon)")]
pub struct SinkGone;

/// The sink thread's nice value above the process's: its work (commits, overlays, moves) is never
/// on a slice's way to its verdict, so on a small board the analysis thread gets the CPU first. A
/// sink that falls behind is still bounded by the queue: when it is full the analysis thread waits
/// (sleeping) and the sink runs.
pub const SINK_NICE: i32 = 10;

/// Lowers the sink thread's priority (see [`SINK_NICE`]); failure only costs latency: logged.
fn yield_to_analysis() {
    if let Err(e) = crate::runtime::lower_this_thread(SINK_NICE) {
        log::debug!("sink: {e}");
    }
}

impl Sink {
    /// Starts the sink thread on its own journal connection.
    /// `mover`: the drop folder's (`None`: no file is moved, as in `bench`).
    pub fn start(journal: Journal, mover: Option<Mover>, overlays: PathBuf) -> std::io::Result<Sink> {
        let (tx, rx) = sync_channel(QUEUE_JOBS);
        let state = Arc::new(Mutex::new(SinkState::default()));
        let stopping = Arc::new(AtomicBool::new(false));
        let worker = Worker { journal, mover, overlays, state: Arc::clone(&state), stopping: Arc::clone(&stopping) };
        let thread = std::thread::Builder::new().name("pe-sink".into()).spawn(move || {
            yield_to_analysis();
            worker.run(rx)
        })?;
        Ok(Sink { tx: Some(tx), state, stopping, thread: Some(thread) })
    }

    /// Hands `job` over. Waits while the queue is full (backpressure), calling `waiting` about
    /// every 50 ms (the caller pings its watchdog). Returns how long it waited, microseconds.
    pub fn send(&self, job: Job, mut waiting: impl FnMut()) -> Result<u32, SinkGone> {
        let tx = self.tx.as_ref().ok_or(SinkGone)?;
        let t = Instant::now();
        let mut job = job;
        loop {
            match tx.try_send(job) {
                Ok(()) => return Ok(crate::budget::us_since(t)),
                Err(TrySendError::Disconnected(_)) => return Err(SinkGone),
                Err(TrySendError::Full(j)) => {
                    job = j;
                    waiting();
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }

    /// Hands `job` over only if the queue has room (tests of the bound).
    pub fn try_send(&self, job: Job) -> Result<(), Job> {
        match self.tx.as_ref() {
            Some(tx) => tx.try_send(job).map_err(|e| match e {
                TrySendError::Full(j) | TrySendError::Disconnected(j) => j,
            }),
            None => Err(job),
        }
    }

    /// Waits until every job sent before is done (committed, moved).
    pub fn flush(&self, waiting: impl FnMut()) -> Result<(), SinkGone> {
        let (ack, done) = sync_channel(1);
        self.send(Job::Flush(ack), waiting)?;
        done.recv().map_err(|_| SinkGone)
    }

    /// Takes what the sink reported since the last call.
    pub fn take_state(&self) -> SinkState {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        SinkState {
            finished: std::mem::take(&mut g.finished),
            fault: g.fault.clone(),
            faults: std::mem::take(&mut g.faults),
            commits: g.commits,
            jobs: g.jobs,
            largest_batch: g.largest_batch,
        }
    }

    /// Transactions committed so far, and the most jobs one held.
    pub fn totals(&self) -> (u64, usize) {
        let g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (g.commits, g.largest_batch)
    }

    /// Finishes every queued job (giving up on a failing disk after one retry) and stops the thread.
    pub fn finish(&mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.tx.take();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("the sink thread panicked while finishing; unfinished files stay in the drop folder");
            }
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Worker {
    journal: Journal,
    mover: Option<Mover>,
    overlays: PathBuf,
    state: Arc<Mutex<SinkState>>,
    stopping: Arc<AtomicBool>,
}

impl Worker {
    fn run(mut self, rx: Receiver<Job>) {
        let mut batch: Vec<Job> = Vec::with_capacity(BATCH_MAX);
        while let Ok(first) = rx.recv() {
            batch.push(first);
            while batch.len() < BATCH_MAX {
                match rx.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(_) => break,
                }
            }
            for job in batch.iter_mut() {
                if let Job::Slice { record, sent, .. } = job {
                    record.latency.store = crate::budget::us_since(*sent);
                }
            }
            self.commit(&batch);
            for job in batch.drain(..) {
                self.after_commit(job);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `op` until it succeeds, pausing longer after each failure and reporting the fault;
    /// while stopping, gives up after one retry. Returns whether it succeeded.
    fn retried<E: std::fmt::Display>(&mut self, what: &str, mut op: impl FnMut(&mut Self) -> Result<(), E>) -> bool {
        let mut pause = FAULT_PAUSE_MIN;
        let mut tries = 0;
        loop {
            match op(self) {
                Ok(()) => {
                    if tries > 0 {
                        log::info!("{what}: works again after {tries} failure(s); FAULT cleared");
                        self.lock().fault = None;
                    }
                    return true;
                }
                Err(e) => {
                    tries += 1;
                    let msg = format!("{what}: {e}");
                    log::error!(
                        "FAULT: {msg}; every file not yet committed stays in the drop folder; retrying in {} ms",
                        pause.as_millis()
                    );
                    {
                        let mut g = self.lock();
                        g.fault = Some(msg);
                        g.faults += 1;
                    }
                    if self.stopping.load(Ordering::SeqCst) && tries > 1 {
                        log::error!("{what}: giving up while stopping; the files concerned stay in the drop folder");
                        return false;
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(FAULT_PAUSE_MAX);
                }
            }
        }
    }

    fn commit(&mut self, batch: &[Job]) {
        let mut writes = Vec::with_capacity(batch.len() * 2);
        for job in batch {
            match job {
                Job::Slice { record, series, .. } => {
                    writes.push(Write::Slice(record));
                    if let Some(s) = series {
                        writes.push(Write::Series(s));
                    }
                }
                Job::Series(s) => writes.push(Write::Series(s)),
                Job::Skipped { slice, series } => {
                    writes.push(Write::Skipped(slice));
                    writes.push(Write::Series(series));
                }
                Job::Rejected { row, .. } => writes.push(Write::Rejected(row)),
                Job::Done(_) | Job::Flush(_) => {}
            }
        }
        if writes.is_empty() {
            return;
        }
        let ok = self.retried("journal commit", |w| w.journal.commit(&writes));
        let mut g = self.lock();
        if ok {
            g.commits += 1;
            g.jobs += batch.len() as u64;
            g.largest_batch = g.largest_batch.max(batch.len());
        }
    }

    fn after_commit(&mut self, job: Job) {
        match job {
            Job::Slice { overlay: Some(o), .. } => {
                // An overlay is for review; failing to draw one must not stop the analysis.
                if let Err(e) =
                    crate::store::overlay::write_slice(&self.overlays, &o.slice, &o.name, o.window, &o.boxes)
                {
                    log::warn!("{e}");
                }
            }
            Job::Slice { .. } | Job::Series(_) | Job::Skipped { .. } => {}
            Job::Done(path) => self.finish(path, None),
            Job::Rejected { path, row } => self.finish(path, Some(row.reason)),
            Job::Flush(ack) => {
                let _ = ack.send(());
            }
        }
    }

    /// Moves a finished file out of the drop folder (a file already gone is finished too).
    fn finish(&mut self, path: PathBuf, rejected: Option<String>) {
        let moved = self.retried("moving a finished file", |w| {
            let Some(mover) = &w.mover else { return Ok(()) };
            if !path.exists() {
                return Ok(());
            }
            match &rejected {
                Some(reason) => mover.rejected(&path, reason).map(|_| ()),
                None => mover.done(&path).map(|_| ()),
            }
        });
        if moved {
            self.lock().finished.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::journal::StageLatencyUs;

    fn record(i: u32) -> Box<SliceRecord> {
        Box::new(SliceRecord {
            source_file: format!("f{i:04}.dcm"),
            sha256: [(i % 251) as u8; 32],
            frame: i,
            series: "s".into(),
            instance: Some(i as i32),
            p: 0.1,
            boxes: vec![],
            suspicious: false,
            latency: StageLatencyUs::default(),
            classifier_sha256: "c".into(),
            detector_sha256: "d".into(),
            created_unix_ms: 0,
        })
    }

    fn slice_job(i: u32) -> Job {
        Job::Slice { record: record(i), series: None, overlay: None, sent: Instant::now() }
    }

    /// The nice value in a /proc .../stat line (field 19; counted after the ")" that ends comm).
    fn nice_in(stat: &str) -> Option<i32> {
        stat[stat.rfind(')')? + 2..].split_whitespace().nth(16)?.parse().ok()
    }

    /// The nice value of this process's thread named `name`.
    fn nice_of_thread(name: &str) -> Option<i32> {
        for t in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if comm.trim_end() == name {
                return nice_in(&std::fs::read_to_string(t.path().join("stat")).ok()?);
            }
        }
        None
    }

    /// The sink's thread runs SINK_NICE below the thread that started it, so the analysis thread
    /// gets the CPU first; the starting thread keeps its own priority.
    #[test]
    fn the_sink_thread_yields_to_the_analysis_thread() {
        let own = || nice_in(&std::fs::read_to_string("/proc/thread-self/stat").expect("own stat")).expect("own nice");
        let before = own();
        let dir = tempfile::tempdir().expect("tmp");
        let journal = Journal::open(&dir.path().join("journal.sqlite3")).expect("journal");
        let mut sink = Sink::start(journal, None, dir.path().join("overlays")).expect("sink");
        sink.send(slice_job(1), || {}).expect("send");
        sink.flush(|| {}).expect("flush");
        let sink_nice = nice_of_thread("pe-sink").expect("a thread named pe-sink");
        sink.finish();
        assert_eq!(sink_nice, (before + SINK_NICE).min(19), "sink thread nice {sink_nice}, starting thread {before}");
        assert_eq!(own(), before, "the starting (analysis) thread keeps its priority");
    }

    /// A disk that cannot commit (another writer holds SQLite's lock): the queue fills to its bound
    /// and no further (memory stays bounded, the sender feels it), nothing leaves the drop folder
    /// before its row is committed; once the disk is back, the backlog is committed in grouped
    /// transactions, in the order sent, and every file moves to done/.
    #[test]
    fn a_stuck_disk_fills_the_queue_to_its_bound_then_the_backlog_commits_in_order_and_grouped() {
        let dir = tempfile::tempdir().expect("tmp");
        let drop = crate::source::drop_folder::DropFolder::open(&dir.path().join("drop")).expect("drop");
        let db = dir.path().join("journal.sqlite3");
        let journal = Journal::open(&db).expect("journal");
        let blocker = rusqlite::Connection::open(&db).expect("second connection");
        blocker.execute_batch("BEGIN IMMEDIATE").expect("hold the write lock");
        let mut sink = Sink::start(journal, Some(drop.mover()), dir.path().join("overlays")).expect("sink");
        let files = 300u32;
        let paths: Vec<PathBuf> = (0..files).map(|i| drop.root().join(format!("f{i:04}.dcm"))).collect();
        for p in &paths {
            std::fs::write(p, b"x").expect("file");
        }
        let mut accepted = 0usize;
        let mut next = 0u32;
        // Offer jobs (a row, then its file's move) until the queue refuses one.
        'fill: while next < files {
            for job in [slice_job(next), Job::Done(paths[next as usize].clone())] {
                if sink.try_send(job).is_err() {
                    break 'fill;
                }
                accepted += 1;
            }
            next += 1;
        }
        assert!((QUEUE_JOBS..=QUEUE_JOBS + BATCH_MAX).contains(&accepted), "{accepted} jobs accepted");
        std::thread::sleep(Duration::from_millis(300));
        assert!(paths.iter().all(|p| p.exists()), "no file may leave before its row is committed");
        blocker.execute_batch("COMMIT").expect("release the lock");
        // The rest through the blocking send (backpressure): the sender waits, nothing is lost.
        let mut waited = 0u32;
        // The interrupted pair: its row may be in, its move not.
        let resume = next;
        for i in resume..files {
            if !(i == resume && accepted % 2 == 1) {
                sink.send(slice_job(i), || waited += 1).expect("send");
            }
            sink.send(Job::Done(paths[i as usize].clone()), || waited += 1).expect("send");
        }
        sink.flush(|| {}).expect("flush");
        let state = sink.take_state();
        sink.finish();
        assert!(paths.iter().all(|p| !p.exists()), "every file moved");
        assert_eq!(state.finished.len(), files as usize);
        assert!(state.largest_batch > 1, "the backlog went in grouped transactions: {state:?}");
        assert!(state.commits < u64::from(files), "{state:?}");
        let check = rusqlite::Connection::open(&db).expect("open");
        let frames: Vec<u32> = check
            .prepare("SELECT frame FROM slices ORDER BY id")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("rows");
        assert_eq!(frames, (0..files).collect::<Vec<_>>(), "committed once each, in the order sent");
        let done = std::fs::read_dir(drop.root().join("done")).expect("done/").count();
        assert_eq!(done, files as usize);
    }
}
