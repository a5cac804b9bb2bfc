//! The DICOM header attributes that decide whether a slice is what the models are meant for,
//! read without the pixel data: dicom-rs parses up to (not into) Pixel Data, so an ineligible
//! slice costs a header parse, not a decode. Enhanced CT keeps orientation and thickness in the
//! shared (else the first per-frame) functional groups; they are looked up there when the top
//! level lacks them. Touches nothing but the bytes given.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemDicomObject;
use dicom_object::DefaultDicomObject;
use std::path::Path;

/// Manufacturer (0008,0070) the phantom writes: series carrying it are synthetic, not patients.
pub const PHANTOM_MANUFACTURER: &str = "pe-sentinel phantom (synthetic)";

/// What the eligibility rules look at. `None`: the attribute is absent or empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SliceHeader {
    pub sop_class_uid: Option<String>,
    pub modality: Option<String>,
    /// ImageType values, upper case (ORIGINAL, PRIMARY, AXIAL, ...).
    pub image_type: Vec<String>,
    /// ImageOrientationPatient: row then column direction cosines.
    pub orientation: Option<[f64; 6]>,
    pub slice_thickness_mm: Option<f64>,
    pub contrast_agent: Option<String>,
    pub contrast_route: Option<String>,
    /// PixelSpacing (row spacing, column spacing), mm.
    pub pixel_spacing_mm: Option<[f64; 2]>,
    pub rows: Option<u32>,
    pub columns: Option<u32>,
    pub body_part: Option<String>,
    pub manufacturer: Option<String>,
    pub protocol_name: Option<String>,
    pub series_description: Option<String>,
    pub series_uid: Option<String>,
}

impl SliceHeader {
    /// Written by this project's phantom (its own Manufacturer): not a patient.
    pub fn is_phantom(&self) -> bool {
        self.manufacturer.as_deref() == Some(PHANTOM_MANUFACTURER)
    }
}

fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_matches(|c: char| c == '\0' || c.is_whitespace()).to_string())
        .filter(|s| !s.is_empty())
}

fn floats(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    obj.get(tag).and_then(|e| e.to_multi_float64().ok()).filter(|v| !v.is_empty() && v.iter().all(|x| x.is_finite()))
}

/// The first item of sequence `seq` in `obj`.
fn item(obj: &InMemDicomObject, seq: Tag) -> Option<&InMemDicomObject> {
    obj.get(seq).and_then(|e| e.items()).and_then(|i| i.first())
}

/// `tag` inside functional group `group` (shared, else the first frame's): Enhanced CT.
fn in_groups<T>(obj: &InMemDicomObject, group: Tag, get: impl Fn(&InMemDicomObject) -> Option<T>) -> Option<T> {
    [tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE]
        .into_iter()
        .find_map(|fg| item(obj, fg).and_then(|f| item(f, group)).and_then(&get))
}

/// Reads the header of a DICOM Part 10 file held in memory, stopping before its pixel data.
/// The error names the file and why it cannot be read (the decoder then rejects it the same way).
pub fn read(bytes: &[u8], path: &Path) -> Result<SliceHeader, String> {
    crate::source::decode::dicom_lengths::check_header(bytes)
        .map_err(|r| format!("{}: not a readable DICOM file ({r})", path.display()))?;
    let obj: DefaultDicomObject = dicom_object::OpenFileOptions::new()
        .read_preamble(dicom_object::file::ReadPreamble::Auto)
        .read_until(tags::PIXEL_DATA)
        .from_reader(bytes)
        .map_err(|e| format!("{}: not a readable DICOM file ({e})", path.display()))?;
    let meta_class = obj.meta().media_storage_sop_class_uid().trim_end_matches(['\0', ' ']).to_string();
    let o: &InMemDicomObject = &obj;
    let orientation = floats(o, tags::IMAGE_ORIENTATION_PATIENT)
        .or_else(|| in_groups(o, tags::PLANE_ORIENTATION_SEQUENCE, |i| floats(i, tags::IMAGE_ORIENTATION_PATIENT)))
        .and_then(|v| <[f64; 6]>::try_from(v.as_slice()).ok());
    let thickness = floats(o, tags::SLICE_THICKNESS)
        .or_else(|| in_groups(o, tags::PIXEL_MEASURES_SEQUENCE, |i| floats(i, tags::SLICE_THICKNESS)))
        .and_then(|v| v.first().copied());
    let spacing = floats(o, tags::PIXEL_SPACING)
        .or_else(|| in_groups(o, tags::PIXEL_MEASURES_SEQUENCE, |i| floats(i, tags::PIXEL_SPACING)))
        .and_then(|v| <[f64; 2]>::try_from(v.as_slice()).ok());
    let image_type = text(o, tags::IMAGE_TYPE)
        .map(|s| s.split('\\').map(|v| v.trim().to_ascii_uppercase()).filter(|v| !v.is_empty()).collect())
        .unwrap_or_default();
    let dim = |tag| o.get(tag).and_then(|e| e.to_int::<u32>().ok());
    Ok(SliceHeader {
        sop_class_uid: text(o, tags::SOP_CLASS_UID).or(Some(meta_class).filter(|s| !s.is_empty())),
        modality: text(o, tags::MODALITY),
        image_type,
        orientation,
        slice_thickness_mm: thickness,
        contrast_agent: text(o, tags::CONTRAST_BOLUS_AGENT),
        contrast_route: text(o, tags::CONTRAST_BOLUS_ROUTE),
        pixel_spacing_mm: spacing,
        rows: dim(tags::ROWS),
        columns: dim(tags::COLUMNS),
        body_part: text(o, tags::BODY_PART_EXAMINED).map(|s| s.to_ascii_uppercase()),
        manufacturer: text(o, tags::MANUFACTURER),
        protocol_name: text(o, tags::PROTOCOL_NAME),
        series_description: text(o, tags::SERIES_DESCRIPTION),
        series_uid: text(o, tags::SERIES_INSTANCE_UID),
    })
}
