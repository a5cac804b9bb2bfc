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
