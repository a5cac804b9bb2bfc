//! Source intake: one complete file from the drop folder into memory, refusing unread what no
//! CT slice can be (empty, or over [`MAX_FILE_BYTES`]); and the identity of a capture-card slice.
//! Reads the file it is given; writes nothing.

use crate::failure::{RejectCode, Rejection};
use crate::slice::{Pixels, Slice};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

/// Files larger than this are rejected unread (a CT slice is well under 100 MB even multi-frame).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// What reading a dropped file gave.
pub enum Intake {
    /// The file's bytes, read once (decode and sha256 both use them).
    Bytes(Arc<Vec<u8>>),
    /// Not worth reading: reject it with this reason.
    Reject(Rejection),
    /// Gone (moved away by someone else) or not readable now: give it back to the folder.
    Skip,
}

/// Reads `path` whole, after checking its size.
pub fn read(path: &Path) -> Intake {
    match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_FILE_BYTES => Intake::Reject(Rejection::new(
            RejectCode::FileTooLarge,
            format!("{}: {} bytes, larger than the {} byte limit", path.display(), m.len(), MAX_FILE_BYTES),
        )),
        Ok(m) if m.len() == 0 => {
            Intake::Reject(Rejection::new(RejectCode::EmptyFile, format!("{}: empty file (0 bytes)", path.display())))
        }
        Ok(_) => match std::fs::read(path) {
            Ok(b) => Intake::Bytes(Arc::new(b)),
            Err(e) => {
                log::warn!("cannot read {}: {e}; will retry", path.display());
                Intake::Skip
            }
        },
        Err(_) => Intake::Skip,
    }
}

/// A capture-card slice's name and content key: the sha256 of its pixels, so a slice seen before
/// a restart is not analysed twice.
pub fn capture_identity(slice: &Slice) -> (String, [u8; 32]) {
    let name = format!("{}-{:04}", slice.series.0, slice.order);
    let sha: [u8; 32] = match &slice.pixels {
        Pixels::Gray8(v) => Sha256::digest(v).into(),
        _ => Sha256::digest(name.as_bytes()).into(),
    };
    (name, sha)
}
