//! `pe-sentinel bench` as the real binary on a small phantom series with the tiny test models:
//! the files it writes, their consistency (every slice's end-to-end time covers its stages), and
//! `bench compare`. Figures themselves are not asserted (speed is the benchmark's output, not a
//! test's); the onnxruntime peer is exercised in tests/py/test_bench_peer.py.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pe-sentinel"))
}

fn profile(dir: &Path, budget_ms: u32) -> PathBuf {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let p = dir.join(format!("profile-{budget_ms}.toml"));
    let text = format!(
        "[board]\nname = \"bench-test\"\n[engine]\nkind = \"tract\"\nprecision = \"fp32\"\nthreads = 1\n\
         [models]\ndir = \"{m}\"\nclassifier = \"{m}/tiny-classifier.toml\"\ndetector = \"{m}/tiny-detector.toml\"\n\
         [paths]\ndrop_dir = \"/nonexistent\"\nstate_dir = \"/nonexistent\"\n[budget]\nbudget_ms = {budget_ms}\n",
        m = data.display()
    );
    std::fs::write(&p, text).expect("profile");
    p
}

fn bench(cfg: &Path, out: &Path) -> String {
    let o = bin()
        .args(["bench", "--phantom", "8", "--seed", "3", "--config"])
        .arg(cfg)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run bench");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "bench failed: {}\n{}", String::from_utf8_lossy(&o.stderr), text);
    text
}

#[test]
fn bench_writes_consistent_csv_summary_and_plot_and_compare_reads_them() {
    let t = tempfile::tempdir().expect("tempdir");
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let table = bench(&profile(t.path(), 10_000), &a);
    for stage in ["decode", "preprocess", "classifier", "detector", "heads", "verdict", "store", "total"] {
        assert!(table.lines().any(|l| l.trim_start().starts_with(stage)), "{stage} row:\n{table}");
    }
    assert!(table.contains("heap allocations per slice inside the engines: mean"), "{table}");

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("summary.json")).expect("summary")).expect("json");
    assert_eq!(summary["schema"], "pe-sentinel-bench/1");
    let run = &summary["runs"][0];
    assert_eq!(run["engine"], "tract");
    assert_eq!(run["slices"], 6, "8 slices, 2 of them warm-up");
    assert_eq!(run["budget_misses"], 0);
    assert!(summary["hardware"]["cores"].as_u64().is_some_and(|c| c >= 1));
    assert_eq!(summary["classifier"]["sha256"].as_str().map(str::len), Some(64));
    let p50 = |s: &str| run["stages"][s]["p50_ms"].as_f64().expect("p50");
    assert!(p50("total") >= p50("classifier") && p50("classifier") > 0.0);

    let csv = std::fs::read_to_string(a.join("slices.csv")).expect("csv");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    assert_eq!(header[..5], ["engine", "index", "file", "frame", "decode_ms"]);
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let rows: Vec<Vec<String>> = lines.map(|l| l.split(',').map(str::to_string).collect()).collect();
    assert_eq!(rows.len(), 6);
    for r in &rows {
        let v = |name: &str| r[col(name)].parse::<f64>().expect(name);
        let stages = ["decode_ms", "preprocess_ms", "classifier_ms", "detector_ms", "heads_ms", "verdict_ms"];
        let sum: f64 = stages.iter().map(|s| v(s)).sum();
        // Arrival to verdict covers every stage before it (1 µs rounding per stage allowed).
        assert!(v("total_ms") + 0.01 >= sum, "total {} < stages {sum}: {r:?}", v("total_ms"));
        assert_eq!(r[col("missed")], "false");
    }
    let svg = std::fs::read_to_string(a.join("latency.svg")).expect("svg");
    assert!(svg.starts_with("<svg") && svg.contains("<polyline") && svg.contains("budget 10000 ms"));

    // An impossible budget: every timed slice is a miss.
    bench(&profile(t.path(), 1), &b);
    let sb: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("summary.json")).expect("summary")).expect("json");
    assert_eq!(sb["runs"][0]["budget_misses"], 6);

    let o = bin()
        .args(["bench", "compare"])
        .arg(a.join("summary.json"))
        .arg(b.join("summary.json"))
        .output()
        .expect("compare");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("B/A") && text.lines().any(|l| l.trim_start().starts_with("total")), "{text}");

    // Not a summary: a clear error naming the file.
    let bad = t.path().join("bad.json");
    std::fs::write(&bad, "{\"x\": 1}").expect("write");
    let o = bin().args(["bench", "compare"]).arg(&bad).arg(b.join("summary.json")).output().expect("compare");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.json"), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Cascade settings: a profile with a gate is run with the cascade off, then on (named
/// `ENGINE+cascadeG`), each with the share of slices the detector ran on; `--cascade` picks the
/// settings and refuses a gate outside 0..1.
#[test]
fn bench_runs_the_cascade_off_and_at_the_profiles_gate() {
    let t = tempfile::tempdir().expect("tempdir");
    let cfg = profile(t.path(), 10_000);
    let text = std::fs::read_to_string(&cfg).expect("read") + "cascade_gate = 1.0\n";
    std::fs::write(&cfg, text).expect("write");
    let out = t.path().join("c");
    let table = bench(&cfg, &out);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary")).expect("json");
    let runs = summary["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{table}");
    assert_eq!((runs[0]["engine"].as_str(), runs[0]["cascade_gate"].as_f64()), (Some("tract"), None));
    assert_eq!(runs[0]["detector_share"], 1.0);
    assert_eq!((runs[1]["engine"].as_str(), runs[1]["cascade_gate"].as_f64()), (Some("tract+cascade1"), Some(1.0)));
    // The tiny untrained classifier never reaches P = 1: the detector never runs behind the gate.
    assert_eq!(runs[1]["detector_share"], 0.0, "{table}");
    assert_eq!(runs[1]["stages"]["detector"]["max_ms"], 0.0);
    assert!(table.contains("it ran on 0.0% of the slices"), "{table}");
    let csv = std::fs::read_to_string(out.join("slices.csv")).expect("csv");
    assert!(csv.lines().next().is_some_and(|h| h.ends_with(",detector_ran")), "{csv}");
    assert_eq!(csv.lines().filter(|l| l.starts_with("tract+cascade1,") && l.ends_with(",false")).count(), 6);

    let o =
        bin().args(["bench", "--phantom", "8", "--cascade", "off,2", "--config"]).arg(&cfg).output().expect("bench");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--cascade 2") && err.contains("from 0 to 1"), "{err}");
}

/// `check` times a warm-up slice and warns, with the figure, when the models alone already
/// exceed the budget.
#[test]
fn check_warns_when_warm_up_latency_exceeds_the_budget() {
    let t = tempfile::tempdir().expect("tempdir");
    for (budget, expect) in [(1u32, "over the 1 ms budget"), (600_000, "of the 600000 ms budget")] {
        let p = profile(t.path(), budget);
        let text = std::fs::read_to_string(&p).expect("read").replace("/nonexistent", &t.path().display().to_string());
        std::fs::write(&p, text).expect("write");
        let o = bin().args(["check", "--config"]).arg(&p).output().expect("check");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{out}");
        assert!(out.contains(expect) && out.contains("median of 5 warm-up runs"), "{out}");
        assert_eq!(out.contains("warning: models alone take"), budget == 1, "{out}");
    }
}
