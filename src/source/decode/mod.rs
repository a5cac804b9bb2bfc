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
