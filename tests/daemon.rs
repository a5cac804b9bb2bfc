//! The daemon end to end, as the real binary: a real drop folder watched with inotify, real files
//! (phantom series, pydicom's test files, broken and hostile inputs), the real SQLite journal,
//! real signals. The models are the tiny untrained stand-ins from tests/data (these tests check
//! the plumbing; the shipped models run in `the_demo_study_gets_true_series_verdicts_as_dicom_and_png`
//! below, in tests/display_daemon.rs, and in tests/py/test_models.py).

mod common;
use common::{bin, data, profile, try_count, wait_for, Daemon};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

fn db(state: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(state.join("journal.sqlite3")).expect("journal")
}

fn count(state: &Path, sql: &str) -> i64 {
    db(state).query_row(sql, [], |r| r.get(0)).expect("query")
}

fn phantom(out: &Path, series: u32, slices: u32, seed: u64) {
    let st = bin()
        .args([
            "phantom",
            "--series",
            &series.to_string(),
            "--slices",
            &slices.to_string(),
            "--seed",
            &seed.to_string(),
            "--out",
        ])
        .arg(out)
        .output()
        .expect("phantom");
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
}

#[test]
fn bad_inputs_are_rejected_with_reasons_and_the_daemon_keeps_going() {
    let t = tempfile::tempdir().expect("tempdir");
    let (drop, state) = (t.path().join("drop"), t.path().join("state"));
    let cfg = profile(t.path());
    phantom(&t.path().join("ph"), 1, 4, 3);
    let mut d = Daemon::start(&cfg, &drop, &state);
    wait_for(&mut d, Duration::from_secs(60), "the daemon to start watching", |d| {
        d.log().contains("watching drop folder")
    });
    let dcm = std::fs::read(t.path().join("ph/series-000/dicom/slice-0001.dcm")).expect("dcm");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated.dcm", dcm[..dcm.len() / 2].to_vec(), "truncated"),
        ("zero.dcm", Vec::new(), "empty file"),
        ("garbage.dcm", (0..4000u32).map(|i| (i * 7919 % 251) as u8).collect(), "not a readable DICOM file"),
        ("readme.txt", b"not an image".to_vec(), "not a PNG or JPEG"),
        (
            "tiny.png",
            {
                let mut v = Vec::new();
                image::GrayImage::new(1, 1)
                    .write_to(&mut std::io::Cursor::new(&mut v), image::ImageFormat::Png)
                    .expect("png");
                v
            },
            "too small",
        ),
        ("huge.png", std::fs::read(data("huge-60000x60000.png")).expect("fixture"), "60000x60000"),
    ];
    for (name, bytes, _) in &cases {
        std::fs::write(drop.join(name), bytes).expect("drop");
    }
    // Readable but not CT (issue 21): not analysed, recorded with the reason, moved to done/.
    std::fs::write(drop.join("mr.dcm"), std::fs::read(data("dicom/MR_small.dcm")).expect("mr")).expect("drop");
    // A good slice after the bad ones: still analysed.
    std::fs::copy(t.path().join("ph/series-000/dicom/slice-0002.dcm"), drop.join("good.dcm")).expect("copy");
    let rejected = drop.join("rejected");
    wait_for(&mut d, Duration::from_secs(60), "all files to leave the drop folder", |_| {
        files_in(&rejected).len() == 2 * cases.len()
            && drop.join("done/good.dcm").exists()
            && drop.join("done/mr.dcm").exists()
    });
    for (name, _, needle) in &cases {
        assert!(rejected.join(name).exists(), "{name} kept in rejected/");
        let reason = std::fs::read_to_string(rejected.join(format!("{name}.reason.txt"))).expect("reason");
        assert!(reason.contains(needle), "{name}: reason should say '{needle}': {reason}");
    }
    assert!(d.alive());
    let status = d.terminate();
    assert!(status.success(), "SIGTERM stops the daemon cleanly");
    assert_eq!(count(&state, "SELECT COUNT(*) FROM slices"), 1);
    assert_eq!(count(&state, "SELECT COUNT(*) FROM rejected"), cases.len() as i64);
    assert_eq!(count(&state, "SELECT COUNT(*) FROM skipped WHERE reasons LIKE 'Modality is ''MR'', not CT%'"), 1);
}

#[test]
fn series_dropped_as_dicom_and_png_end_in_done_with_journal_rows_and_duplicates_are_not_reanalysed() {
    let t = tempfile::tempdir().expect("tempdir");
    let (drop, state) = (t.path().join("drop"), t.path().join("state"));
    let cfg = profile(t.path());
    phantom(&t.path().join("ph"), 3, 6, 5);
    let mut d = Daemon::start(&cfg, &drop, &state);
    wait_for(&mut d, Duration::from_secs(60), "start", |d| d.log().contains("watching drop folder"));
    for s in 0..3 {
        let series = t.path().join(format!("ph/series-{s:03}"));
        // DICOM straight into the folder; PNGs renamed into a series subfolder.
        for f in files_in(&series.join("dicom")) {
            std::fs::copy(&f, drop.join(format!("s{s}-{}", f.file_name().expect("name").to_string_lossy())))
                .expect("copy");
        }
        let sub = drop.join(format!("png-series-{s}"));
        std::fs::create_dir_all(&sub).expect("mkdir");
        for f in files_in(&series.join("png")) {
            let tmp = sub.join(format!(".{}.part", f.file_name().expect("name").to_string_lossy()));
            std::fs::copy(&f, &tmp).expect("copy");
            std::fs::rename(&tmp, sub.join(f.file_name().expect("name"))).expect("rename");
        }
    }
    wait_for(&mut d, Duration::from_secs(120), "36 files in done/", |_| files_in(&drop.join("done")).len() == 36);
    // 6 series (3 DICOM by SeriesInstanceUID, 3 PNG by subfolder), each closed after the quiet time.
    wait_for(&mut d, Duration::from_secs(30), "6 closed series", |_| {
        try_count(&state, "SELECT COUNT(*) FROM series WHERE verdict != 'open'") == Some(6)
    });
    assert_eq!(count(&state, "SELECT COUNT(*) FROM slices"), 36);
    assert_eq!(count(&state, "SELECT COUNT(DISTINCT series) FROM slices"), 6);
    // The same content again, under another name: moved to done/ without a second analysis.
    std::fs::copy(t.path().join("ph/series-000/dicom/slice-0001.dcm"), drop.join("again.dcm")).expect("copy");
    wait_for(&mut d, Duration::from_secs(30), "the duplicate to be moved", |_| drop.join("done/again.dcm").exists());
    assert_eq!(count(&state, "SELECT COUNT(*) FROM slices"), 36);
    assert!(d.log().contains("not analysed again"));
    let hist = bin().args(["history", "--json", "--state"]).arg(&state).output().expect("history");
    let rows: serde_json::Value = serde_json::from_slice(&hist.stdout).expect("history json");
    let rows = rows.as_array().expect("array");
    assert_eq!(rows.len(), 6);
    for r in rows {
        for k in ["series", "slices", "verdict", "max_p", "boxes"] {
            assert!(r.get(k).is_some(), "history --json has `{k}`: {r}");
        }
        assert_eq!(r["slices"], 6);
        assert!(["positive", "negative"].contains(&r["verdict"].as_str().unwrap_or("")));
    }
    d.terminate();
}

#[test]
fn killed_mid_series_the_restarted_daemon_finishes_without_duplicates() {
    let t = tempfile::tempdir().expect("tempdir");
    let (drop, state) = (t.path().join("drop"), t.path().join("state"));
    let cfg = profile(t.path());
    phantom(&t.path().join("ph"), 1, 40, 8);
    std::fs::create_dir_all(&drop).expect("mkdir");
    // A backlog of 40 slices, then the daemon is killed part-way.
    for f in files_in(&t.path().join("ph/series-000/dicom")) {
        std::fs::copy(&f, drop.join(f.file_name().expect("name"))).expect("copy");
    }
    let mut d = Daemon::start(&cfg, &drop, &state);
    wait_for(&mut d, Duration::from_secs(120), "some slices analysed", |_| {
        try_count(&state, "SELECT COUNT(*) FROM slices").is_some_and(|n| n >= 5)
    });
    d.kill9();
    let done_before = files_in(&drop.join("done")).len();
    assert!(done_before < 40, "killed part-way ({done_before} done)");
    let mut d = Daemon::start(&cfg, &drop, &state);
    wait_for(&mut d, Duration::from_secs(120), "all 40 in done/", |_| files_in(&drop.join("done")).len() == 40);
    d.terminate();
    assert_eq!(count(&state, "SELECT COUNT(*) FROM slices"), 40, "one row per slice, none twice");
    assert_eq!(count(&state, "SELECT COUNT(DISTINCT sha256) FROM slices"), 40);
    let ok: String = db(&state).query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("integrity");
    assert_eq!(ok, "ok");
    let left: Vec<_> = files_in(&drop).into_iter().filter(|p| !p.starts_with(drop.join("done"))).collect();
    assert!(left.is_empty(), "nothing left behind: {left:?}");
}

/// The shipped models on a positive phantom series (evaluation seed): one ALERT, recorded in the
/// journal; after a restart, more slices of the same series do not alert again.
#[test]
fn a_positive_series_alerts_once_even_across_a_restart() {
    let t = tempfile::tempdir().expect("tempdir");
    let (drop, state) = (t.path().join("drop"), t.path().join("state"));
    let cfg = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("board/x86-cpu.toml");
    let st = bin()
        .args([
            "phantom",
            "--series",
            "1",
            "--slices",
            "32",
            "--seed",
            "2",
            "--pe-fraction",
            "1",
            "--format",
            "dicom",
            "--out",
        ])
        .arg(t.path().join("ph"))
        .output()
        .expect("phantom");
    assert!(st.status.success());
    let files = files_in(&t.path().join("ph/series-000/dicom"));
    std::fs::create_dir_all(&drop).expect("mkdir");
    let mut d = Daemon::start(&cfg, &drop, &state);
    wait_for(&mut d, Duration::from_secs(120), "start", |d| d.log().contains("watching drop folder"));
    for f in &files[..24] {
        std::fs::copy(f, drop.join(f.file_name().expect("name"))).expect("copy");
    }
    wait_for(&mut d, Duration::from_secs(180), "24 slices done", |_| files_in(&drop.join("done")).len() == 24);
    assert_eq!(d.log().matches("ALERT").count(), 1, "one alert:\n{}", d.log());
    assert_eq!(count(&state, "SELECT COUNT(*) FROM series WHERE alerted = 1 AND verdict = 'positive'"), 1);
    d.terminate();
    let mut d = Daemon::start(&cfg, &drop, &state);
    wait_for(&mut d, Duration::from_secs(120), "restart", |d| d.log().matches("watching drop folder").count() == 2);
    for f in &files[24..] {
        std::fs::copy(f, drop.join(f.file_name().expect("name"))).expect("copy");
    }
    wait_for(&mut d, Duration::from_secs(180), "32 slices done", |_| files_in(&drop.join("done")).len() == 32);
    assert_eq!(d.log().matches("ALERT").count(), 1, "no second alert after the restart:\n{}", d.log());
    d.terminate();
    assert_eq!(count(&state, "SELECT slices FROM series"), 32, "restored series keeps counting");
}

/// The demo study (seed 7: two positive series, one negative) through the shipped models, as
/// DICOM and as PNG: every series verdict in the journal matches the phantom's truth. A regression
/// guard for the whole path; the population figures (series specificity 0.50 on seeds 1-6) are in
/// the README.
#[test]
fn the_demo_study_gets_true_series_verdicts_as_dicom_and_png() {
    let t = tempfile::tempdir().expect("tempdir");
    let (drop, state) = (t.path().join("drop"), t.path().join("state"));
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("board/x86-cpu.toml");
    let text = std::fs::read_to_string(&shipped).expect("profile");
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    let text = text
        .replace("quiet_s = 20.0", "quiet_s = 2.0")
        .replace("dir = \"../models\"", &format!("dir = \"{}\"", models.display()));
    let cfg = t.path().join("profile.toml");
    std::fs::write(&cfg, text).expect("write profile");
    phantom(&t.path().join("ph"), 3, 48, 7);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path().join("ph/phantom.json")).expect("summary")).expect("json");
    let mut d = Daemon::start(&cfg, &drop, &state);
    wait_for(&mut d, Duration::from_secs(120), "start", |d| d.log().contains("watching drop folder"));
    let mut expected = Vec::new();
    for s in summary["series"].as_array().expect("series") {
        let folder = s["folder"].as_str().expect("folder");
        let positive = s["positive"].as_bool().expect("positive");
        let src = t.path().join("ph").join(folder);
        std::fs::create_dir_all(drop.join(format!("dcm-{folder}"))).expect("mkdir");
        std::fs::create_dir_all(drop.join(folder)).expect("mkdir");
        for f in files_in(&src.join("dicom")) {
            std::fs::copy(&f, drop.join(format!("dcm-{folder}")).join(f.file_name().expect("name"))).expect("copy");
        }
        for f in files_in(&src.join("png")) {
            std::fs::copy(&f, drop.join(folder).join(f.file_name().expect("name"))).expect("copy");
        }
        expected.push((s["series_instance_uid"].as_str().expect("uid").to_string(), positive));
        expected.push((folder.to_string(), positive));
    }
    wait_for(&mut d, Duration::from_secs(600), "288 slices done", |_| files_in(&drop.join("done")).len() == 288);
    wait_for(&mut d, Duration::from_secs(60), "6 closed series", |_| {
        try_count(&state, "SELECT COUNT(*) FROM series WHERE verdict != 'open'") == Some(6)
    });
    d.terminate();
    for (series, positive) in expected {
        let verdict: String = db(&state)
            .query_row("SELECT verdict FROM series WHERE series = ?1", [&series], |r| r.get(0))
            .expect("series row");
        assert_eq!(verdict, if positive { "positive" } else { "negative" }, "series {series}");
    }
}

/// Issue 6: with a budget no slice can keep (1 ms), the daemon keeps analysing, counts every
/// slice as a miss, and enters SLOW once more than 5% of the last 100 slices missed (the sixth).
#[test]
fn an_impossible_budget_counts_every_miss_shows_slow_and_keeps_running() {
    let t = tempfile::tempdir().expect("tempdir");
    let (drop, state) = (t.path().join("drop"), t.path().join("state"));
    let cfg = profile(t.path());
    let mut text = std::fs::read_to_string(&cfg).expect("profile");
    text.push_str("[budget]\nbudget_ms = 1\n");
    std::fs::write(&cfg, text).expect("profile");
    phantom(&t.path().join("ph"), 1, 12, 9);
    std::fs::create_dir_all(drop.join("s1")).expect("mkdir");
    let mut d = Daemon::start(&cfg, &drop, &state);
    wait_for(&mut d, Duration::from_secs(120), "start", |d| d.log().contains("watching drop folder"));
    for f in files_in(&t.path().join("ph/series-000/png")) {
        std::fs::copy(&f, drop.join("s1").join(f.file_name().expect("name"))).expect("copy");
    }
    wait_for(&mut d, Duration::from_secs(120), "12 slices done", |_| files_in(&drop.join("done")).len() == 12);
    let log = d.log();
    assert_eq!(log.matches("SLOW:").count(), 1, "SLOW entered once:\n{log}");
    assert!(log.contains("SLOW: 6 of the last 100 slices missed the 1 ms budget"), "{log}");
    assert!(d.alive(), "still running");
    d.terminate();
    let log = std::fs::read_to_string(state.with_extension("log")).expect("log");
    assert!(log.contains("12 slice(s), 0 rejected") && log.contains("12 slice(s) over the 1 ms budget"), "{log}");
}
