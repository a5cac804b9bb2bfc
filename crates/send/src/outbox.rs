//! The outbox folder both sides agree on. The analyser writes each result object as
//! `pending/.NAME.tmp`, fsyncs it and renames it to `pending/NAME.dcm` (NAME sorts in the order
//! objects must go: time of the verdict, then the Secondary Capture before the SR that refers to
//! it). The sender takes `pending/*.dcm` in name order, removes a file once the PACS confirmed it
//! (and the ledger recorded that), and moves an object the PACS refuses for good to `parked/`
//! with `NAME.reason.txt` beside it. Touches only the outbox folder.

use std::path::{Path, PathBuf};

pub const PENDING: &str = "pending";
pub const PARKED: &str = "parked";

/// Whether a name in `pending/` is a finished object (not a temporary file being written).
pub fn is_object_name(name: &str) -> bool {
    !name.starts_with('.') && name.ends_with(".dcm")
}

/// The finished objects in `pending/`, in the order they are to be sent.
pub fn pending(outbox: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(outbox.join(PENDING))? {
        let e = e?;
        if e.file_name().to_str().is_some_and(is_object_name) && e.file_type()?.is_file() {
            v.push(e.path());
        }
    }
    v.sort();
    Ok(v)
}

/// Bytes held by the outbox's objects (waiting and parked; temporary files included).
pub fn size_bytes(outbox: &Path) -> u64 {
    [PENDING, PARKED]
        .iter()
        .filter_map(|d| std::fs::read_dir(outbox.join(d)).ok())
        .flat_map(|rd| rd.filter_map(Result::ok))
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Creates `pending/` and `parked/`.
pub fn create(outbox: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(outbox.join(PENDING))?;
    std::fs::create_dir_all(outbox.join(PARKED))
}

/// Moves an object to `parked/` and writes why beside it; never overwrites.
pub fn park(outbox: &Path, file: &Path, reason: &str) -> std::io::Result<PathBuf> {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut to = outbox.join(PARKED).join(&name);
    let mut n = 1;
    while to.exists() {
        to.set_file_name(format!("{name}.{n}"));
        n += 1;
    }
    std::fs::rename(file, &to)?;
    let mut note = to.clone().into_os_string();
    note.push(".reason.txt");
    std::fs::write(PathBuf::from(note), format!("{reason}\n"))?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_is_sorted_and_skips_temporaries_and_parking_never_overwrites() {
        let d = tempfile::tempdir().expect("tempdir");
        create(d.path()).expect("create");
        for n in ["2-b.dcm", "1-a.dcm", ".3-c.tmp", "notes.txt"] {
            std::fs::write(d.path().join(PENDING).join(n), b"x").expect("write");
        }
        let names: Vec<_> =
            pending(d.path()).expect("list").iter().map(|p| p.file_name().unwrap().to_owned()).collect();
        assert_eq!(names, ["1-a.dcm", "2-b.dcm"]);
        let p1 = park(d.path(), &d.path().join(PENDING).join("1-a.dcm"), "refused").expect("park");
        std::fs::write(d.path().join(PENDING).join("1-a.dcm"), b"y").expect("write");
        let p2 = park(d.path(), &d.path().join(PENDING).join("1-a.dcm"), "again").expect("park");
        assert_ne!(p1, p2);
        assert_eq!(
            std::fs::read_to_string(d.path().join(PARKED).join("1-a.dcm.reason.txt")).expect("note"),
            "refused\n"
        );
        assert_eq!(size_bytes(d.path()), 4 + "refused\n".len() as u64 + "again\n".len() as u64 + 1);
    }
}
