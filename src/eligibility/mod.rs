//! Intended use: which slices the models are meant for, decided before any model runs, and what
//! a series' verdict may be with the models loaded. In: a file's bytes (its DICOM header, read
//! without the pixel data), then, only for slices whose header is silent about contrast, the
//! decoded HU pixels. Out: analyse or skip, with reasons; per series, whether it was analysed at
//! all and whether it is a patient's (not the phantom's) scanned with demo models, which never
//! alerts. Touches nothing but what it is given; holds a bounded memory of recent series.
//!
//! - `header`: the attributes, header only.
//! - `rules`: `[eligibility]` and the verdict of each rule, with reasons.
//! - `contrast`: the image test where ContrastBolusAgent/Route are empty.
//!
//! See docs/intended-use.md.

pub mod contrast;
pub mod header;
pub mod rules;

pub use header::{SliceHeader, PHANTOM_MANUFACTURER};
pub use rules::{Contrast, RasterInput, Reason, Rules};

use std::collections::HashMap;
use std::path::Path;

/// Series remembered at once (a CT study has a handful; the oldest is forgotten first).
const MAX_SERIES: usize = 256;

/// What to do with one file, from its header.
#[derive(Debug, Clone, PartialEq)]
pub enum Screen {
    /// Analyse it. `image_test`: the header is silent about contrast, so the decoded slice must
    /// pass [`Gate::image_test`] first. `header` is `None` for PNG/JPEG input and for a DICOM
    /// file whose header cannot be read (the decoder then rejects it with the reason).
    Analyse { header: Option<SliceHeader>, image_test: bool, patient: bool },
    /// Not analysed: the reasons, and the series it belongs to (SeriesInstanceUID when stated).
    Skip { header: Option<SliceHeader>, reasons: Vec<Reason>, patient: bool },
}

/// One series as the gate has seen it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesUse {
    pub analysed: u32,
    pub skipped: u32,
    /// A patient's scan (not written by the phantom, or raster input taken as a patient's).
    pub patient: bool,
    /// The distinct reasons slices were skipped, in order of first sight.
    pub reasons: Vec<Reason>,
    /// A slice of it passed the contrast image test: its other header-silent slices are taken as
    /// enhanced too (slices above the aortic arch show no great vessel of that size).
    pub contrast_shown: bool,
    order: u64,
}

impl SeriesUse {
    /// The reasons in a few words, for the display: "5 mm, no contrast".
    pub fn short(&self) -> String {
        let mut words: Vec<String> = Vec::new();
        for r in &self.reasons {
            let w = r.short();
            if !words.contains(&w) {
                words.push(w);
            }
        }
        words.join(", ")
    }

    /// The reasons in full, for the journal and the log.
    pub fn long(&self) -> String {
        self.reasons.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("; ")
    }
}

/// The profile's rules, whether the loaded models are demo models, and the recent series.
#[derive(Debug, Clone)]
pub struct Gate {
    rules: Rules,
    demo_models: bool,
    series: HashMap<String, SeriesUse>,
    next: u64,
}

impl Gate {
    /// `demo_models`: a loaded model's manifest says `training_domain = "synthetic-phantom"`.
    pub fn new(rules: Rules, demo_models: bool) -> Gate {
        Gate { rules, demo_models, series: HashMap::new(), next: 0 }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Patient series never alert: demo models are loaded and the override is not set.
    pub fn demo_guard(&self) -> bool {
        self.demo_models && !self.rules.demo_models_may_alert_on_patients
    }

    /// Decides from the header alone (DICOM by its preamble or `.dcm`; anything else is raster).
    pub fn screen(&self, bytes: &[u8], path: &Path) -> Screen {
        let is_dicom = bytes.len() >= 132 && &bytes[128..132] == b"DICM"
            || path.extension().is_some_and(|e| e.eq_ignore_ascii_case("dcm"));
        if !is_dicom {
            return match self.rules.raster_input {
                RasterInput::Eligible => Screen::Analyse { header: None, image_test: false, patient: false },
                RasterInput::Patient => Screen::Analyse { header: None, image_test: false, patient: true },
                RasterInput::NotAnalysed => {
                    Screen::Skip { header: None, reasons: vec![Reason::NoHeader], patient: true }
                }
            };
        }
        let Ok(header) = header::read(bytes, path) else {
            // Unreadable: the decoder rejects it with its own reason.
            return Screen::Analyse { header: None, image_test: false, patient: true };
        };
        let v = rules::judge(&self.rules, &header);
        let patient = !header.is_phantom();
        if v.reasons.is_empty() {
            Screen::Analyse { image_test: v.contrast == Contrast::ImageTest, header: Some(header), patient }
        } else {
            Screen::Skip { reasons: v.reasons, header: Some(header), patient }
        }
    }

    /// The contrast image test on a decoded slice whose header was silent: `None` when it shows
    /// contrast-filled blood (or another slice of its series did), else the reason to skip it.
    pub fn image_test(&mut self, header: Option<&SliceHeader>, slice: &crate::slice::Slice) -> Option<Reason> {
        if self.series.get(&slice.series.0).is_some_and(|u| u.contrast_shown) {
            return None;
        }
        let why = self.measure(header, slice);
        if why.is_none() {
            self.entry(&slice.series.0).contrast_shown = true;
        }
        why
    }

    /// The image test alone, remembering nothing.
    pub fn measure(&self, header: Option<&SliceHeader>, slice: &crate::slice::Slice) -> Option<Reason> {
        let crate::slice::Pixels::Hu(hu) = &slice.pixels else {
            // Without HU (no modality rescale) blood cannot be measured.
            return Some(Reason::NoContrast { measured: None });
        };
        let spacing = header.and_then(|h| h.pixel_spacing_mm).unwrap_or([0.7, 0.7]);
        let m =
            contrast::blood_pool(hu, slice.width as usize, slice.height as usize, spacing, self.rules.contrast_min_hu);
        (!m.found).then_some(Reason::NoContrast { measured: Some(m) })
    }

    /// The rules on a file already decoded into `slices` (for the one-shot tools, `infer` and
    /// `eval`): empty when eligible, else why not. The image test runs on the first slice.
    pub fn check_file(&self, path: &Path, slices: &[crate::slice::Slice]) -> Vec<Reason> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(_) => return Vec::new(),
        };
        match self.screen(&bytes, path) {
            Screen::Skip { reasons, .. } => reasons,
            Screen::Analyse { header, image_test: true, .. } => {
                slices.first().and_then(|s| self.measure(header.as_ref(), s)).into_iter().collect()
            }
            Screen::Analyse { .. } => Vec::new(),
        }
    }

    /// Notes a slice of `series`: analysed (`reasons` empty) or skipped.
    pub fn note(&mut self, series: &str, patient: bool, reasons: &[Reason]) -> &SeriesUse {
        let u = self.entry(series);
        u.patient |= patient;
        if reasons.is_empty() {
            u.analysed += 1;
        } else {
            u.skipped += 1;
            for r in reasons {
                if !u.reasons.iter().any(|k| k.rule() == r.rule() && k.short() == r.short()) && u.reasons.len() < 16 {
                    u.reasons.push(r.clone());
                }
            }
        }
        u
    }

    /// The series' entry, made (forgetting the least recently seen series when full) if new.
    fn entry(&mut self, series: &str) -> &mut SeriesUse {
        if !self.series.contains_key(series) && self.series.len() >= MAX_SERIES {
            if let Some(oldest) = self.series.iter().min_by_key(|(_, u)| u.order).map(|(k, _)| k.clone()) {
                self.series.remove(&oldest);
            }
        }
        self.next += 1;
        let u = self.series.entry(series.to_string()).or_default();
        u.order = self.next;
        u
    }

    pub fn series(&self, series: &str) -> Option<&SeriesUse> {
        self.series.get(series)
    }

    /// A patient series with demo models loaded (and no override): analysed, never an alert.
    pub fn is_demo(&self, series: &str) -> bool {
        self.demo_guard() && self.series.get(series).is_some_and(|u| u.patient)
    }

    /// The series row as the journal should keep it: `not-analysed` when no slice of it was
    /// analysed, `demo-model` for a patient series with demo models (never alerted), reasons noted.
    pub fn amend(&self, row: &mut crate::store::journal::SeriesRow) {
        use crate::verdict::SeriesVerdict;
        let Some(u) = self.series.get(&row.series) else { return };
        if u.analysed == 0 && u.skipped > 0 {
            row.verdict = SeriesVerdict::NotAnalysed;
            row.alerted = false;
            row.reasons = Some(u.long());
        } else if self.is_demo(&row.series) {
            let met = matches!(row.verdict, SeriesVerdict::Positive);
            row.verdict = SeriesVerdict::DemoModel;
            row.alerted = false;
            row.reasons = Some(format!(
                "demo models (training_domain synthetic-phantom) on a patient scan: analysed, never alerted; the series rule was {}met{}",
                if met { "" } else { "not " },
                if u.skipped > 0 { format!("; {} slice(s) not analysed: {}", u.skipped, u.long()) } else { String::new() }
            ));
        } else if u.skipped > 0 {
            row.reasons = Some(format!("{} slice(s) not analysed: {}", u.skipped, u.long()));
        }
    }
}

/// Whether demonstration models are loaded: a loaded model's manifest says `training_domain =
/// "synthetic-phantom"`. The one rule behind the `demo-model` verdict, the start-up warning and
/// the results' NOT FOR DIAGNOSIS marking (`crate::outbox`).
pub fn demo_models_loaded(models: &crate::pipeline::ModelSet) -> bool {
    [&models.classifier, &models.detector].iter().any(|m| m.model().training_domain.is_demo())
}

/// The gate for a board profile's rules and the models it loads.
pub fn gate_for(rules: &Rules, models: &crate::pipeline::ModelSet) -> Gate {
    Gate::new(rules.clone(), demo_models_loaded(models))
}

/// What the daemon and `check` say about intended use at start-up: `(warning, line)` pairs.
pub fn describe(gate: &Gate, models: &crate::pipeline::ModelSet) -> Vec<(bool, String)> {
    let r = gate.rules();
    let mut out = Vec::new();
    for m in [&models.classifier, &models.detector] {
        let d = m.model().training_domain;
        out.push((
            d == crate::model::TrainingDomain::Unknown,
            format!(
                "model {}: training_domain {}{}",
                m.model().name,
                d.as_str(),
                match d {
                    crate::model::TrainingDomain::SyntheticPhantom => " (demo model)",
                    crate::model::TrainingDomain::ClinicalCtpa => "",
                    crate::model::TrainingDomain::Unknown => {
                        " (its manifest does not say what it was trained on: patient series may alert; \
                         set [model] training_domain in the manifest)"
                    }
                }
            ),
        ));
    }
    if gate.demo_guard() {
        out.push((
            true,
            "DEMO MODELS loaded (trained on synthetic phantoms only): patient scans are analysed but never \
             alert (verdict demo-model); only the phantom's own series can alert. Not for diagnosis. To use \
             validated models see docs/intended-use.md"
                .into(),
        ));
    } else if r.demo_models_may_alert_on_patients && gate.demo_models {
        out.push((
            true,
            "DEMO MODELS loaded AND [eligibility] demo_models_may_alert_on_patients = true: patient scans can \
             raise alerts from models trained on synthetic phantoms only. For testing only, never in clinical use"
                .into(),
        ));
    }
    let on = |b: bool| if b { "on" } else { "OFF" };
    out.push((
        false,
        format!(
            "eligibility: modality {}, axial (tilt <= {} deg) {}, ImageType ORIGINAL\\PRIMARY {}, slice {}..{} mm {}, \
             contrast {} (image test {}, >= {} HU), pixel {}..{} mm and matrix {}..{} {}, body part {}, raster input {}",
            on(r.modality),
            r.max_tilt_deg,
            on(r.axial),
            on(r.image_type),
            r.min_slice_mm,
            r.max_slice_mm,
            on(r.slice_thickness),
            on(r.contrast),
            on(r.contrast_image_test),
            r.contrast_min_hu,
            r.min_pixel_mm,
            r.max_pixel_mm,
            r.min_matrix,
            r.max_matrix,
            on(r.geometry),
            on(r.body_part),
            r.raster_input.as_str()
        ),
    ));
    out
}

#[cfg(test)]
mod tests;
