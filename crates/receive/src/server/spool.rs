//! The spool: how a received instance becomes a file in the analyser's drop folder. Each instance
//! is streamed into a temporary file in `DROP/.receiving/` (same file system, a hidden folder the
//! analyser never looks into), its header is checked ([`super::header`]), it is fsynced and renamed into the drop
//! folder as `SOPInstanceUID.dcm` (never replacing a file there), and the folder is fsynced; only
//! then may the C-STORE response say success. A temporary file that is not committed (aborted
//! association, failed check, full disk) is removed when dropped. Touches only the drop folder.

use super::sys;
use dicom_object::meta::FileMetaTableBuilder;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The hidden folder inside the drop folder holding instances being received.
pub const RECEIVING: &str = ".receiving";
/// Our implementation class UID (under the UUID-derived root 2.25) and version name.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.203471928318164217360581862917049921";
pub const IMPLEMENTATION_VERSION: &str = "PE_SENTINEL_01";
/// Temporary-file buffer: large enough that a 512x512 slice is a handful of writes.
const WRITE_BUFFER: usize = 256 * 1024;

/// Why an instance was not stored; each maps to a C-STORE status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreFailure {
    /// Disk over the limit, instance too large, or a write failure: 0xA700.
    OutOfResources(String),
    /// The data set does not parse as DICOM, or does not say what the command said: 0xC000 class.
    CannotUnderstand(String),
    /// The data set's SOP class is not the one the command named: 0xA900.
    DoesNotMatchSopClass(String),
}

impl StoreFailure {
    pub fn status(&self) -> u16 {
        match self {
            StoreFailure::OutOfResources(_) => 0xA700,
            StoreFailure::CannotUnderstand(_) => 0xC000,
            StoreFailure::DoesNotMatchSopClass(_) => 0xA900,
        }
    }
    pub fn reason(&self) -> &str {
        match self {
            StoreFailure::OutOfResources(s)
            | StoreFailure::CannotUnderstand(s)
            | StoreFailure::DoesNotMatchSopClass(s) => s,
        }
    }
}

pub struct Spool {
    drop_dir: PathBuf,
    receiving: PathBuf,
    min_free_bytes: u64,
    max_instance_bytes: u64,
    counter: AtomicU64,
}

/// What the command said about the instance that follows.
pub struct InstanceMeta<'a> {
    pub sop_class_uid: &'a str,
    pub sop_instance_uid: &'a str,
    pub transfer_syntax_uid: &'a str,
    pub calling_ae: &'a str,
}

impl Spool {
    /// Opens the spool on `drop_dir` (created if missing) and removes temporary files left by a
    /// receiver that was killed mid-instance (only one receiver serves a drop folder).
    pub fn open(drop_dir: &Path, min_free_bytes: u64, max_instance_bytes: u64) -> Result<Self, String> {
        let receiving = drop_dir.join(RECEIVING);
        std::fs::create_dir_all(&receiving).map_err(|e| {
            format!(
                "cannot create {}: {e}; the drop folder must exist and be writable by the receiver \
                 (group pe-sentinel, mode 2770)",
                receiving.display()
            )
        })?;
        let mut stale = 0;
        if let Ok(rd) = std::fs::read_dir(&receiving) {
            for e in rd.flatten() {
                if std::fs::remove_file(e.path()).is_ok() {
                    stale += 1;
                }
            }
        }
        if stale > 0 {
            log::warn!("removed {stale} partial instance(s) left in {} by an earlier run", receiving.display());
        }
        Ok(Spool {
            drop_dir: drop_dir.to_path_buf(),
            receiving,
            min_free_bytes,
            max_instance_bytes,
            counter: AtomicU64::new(0),
        })
    }

    pub fn drop_dir(&self) -> &Path {
        &self.drop_dir
    }

    /// Starts an instance: checks the free space, creates the temporary file and writes the
    /// preamble and file meta information.
    pub fn begin(&self, meta: &InstanceMeta) -> Result<Incoming, StoreFailure> {
        let free = sys::free_bytes(&self.receiving).map_err(|e| {
            StoreFailure::OutOfResources(format!("cannot read free space of {}: {e}", self.receiving.display()))
        })?;
        if free < self.min_free_bytes {
            return Err(StoreFailure::OutOfResources(format!(
                "{} has {} MB free, below the {} MB kept free ([dicom] min_free_mb)",
                self.drop_dir.display(),
                free / 1_000_000,
                self.min_free_bytes / 1_000_000
            )));
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.receiving.join(format!("{}-{n}.part", std::process::id()));
        let file = File::create(&tmp)
            .map_err(|e| StoreFailure::OutOfResources(format!("cannot create {}: {e}", tmp.display())))?;
        let mut inc = Incoming {
            out: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
            tmp,
            data_start: 0,
            bytes: 0,
            max: self.max_instance_bytes,
            failure: None,
            committed: false,
        };
        let table = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(meta.sop_class_uid)
            .media_storage_sop_instance_uid(meta.sop_instance_uid)
            .transfer_syntax(meta.transfer_syntax_uid)
            .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
            .implementation_version_name(IMPLEMENTATION_VERSION)
            .source_application_entity_title(meta.calling_ae)
            .build()
            .map_err(|e| StoreFailure::CannotUnderstand(format!("file meta information: {e}")))?;
        let mut head = Vec::with_capacity(512);
        head.extend_from_slice(&[0u8; 128]);
        head.extend_from_slice(b"DICM");
        table.write(&mut head).map_err(|e| StoreFailure::CannotUnderstand(format!("file meta information: {e}")))?;
        inc.write_raw(&head);
        inc.data_start = head.len() as u64;
        match inc.failure.take() {
            Some(f) => Err(f),
            None => Ok(inc),
        }
    }

    /// Makes an instance durable and visible: flush, check its header against the command, fsync,
    /// rename into the drop folder (a free name beside an existing one), fsync the folder.
    pub fn commit(&self, mut inc: Incoming, meta: &InstanceMeta) -> Result<PathBuf, StoreFailure> {
        if let Some(f) = inc.failure.take() {
            return Err(f);
        }
        let Some(out) = inc.out.take() else {
            return Err(StoreFailure::OutOfResources("instance already closed".into()));
        };
        let file = out
            .into_inner()
            .map_err(|e| StoreFailure::OutOfResources(format!("cannot write {}: {}", inc.tmp.display(), e.error())))?;
        super::header::check(&inc.tmp, inc.data_start, meta, self.max_instance_bytes)?;
        file.sync_all()
            .map_err(|e| StoreFailure::OutOfResources(format!("cannot fsync {}: {e}", inc.tmp.display())))?;
        drop(file);
        let stem = file_stem(meta.sop_instance_uid);
        let mut n = 0u32;
        let to = loop {
            let name = if n == 0 { format!("{stem}.dcm") } else { format!("{stem}.{n}.dcm") };
            let to = self.drop_dir.join(name);
            match sys::rename_noreplace(&inc.tmp, &to) {
                Ok(()) => break to,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => {
                    return Err(StoreFailure::OutOfResources(format!(
                        "cannot rename {} to {}: {e}",
                        inc.tmp.display(),
                        to.display()
                    )))
                }
            }
        };
        inc.committed = true;
        File::open(&self.drop_dir).and_then(|d| d.sync_all()).map_err(|e| {
            StoreFailure::OutOfResources(format!("cannot fsync folder {}: {e}", self.drop_dir.display()))
        })?;
        Ok(to)
    }
}

/// A file name from a UID: digits and dots are kept, anything else becomes `_` (a UID from the
/// network must not make a path), at most 64 characters.
fn file_stem(uid: &str) -> String {
    let s: String = uid
        .trim_end_matches(['\0', ' '])
        .chars()
        .take(64)
        .map(|c| if c.is_ascii_digit() || c == '.' { c } else { '_' })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("instance{s}")
    } else {
        s
    }
}

/// An instance being received into its temporary file. Dropped uncommitted, the file is removed.
pub struct Incoming {
    out: Option<BufWriter<File>>,
    tmp: PathBuf,
    /// Where the data set starts in the file (after the preamble and file meta information).
    data_start: u64,
    bytes: u64,
    max: u64,
    /// The first failure; later data is discarded and the response carries it.
    failure: Option<StoreFailure>,
    committed: bool,
}

impl Incoming {
    /// Appends data set bytes. A failure is remembered (the rest of the instance is still read
    /// off the wire and discarded) and reported by [`Spool::commit`].
    pub fn write(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        if self.failure.is_none() && self.bytes > self.max {
            self.failure = Some(StoreFailure::OutOfResources(format!(
                "the instance is larger than {} MB ([dicom] max_instance_mb)",
                self.max / 1_000_000
            )));
            self.out = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
        self.write_raw(data);
    }

    fn write_raw(&mut self, data: &[u8]) {
        if self.failure.is_some() {
            return;
        }
        if let Some(out) = self.out.as_mut() {
            if let Err(e) = out.write_all(data) {
                self.failure = Some(StoreFailure::OutOfResources(format!("cannot write {}: {e}", self.tmp.display())));
                // Free the space at once (a full disk), not when the instance ends.
                self.out = None;
                let _ = std::fs::remove_file(&self.tmp);
            }
        }
    }

    /// Data set bytes received so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if !self.committed {
            self.out = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_file_names_cannot_escape_the_folder() {
        assert_eq!(file_stem("1.2.840.5\0"), "1.2.840.5");
        assert_eq!(file_stem("../../etc/passwd"), "instance.._..___________");
        assert_eq!(file_stem(""), "instance");
        assert_eq!(file_stem(&"1".repeat(100)).len(), 64);
    }
}
