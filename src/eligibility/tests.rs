//! Each rule on both sides, and with the attribute it needs missing.

use super::rules::{judge, tilt, Contrast, Reason, Rules};
use super::*;

/// A header as a CT pulmonary angiogram has it.
fn ctpa() -> SliceHeader {
    SliceHeader {
        sop_class_uid: Some(rules::CT_SOP_CLASSES[0].into()),
        modality: Some("CT".into()),
        image_type: vec!["ORIGINAL".into(), "PRIMARY".into(), "AXIAL".into()],
        orientation: Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
        slice_thickness_mm: Some(1.0),
        contrast_agent: Some("IOHEXOL".into()),
        contrast_route: Some("IV".into()),
        pixel_spacing_mm: Some([0.7, 0.7]),
        rows: Some(512),
        columns: Some(512),
        body_part: Some("CHEST".into()),
        manufacturer: Some("SCANNER CO".into()),
        ..Default::default()
    }
}

fn rules_of(h: &SliceHeader) -> Vec<&'static str> {
    judge(&Rules::default(), h).reasons.iter().map(Reason::rule).collect()
}

/// `change` makes the header fail exactly `rule`; with the rule switched off by `off` it passes.
fn both_sides(rule: &str, change: impl Fn(&mut SliceHeader), off: impl Fn(&mut Rules)) {
    assert!(rules_of(&ctpa()).is_empty(), "the CTPA header is eligible");
    let mut h = ctpa();
    change(&mut h);
    assert_eq!(rules_of(&h), [rule], "{h:?}");
    let mut r = Rules::default();
    off(&mut r);
    assert!(judge(&r, &h).reasons.is_empty(), "{rule} switched off: {:?}", judge(&r, &h).reasons);
}

#[test]
fn modality_and_sop_class() {
    both_sides("modality", |h| h.modality = Some("MR".into()), |r| r.modality = false);
    both_sides("modality", |h| h.modality = None, |r| r.modality = false);
    both_sides("modality", |h| h.sop_class_uid = Some("1.2.840.10008.5.1.4.1.1.7".into()), |r| r.modality = false);
    both_sides("modality", |h| h.sop_class_uid = None, |r| r.modality = false);
    let mut enhanced = ctpa();
    enhanced.sop_class_uid = Some(rules::CT_SOP_CLASSES[1].into());
    assert!(rules_of(&enhanced).is_empty());
}

#[test]
fn axial_within_the_tilt_and_not_beyond() {
    // Coronal and sagittal reformats, as the COVID-19-NY-SBU files have them.
    both_sides("axial", |h| h.orientation = Some([1.0, 0.0, 0.0, 0.0, 0.0, -1.0]), |r| r.axial = false);
    both_sides("axial", |h| h.orientation = Some([0.0, 1.0, 0.0, 0.0, 0.0, -1.0]), |r| r.axial = false);
    both_sides("axial", |h| h.orientation = None, |r| r.axial = false);
    let at = |deg: f64| {
        let (s, c) = deg.to_radians().sin_cos();
        let mut h = ctpa();
        h.orientation = Some([1.0, 0.0, 0.0, 0.0, c, s]);
        h
    };
    assert!(rules_of(&at(9.0)).is_empty(), "a 9 degree gantry tilt is axial");
    assert_eq!(rules_of(&at(11.0)), ["axial"]);
    let r = Rules { max_tilt_deg: 15.0, ..Default::default() };
    assert!(judge(&r, &at(11.0)).reasons.is_empty());
    assert_eq!(tilt(&[1.0, 0.0, 0.0, 0.0, 0.0, -1.0]).map(|t| t.1), Some("coronal"));
    assert_eq!(tilt(&[0.0, 1.0, 0.0, 0.0, 0.0, -1.0]).map(|t| t.1), Some("sagittal"));
    assert_eq!(tilt(&[0.0; 6]), None, "degenerate cosines are no orientation");
}

#[test]
fn image_type_original_primary_only() {
    fn set(v: &'static [&'static str]) -> impl Fn(&mut SliceHeader) {
        move |h: &mut SliceHeader| h.image_type = v.iter().map(|s| s.to_string()).collect()
    }
    for (value, kind) in [
        (&["ORIGINAL", "PRIMARY", "LOCALIZER"][..], "scout"),
        (&["DERIVED", "SECONDARY", "REFORMATTED", "AVERAGE"][..], "reformat"),
        (&["DERIVED", "PRIMARY", "MPR"][..], "reformat"),
        (&["DERIVED", "SECONDARY", "MIP"][..], "MIP"),
        (&["DERIVED", "SECONDARY"][..], "derived image"),
        (&["ORIGINAL", "SECONDARY", "AXIAL"][..], "secondary image"),
    ] {
        both_sides("image-type", set(value), |r| r.image_type = false);
        let mut h = ctpa();
        set(value)(&mut h);
        assert_eq!(judge(&Rules::default(), &h).reasons[0].short(), kind, "{value:?}");
    }
    both_sides("image-type", set(&[]), |r| r.image_type = false);
    let mut helix = ctpa();
    set(&["ORIGINAL", "PRIMARY", "AXIAL", "HELIX"])(&mut helix);
    assert!(rules_of(&helix).is_empty());
}

#[test]
fn slice_thickness_range() {
    both_sides("slice-thickness", |h| h.slice_thickness_mm = Some(5.0), |r| r.slice_thickness = false);
    both_sides("slice-thickness", |h| h.slice_thickness_mm = Some(3.01), |r| r.slice_thickness = false);
    both_sides("slice-thickness", |h| h.slice_thickness_mm = None, |r| r.slice_thickness = false);
    let mut h = ctpa();
    h.slice_thickness_mm = Some(3.0);
    assert!(rules_of(&h).is_empty(), "3 mm is the default's upper end");
    h.slice_thickness_mm = Some(5.0);
    assert_eq!(judge(&Rules::default(), &h).reasons[0].short(), "5 mm");
}

#[test]
fn contrast_stated_or_image_test() {
    let mut h = ctpa();
    h.contrast_agent = None;
    assert_eq!(judge(&Rules::default(), &h).contrast, Contrast::Stated, "the route alone states it");
    h.contrast_route = None;
    let v = judge(&Rules::default(), &h);
    assert!(v.reasons.is_empty() && v.contrast == Contrast::ImageTest, "{v:?}");
    let no_test = Rules { contrast_image_test: false, ..Default::default() };
    assert_eq!(judge(&no_test, &h).reasons.iter().map(Reason::rule).collect::<Vec<_>>(), ["contrast"]);
    let off = Rules { contrast: false, ..Default::default() };
    assert_eq!(judge(&off, &h).contrast, Contrast::Stated);
    // Ineligible already: no image test, "no contrast" noted beside the other reason.
    h.slice_thickness_mm = Some(5.0);
    let v = judge(&Rules::default(), &h);
    assert_eq!(v.reasons.iter().map(Reason::short).collect::<Vec<_>>(), ["5 mm", "no contrast"]);
}

#[test]
fn pixel_spacing_and_matrix() {
    both_sides("geometry", |h| h.pixel_spacing_mm = Some([2.0, 2.0]), |r| r.geometry = false);
    both_sides("geometry", |h| h.pixel_spacing_mm = Some([0.1, 0.1]), |r| r.geometry = false);
    both_sides("geometry", |h| h.pixel_spacing_mm = None, |r| r.geometry = false);
    both_sides("geometry", |h| h.rows = Some(128), |r| r.geometry = false);
    both_sides("geometry", |h| h.columns = None, |r| r.geometry = false);
}

#[test]
fn body_part_only_when_stated() {
    both_sides("body-part", |h| h.body_part = Some("PELVIS".into()), |r| r.body_part = false);
    let mut h = ctpa();
    h.body_part = None;
    assert!(rules_of(&h).is_empty(), "not stated: not held against the slice");
    h.body_part = Some("Chest".into());
    assert!(rules_of(&h).is_empty());
}

#[test]
fn raster_input_follows_the_profile() {
    let png = std::path::Path::new("slice.png");
    for (mode, analysed, patient) in [
        (RasterInput::Eligible, true, false),
        (RasterInput::Patient, true, true),
        (RasterInput::NotAnalysed, false, true),
    ] {
        let r = Rules { raster_input: mode, ..Default::default() };
        let s = Gate::new(r, true).screen(b"\x89PNG....", png);
        match s {
            Screen::Analyse { patient: p, .. } => assert!(analysed && p == patient, "{mode:?}"),
            Screen::Skip { patient: p, reasons, .. } => {
                assert!(!analysed && p == patient && reasons == [Reason::NoHeader], "{mode:?}")
            }
        }
    }
}

#[test]
fn series_verdicts_not_analysed_demo_model_and_the_override() {
    use crate::store::journal::SeriesRow;
    use crate::verdict::SeriesVerdict;
    let row = |series: &str, verdict| SeriesRow {
        series: series.into(),
        slices: 3,
        suspicious_slices: 3,
        max_p: 1.0,
        boxes: 3,
        verdict,
        first_seen_unix_ms: 0,
        last_seen_unix_ms: 0,
        closed_unix_ms: None,
        alerted: true,
        reasons: None,
    };
    let thick = [Reason::Thickness { mm: 5.0, min: 0.3, max: 3.0 }, Reason::NoContrast { measured: None }];
    let mut g = Gate::new(Rules::default(), true);
    g.note("skipped", true, &thick);
    g.note("skipped", true, &thick);
    g.note("patient", true, &[]);
    g.note("phantom", false, &[]);
    assert_eq!(g.series("skipped").map(SeriesUse::short).as_deref(), Some("5 mm, no contrast"));
    let mut r = row("skipped", SeriesVerdict::Open);
    g.amend(&mut r);
    assert_eq!((r.verdict, r.alerted), (SeriesVerdict::NotAnalysed, false));
    assert!(r.reasons.as_deref().is_some_and(|s| s.contains("SliceThickness 5 mm")), "{r:?}");
    let mut r = row("patient", SeriesVerdict::Positive);
    g.amend(&mut r);
    assert_eq!((r.verdict, r.alerted), (SeriesVerdict::DemoModel, false));
    assert!(g.is_demo("patient") && !g.is_demo("phantom"));
    let mut r = row("phantom", SeriesVerdict::Positive);
    g.amend(&mut r);
    assert_eq!((r.verdict, r.alerted), (SeriesVerdict::Positive, true), "the phantom keeps alerting");
    // Models trained on patients, or the explicit override: patient series alert.
    let mut validated = Gate::new(Rules::default(), false);
    validated.note("patient", true, &[]);
    assert!(!validated.is_demo("patient"));
    let r = Rules { demo_models_may_alert_on_patients: true, ..Default::default() };
    let mut overridden = Gate::new(r, true);
    overridden.note("patient", true, &[]);
    assert!(!overridden.is_demo("patient"));
}

#[test]
fn the_series_memory_is_bounded() {
    let mut g = Gate::new(Rules::default(), true);
    for i in 0..MAX_SERIES + 10 {
        g.note(&format!("s{i}"), true, &[]);
    }
    assert_eq!(g.series.len(), MAX_SERIES);
    assert!(g.series("s0").is_none() && g.series(&format!("s{}", MAX_SERIES + 9)).is_some());
}

#[test]
fn every_shipped_profile_documents_the_default_rules() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut profiles: Vec<_> = std::fs::read_dir(root.join("board"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    profiles.push(root.join("pkg/deb/pe-sentinel.toml"));
    assert!(profiles.len() >= 6, "{profiles:?}");
    for p in profiles {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        assert!(text.contains("[eligibility]"), "{} documents [eligibility]", p.display());
        let profile = crate::config::BoardProfile::parse(&text, &p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(profile.eligibility, Rules::default(), "{}", p.display());
    }
}

#[test]
fn profile_values_out_of_range_are_refused_with_the_key() {
    let base = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("board/x86-cpu.toml"))
        .unwrap_or_default();
    for (from, to, key) in [
        ("max_tilt_deg = 10.0", "max_tilt_deg = 95.0", "eligibility.max_tilt_deg"),
        ("max_slice_mm = 3.0", "max_slice_mm = 0.1", "eligibility.max_slice_mm"),
        ("contrast_min_hu = 150.0", "contrast_min_hu = 9000.0", "eligibility.contrast_min_hu"),
        ("raster_input = \"eligible\"", "raster_input = \"maybe\"", "raster_input"),
    ] {
        assert!(base.contains(from), "{from}");
        let text = base.replace(from, to);
        let err = crate::config::BoardProfile::parse(&text, std::path::Path::new("x.toml")).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains(key), "{err}");
    }
}
