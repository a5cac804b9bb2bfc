//! File decoders: DICOM (`dicom`) to Hounsfield units, PNG/JPEG (`raster`) to display gray. Each returns typed errors that name the
//! file and what was wrong; nothing here panics on a file's content. Reads only the given file.

pub mod dicom;
pub mod dicom_lengths;
pub mod raster;

/// Largest image accepted (pixels per frame): a declared 60000x60000 image is refused before any
/// pixel memory is allocated.
pub const MAX_PIXELS_PER_FRAME: u64 = 8192 * 8192;
/// Largest number of frames accepted from one file.
pub const MAX_FRAMES: u64 = 4096;

/// Decodes a file already read into memory, as the daemon and `bench` take it: DICOM (CT only)
/// when it carries the Part 10 preamble or ends in `.dcm`, else PNG/JPEG in series `raster_series`.
/// The error is the decoder's message, naming the file.
pub fn decode_any_bytes(
    bytes: &[u8],
    path: &std::path::Path,
    raster_series: crate::slice::SeriesId,
) -> Result<Vec<crate::slice::Slice>, String> {
    let is_dicom = bytes.len() >= 132 && &bytes[128..132] == b"DICM"
        || path.extension().is_some_and(|e| e.eq_ignore_ascii_case("dcm"));
    if is_dicom {
        dicom::decode_bytes(bytes, path, dicom::Accept::CtOnly).map_err(|e| e.to_string())
    } else {
        raster::decode_bytes(bytes, path, raster_series).map(|s| vec![s]).map_err(|e| e.to_string())
    }
}

/// Files at least this large are hashed on a second thread (below it a thread costs more than it saves).
const PARALLEL_HASH_BYTES: usize = 64 * 1024;

/// The sha256 of `bytes`, computed on a second core while `decode` runs on this one; returns both.
/// The daemon needs the digest (journal key, duplicate check) and the decoded slices of every file,
/// and both lie on the path from arrival to verdict, while the engines' threads are idle (their
/// spinning stops when a run returns). Measured on the 2-core development VM for a 512x512 CT
/// file: the decode stage (read, sha256, DICOM) 0.9 -> 0.5-0.7 ms (p50 over runs). Small files, or a thread the
/// system refuses, are hashed here after `decode`.
pub fn hash_while<T>(bytes: &[u8], decode: impl FnOnce() -> T) -> ([u8; 32], T) {
    use sha2::{Digest, Sha256};
    let hash = || -> [u8; 32] { Sha256::digest(bytes).into() };
    if bytes.len() < PARALLEL_HASH_BYTES {
        let t = decode();
        return (hash(), t);
    }
    std::thread::scope(|s| {
        let hasher = std::thread::Builder::new().name("pe-sha256".into()).spawn_scoped(s, hash);
        let t = decode();
        // Joining fails only if the hashing thread panicked, which sha2 does not: hash here then.
        let sha = hasher.ok().and_then(|h| h.join().ok()).unwrap_or_else(hash);
        (sha, t)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn hash_while_gives_the_digest_of_the_bytes_for_small_and_large_inputs() {
        for n in [0usize, 10, PARALLEL_HASH_BYTES - 1, PARALLEL_HASH_BYTES, 3 * PARALLEL_HASH_BYTES + 7] {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
            let (sha, len) = hash_while(&bytes, || bytes.len());
            let want: [u8; 32] = Sha256::digest(&bytes).into();
            assert_eq!(sha, want, "{n} bytes");
            assert_eq!(len, n);
        }
    }
}
