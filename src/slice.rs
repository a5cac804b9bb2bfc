//! `Slice`: one CT image on its way through the pipeline — its pixels (Hounsfield units from
//! DICOM, or display gray from PNG/JPEG), geometry, and series/instance identity. The one type
//! every stage hands on. Pure data; touches nothing.

use std::path::PathBuf;

/// Pixel values of a slice, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum Pixels {
    /// Hounsfield units (DICOM CT after RescaleSlope/RescaleIntercept).
    Hu(Vec<f32>),
    /// 8-bit display gray as shown on a console (PNG/JPEG).
    Gray8(Vec<u8>),
    /// 16-bit display gray (16-bit PNG, or DICOM without a modality rescale).
    Gray16(Vec<u16>),
}

impl Pixels {
    pub fn len(&self) -> usize {
        match self {
            Pixels::Hu(v) => v.len(),
            Pixels::Gray8(v) => v.len(),
            Pixels::Gray16(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Display gray 0..=255 of pixel `i` (HU are not windowed here: this is for tests and tools).
    pub fn gray(&self, i: usize) -> f32 {
        match self {
            Pixels::Hu(v) => v[i],
            Pixels::Gray8(v) => f32::from(v[i]),
            Pixels::Gray16(v) => f32::from(v[i]) / 257.0,
        }
    }
}

/// Identity of the series a slice belongs to: SeriesInstanceUID for DICOM, the subfolder for
/// raster files.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesId(pub String);

#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    pub source: PathBuf,
    /// Frame index within the source file (multi-frame DICOM), else 0.
    pub frame: u32,
    pub width: u32,
    pub height: u32,
    pub pixels: Pixels,
    pub series: SeriesId,
    /// InstanceNumber as the file gives it (for a multi-frame file: the file's, shared by its frames).
    pub instance: Option<i32>,
    /// This slice's place in its series, computed once at decode (`source::decode::order`): the
    /// series rule's "adjacent" and the journal's `instance` column. Every stage uses this one.
    pub order: i32,
    /// ImagePositionPatient z (mm), when known (a multi-frame file's: this frame's).
    pub position_z: Option<f64>,
}
