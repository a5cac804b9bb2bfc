//! The drop folder: a directory a DICOM router, a PACS export or a person copies slices into.
//! Only complete files are taken — closed after writing, renamed into the folder, or found at
//! start (the backlog) once they have stopped changing; dotfiles and `*.part` / `*.tmp` are
//! ignored. Files are taken at any depth up to [`MAX_FOLDERS`] folders below the drop folder, as
//! routers write them (dcm4che `STUDY/SERIES/SOP.dcm`, DCMTK storescp `--sort-on-study-uid`, the
//! phantom's `series-000/dicom/`); a file deeper than that is handed out too, and
//! [`DropFolder::refusal`] says why it must be rejected, so nothing is left silently. A DICOM
//! file's series is its SeriesInstanceUID (from the decoder); a raster file's is the folder that
//! holds it. inotify events (through `notify`) are hints; the directory itself is the truth, so an
//! event-queue overflow only triggers a rescan and nothing is missed. A file leaves the folder only
//! when the caller has committed its result: moved to `done/` or to `rejected/` with
//! `NAME.reason.txt` beside it; nothing is deleted or overwritten. Touches only the drop folder.

use crate::slice::SeriesId;
use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Subfolders the daemon owns inside the drop folder.
pub const DONE: &str = "done";
pub const REJECTED: &str = "rejected";
/// Events buffered between the watcher and the daemon; beyond, a rescan replaces them.
const EVENT_QUEUE: usize = 4096;
/// Paths held in memory at once; beyond, the rest wait in the directory for a later rescan.
pub const MAX_PENDING: usize = 50_000;
/// A backlog file is taken once it has not changed for this long.
const SETTLE: Duration = Duration::from_secs(3);
/// Belt and braces: the folder is rescanned this often even without events.
const RESCAN_EVERY: Duration = Duration::from_secs(30);
/// Folders below the drop folder that a taken file may sit in (`A/B/C/D/file` at most). Routers
/// write two or three (dcm4che `STUDY/SERIES/`, the phantom's `series-000/dicom/`, a copied
/// phantom output `out/series-000/dicom/`); deeper files are rejected with a reason.
pub const MAX_FOLDERS: usize = 4;
/// Folders the scan descends at most, to find (and reject) files below `MAX_FOLDERS`; anything
/// deeper is beyond any router's layout and stays unseen (logged once per scan).
const SCAN_FOLDERS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum DropError {
    #[error("drop folder {path}: {what}: {err}; check that it exists, is a folder and is writable by the daemon")]
    Folder { path: PathBuf, what: &'static str, err: std::io::Error },
    #[error("drop folder {path}: cannot watch it with inotify ({reason}); check fs.inotify.max_user_watches and permissions")]
    Watch { path: PathBuf, reason: String },
    #[error("cannot move {from} to {to}: {err}; the file stays in the drop folder and will be retried")]
    Move { from: PathBuf, to: PathBuf, err: std::io::Error },
}

/// Whether a file name is one the daemon may take (not hidden, not a partial upload).
pub fn is_candidate_name(name: &str) -> bool {
    !(name.starts_with('.') || name.ends_with(".part") || name.ends_with(".tmp") || name.ends_with(".reason.txt"))
}

pub struct DropFolder {
    root: PathBuf,
    rx: Receiver<PathBuf>,
    rescan: Arc<AtomicBool>,
    _watcher: notify::RecommendedWatcher,
    /// Complete files waiting to be handed out, in path order, with the moment each became
    /// complete (its arrival, where the latency budget starts).
    ready: BTreeMap<PathBuf, Instant>,
    /// Arrival of the file `next` handed out last.
    last_arrival: Instant,
    /// Files seen in a scan that may still be being written.
    settling: BTreeSet<PathBuf>,
    /// Handed out and not yet finished: not handed out again.
    in_flight: HashSet<PathBuf>,
    last_scan: Instant,
    /// Files made ready by a close-after-write or rename event (the rest came from rescans).
    ready_by_event: u64,
}

impl DropFolder {
    /// Opens (creating if needed) the drop folder and its `done/` and `rejected/`, starts watching,
    /// and queues the backlog.
    pub fn open(root: &Path) -> Result<Self, DropError> {
        for (p, what) in [
            (root.to_path_buf(), "cannot create"),
            (root.join(DONE), "cannot create done/"),
            (root.join(REJECTED), "cannot create rejected/"),
        ] {
            std::fs::create_dir_all(&p).map_err(|err| DropError::Folder { path: p.clone(), what, err })?;
        }
        let root = root.canonicalize().map_err(|err| DropError::Folder {
            path: root.to_path_buf(),
            what: "cannot resolve",
            err,
        })?;
        let (tx, rx) = sync_channel(EVENT_QUEUE);
        let rescan = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&rescan);
        let owned_done = root.join(DONE);
        let owned_rejected = root.join(REJECTED);
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(ev) = res else {
                flag.store(true, Ordering::Relaxed);
                return;
            };
            if ev.need_rescan() {
                flag.store(true, Ordering::Relaxed);
                return;
            }
            let complete = match ev.kind {
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => ev.paths.first(),
                EventKind::Modify(ModifyKind::Name(RenameMode::To)) => ev.paths.first(),
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => ev.paths.get(1),
                // A new series subfolder: scan it, files written before the watch was added included.
                EventKind::Create(CreateKind::Folder) => {
                    flag.store(true, Ordering::Relaxed);
                    None
                }
                _ => None,
            };
            if let Some(p) = complete {
                if p.starts_with(&owned_done) || p.starts_with(&owned_rejected) {
                    return;
                }
                if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(p.clone()) {
                    flag.store(true, Ordering::Relaxed);
                }
            }
        })
        .map_err(|e| DropError::Watch { path: root.clone(), reason: e.to_string() })?;
        watcher
            .watch(&root, RecursiveMode::Recursive)
            .map_err(|e| DropError::Watch { path: root.clone(), reason: e.to_string() })?;
        Ok(Self {
            root,
            rx,
            rescan,
            _watcher: watcher,
            ready: BTreeMap::new(),
            last_arrival: Instant::now(),
            settling: BTreeSet::new(),
            in_flight: HashSet::new(),
            last_scan: Instant::now(),
            ready_by_event: 0,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How many files were made ready by an inotify event rather than by a rescan.
    pub fn ready_by_event(&self) -> u64 {
        self.ready_by_event
    }

    /// When the file last returned by [`DropFolder::next`] became complete (closed after writing,
    /// renamed in, or settled), on the monotonic clock.
    pub fn last_arrival(&self) -> Instant {
        self.last_arrival
    }

    /// Files known and not yet handed out.
    pub fn pending(&self) -> usize {
        self.ready.len() + self.settling.len()
    }

    /// The series a raster file belongs to: the folder that holds it, as its path under the drop
    /// folder (`series-000/png`, so two series' `png/` folders stay two series), or the drop
    /// folder's own name for files dropped at the top.
    pub fn series_of(&self, path: &Path) -> SeriesId {
        let rel = path.strip_prefix(&self.root).unwrap_or(path);
        match rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(dir) => {
                SeriesId(dir.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/"))
            }
            None => SeriesId(self.root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()),
        }
    }

    /// Why a file handed out by [`DropFolder::next`] must be rejected without being read: it sits
    /// deeper than [`MAX_FOLDERS`] folders below the drop folder. None for a file to analyse.
    pub fn refusal(&self, path: &Path) -> Option<String> {
        let rel = path.strip_prefix(&self.root).ok()?;
        let folders = rel.components().count().saturating_sub(1);
        (folders > MAX_FOLDERS).then(|| {
            format!(
                "{}: {folders} folders below the drop folder, deeper than the {MAX_FOLDERS} taken; \
                 copy the series folder (or its parent) into the drop folder instead",
                rel.display()
            )
        })
    }

    /// The next complete file, waiting at most `timeout`. None when nothing is ready.
    pub fn next(&mut self, timeout: Duration) -> Option<PathBuf> {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain_events();
            if self.rescan.swap(false, Ordering::Relaxed) || self.last_scan.elapsed() >= RESCAN_EVERY {
                self.scan();
            }
            self.promote_settled();
            if let Some((p, arrived)) = self.ready.pop_first() {
                if p.exists() {
                    self.last_arrival = arrived;
                    self.in_flight.insert(p.clone());
                    return Some(p);
                }
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            // Wait for an event, but wake in time to promote settling files.
            let wait = (deadline - now).min(Duration::from_millis(250));
            match self.rx.recv_timeout(wait) {
                Ok(p) => self.offer(p, true),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.rescan.store(true, Ordering::Relaxed),
            }
        }
    }

    fn drain_events(&mut self) {
        while let Ok(p) = self.rx.try_recv() {
            self.offer(p, true);
        }
    }

    fn taken(&self, p: &Path) -> bool {
        let rel = match p.strip_prefix(&self.root) {
            Ok(r) => r,
            Err(_) => return false,
        };
        let depth = rel.components().count();
        if depth == 0 || depth > SCAN_FOLDERS + 1 {
            return false;
        }
        if rel.starts_with(DONE) || rel.starts_with(REJECTED) {
            return false;
        }
        let hidden = rel.components().any(|c| c.as_os_str().to_string_lossy().starts_with('.'));
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        !hidden && is_candidate_name(&name)
    }

    fn offer(&mut self, p: PathBuf, complete: bool) {
        if !self.taken(&p) || self.in_flight.contains(&p) || self.ready.contains_key(&p) {
            return;
        }
        if self.ready.len() + self.settling.len() >= MAX_PENDING {
            // The file stays in the folder; a later rescan finds it.
            return;
        }
        if p.is_dir() {
            self.rescan.store(true, Ordering::Relaxed);
            return;
        }
        if complete {
            self.settling.remove(&p);
            self.ready.insert(p, Instant::now());
            self.ready_by_event += 1;
        } else {
            self.settling.insert(p);
        }
    }

    fn scan(&mut self) {
        self.last_scan = Instant::now();
        let mut stack = vec![(self.root.clone(), 0usize)];
        while let Some((dir, depth)) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                let p = e.path();
                let Ok(ft) = e.file_type() else { continue };
                if ft.is_dir() {
                    if depth < SCAN_FOLDERS && self.taken(&p.join("x")) {
                        stack.push((p, depth + 1));
                    } else if depth >= SCAN_FOLDERS {
                        log::warn!(
                            "{}: more than {SCAN_FOLDERS} folders below the drop folder; not looked into",
                            p.display()
                        );
                    }
                } else if ft.is_file() {
                    self.offer(p, false);
                }
            }
        }
    }

    /// Moves settling files that have not changed for `SETTLE` to ready.
    fn promote_settled(&mut self) {
        let now = SystemTime::now();
        let settled: Vec<PathBuf> = self
            .settling
            .iter()
            .filter(|p| {
                std::fs::metadata(p)
                    .and_then(|m| m.modified())
                    .map(|t| now.duration_since(t).unwrap_or_default() >= SETTLE)
                    .unwrap_or(false)
            })
            .cloned()
            .collect();
        let now = Instant::now();
        for p in settled {
            self.settling.remove(&p);
            self.ready.insert(p, now);
        }
        self.settling.retain(|p| p.exists());
    }

    /// Moves a file whose result is committed to `done/`, keeping its series subfolder.
    pub fn finish_done(&mut self, path: &Path) -> Result<PathBuf, DropError> {
        let to = self.move_under(path, DONE)?;
        self.in_flight.remove(path);
        Ok(to)
    }

    /// Moves a rejected file to `rejected/` and writes `NAME.reason.txt` beside it.
    pub fn finish_rejected(&mut self, path: &Path, reason: &str) -> Result<PathBuf, DropError> {
        let to = self.move_under(path, REJECTED)?;
        let mut note = to.clone().into_os_string();
        note.push(".reason.txt");
        let note = PathBuf::from(note);
        std::fs::write(&note, format!("{reason}\n")).map_err(|err| DropError::Move {
            from: path.to_path_buf(),
            to: note.clone(),
            err,
        })?;
        self.in_flight.remove(path);
        Ok(to)
    }

    /// Gives a file back to be handed out again next (after a FAULT of the daemon's storage).
    pub fn retry(&mut self, path: &Path) {
        self.in_flight.remove(path);
        if path.exists() {
            // It keeps its arrival (it is the file handed out last): the fault's delay counts
            // against its budget.
            self.ready.insert(path.to_path_buf(), self.last_arrival);
        }
    }

    /// Gives a file back (it stays in the folder and is offered again after a rescan).
    pub fn release(&mut self, path: &Path) {
        self.in_flight.remove(path);
    }

    fn move_under(&self, path: &Path, sub: &str) -> Result<PathBuf, DropError> {
        let rel = path.strip_prefix(&self.root).unwrap_or(Path::new(path.file_name().unwrap_or_default()));
        let mut to = self.root.join(sub).join(rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|err| DropError::Move {
                from: path.to_path_buf(),
                to: to.clone(),
                err,
            })?;
        }
        // Never overwrite: the same name dropped twice keeps both files.
        let mut n = 1;
        while to.exists() {
            let name = rel.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            to.set_file_name(format!("{name}.{n}"));
            n += 1;
        }
        std::fs::rename(path, &to).map_err(|err| DropError::Move { from: path.to_path_buf(), to: to.clone(), err })?;
        Ok(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn drain(d: &mut DropFolder, want: usize, limit: Duration) -> Vec<PathBuf> {
        let end = Instant::now() + limit;
        let mut got = Vec::new();
        while got.len() < want && Instant::now() < end {
            if let Some(p) = d.next(Duration::from_millis(200)) {
                got.push(p);
            }
        }
        got
    }

    #[test]
    fn closed_and_renamed_files_are_taken_partial_and_hidden_ones_are_not() {
        let t = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(t.path().join("series-a")).expect("mkdir");
        let mut d = DropFolder::open(t.path()).expect("open");
        let root = d.root().to_path_buf();
        // Written and closed.
        std::fs::write(root.join("series-a/slice-0001.png"), b"one").expect("write");
        // Written under a temporary name, then renamed in.
        std::fs::write(root.join("series-a/slice-0002.png.part"), b"two").expect("write");
        std::fs::rename(root.join("series-a/slice-0002.png.part"), root.join("series-a/slice-0002.png"))
            .expect("rename");
        // Ignored names.
        std::fs::write(root.join(".hidden.dcm"), b"x").expect("write");
        std::fs::write(root.join("upload.tmp"), b"x").expect("write");
        // Still open for writing: must not be taken until closed.
        let mut open = std::fs::File::create(root.join("series-a/slice-0003.png")).expect("create");
        open.write_all(b"partial").expect("write");
        let got = drain(&mut d, 2, Duration::from_secs(5));
        assert_eq!(d.ready_by_event(), 2, "taken on their close/rename events, not by a rescan");
        let names: Vec<String> =
            got.iter().map(|p| p.strip_prefix(&root).expect("under root").display().to_string()).collect();
        assert_eq!(names, vec!["series-a/slice-0001.png", "series-a/slice-0002.png"]);
        assert_eq!(d.series_of(&got[0]), SeriesId("series-a".into()));
        assert!(d.next(Duration::from_millis(300)).is_none(), "the open file is not complete yet");
        drop(open);
        let got = drain(&mut d, 1, Duration::from_secs(5));
        assert_eq!(got, vec![root.join("series-a/slice-0003.png")]);
        assert!(d.next(SETTLE + Duration::from_millis(500)).is_none(), "hidden and temporary files are never taken");
        // A series folder created after start: its files are found (by event or rescan).
        std::fs::create_dir_all(root.join("series-b")).expect("mkdir");
        std::fs::write(root.join("series-b/x.dcm"), b"x").expect("write");
        let got = drain(&mut d, 1, SETTLE * 3);
        assert_eq!(got, vec![root.join("series-b/x.dcm")]);
    }

    #[test]
    fn backlog_is_taken_at_start_and_finished_files_leave_the_folder() {
        let t = tempfile::tempdir().expect("tempdir");
        for i in 0..5 {
            std::fs::write(t.path().join(format!("b{i}.dcm")), [i as u8]).expect("write");
        }
        let mut d = DropFolder::open(t.path()).expect("open");
        let root = d.root().to_path_buf();
        let got = drain(&mut d, 5, SETTLE * 3);
        assert_eq!(got.len(), 5, "backlog taken once settled");
        let done = d.finish_done(&got[0]).expect("done");
        assert_eq!(done, root.join("done/b0.dcm"));
        let rej = d.finish_rejected(&got[1], "not an image").expect("rejected");
        assert_eq!(rej, root.join("rejected/b1.dcm"));
        assert_eq!(std::fs::read_to_string(root.join("rejected/b1.dcm.reason.txt")).expect("reason"), "not an image\n");
        // Same name again: kept beside, not overwritten.
        std::fs::write(root.join("b0.dcm"), b"again").expect("write");
        let again = drain(&mut d, 1, Duration::from_secs(5));
        let second = d.finish_done(&again[0]).expect("done");
        assert_eq!(second, root.join("done/b0.dcm.1"));
        assert_eq!(std::fs::read(root.join("done/b0.dcm")).expect("first"), vec![0u8]);
        // Nothing in done/ or rejected/ is offered again.
        assert!(d.next(Duration::from_millis(300)).is_none());
    }

    #[test]
    fn router_trees_are_taken_to_the_limit_and_deeper_files_are_refused_with_a_reason() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path().canonicalize().expect("canonical");
        let top = root.file_name().expect("name").to_string_lossy().into_owned();
        // Written before start (the backlog, found by a scan) ...
        let layouts = [
            "top.dcm",                          // at the top
            "series-000/dicom/slice-001.dcm",   // the phantom's own output
            "1.2.3/1.2.3.4/1.2.3.4.5.dcm",      // dcm4che {study}/{series}/{sop}.dcm
            "out/series-001/png/slice-001.png", // a copied phantom output folder
            "a/b/c/d/four-folders.dcm",         // at the limit
            "a/b/c/d/e/five-folders.dcm",       // one deeper: refused
        ];
        for rel in layouts {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, rel).expect("write");
        }
        let mut d = DropFolder::open(&root).expect("open");
        let mut got = drain(&mut d, layouts.len(), SETTLE * 3);
        // ... and written while watched (taken on their events, deep ones too).
        for rel in ["x/y/z/live.dcm", "x/y/z/w/v/live-deep.dcm"] {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, rel).expect("write");
        }
        got.extend(drain(&mut d, 2, SETTLE * 3));
        got.sort();
        let mut want: Vec<PathBuf> =
            layouts.iter().chain(&["x/y/z/live.dcm", "x/y/z/w/v/live-deep.dcm"]).map(|r| root.join(r)).collect();
        want.sort();
        assert_eq!(got, want, "every file at every depth is handed out, none left silently");
        let refused: Vec<&Path> = got.iter().filter(|p| d.refusal(p).is_some()).map(|p| p.as_path()).collect();
        assert_eq!(refused, vec![root.join("a/b/c/d/e/five-folders.dcm"), root.join("x/y/z/w/v/live-deep.dcm")]);
        let reason = d.refusal(&root.join("a/b/c/d/e/five-folders.dcm")).expect("refused");
        assert!(reason.contains("5 folders below the drop folder, deeper than the 4 taken"), "{reason}");
        // Raster series: the folder holding the file, as its path (two series' png/ stay two).
        assert_eq!(d.series_of(&root.join("out/series-001/png/slice-001.png")), SeriesId("out/series-001/png".into()));
        assert_eq!(d.series_of(&root.join("series-000/png/slice-001.png")), SeriesId("series-000/png".into()));
        assert_eq!(d.series_of(&root.join("top.png")), SeriesId(top));
        // A refused file goes to rejected/ with its reason, keeping its path.
        let deep = root.join("a/b/c/d/e/five-folders.dcm");
        let to = d.finish_rejected(&deep, &reason).expect("rejected");
        assert_eq!(to, root.join("rejected/a/b/c/d/e/five-folders.dcm"));
        assert!(!deep.exists());
        assert!(d.next(Duration::from_millis(300)).is_none(), "rejected/ is not offered again");
    }
}
