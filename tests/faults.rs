//! Faults an appliance meets in the field, against the real binary: a damaged model file, each kind
//! of configuration error, and a full state folder (a real, small tmpfs: ENOSPC from the kernel).
//! Each must give a clear message and lose nothing. (kill -9 during a series: tests/daemon.rs.)

mod common;

use common::*;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The manifest's `sha256 = "..."` value.
fn manifest_sha(manifest: &Path) -> String {
    let text = std::fs::read_to_string(manifest).expect("manifest");
    let line = text.lines().find(|l| l.starts_with("sha256 = ")).expect("sha256 line");
    line.trim_start_matches("sha256 = ").trim_matches('"').to_string()
}

#[test]
fn a_model_file_with_one_byte_changed_refuses_to_start_naming_the_file_and_both_sha256s() {
    let tmp = tempfile::tempdir().expect("tmp");
    let models = tmp.path().join("models");
    std::fs::create_dir_all(&models).expect("models");
    for f in ["tiny-classifier.toml", "tiny-classifier.onnx", "tiny-detector.toml", "tiny-detector.onnx"] {
        std::fs::copy(data(f), models.join(f)).expect("copy model");
    }
    for (damaged, manifest) in
        [("tiny-detector.onnx", "tiny-detector.toml"), ("tiny-classifier.onnx", "tiny-classifier.toml")]
    {
        let onnx = models.join(damaged);
        let mut bytes = std::fs::read(&onnx).expect("read");
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        std::fs::write(&onnx, &bytes).expect("write");
        let actual = sha256_hex(&bytes);
        let expected = manifest_sha(&models.join(manifest));
        assert_ne!(actual, expected);
        let cfg = profile_with(tmp.path(), &models.join("tiny-classifier.toml"), &models.join("tiny-detector.toml"));
        let (drop, state) = (tmp.path().join("drop"), tmp.path().join("state"));
        for args in [vec!["run"], vec!["check"]] {
            let mut cmd = bin();
            cmd.args(&args).arg("--config").arg(&cfg);
            if args[0] == "run" {
                cmd.arg("--drop").arg(&drop).arg("--state").arg(&state);
            }
            let out = cmd.output().expect("run");
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(!out.status.success(), "{args:?} started with a damaged {damaged}:\n{text}");
            assert!(
                text.contains(&onnx.display().to_string()) && text.contains(&actual) && text.contains(&expected),
                "{args:?}: the message must name {} and both sha256s ({actual} found, {expected} expected):\n{text}",
                onnx.display()
            );
        }
        // Nothing was processed: the daemon refused before watching the drop folder.
        assert!(files_directly_in(&drop).is_empty());
        std::fs::copy(data(damaged), &onnx).expect("restore");
    }
}

/// `pe-sentinel run` with a profile: must fail, with every `needles` in its stderr.
fn run_must_fail(cfg: &Path, needles: &[&str]) {
    run_must_fail_after(cfg, needles, false)
}

/// As `run_must_fail`; `state_may_exist` when the error is found after the journal was opened
/// (the model manifests are read after the state folder is set up).
fn run_must_fail_after(cfg: &Path, needles: &[&str], state_may_exist: bool) {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = bin()
        .arg("run")
        .arg("--config")
        .arg(cfg)
        .arg("--drop")
        .arg(tmp.path().join("drop"))
        .arg("--state")
        .arg(tmp.path().join("state"))
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with {}:\n{err}", cfg.display());
    assert_eq!(out.status.code(), Some(1), "{err}");
    for n in needles {
        assert!(err.contains(n), "message lacks `{n}`:\n{err}");
    }
    if !state_may_exist {
        // A bad profile is refused before anything is created.
        assert!(!tmp.path().join("state").exists(), "state folder created by a refused start");
    }
    assert!(!tmp.path().join("drop").exists(), "drop folder created by a refused start");
}

#[test]
fn each_kind_of_config_error_exits_non_zero_naming_the_key() {
    let tmp = tempfile::tempdir().expect("tmp");
    let good = std::fs::read_to_string(profile(tmp.path())).expect("profile");
    let bad = |name: &str, text: String| -> PathBuf {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    };
    // Unknown key (a typo), with the line and what is allowed.
    let p = bad("unknown.toml", good.replace("threads = 1", "threads = 1\nthreds = 2"));
    run_must_fail(&p, &["unknown.toml", "key `engine.threds`", "line 7", "expected one of", "threads"]);
    // Unknown table.
    let p = bad("table.toml", good.replace("[verdict]", "[verdikt]"));
    run_must_fail(&p, &["table.toml", "verdikt", "expected one of"]);
    // Bad value: out of range.
    let p = bad("range.toml", good.replace("threads = 1", "threads = 0"));
    run_must_fail(&p, &["range.toml", "engine.threads", "1 to 64"]);
    let p = bad("range2.toml", good.replace("quiet_s = 1.0", "quiet_s = 0.0"));
    run_must_fail(&p, &["verdict.quiet_s", "0.5 to 3600"]);
    // Bad value: not one of the choices.
    let p = bad("choice.toml", good.replace("kind = \"tract\"", "kind = \"cuda\""));
    run_must_fail(&p, &["choice.toml", "key `engine.kind`", "cuda", "tract"]);
    // Wrong type.
    let p = bad("type.toml", good.replace("threads = 1", "threads = \"one\""));
    run_must_fail(&p, &["type.toml", "key `engine.threads`", "line 6", "invalid type"]);
    // A required key missing.
    let p = bad("missing-key.toml", good.replace("precision = \"fp32\"\n", ""));
    run_must_fail(&p, &["missing-key.toml", "precision"]);
    // Missing file: the config itself, and a model manifest it names.
    run_must_fail(&tmp.path().join("nope.toml"), &["nope.toml", "--config", "No such file"]);
    let p = bad("no-manifest.toml", good.replace("tiny-detector.toml", "no-such-detector.toml"));
    run_must_fail_after(&p, &["no-such-detector.toml"], true);
}

/// A tmpfs of `size` mounted at `dir` for the life of the guard (needs root).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

/// Fills the file system holding `dir` with one file until the kernel says ENOSPC.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let p = dir.join("filler");
    let mut f = std::fs::File::create(&p).expect("filler");
    let chunk = vec![0u8; 4096];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", p.display()),
        }
    }
    let _ = f.sync_all();
    p
}

#[test]
fn a_full_state_folder_is_a_fault_that_loses_nothing_and_heals_when_space_returns() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a small tmpfs for ENOSPC needs root (CI runs as root)");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    let _fs = Tmpfs::mount(&state, "4m").unwrap_or_else(|e| panic!("root, but cannot mount a tmpfs: {e}"));
    let drop = tmp.path().join("drop");
    std::fs::create_dir_all(&drop).expect("drop");
    let cfg = profile(tmp.path());
    let mut d = Daemon::start(&cfg, &drop, &state);
    // A first slice while there is room: the journal exists and works.
    drop_file(&drop, "s0.png", &png_bytes(0));
    wait_for(&mut d, Duration::from_secs(60), "the first slice", |_| {
        try_count(&state, "SELECT COUNT(*) FROM slices") == Some(1)
    });

    let filler = fill(&state);
    const N: u32 = 12;
    for i in 1..=N {
        drop_file(&drop, &format!("s{i}.png"), &png_bytes(i));
    }
    wait_for(&mut d, Duration::from_secs(60), "a FAULT in the log", |d| d.log().contains("FAULT"));
    // While full: every file is either committed and in done/, or still in the drop folder;
    // none rejected, none lost.
    std::thread::sleep(Duration::from_secs(2));
    let waiting = files_directly_in(&drop).len() as i64;
    let done = files_directly_in(&drop.join("done")).len() as i64;
    let rows = try_count(&state, "SELECT COUNT(*) FROM slices").unwrap_or(-1);
    assert!(waiting >= 1, "the full disk faulted but no file waits in the drop folder:\n{}", d.log());
    assert_eq!(waiting + done, i64::from(N) + 1, "files lost while the disk was full:\n{}", d.log());
    assert_eq!(rows, done, "journal rows and done/ disagree while full:\n{}", d.log());
    assert!(files_directly_in(&drop.join("rejected")).is_empty(), "a file was rejected for a full disk");
    let log = d.log();
    let fault = log.lines().find(|l| l.contains("FAULT")).unwrap_or_default();
    assert!(
        fault.contains("stays in the drop folder") && fault.contains(&state.display().to_string()),
        "the FAULT line must say what failed, where, and that the file is kept: {fault}"
    );

    eprintln!("while full: {waiting} waiting, {done} done; first fault: {fault}");

    // Space returns: everything is analysed, once, and the daemon never stopped.
    std::fs::remove_file(&filler).expect("free space");
    wait_for(&mut d, Duration::from_secs(90), "all slices after space returned", |_| {
        try_count(&state, "SELECT COUNT(*) FROM slices") == Some(i64::from(N) + 1)
    });
    wait_for(&mut d, Duration::from_secs(30), "the drop folder emptied", |_| files_directly_in(&drop).is_empty());
    assert_eq!(files_directly_in(&drop.join("done")).len() as u32, N + 1);
    let distinct = try_count(&state, "SELECT COUNT(DISTINCT source_file) FROM slices");
    assert_eq!(distinct, Some(i64::from(N) + 1));
    let faults = d.log().lines().filter(|l| l.contains("FAULT")).count();
    eprintln!("{faults} FAULT line(s) in all");
    let st = d.terminate();
    assert!(st.success(), "exit {st:?}");
}
