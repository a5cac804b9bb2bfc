//! Integration tests of `pe-sentinel phantom`: determinism, DICOM read back through the project's
//! own reader, truth boxes against the 3D scene, negatives, confounders, and bad arguments.
//! Real files in temporary folders; the real binary for the command-line cases.

use pe_sentinel::phantom::geometry::V3;
use pe_sentinel::phantom::render::{in_defect, Canvas, Grid, SIZE};
use pe_sentinel::phantom::{generate, Format, PhantomOptions, SeriesPlan};
use pe_sentinel::slice::Pixels;
use pe_sentinel::source::decode::dicom::{decode_file, Accept};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readable dir") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("under dir").to_path_buf();
                out.insert(rel, std::fs::read(&p).expect("readable file"));
            }
        }
    }
    out
}

fn opts(out: &Path, series: u32, slices: u32, seed: u64) -> PhantomOptions {
    let mut o = PhantomOptions::new(out);
    o.series = series;
    o.slices = slices;
    o.seed = seed;
    o
}

#[test]
fn same_seed_and_arguments_give_byte_identical_output() {
    let t = tempfile::tempdir().expect("tempdir");
    let (a, b, c) = (t.path().join("a"), t.path().join("b"), t.path().join("c"));
    let mut oa = opts(&a, 3, 12, 11);
    oa.threads = 2;
    let mut ob = opts(&b, 3, 12, 11);
    ob.threads = 1;
    generate(&oa).expect("run a");
    generate(&ob).expect("run b");
    generate(&opts(&c, 3, 12, 12)).expect("run c");
    let (fa, fb, fc) = (files_under(&a), files_under(&b), files_under(&c));
    assert_eq!(fa.len(), 1 + 3 * (1 + 12 * 3), "phantom.json, truth.json and dicom+png+label per slice");
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (k, v) in &fa {
        assert!(v == &fb[k], "{} differs between two runs with the same seed", k.display());
    }
    let differing = fa.iter().filter(|(k, v)| fc.get(*k) != Some(*v)).count();
    assert!(differing > fa.len() / 2, "another seed must give other pixels ({differing} of {} differ)", fa.len());
}

#[test]
fn dicom_read_back_by_our_reader_matches_the_generated_hu() {
    let t = tempfile::tempdir().expect("tempdir");
    let mut o = opts(t.path(), 2, 6, 5);
    o.emit_hu = true;
    o.format = Format::Dicom;
    let summary = generate(&o).expect("phantom");
    let mut checked = 0;
    for s in &summary.series {
        let dir = t.path().join(&s.folder);
        let mut last_z = f64::INFINITY;
        for k in 1..=6u32 {
            let stem = format!("slice-{k:04}");
            let slices = decode_file(&dir.join("dicom").join(format!("{stem}.dcm")), Accept::CtOnly)
                .expect("our reader decodes the phantom");
            assert_eq!(slices.len(), 1);
            let sl = &slices[0];
            assert_eq!((sl.width, sl.height), (512, 512));
            assert_eq!(sl.series.0, s.series_instance_uid);
            assert_eq!(sl.instance, Some(k as i32));
            let z = sl.position_z.expect("ImagePositionPatient");
            assert!(z < last_z, "slices go from head to feet");
            last_z = z;
            let raw = std::fs::read(dir.join("hu").join(format!("{stem}.f32"))).expect("emitted HU");
            let generated: Vec<f32> =
                raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            let Pixels::Hu(hu) = &sl.pixels else { panic!("a CT slice decodes to HU") };
            let worst = hu.iter().zip(&generated).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst <= 1.0, "{stem}: HU differ by {worst}");
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}

#[test]
fn truth_boxes_lie_in_arteries_cover_their_defects_and_span_slices() {
    let slices = 80;
    let mut canvas = Canvas::default();
    let mut boxes = Vec::new();
    let mut boxes_seen = 0;
    for seed in [1u64, 2, 3, 4] {
        let plan = SeriesPlan::new(seed, 0, slices, true);
        let s = &plan.scene;
        assert!(!s.emboli.is_empty(), "seed {seed}: a positive series has emboli");
        let g = Grid::new(s.pixel_spacing);
        let mut labelled: Vec<Vec<u32>> = vec![Vec::new(); s.emboli.len()];
        for k in 0..slices {
            plan.render(k, &mut canvas, &mut boxes);
            let z = s.slice_z(k);
            for b in &boxes {
                boxes_seen += 1;
                labelled[b.embolus].push(k);
                // Every defect pixel of this embolus in this slice lies inside the box.
                let (mut inside_artery, mut area, mut defect_hu, mut defect_n) = (0u32, 0u32, 0.0f32, 0u32);
                for j in 0..SIZE {
                    for i in 0..SIZE {
                        let p = V3::new(g.x(i), g.x(j), z);
                        let in_box = (i as u32) >= b.x0 && (i as u32) < b.x1 && (j as u32) >= b.y0 && (j as u32) < b.y1;
                        if in_defect(s, b.embolus, p) {
                            assert!(in_box, "seed {seed} slice {k}: defect pixel ({i},{j}) outside box {b:?}");
                            defect_hu += canvas.hu[j * SIZE + i];
                            defect_n += 1;
                        }
                        if in_box {
                            area += 1;
                            if s.arteries.iter().any(|a| a.seg.contains(p)) {
                                inside_artery += 1;
                            }
                        }
                    }
                }
                // An oblique cut makes a diagonal ellipse, so the box holds some wall and lung; but
                // the defect fills a good part of it and its centre is in an artery lumen.
                assert!(inside_artery * 3 >= area, "seed {seed} slice {k}: box {b:?} mostly outside arteries");
                let centre = V3::new(g.x(((b.x0 + b.x1) / 2) as usize), g.x(((b.y0 + b.y1) / 2) as usize), z);
                assert!(
                    s.arteries.iter().any(|a| a.seg.axis_distance(centre) < a.seg.r + g.spacing),
                    "seed {seed} slice {k}: box centre outside every artery"
                );
                // The defect is rendered darker than contrast-filled lumen.
                let mean = defect_hu / defect_n as f32;
                assert!(mean < s.pa_hu - 80.0, "seed {seed} slice {k}: defect mean {mean} HU vs lumen {}", s.pa_hu);
            }
        }
        for (e, ks) in labelled.iter().enumerate() {
            if ks.is_empty() {
                continue;
            }
            assert!(ks.len() >= 2, "seed {seed}: embolus {e} labelled on a single slice {ks:?}");
            assert!(ks.windows(2).all(|w| w[1] == w[0] + 1), "seed {seed}: embolus {e} labels not contiguous {ks:?}");
        }
        assert!(labelled.iter().any(|k| k.len() >= 3), "seed {seed}: an embolus spans several slices");
    }
    assert!(boxes_seen > 20);
}

#[test]
fn negative_series_have_empty_labels_and_confounders_stay_unlabelled() {
    let t = tempfile::tempdir().expect("tempdir");
    let mut o = opts(t.path(), 12, 24, 9);
    o.pe_fraction = 0.25;
    o.format = Format::Png;
    let summary = generate(&o).expect("phantom");
    let negatives: Vec<_> = summary.series.iter().filter(|s| !s.positive).collect();
    assert_eq!(negatives.len(), 9);
    let (mut ggo, mut mixing, mut streaks) = (0, 0, 0);
    for s in &negatives {
        let dir = t.path().join(&s.folder);
        assert_eq!(s.emboli, 0);
        for e in std::fs::read_dir(dir.join("labels")).expect("labels") {
            let p = e.expect("entry").path();
            assert_eq!(std::fs::metadata(&p).expect("label").len(), 0, "{} must be empty", p.display());
        }
        let truth: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("truth.json")).expect("truth")).expect("json");
        assert_eq!(truth["positive"], false);
        let c = &truth["confounders"];
        ggo += c["ground_glass"].as_u64().unwrap_or(0) + c["consolidation"].as_u64().unwrap_or(0);
        mixing += u32::from(c["mixing_artefact"] == true);
        streaks += u32::from(c["contrast_streaks"] == true);
    }
    assert!(
        ggo > 0 && mixing > 0 && streaks > 0,
        "negatives carry confounders: ggo {ggo} mixing {mixing} streaks {streaks}"
    );
}

#[test]
fn confounders_are_rendered_with_their_attenuation() {
    // Find a series with opacities and check the rendered HU at a blob centre.
    let mut canvas = Canvas::default();
    let mut boxes = Vec::new();
    let mut checked = 0;
    for seed in 1..40u64 {
        let plan = SeriesPlan::new(seed, 0, 200, false);
        let s = &plan.scene;
        let g = Grid::new(s.pixel_spacing);
        for o in &s.opacities {
            let k = ((s.z_first - o.center.z) / s.slice_thickness).round();
            if !(0.0..200.0).contains(&k) || o.semi.x.min(o.semi.y) < 12.0 {
                continue;
            }
            plan.render(k as u32, &mut canvas, &mut boxes);
            assert!(boxes.is_empty());
            let i = ((o.center.x - g.origin) / g.spacing).round() as usize;
            let j = ((o.center.y - g.origin) / g.spacing).round() as usize;
            // Median of a 5x5 patch: noise and small vessels aside, the opacity's density shows.
            let mut patch: Vec<f32> = (0..25).map(|n| canvas.hu[(j + n / 5 - 2) * SIZE + (i + n % 5 - 2)]).collect();
            patch.sort_by(f32::total_cmp);
            let m = patch[12];
            assert!((o.hu - 120.0..=o.hu + 120.0).contains(&m), "seed {seed}: opacity {} HU rendered as {m}", o.hu);
            checked += 1;
        }
        if checked >= 3 {
            break;
        }
    }
    assert!(checked >= 3, "found opacities to check");
}

#[test]
fn slices_look_like_ctpa() {
    let plan = SeriesPlan::new(21, 0, 40, false);
    let s = &plan.scene;
    let mut canvas = Canvas::default();
    let mut boxes = Vec::new();
    plan.render(20, &mut canvas, &mut boxes);
    let mut v = canvas.hu.clone();
    v.sort_by(f32::total_cmp);
    assert!(v[v.len() - 50] > 700.0, "bone present");
    assert!(v[100] < -950.0, "air present");
    // The lumen of the pulmonary trunk or a main artery at this level carries contrast.
    let g = Grid::new(s.pixel_spacing);
    let z = s.slice_z(20);
    let mut lumen = Vec::new();
    let mut lung = Vec::new();
    for j in 0..SIZE {
        for i in 0..SIZE {
            let p = V3::new(g.x(i), g.x(j), z);
            if s.arteries[..3].iter().any(|a| a.seg.axis_distance(p) < a.seg.r - 2.0) {
                lumen.push(canvas.hu[j * SIZE + i]);
            }
            if s.in_lung(p) && !s.arteries.iter().any(|a| a.seg.axis_distance(p) < a.seg.r + 3.0) {
                lung.push(canvas.hu[j * SIZE + i]);
            }
        }
    }
    let mean = |x: &[f32]| x.iter().sum::<f32>() / x.len().max(1) as f32;
    assert!(!lumen.is_empty() && !lung.is_empty());
    assert!((250.0..=450.0).contains(&mean(&lumen)), "lumen {}", mean(&lumen));
    assert!((-900.0..=-700.0).contains(&mean(&lung)), "lung {}", mean(&lung));
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pe-sentinel"))
}

#[test]
fn bad_arguments_fail_clearly() {
    let t = tempfile::tempdir().expect("tempdir");
    let out = t.path().join("o");
    let cases: [(&[&str], &str); 5] = [
        (&["--series", "0"], "--series"),
        (&["--slices", "0"], "--slices"),
        (&["--series", "-2"], "--series"),
        (&["--format", "tiff"], "tiff"),
        (&["--pe-fraction", "1.5"], "--pe-fraction"),
    ];
    for (args, needle) in cases {
        let o = bin().args(["phantom", "--out"]).arg(&out).args(args).output().expect("run");
        assert!(!o.status.success(), "{args:?} must fail");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{args:?}: stderr should name {needle}: {err}");
    }
    // A file where the output folder should be.
    let file = t.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("write");
    let o =
        bin().args(["phantom", "--series", "1", "--slices", "1", "--out"]).arg(file.join("sub")).output().expect("run");
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot write") && err.contains("not-a-dir"), "{err}");
}
