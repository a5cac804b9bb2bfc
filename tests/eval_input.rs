//! `eval --data` reads what a phantom folder holds (issue 19): PNG when present, else DICOM, with
//! `--input` to choose, and an error naming what it looked for and what it found. Real phantom
//! folders from the binary, the tiny models of tests/data on tract.

mod common;
use common::{bin, profile};
use std::path::Path;

fn phantom(out: &Path, format: &str) {
    let o = bin()
        .args(["phantom", "--series", "2", "--slices", "3", "--seed", "3", "--format", format, "--out"])
        .arg(out)
        .output()
        .expect("run phantom");
    assert!(o.status.success(), "phantom --format {format}: {}", String::from_utf8_lossy(&o.stderr));
}

fn eval(cfg: &Path, data: &Path, extra: &[&str]) -> (bool, String, String) {
    let o = bin().arg("eval").arg("--config").arg(cfg).arg("--data").arg(data).args(extra).output().expect("run eval");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn eval_reads_dicom_png_and_both_phantoms_without_input() {
    let t = tempfile::tempdir().expect("tempdir");
    let cfg = profile(t.path());
    for (format, read) in [("dicom", "dicom"), ("png", "png"), ("both", "png")] {
        let data = t.path().join(format);
        phantom(&data, format);
        let (ok, out, err) = eval(&cfg, &data, &[]);
        assert!(ok, "eval on a --format {format} phantom failed:\n{out}\n{err}");
        assert!(out.contains(&format!("(2 series, 6 slices, {read} input,")), "--format {format}:\n{out}");
    }
    // --input still chooses: the DICOM half of a `both` phantom.
    let (ok, out, err) = eval(&cfg, &t.path().join("both"), &["--input", "dicom"]);
    assert!(ok && out.contains("(2 series, 6 slices, dicom input,"), "{out}\n{err}");
}

#[test]
fn eval_names_what_it_looked_for_and_what_it_found() {
    let t = tempfile::tempdir().expect("tempdir");
    let cfg = profile(t.path());
    let data = t.path().join("dicom");
    phantom(&data, "dicom");
    let (ok, _, err) = eval(&cfg, &data, &["--input", "png"]);
    assert!(!ok, "--input png on a DICOM-only phantom must fail");
    assert!(err.contains("looked for series folders holding labels/ and png/ (--input png)"), "{err}");
    assert!(err.contains("found 2 sub-folder(s): 0 with labels/ and png/, 2 with labels/ and dicom/"), "{err}");
    assert!(err.contains("use --input dicom"), "{err}");
    let empty = t.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let (ok, _, err) = eval(&cfg, &empty, &[]);
    assert!(!ok && err.contains("labels/ and png/ or dicom/; found 0 sub-folder(s)"), "{err}");
}
