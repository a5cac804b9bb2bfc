//! `Slice`: one CT image on its way through the pipeline — its pixels (Hounsfield units from
//! DICOM, or display gray from PNG/JPEG), geometry, and series/instance identity. The one type
//! every stage hands on. Pure data; touches nothing.

use std::path::PathBuf;

/// Pixel values of a slice, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum Pixels {
    /// Hounsfield units (DICOM CT after RescaleSlope/RescaleIntercept).
    Hu(Vec<f32>),
    /// Display gray 0..=255 as shown on a console (PNG/JPEG, or DICOM without a rescale to HU).
    Gray(Vec<f32>),
}

impl Pixels {
    pub fn values(&self) -> &[f32] {
        match self {
            Pixels::Hu(v) | Pixels::Gray(v) => v,
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
    pub instance: Option<i32>,
    /// ImagePositionPatient z (mm), when known.
    pub position_z: Option<f64>,
}
