//! Reading a labelled dataset folder in the phantom's layout (`DIR/<series>/labels/` beside
//! `png/` and/or `dicom/`): which slice format to read when the caller did not say (PNG when any
//! series has it, else DICOM, as `pe-sentinel phantom --format png|dicom|both` writes them), and
//! an error that names what was looked for and what the folder holds. Reads directory listings
//! only.

use std::path::{Path, PathBuf};

/// A slice folder of each series: `png/` (console-windowed screenshots) or `dicom/` (CT files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceFolder {
    Png,
    Dicom,
}

impl SliceFolder {
    pub fn name(self) -> &'static str {
        match self {
            SliceFolder::Png => "png",
            SliceFolder::Dicom => "dicom",
        }
    }
}

/// The dataset has no series to read in the wanted (or any) format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("dataset {path}: cannot list it ({reason}); point --data at a `pe-sentinel phantom` output")]
    Unreadable { path: PathBuf, reason: String },
    #[error("dataset {path}: looked for series folders holding labels/ and {looked_for}; found {found}; {hint}")]
    Nothing { path: PathBuf, looked_for: String, found: String, hint: String },
}

/// What the series folders of a dataset hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Survey {
    /// Sub-folders of the dataset (whatever they hold).
    pub folders: usize,
    /// Series folders with labels/ and png/, sorted.
    pub png: Vec<PathBuf>,
    /// Series folders with labels/ and dicom/, sorted.
    pub dicom: Vec<PathBuf>,
    /// Series folders with png/ or dicom/ but no labels/.
    pub unlabelled: usize,
}

impl Survey {
    pub fn of(data: &Path) -> Result<Survey, LayoutError> {
        let unreadable =
            |e: std::io::Error| LayoutError::Unreadable { path: data.to_path_buf(), reason: e.to_string() };
        let mut s = Survey::default();
        let mut dirs: Vec<PathBuf> =
            std::fs::read_dir(data).map_err(unreadable)?.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
        dirs.sort();
        for d in dirs {
            s.folders += 1;
            let (png, dicom) = (d.join("png").is_dir(), d.join("dicom").is_dir());
            if !d.join("labels").is_dir() {
                s.unlabelled += usize::from(png || dicom);
                continue;
            }
            if png {
                s.png.push(d.clone());
            }
            if dicom {
                s.dicom.push(d);
            }
        }
        Ok(s)
    }

    fn found(&self) -> String {
        format!(
            "{} sub-folder(s): {} with labels/ and png/, {} with labels/ and dicom/, {} with slices but no labels/",
            self.folders,
            self.png.len(),
            self.dicom.len(),
            self.unlabelled
        )
    }
}

/// The format to read and its series folders: `wanted` when given, else PNG when any series has
/// it, else DICOM.
pub fn choose(data: &Path, wanted: Option<SliceFolder>) -> Result<(SliceFolder, Vec<PathBuf>), LayoutError> {
    let s = Survey::of(data)?;
    let nothing = |looked_for: &str, hint: &str| LayoutError::Nothing {
        path: data.to_path_buf(),
        looked_for: looked_for.to_string(),
        found: s.found(),
        hint: hint.to_string(),
    };
    match wanted {
        Some(SliceFolder::Png) if s.png.is_empty() && !s.dicom.is_empty() => {
            Err(nothing("png/ (--input png)", "this dataset has DICOM slices: use --input dicom, or leave --input out"))
        }
        Some(SliceFolder::Dicom) if s.dicom.is_empty() && !s.png.is_empty() => {
            Err(nothing("dicom/ (--input dicom)", "this dataset has PNG slices: use --input png, or leave --input out"))
        }
        Some(k) => {
            let dirs = if k == SliceFolder::Png { s.png.clone() } else { s.dicom.clone() };
            if dirs.is_empty() {
                return Err(nothing(&format!("{}/ (--input {})", k.name(), k.name()), PHANTOM_HINT));
            }
            Ok((k, dirs))
        }
        None if !s.png.is_empty() => Ok((SliceFolder::Png, s.png)),
        None if !s.dicom.is_empty() => Ok((SliceFolder::Dicom, s.dicom)),
        None => Err(nothing("png/ or dicom/", PHANTOM_HINT)),
    }
}

const PHANTOM_HINT: &str =
    "point --data at a `pe-sentinel phantom` output (DIR/<series>/labels/ beside png/ or dicom/)";

#[cfg(test)]
mod tests {
    use super::*;

    fn series(root: &Path, name: &str, subs: &[&str]) {
        for s in subs {
            std::fs::create_dir_all(root.join(name).join(s)).unwrap();
        }
    }

    #[test]
    fn png_when_present_else_dicom_and_input_chooses() {
        let t = tempfile::tempdir().unwrap();
        series(t.path(), "s0", &["labels", "dicom"]);
        series(t.path(), "s1", &["labels", "dicom"]);
        let (k, dirs) = choose(t.path(), None).unwrap();
        assert_eq!((k, dirs.len()), (SliceFolder::Dicom, 2));
        series(t.path(), "s0", &["png"]);
        assert_eq!(choose(t.path(), None).unwrap().0, SliceFolder::Png, "PNG wins when any series has it");
        let (k, dirs) = choose(t.path(), Some(SliceFolder::Dicom)).unwrap();
        assert_eq!((k, dirs.len()), (SliceFolder::Dicom, 2));
    }

    #[test]
    fn errors_name_what_was_looked_for_and_found() {
        let t = tempfile::tempdir().unwrap();
        series(t.path(), "s0", &["labels", "dicom"]);
        series(t.path(), "s1", &["png"]);
        let e = choose(t.path(), Some(SliceFolder::Png)).unwrap_err().to_string();
        assert!(e.contains("labels/ and png/ (--input png)"), "{e}");
        assert!(
            e.contains(
                "2 sub-folder(s): 0 with labels/ and png/, 1 with labels/ and dicom/, 1 with slices but no labels/"
            ),
            "{e}"
        );
        assert!(e.contains("use --input dicom"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        let e = choose(empty.path(), None).unwrap_err().to_string();
        assert!(
            e.contains("png/ or dicom/") && e.contains("found 0 sub-folder(s)") && e.contains("pe-sentinel phantom"),
            "{e}"
        );
        let e = choose(&empty.path().join("nope"), None).unwrap_err().to_string();
        assert!(e.contains("cannot list it"), "{e}");
    }
}
