//! The key slice of a finished series, read back from `done/` of the drop folder: where the
//! file went (found by name, confirmed by its sha256 from the journal), the study and patient
//! attributes the result objects must repeat, and the slice's pixels. Reads files only.

use crate::slice::Slice;
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Folder levels below `done/` searched for the key slice's file.
const MAX_DEPTH: usize = 6;
/// Directory entries looked at before giving up (a done/ folder of years of series).
const MAX_ENTRIES: usize = 200_000;

/// Attributes copied from the source into the result objects (Patient and General Study
/// modules, and the character set they are written in).
pub const COPIED: [Tag; 13] = [
    tags::SPECIFIC_CHARACTER_SET,
    tags::PATIENT_NAME,
    tags::PATIENT_ID,
    tags::ISSUER_OF_PATIENT_ID,
    tags::PATIENT_BIRTH_DATE,
    tags::PATIENT_SEX,
    tags::STUDY_INSTANCE_UID,
    tags::STUDY_DATE,
    tags::STUDY_TIME,
    tags::REFERRING_PHYSICIAN_NAME,
    tags::STUDY_ID,
    tags::ACCESSION_NUMBER,
    tags::STUDY_DESCRIPTION,
];

/// The key slice and what the result objects take from its file.
pub struct KeySource {
    pub path: PathBuf,
    /// The elements of [`COPIED`] the source has.
    pub copied: Vec<crate::outbox::elements::Elem>,
    pub study_uid: String,
    pub series_uid: String,
    /// SeriesNumber and SeriesDescription, when stated: `2 "5mm"`.
    pub series_label: Option<String>,
    pub sop_class: String,
    pub sop_instance: String,
    /// Multi-frame source: the frame's index.
    pub frame: Option<u32>,
    /// The decoded pixels; `None` for a slice that was not analysed (never decoded).
    pub slice: Option<Slice>,
}

/// Finds `name` under `done` whose content has `sha256` (hex).
pub fn find(done: &Path, name: &str, sha256: &str) -> Option<PathBuf> {
    let mut stack = vec![(done.to_path_buf(), 0usize)];
    let mut seen = 0usize;
    while let Some((dir, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            seen += 1;
            if seen > MAX_ENTRIES {
                return None;
            }
            let Ok(ft) = e.file_type() else { continue };
            let p = e.path();
            if ft.is_dir() && depth < MAX_DEPTH {
                stack.push((p, depth + 1));
            } else if ft.is_file() {
                let n = e.file_name();
                let n = n.to_string_lossy();
                // A same-named file already in done/ made the daemon add ".N".
                let same = n == name
                    || n.strip_prefix(name)
                        .is_some_and(|r| r.starts_with('.') && r[1..].chars().all(|c| c.is_ascii_digit()));
                if same && sha256_hex(&p).as_deref() == Some(sha256) {
                    return Some(p);
                }
            }
        }
    }
    None
}

fn sha256_hex(p: &Path) -> Option<String> {
    let b = std::fs::read(p).ok()?;
    Some(Sha256::digest(&b).iter().map(|x| format!("{x:02x}")).collect())
}

fn text(o: &InMemDicomObject, tag: Tag) -> Option<String> {
    o.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .filter(|s| !s.is_empty())
}

/// Reads the key slice's header and the pixels of `frame`.
pub fn read(path: &Path, frame: u32) -> Result<KeySource, String> {
    let mut src = read_header(path, frame)?;
    let slices = crate::source::decode::dicom::decode_file(path, crate::source::decode::dicom::Accept::AnyGrayscale)
        .map_err(|e| format!("{}: cannot decode the key slice: {e}", path.display()))?;
    let slice =
        slices.into_iter().find(|s| s.frame == frame).ok_or_else(|| format!("{}: no frame {frame}", path.display()))?;
    src.slice = Some(slice);
    Ok(src)
}

/// Reads the header alone (up to Pixel Data): for a slice that was not analysed, whose pixels
/// are never decoded.
pub fn read_header(path: &Path, frame: u32) -> Result<KeySource, String> {
    let obj = dicom_object::OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| format!("{}: cannot read the slice's header: {e}", path.display()))?;
    let need = |tag: Tag, what: &str| text(&obj, tag).ok_or_else(|| format!("{}: no {what}", path.display()));
    let study_uid = need(tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?;
    let series_uid = need(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?;
    let sop_class = need(tags::SOP_CLASS_UID, "SOPClassUID")?;
    let sop_instance = need(tags::SOP_INSTANCE_UID, "SOPInstanceUID")?;
    let multi = text(&obj, tags::NUMBER_OF_FRAMES).and_then(|n| n.parse::<u32>().ok()).is_some_and(|n| n > 1);
    let copied = COPIED.iter().filter_map(|t| obj.get(*t).cloned()).collect();
    let series_label = match (text(&obj, tags::SERIES_NUMBER), text(&obj, tags::SERIES_DESCRIPTION)) {
        (Some(n), Some(d)) => Some(format!("{n} \"{d}\"")),
        (Some(n), None) => Some(n),
        (None, Some(d)) => Some(format!("\"{d}\"")),
        (None, None) => None,
    };
    Ok(KeySource {
        path: path.to_path_buf(),
        copied,
        study_uid,
        series_uid,
        series_label,
        sop_class,
        sop_instance,
        frame: multi.then_some(frame),
        slice: None,
    })
}
