//! Intended use (issue 21) on real scans and the phantom, through the real binary: real
//! non-contrast and reformatted CT end `not-analysed` with their reasons and never reach ALERT on
//! the display; a real contrast-enhanced axial slice with the shipped (demo) models ends
//! `demo-model`, while phantom series keep alerting; the override lets a patient series alert;
//! the phantom's ineligible variants are skipped for the right reasons; `infer` and `eval` report
//! eligibility; the contrast image test is measured on real and phantom slices.
//!
//! Real files: tests/data/realct/ (TCIA Lung-PET-CT-Dx and COVID-19-NY-SBU, CC BY 4.0; see
//! tests/data/README.md).

mod common;

use common::{bin, data, files_directly_in, try_count, wait_for, Daemon};
use pe_sentinel::eligibility::{contrast, header, rules, Rules};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn realct(name: &str) -> PathBuf {
    data(&format!("realct/{name}"))
}

const LUNG: [&str; 3] = ["lung-dx-a0001-5mm-18.dcm", "lung-dx-a0001-5mm-19.dcm", "lung-dx-a0001-5mm-20.dcm"];
const CORONAL: &str = "sbu-A058062-coronal-reformat.dcm";
const SAGITTAL: &str = "sbu-A046441-sagittal-mpr.dcm";
const CONTRAST_AXIAL: &str = "sbu-A058062-axial-contrast.dcm";

fn series_uid(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("fixture");
    header::read(&bytes, path).expect("header").series_uid.expect("SeriesInstanceUID")
}

/// A pseudo-terminal standing in for the display: (master end the test reads, slave kept open, path).
fn pty_display(dir: &Path) -> (File, File, PathBuf) {
    let r = nix::pty::openpty(None, None).expect("openpty");
    // SAFETY: openpty just returned these descriptors and nothing else owns them.
    let (master, slave) = unsafe { (File::from_raw_fd(r.master), File::from_raw_fd(r.slave)) };
    let link = dir.join("ttyACM0");
    std::os::unix::fs::symlink(std::fs::read_link(format!("/proc/self/fd/{}", r.slave)).expect("pty"), &link)
        .expect("symlink");
    (master, slave, link)
}

/// Reads what the display end has received for `wait` (keeps the daemon's writes flowing).
fn drain(master: &mut File, got: &mut Vec<u8>, wait: Duration) {
    let end = Instant::now() + wait;
    while Instant::now() < end {
        let mut fds = [nix::poll::PollFd::new(master.as_raw_fd(), nix::poll::PollFlags::POLLIN)];
        if nix::poll::poll(&mut fds, 50).unwrap_or(0) > 0 {
            let mut buf = [0u8; 4096];
            if let Ok(k) = master.read(&mut buf) {
                got.extend_from_slice(&buf[..k]);
            }
        }
    }
}

/// A profile on `models` (classifier, detector manifests) under which every analysed slice is
/// suspicious and one suspicious slice makes a series positive: anything analysed alerts, so a
/// series that does not alert was kept from it by the intended-use rules. `extra` is appended.
fn alert_on_anything(dir: &Path, classifier: &Path, detector: &Path, extra: &str) -> PathBuf {
    let p = dir.join("profile.toml");
    let text = format!(
        "[board]\nname = \"test\"\n[engine]\nkind = \"tract\"\nprecision = \"fp32\"\nthreads = 1\n\
         [models]\ndir = \"{m}\"\nclassifier = \"{c}\"\ndetector = \"{d}\"\n\
         [paths]\ndrop_dir = \"{dir}/unused-drop\"\nstate_dir = \"{dir}/unused-state\"\n\
         [verdict]\nfusion = \"classifier_only\"\nclassifier_threshold = 0.0\nsuspicious_min = 1\nwindow_slices = 1\nquiet_s = 1.0\n\
         [budget]\nbudget_ms = 600000\n{extra}",
        m = data("").display(),
        c = classifier.display(),
        d = detector.display(),
        dir = dir.display()
    );
    std::fs::write(&p, text).expect("profile");
    p
}

fn shipped(kind: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("models/{kind}-fp32.toml"))
}

/// One series row of the journal: (verdict, alerted, reasons).
fn series_row(state: &Path, series: &str) -> Option<(String, bool, Option<String>)> {
    let c = rusqlite::Connection::open_with_flags(
        state.join("journal.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .ok()?;
    c.query_row("SELECT verdict, alerted, reasons FROM series WHERE series = ?1", [series], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
    .ok()
}

fn phantom(out: &Path, slices: u32, seed: u64, pe_fraction: &str, acquisition: &str) {
    let st = bin()
        .args(["phantom", "--series", "1", "--slices", &slices.to_string(), "--seed", &seed.to_string()])
        .args(["--pe-fraction", pe_fraction, "--format", "dicom", "--acquisition", acquisition, "--out"])
        .arg(out)
        .output()
        .expect("phantom");
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
}

fn copy_into(dir: &Path, files: &[PathBuf]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for f in files {
        let name = f.file_name().expect("name");
        let tmp = dir.join(format!(".{}.part", name.to_string_lossy()));
        std::fs::copy(f, &tmp).expect("copy");
        std::fs::rename(&tmp, dir.join(name)).expect("rename");
    }
}

#[test]
fn real_non_contrast_and_reformatted_series_end_not_analysed_and_never_reach_alert() {
    let t = tempfile::tempdir().expect("tempdir");
    let (drop, state) = (t.path().join("drop"), t.path().join("state"));
    let (mut master, _slave, link) = pty_display(t.path());
    let cfg = alert_on_anything(
        t.path(),
        &data("tiny-classifier.toml"),
        &data("tiny-detector.toml"),
        &format!("[display]\nport = \"{}\"\nprotocol = \"line\"\nrefresh_ms = 20\n", link.display()),
    );
    std::fs::create_dir_all(&drop).expect("mkdir");
    let mut d = Daemon::start(&cfg, &drop, &state);
    let mut got = Vec::new();
    wait_for(&mut d, Duration::from_secs(60), "the daemon to start", |d| d.log().contains("watching drop folder"));
    // One series at a time, each waited for on the display: the display redraws at a bounded
    // rate, so notes of series that arrive together may be coalesced into the last one.
    let done = drop.join("done");
    let series: [(&str, Vec<PathBuf>, &str); 3] = [
        ("lung", LUNG.map(realct).to_vec(), "NOTE=SKIPPED: 5 mm, no contrast"),
        ("coronal", vec![realct(CORONAL)], "NOTE=SKIPPED: reformat, coronal"),
        ("sagittal", vec![realct(SAGITTAL)], "NOTE=SKIPPED: reformat, sagittal"),
    ];
    for (folder, files, note) in &series {
        copy_into(&drop.join(folder), files);
        wait_for(&mut d, Duration::from_secs(60), "the real files to be done", |_| {
            files_directly_in(&done.join(folder)).len() == files.len()
        });
        let until = Instant::now() + Duration::from_secs(20);
        while !String::from_utf8_lossy(&got).contains(note) && Instant::now() < until {
            drain(&mut master, &mut got, Duration::from_millis(500));
        }
    }
    drain(&mut master, &mut got, Duration::from_secs(2));
    let shown = String::from_utf8_lossy(&got).into_owned();
    let log = d.log();
    assert!(!shown.contains("STATE=ALERT") && !log.contains("ALERT series"), "display:\n{shown}\nlog:\n{log}");
    assert!(shown.contains("STATE=SKIPPED"), "{shown}");
    assert!(shown.contains("NOTE=SKIPPED: 5 mm, no contrast"), "{shown}");
    assert!(shown.contains("NOTE=SKIPPED: reformat, coronal"), "{shown}");
    assert!(shown.contains("NOTE=SKIPPED: reformat, sagittal"), "{shown}");
    assert_eq!(try_count(&state, "SELECT COUNT(*) FROM slices"), Some(0), "no real slice reached the models");
    assert_eq!(try_count(&state, "SELECT COUNT(*) FROM skipped"), Some((LUNG.len() + 2) as i64));

    let (v, alerted, why) = series_row(&state, &series_uid(&realct(LUNG[0]))).expect("lung series row");
    let why = why.unwrap_or_default();
    assert_eq!((v.as_str(), alerted), ("not-analysed", false));
    assert!(why.contains("SliceThickness 5 mm") && why.contains("no contrast"), "{why}");
    let (v, _, why) = series_row(&state, &series_uid(&realct(CORONAL))).expect("coronal row");
    let why = why.unwrap_or_default();
    assert_eq!(v, "not-analysed");
    assert!(why.contains("DERIVED\\SECONDARY\\REFORMATTED") && why.contains("coronal slice"), "{why}");
    let (v, _, why) = series_row(&state, &series_uid(&realct(SAGITTAL))).expect("sagittal row");
    let why = why.unwrap_or_default();
    assert_eq!(v, "not-analysed");
    assert!(why.contains("MPR") && why.contains("sagittal slice"), "{why}");

    // The control: in the same run a phantom slice does alert under this profile.
    phantom(&t.path().join("ph"), 1, 3, "1", "ctpa");
    copy_into(&drop.join("phantom"), &files_directly_in(&t.path().join("ph/series-000/dicom")));
    wait_for(&mut d, Duration::from_secs(60), "the phantom slice to alert", |d| d.log().contains("ALERT series"));
    drain(&mut master, &mut got, Duration::from_secs(1));
    assert!(String::from_utf8_lossy(&got).contains("STATE=ALERT"));
    assert!(d.terminate().success());

    let out = bin().args(["history", "--json", "--state"]).arg(&state).output().expect("history");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("history --json");
    let verdicts: Vec<&str> = rows.as_array().expect("rows").iter().filter_map(|r| r["verdict"].as_str()).collect();
    assert_eq!(verdicts.iter().filter(|v| **v == "not-analysed").count(), 3, "{rows}");
    assert_eq!(verdicts.iter().filter(|v| **v == "positive").count(), 1, "{rows}");
    let text = bin().args(["history", "--state"]).arg(&state).output().expect("history");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("not-analysed (SliceThickness 5 mm"), "{text}");
}

/// The shipped (demo) models on a real contrast-enhanced axial slice: analysed, `demo-model`,
/// no alert, even though every slice is suspicious under this profile; a phantom series in the
/// same run alerts. With `demo_models_may_alert_on_patients = true` the same real slice alerts.
#[test]
fn a_real_contrast_axial_slice_with_the_shipped_models_is_demo_model_and_the_phantom_still_alerts() {
    let real = realct(CONTRAST_AXIAL);
    let uid = series_uid(&real);
    let t = tempfile::tempdir().expect("tempdir");
    phantom(&t.path().join("ph"), 1, 3, "1", "ctpa");
    for (run, extra, want) in [
        ("demo", "", ("demo-model", false)),
        ("override", "[eligibility]\ndemo_models_may_alert_on_patients = true\n", ("positive", true)),
    ] {
        let dir = t.path().join(run);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let (drop, state) = (dir.join("drop"), dir.join("state"));
        let cfg = alert_on_anything(&dir, &shipped("classifier"), &shipped("detector"), extra);
        std::fs::create_dir_all(&drop).expect("mkdir");
        let mut d = Daemon::start(&cfg, &drop, &state);
        wait_for(&mut d, Duration::from_secs(120), "the daemon to start", |d| d.log().contains("watching drop folder"));
        let log = d.log();
        assert!(log.contains("DEMO MODELS loaded"), "the start-up log says demo models are loaded:\n{log}");
        copy_into(&drop.join("real"), std::slice::from_ref(&real));
        copy_into(&drop.join("phantom"), &files_directly_in(&t.path().join("ph/series-000/dicom")));
        wait_for(&mut d, Duration::from_secs(120), "both series to close", |_| {
            series_row(&state, &uid).is_some_and(|r| r.0 != "open")
                && try_count(&state, "SELECT COUNT(*) FROM series WHERE closed_unix_ms IS NOT NULL") == Some(2)
        });
        let log = d.log();
        assert!(d.terminate().success());
        let (v, alerted, why) = series_row(&state, &uid).expect("real series row");
        assert_eq!((v.as_str(), alerted), want, "{run}: {why:?}\n{log}");
        assert_eq!(try_count(&state, "SELECT COUNT(*) FROM slices"), Some(2), "both slices were analysed");
        assert_eq!(
            try_count(&state, "SELECT COUNT(*) FROM series WHERE verdict = 'positive' AND alerted = 1"),
            Some(if run == "demo" { 1 } else { 2 }),
            "{run}: the phantom series alerts\n{log}"
        );
        let alerts = log.matches("ALERT series").count();
        assert_eq!(alerts, if run == "demo" { 1 } else { 2 }, "{log}");
        if run == "demo" {
            assert!(why.is_some_and(|w| w.contains("series rule was met")), "{log}");
            assert!(log.contains("no alert (verdict demo-model)"), "{log}");
        }
    }
}

#[test]
fn the_phantoms_ineligible_variants_are_not_analysed_for_the_right_reasons() {
    let t = tempfile::tempdir().expect("tempdir");
    let (drop, state) = (t.path().join("drop"), t.path().join("state"));
    let cfg = alert_on_anything(t.path(), &data("tiny-classifier.toml"), &data("tiny-detector.toml"), "");
    let cases = [
        ("coronal-reformat", Some("reformat, coronal")),
        ("scout", Some("scout, no contrast")),
        ("thick-non-contrast", Some("5 mm, no contrast")),
        ("contrast-unstated", None),
        ("ctpa", None),
    ];
    for (i, (acq, _)) in cases.iter().enumerate() {
        phantom(&t.path().join(acq), 4, 40 + i as u64, "0", acq);
    }
    std::fs::create_dir_all(&drop).expect("mkdir");
    let mut d = Daemon::start(&cfg, &drop, &state);
    wait_for(&mut d, Duration::from_secs(60), "the daemon to start", |d| d.log().contains("watching drop folder"));
    for (acq, _) in &cases {
        copy_into(&drop.join(acq), &files_directly_in(&t.path().join(format!("{acq}/series-000/dicom"))));
    }
    wait_for(&mut d, Duration::from_secs(60), "every file to be done", |_| {
        cases.iter().map(|(a, _)| files_directly_in(&drop.join("done").join(a)).len()).sum::<usize>() == 4 * cases.len()
    });
    let log = d.log();
    assert!(d.terminate().success());
    for (acq, short) in cases {
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(t.path().join(format!("{acq}/phantom.json"))).expect("json"))
                .expect("phantom.json");
        let uid = json["series"][0]["series_instance_uid"].as_str().expect("uid").to_string();
        let (v, alerted, why) = series_row(&state, &uid).expect("row");
        match short {
            Some(s) => {
                assert_eq!((v.as_str(), alerted), ("not-analysed", false), "{acq}: {why:?}");
                assert!(log.contains(&format!("series {uid}: {s})")), "{acq}: {s}\n{log}");
            }
            // Analysed: under this profile every analysed phantom series alerts.
            None => assert_eq!((v.as_str(), alerted), ("positive", true), "{acq}: {why:?}\n{log}"),
        }
    }
}

#[test]
fn infer_prints_eligibility_per_slice_and_eval_counts_the_slices_it_left_out() {
    let t = tempfile::tempdir().expect("tempdir");
    let cfg = common::profile(t.path());
    phantom(&t.path().join("ph"), 2, 5, "1", "ctpa");
    let good = files_directly_in(&t.path().join("ph/series-000/dicom"))[0].clone();
    let out = bin().args(["infer", "--config"]).arg(&cfg).arg(realct(LUNG[0])).arg(&good).output().expect("infer");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["eligible"], false);
    assert_eq!(lines[0]["verdict"], "not-analysed");
    assert!(lines[0]["p"].is_null());
    let reasons = lines[0]["reasons"].to_string();
    assert!(reasons.contains("SliceThickness 5 mm") && reasons.contains("no contrast"), "{reasons}");
    assert_eq!(lines[1]["eligible"], true);
    assert!(lines[1]["p"].is_number() && lines[1]["reasons"].as_array().is_some_and(|r| r.is_empty()));

    // eval over a dataset with one ineligible series among two eligible ones.
    let set = t.path().join("set");
    phantom(&set, 2, 6, "1", "ctpa");
    phantom(&t.path().join("thick"), 2, 7, "1", "thick-non-contrast");
    std::fs::rename(t.path().join("thick/series-000"), set.join("series-009")).expect("move");
    let out =
        bin().args(["eval", "--input", "dicom", "--config"]).arg(&cfg).arg("--data").arg(&set).output().expect("eval");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not analysed (intended use)             2 slice(s), left out"), "{text}");
    assert!(text.contains("(1 series, 2 slices"), "only the eligible series is measured: {text}");
}

/// HU pixels and the header of a DICOM file.
fn hu_of(path: &Path) -> (Vec<f32>, usize, usize, [f64; 2]) {
    let bytes = std::fs::read(path).expect("read");
    let h = header::read(&bytes, path).expect("header");
    let s = pe_sentinel::source::decode::dicom::decode_bytes(
        &bytes,
        path,
        pe_sentinel::source::decode::dicom::Accept::CtOnly,
    )
    .expect("decode");
    let pe_sentinel::slice::Pixels::Hu(hu) = &s[0].pixels else { panic!("HU") };
    (hu.clone(), s[0].width as usize, s[0].height as usize, h.pixel_spacing_mm.unwrap_or([0.7, 0.7]))
}

fn measure(path: &Path) -> contrast::BloodPool {
    let (hu, w, h, px) = hu_of(path);
    contrast::blood_pool(&hu, w, h, px, contrast::DEFAULT_MIN_HU)
}

/// The image test's figures on the real fixtures and on phantom series (printed for the docs):
/// no real non-contrast slice passes, the real contrast slice does, and every phantom series has
/// slices that pass.
#[test]
fn the_contrast_image_test_separates_real_non_contrast_from_contrast_and_phantom_slices() {
    let mut lines = Vec::new();
    for name in LUNG.iter().chain(&["sbu-A027284-axial-noncontrast.dcm"]) {
        let m = measure(&realct(name));
        lines.push(format!("real non-contrast {name}: {m} -> {}", m.found));
        assert!(!m.found, "{name}: {m}");
    }
    let m = measure(&realct(CONTRAST_AXIAL));
    lines.push(format!("real contrast {CONTRAST_AXIAL}: {m} -> {}", m.found));
    assert!(m.found, "{m}");
    let m = measure(&realct("sbu-A058062-axial-silent.dcm"));
    lines.push(format!("real, header silent, sbu-A058062-axial-silent.dcm: {m} -> {}", m.found));
    let t = tempfile::tempdir().expect("tempdir");
    for seed in [1u64, 2, 3] {
        let out = t.path().join(format!("s{seed}"));
        phantom(&out, 16, seed, "0.5", "contrast-unstated");
        let files = files_directly_in(&out.join("series-000/dicom"));
        let found: Vec<contrast::BloodPool> = files.iter().map(|f| measure(f)).collect();
        let pass = found.iter().filter(|m| m.found).count();
        let means: Vec<String> = found.iter().filter(|m| m.found).map(|m| format!("{:.0}", m.mean_hu)).collect();
        lines.push(format!("phantom seed {seed}: {pass} of {} slices pass (means {})", files.len(), means.join(" ")));
        assert!(pass > 0, "phantom seed {seed}: {found:?}");
    }
    println!("{}", lines.join("\n"));
    // The rule and the test agree: the contrast-unstated phantom is eligible by its header.
    let bytes = std::fs::read(files_directly_in(&t.path().join("s1/series-000/dicom"))[0].clone()).expect("read");
    let h = header::read(&bytes, Path::new("p.dcm")).expect("header");
    assert_eq!(rules::judge(&Rules::default(), &h).contrast, rules::Contrast::ImageTest);
}

/// Every axial slice of ../shared/data/realct (the whole 64-slice series and the COVID-19-NY-SBU
/// axials), when that folder is present: the image test's figures for docs/intended-use.md.
/// `cargo test --test eligibility -- --ignored --nocapture`
#[test]
#[ignore]
fn measure_the_contrast_image_test_on_all_shared_real_slices() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/realct");
    let root = if root.exists() { root } else { PathBuf::from("/work/shared/data/realct") };
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("realct folder").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "dcm") {
                files.push(p);
            }
        }
    }
    files.sort();
    let (mut pass, mut n) = (0, 0);
    for f in &files {
        let bytes = std::fs::read(f).expect("read");
        let h = header::read(&bytes, f).expect("header");
        let v = rules::judge(&Rules::default(), &h);
        let m = measure(f);
        n += 1;
        pass += usize::from(m.found);
        let rel = f.strip_prefix(&root).unwrap_or(f).display().to_string();
        let rules_hit: Vec<&str> = v.reasons.iter().map(|r| r.rule()).collect();
        if rel.contains("coronal") || rel.contains("sagittal") {
            assert!(rules_hit.contains(&"axial") && rules_hit.contains(&"image-type"), "{rel}: {rules_hit:?}");
        }
        if rel.contains("lung-pet-ct-dx") {
            assert!(rules_hit.contains(&"slice-thickness") && rules_hit.contains(&"contrast"), "{rel}: {rules_hit:?}");
            assert!(!m.found, "{rel}: a non-contrast slice passed the image test: {m}");
        }
        println!(
            "{} | contrast in header {} | rules {:?} | image test {} ({m})",
            f.strip_prefix(&root).unwrap_or(f).display(),
            h.contrast_agent.is_some() || h.contrast_route.is_some(),
            v.reasons.iter().map(|r| r.short()).collect::<Vec<_>>(),
            m.found
        );
    }
    println!("{pass} of {n} slices pass the image test");
}
