//! Every shipped board profile (board/*.toml) and the packaged default configuration
//! (pkg/deb/pe-sentinel.toml, installed as /etc/pe-sentinel/pe-sentinel.toml) passes
//! `pe-sentinel check` with the real parser, the shipped models (sha256 checked) and the tract
//! engine. The copies differ from the shipped files only in where the models and folders are (the
//! repository's models/ and a temp dir), so nothing outside the temp dir is touched.

mod common;

use common::bin;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Replaces the value of `key = ...` on its one line; panics if the key is not there exactly once.
fn set(text: &str, key: &str, value: &Path) -> String {
    let prefix = format!("{key} = ");
    let hits = text.lines().filter(|l| l.starts_with(&prefix)).count();
    assert_eq!(hits, 1, "`{key}` appears {hits} times");
    text.lines()
        .map(|l| if l.starts_with(&prefix) { format!("{prefix}\"{}\"", value.display()) } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n")
}

fn text_asks_tensorrt(profile: &Path) -> bool {
    std::fs::read_to_string(profile).is_ok_and(|t| t.lines().any(|l| l.trim_start().starts_with("kind = \"tensorrt\"")))
}

fn check(profile: &Path) {
    let tmp = tempfile::tempdir().expect("tmp");
    let text = std::fs::read_to_string(profile).expect("read profile");
    let text = set(&text, "dir", &root().join("models"));
    let text = set(&text, "drop_dir", &tmp.path().join("drop"));
    let text = set(&text, "state_dir", &tmp.path().join("state"));
    let copy = tmp.path().join(profile.file_name().expect("name"));
    std::fs::write(&copy, text).expect("write copy");
    let out = bin().arg("check").arg("--config").arg(&copy).output().expect("run check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let problems: Vec<&str> = stdout.lines().filter(|l| l.starts_with("PROBLEM")).collect();
    if text_asks_tensorrt(profile) && !cfg!(feature = "tensorrt") {
        // Built without TensorRT: the profile's documented refusal is the only problem.
        assert!(
            !out.status.success()
                && problems.len() == 1
                && problems[0].contains("built without TensorRT support")
                && problems[0].contains("fallback"),
            "{}: expected only the TensorRT refusal:\n{stdout}",
            profile.display()
        );
        return;
    }
    assert!(
        out.status.success() && stdout.contains("check passed") && problems.is_empty(),
        "{} fails `pe-sentinel check`:\n{stdout}\n{}",
        profile.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let name = profile.file_stem().expect("stem").to_string_lossy().into_owned();
    if name != "pe-sentinel" {
        assert!(stdout.contains(&format!("({name})")), "board.name should be the file's name {name}:\n{stdout}");
    }
}

#[test]
fn every_shipped_profile_and_the_packaged_config_pass_check() {
    let mut profiles: Vec<PathBuf> = std::fs::read_dir(root().join("board"))
        .expect("board/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    profiles.sort();
    for want in ["x86-cpu", "jetson-orin-nano", "jetson-orin-nx", "jetson-agx-orin", "jetson-xavier-nx"] {
        assert!(profiles.iter().any(|p| p.file_stem().is_some_and(|s| s == want)), "board/{want}.toml missing");
    }
    profiles.push(root().join("pkg/deb/pe-sentinel.toml"));
    for p in &profiles {
        check(p);
    }
}

#[test]
fn the_packaged_config_is_the_x86_profile_with_the_installed_models_folder() {
    let shipped = std::fs::read_to_string(root().join("board/x86-cpu.toml")).expect("x86");
    let packaged = std::fs::read_to_string(root().join("pkg/deb/pe-sentinel.toml")).expect("pkg");
    assert!(packaged.contains("dir = \"/usr/share/pe-sentinel/models\""));
    // Every setting line after the header is the same, except the models folder.
    let settings = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty() && !l.starts_with("dir = "))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(settings(&shipped), settings(&packaged), "pkg/deb/pe-sentinel.toml drifted from board/x86-cpu.toml");
}
