//! File decoders: DICOM (`dicom`) to Hounsfield units, PNG/JPEG (`raster`) to display gray. Each returns typed errors that name the
//! file and what was wrong; nothing here panics on a file's content. Reads only the given file.

mod codestream;
pub mod dicom;
pub mod dicom_lengths;
pub mod order;
pub mod raster;

/// Largest image accepted (pixels per frame): a declared 60000x60000 image is refused before any
/// pixel memory is allocated.
pub const MAX_PIXELS_PER_FRAME: u64 = 8192 * 8192;
/// Largest number of frames accepted from one file.
pub const MAX_FRAMES: u64 = 4096;

/// Why a file cannot be decoded: the decoder's own error, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Dicom(#[from] dicom::DicomError),
    #[error(transparent)]
    Raster(#[from] raster::RasterError),
}

impl DecodeError {
    /// The journal's reason code. Every decode error is the input's own: reject, do not retry
    /// (a file that cannot be read at all is not decoded: the daemon retries the read).
    pub fn code(&self) -> crate::failure::RejectCode {
        use crate::failure::RejectCode as C;
        use dicom::DicomError as D;
        use raster::RasterError as R;
        match self {
            DecodeError::Dicom(D::Open { .. }) => C::Unreadable,
            DecodeError::Dicom(D::Attribute { .. }) => C::MissingAttribute,
            DecodeError::Dicom(D::Unsupported { .. }) => C::Unsupported,
            DecodeError::Dicom(D::TooLarge { .. }) => C::ImageTooLarge,
            DecodeError::Dicom(D::NotCt { .. }) => C::NotCt,
            DecodeError::Dicom(D::Pixels { .. }) => C::DamagedPixels,
            DecodeError::Raster(R::Read { .. } | R::Format { .. }) => C::Unreadable,
            DecodeError::Raster(R::TooLarge { .. }) => C::ImageTooLarge,
            DecodeError::Raster(R::Decode { .. }) => C::DamagedPixels,
            DecodeError::Raster(R::TooSmall { .. }) => C::ImageTooSmall,
        }
    }

    pub fn rejection(&self) -> crate::failure::Rejection {
        crate::failure::Rejection::new(self.code(), self.to_string())
    }
}

/// Whether a file is DICOM: the Part 10 preamble, or a `.dcm` name.
pub fn is_dicom(head: &[u8], path: &std::path::Path) -> bool {
    head.len() >= 132 && &head[128..132] == b"DICM" || path.extension().is_some_and(|e| e.eq_ignore_ascii_case("dcm"))
}

/// Decodes a file already read into memory, as the daemon and `bench` take it: DICOM (CT only)
/// when it carries the Part 10 preamble or ends in `.dcm`, else PNG/JPEG in series `raster_series`.
pub fn decode_any_bytes(
    bytes: &[u8],
    path: &std::path::Path,
    raster_series: crate::slice::SeriesId,
) -> Result<Vec<crate::slice::Slice>, DecodeError> {
    if is_dicom(bytes, path) {
        Ok(dicom::decode_bytes(bytes, path, dicom::Accept::CtOnly)?)
    } else {
        Ok(raster::decode_bytes(bytes, path, raster_series).map(|s| vec![s])?)
    }
}

/// Files at least this large are hashed on a second thread (below it a thread costs more than it saves).
const PARALLEL_HASH_BYTES: usize = 64 * 1024;

/// The sha256 of the files the pipeline decodes, computed on a second core while `decode` runs
/// on the caller's: the daemon needs the digest (journal key, duplicate check) and the decoded
/// slices of every file, and both lie on the path from arrival to verdict, while the engines'
/// threads are idle (their spinning stops when a run returns).
///
/// The hashing thread is started at the first large file and kept: a thread per file cost the
/// caller ~60 us to start and began hashing ~120 us later (2-core development VM, 512x512 CT
/// file). One file at a time: a job channel of one, and each call waits for its digest before it
/// returns, so nothing queues. Small files, or a thread the system refuses (or one that has
/// gone), are hashed on the caller's thread after `decode`; a refused thread is not asked for again.
#[derive(Debug, Default)]
pub struct Hasher {
    worker: Option<HashWorker>,
    refused: bool,
    /// Number of the last job sent: each digest comes back with its job's number, so that a
    /// digest left over by a call that never collected it (its `decode` panicked) is skipped,
    /// not taken for the next file's.
    job: u64,
}

#[derive(Debug)]
struct HashWorker {
    jobs: std::sync::mpsc::SyncSender<(u64, std::sync::Arc<Vec<u8>>)>,
    digests: std::sync::mpsc::Receiver<(u64, [u8; 32])>,
}

impl Hasher {
    /// The sha256 of `bytes` and what `decode` returns, the two computed at the same time.
    pub fn hash_while<T>(&mut self, bytes: &std::sync::Arc<Vec<u8>>, decode: impl FnOnce() -> T) -> ([u8; 32], T) {
        use sha2::{Digest, Sha256};
        let hash = || -> [u8; 32] { Sha256::digest(bytes.as_slice()).into() };
        if bytes.len() < PARALLEL_HASH_BYTES {
            let t = decode();
            return (hash(), t);
        }
        self.job = self.job.wrapping_add(1);
        let job = self.job;
        let sent = self.worker().is_some_and(|w| w.jobs.send((job, std::sync::Arc::clone(bytes))).is_ok());
        let t = decode();
        // At most one digest can be left over (channels of one), so two receives find this job's.
        let digest = match (sent, &self.worker) {
            (true, Some(w)) => (0..2).find_map(|_| w.digests.recv().ok().filter(|(n, _)| *n == job)).map(|(_, d)| d),
            _ => None,
        };
        match digest {
            Some(d) => (d, t),
            None => {
                // The thread has gone (sha2 does not panic, so this should not happen): hash here,
                // from now on.
                self.worker = None;
                self.refused = true;
                (hash(), t)
            }
        }
    }

    fn worker(&mut self) -> Option<&HashWorker> {
        if self.worker.is_none() && !self.refused {
            use sha2::{Digest, Sha256};
            let (jobs, job_rx) = std::sync::mpsc::sync_channel::<(u64, std::sync::Arc<Vec<u8>>)>(1);
            let (digest_tx, digests) = std::sync::mpsc::sync_channel(1);
            let spawned = std::thread::Builder::new().name("pe-sha256".into()).spawn(move || {
                // Ends when the Hasher (the job sender) is dropped.
                for (n, bytes) in job_rx {
                    let d: [u8; 32] = Sha256::digest(bytes.as_slice()).into();
                    drop(bytes);
                    if digest_tx.send((n, d)).is_err() {
                        break;
                    }
                }
            });
            match spawned {
                Ok(_) => self.worker = Some(HashWorker { jobs, digests }),
                Err(e) => {
                    log::warn!("cannot start the hashing thread ({e}); hashing files after decoding them");
                    self.refused = true;
                }
            }
        }
        self.worker.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn a_panicking_decode_does_not_hand_its_digest_to_the_next_file() {
        let mut hasher = Hasher::default();
        let a = std::sync::Arc::new(vec![1u8; 3 * PARALLEL_HASH_BYTES]);
        let b = std::sync::Arc::new(vec![2u8; 3 * PARALLEL_HASH_BYTES]);
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            hasher.hash_while(&a, || -> usize { panic!("a decoder bug") })
        }));
        assert!(unwound.is_err());
        for bytes in [&b, &a, &b] {
            let (sha, _) = hasher.hash_while(bytes, || 0);
            let want: [u8; 32] = Sha256::digest(bytes.as_slice()).into();
            assert_eq!(sha, want);
        }
    }

    #[test]
    fn hash_while_gives_the_digest_of_the_bytes_for_small_and_large_inputs() {
        let mut hasher = Hasher::default();
        for n in
            [0usize, 10, PARALLEL_HASH_BYTES - 1, PARALLEL_HASH_BYTES, 3 * PARALLEL_HASH_BYTES + 7, PARALLEL_HASH_BYTES]
        {
            let bytes = std::sync::Arc::new((0..n).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>());
            let (sha, len) = hasher.hash_while(&bytes, || bytes.len());
            let want: [u8; 32] = Sha256::digest(bytes.as_slice()).into();
            assert_eq!(sha, want, "{n} bytes");
            assert_eq!(len, n);
        }
    }
}
