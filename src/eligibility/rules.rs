//! The intended-use rules (`[eligibility]` in the board profile) and their verdict on one slice's
//! header: which rules it fails, each with a reason a radiographer can read on the display
//! (`short`) and one an engineer can act on (`Display`). Every rule can be switched off; a header
//! that lacks the attribute a rule needs fails that rule (the slice cannot be shown to be in the
//! intended use), except BodyPartExamined, which is checked only when stated, and the contrast
//! attributes, which send the slice to the image test (`super::contrast`) when both are empty.
//! Pure: touches nothing.

use super::header::SliceHeader;
use serde::Deserialize;

/// CT Image Storage and Enhanced CT Image Storage.
pub const CT_SOP_CLASSES: [&str; 2] = ["1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1"];

/// ImageType values that mark a slice as not an original acquisition slice, and the word for it.
const EXCLUDED_IMAGE_TYPES: [(&str, &str); 12] = [
    ("LOCALIZER", "scout"),
    ("SCOUT", "scout"),
    ("TOPOGRAM", "scout"),
    ("MIP", "MIP"),
    ("MINIP", "MIP"),
    ("PROJECTION IMAGE", "MIP"),
    ("VOLUME", "3D"),
    ("REFORMATTED", "reformat"),
    ("MPR", "reformat"),
    ("CURVED", "reformat"),
    ("DOSE_INFO", "dose report"),
    ("SCREEN SAVE", "screen capture"),
];

/// What to do with PNG/JPEG input (and capture frames), which have no header to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RasterInput {
    /// Trusted as eligible CTPA of unknown origin: analysed, and may alert (as before this rule).
    Eligible,
    /// Analysed as a patient's: with demo models, never an alert (`demo-model`).
    Patient,
    /// Not analysed (`not-analysed`, reason "no DICOM header").
    NotAnalysed,
}

impl RasterInput {
    pub fn as_str(self) -> &'static str {
        match self {
            RasterInput::Eligible => "eligible",
            RasterInput::Patient => "patient",
            RasterInput::NotAnalysed => "not-analysed",
        }
    }
}

/// `[eligibility]`: every rule with its switch and limits. The defaults are CT pulmonary
/// angiography as the shipped models (and the seed paper's) expect it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    /// Modality CT, and SOP class CT Image Storage or Enhanced CT Image Storage.
    pub modality: bool,
    /// ImageOrientationPatient within `max_tilt_deg` of axial.
    pub axial: bool,
    pub max_tilt_deg: f64,
    /// ImageType ORIGINAL\PRIMARY, and none of LOCALIZER, MIP, REFORMATTED, MPR, ...
    pub image_type: bool,
    /// SliceThickness within `min_slice_mm..=max_slice_mm`.
    pub slice_thickness: bool,
    pub min_slice_mm: f64,
    pub max_slice_mm: f64,
    /// ContrastBolusAgent or ContrastBolusRoute filled in; else the image test when enabled.
    pub contrast: bool,
    /// When both contrast attributes are empty: look for contrast-filled blood in the slice.
    pub contrast_image_test: bool,
    /// The image test's threshold: mean HU of a blood-pool region.
    pub contrast_min_hu: f32,
    /// PixelSpacing within `min_pixel_mm..=max_pixel_mm`, Rows and Columns within `min_matrix..=max_matrix`.
    pub geometry: bool,
    pub min_pixel_mm: f64,
    pub max_pixel_mm: f64,
    pub min_matrix: u32,
    pub max_matrix: u32,
    /// BodyPartExamined, when stated, is one of `body_parts`.
    pub body_part: bool,
    pub body_parts: Vec<String>,
    /// PNG/JPEG input has no header.
    pub raster_input: RasterInput,
    /// With models whose manifest says `training_domain = "synthetic-phantom"`, patient series are
    /// analysed but never alert (verdict `demo-model`). `true` lets them alert: only for testing.
    pub demo_models_may_alert_on_patients: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            modality: true,
            axial: true,
            max_tilt_deg: 10.0,
            image_type: true,
            slice_thickness: true,
            min_slice_mm: 0.3,
            max_slice_mm: 3.0,
            contrast: true,
            contrast_image_test: true,
            contrast_min_hu: super::contrast::DEFAULT_MIN_HU,
            geometry: true,
            min_pixel_mm: 0.2,
            max_pixel_mm: 1.5,
            min_matrix: 256,
            max_matrix: 1024,
            body_part: true,
            body_parts: ["CHEST", "THORAX", "LUNG", "HEART", "CHESTABDOMEN", "CHESTABDPELVIS", "CHEST_ABDOMEN"]
                .map(String::from)
                .to_vec(),
            raster_input: RasterInput::Eligible,
            demo_models_may_alert_on_patients: false,
        }
    }
}

impl Rules {
    /// Range checks, with the key named (called by the profile loader).
    pub fn check(&self) -> Result<(), (&'static str, String, &'static str)> {
        let bad = |k, v: String, a| Err((k, v, a));
        if !(0.0..=90.0).contains(&self.max_tilt_deg) {
            return bad("eligibility.max_tilt_deg", self.max_tilt_deg.to_string(), "0 to 90 degrees");
        }
        let ordered = |lo: f64, hi: f64, max: f64| lo > 0.0 && lo <= hi && hi <= max;
        if !ordered(self.min_slice_mm, self.max_slice_mm, 20.0) {
            return bad(
                "eligibility.max_slice_mm",
                format!("{}..{}", self.min_slice_mm, self.max_slice_mm),
                "0 < min_slice_mm <= max_slice_mm <= 20 mm",
            );
        }
        if !ordered(self.min_pixel_mm, self.max_pixel_mm, 10.0) {
            return bad(
                "eligibility.max_pixel_mm",
                format!("{}..{}", self.min_pixel_mm, self.max_pixel_mm),
                "0 < min_pixel_mm <= max_pixel_mm <= 10 mm",
            );
        }
        if self.min_matrix == 0 || self.min_matrix > self.max_matrix || self.max_matrix > 8192 {
            return bad(
                "eligibility.max_matrix",
                format!("{}..{}", self.min_matrix, self.max_matrix),
                "1 <= min_matrix <= max_matrix <= 8192",
            );
        }
        if !(-1000.0..=3000.0).contains(&self.contrast_min_hu) {
            return bad("eligibility.contrast_min_hu", self.contrast_min_hu.to_string(), "-1000 to 3000 HU");
        }
        Ok(())
    }
}

/// Why a slice is not what the models are meant for.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    NotCt {
        modality: Option<String>,
    },
    NotCtImage {
        sop_class: Option<String>,
    },
    NotAxial {
        tilt_deg: f64,
        plane: &'static str,
        max_deg: f64,
    },
    NoOrientation,
    ImageType {
        found: String,
        kind: &'static str,
    },
    NoImageType,
    Thickness {
        mm: f64,
        min: f64,
        max: f64,
    },
    NoThickness,
    /// Neither ContrastBolusAgent nor ContrastBolusRoute is filled in, and the image test did not
    /// find contrast (`Some`: its measure) or was not run (`None`).
    NoContrast {
        measured: Option<super::contrast::BloodPool>,
    },
    PixelSpacing {
        mm: f64,
        min: f64,
        max: f64,
    },
    NoPixelSpacing,
    Matrix {
        rows: u32,
        columns: u32,
        min: u32,
        max: u32,
    },
    BodyPart {
        found: String,
    },
    /// PNG/JPEG input with `raster_input = "not-analysed"`.
    NoHeader,
}

impl Reason {
    /// A few words for the display ("5 mm", "no contrast", "coronal", "reformat").
    pub fn short(&self) -> String {
        match self {
            Reason::NotCt { modality } => format!("not CT ({})", modality.as_deref().unwrap_or("?")),
            Reason::NotCtImage { .. } => "not a CT image".into(),
            Reason::NotAxial { plane, .. } => (*plane).into(),
            Reason::NoOrientation => "no orientation".into(),
            Reason::ImageType { kind, .. } => (*kind).into(),
            Reason::NoImageType => "no image type".into(),
            Reason::Thickness { mm, .. } => format!("{} mm", trim(*mm)),
            Reason::NoThickness => "no thickness".into(),
            Reason::NoContrast { .. } => "no contrast".into(),
            Reason::PixelSpacing { mm, .. } => format!("{} mm pixels", trim(*mm)),
            Reason::NoPixelSpacing => "no pixel size".into(),
            Reason::Matrix { rows, columns, .. } => format!("{columns}x{rows}"),
            Reason::BodyPart { found } => found.to_ascii_lowercase(),
            Reason::NoHeader => "no DICOM header".into(),
        }
    }

    /// A stable code for the journal and JSON (`slice-thickness`, `contrast`, ...).
    pub fn rule(&self) -> &'static str {
        match self {
            Reason::NotCt { .. } | Reason::NotCtImage { .. } => "modality",
            Reason::NotAxial { .. } | Reason::NoOrientation => "axial",
            Reason::ImageType { .. } | Reason::NoImageType => "image-type",
            Reason::Thickness { .. } | Reason::NoThickness => "slice-thickness",
            Reason::NoContrast { .. } => "contrast",
            Reason::PixelSpacing { .. } | Reason::NoPixelSpacing | Reason::Matrix { .. } => "geometry",
            Reason::BodyPart { .. } => "body-part",
            Reason::NoHeader => "raster-input",
        }
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::NotCt { modality } => {
                write!(
                    f,
                    "Modality is {}, not CT",
                    modality.as_deref().map_or("not stated".into(), |m| format!("'{m}'"))
                )
            }
            Reason::NotCtImage { sop_class } => write!(
                f,
                "SOP class {} is not CT Image Storage or Enhanced CT Image Storage",
                sop_class.as_deref().unwrap_or("(not stated)")
            ),
            Reason::NotAxial { tilt_deg, plane, max_deg } => write!(
                f,
                "{plane} slice: ImageOrientationPatient is {tilt_deg:.0} degrees from axial (at most {max_deg} allowed)"
            ),
            Reason::NoOrientation => write!(f, "no ImageOrientationPatient: the slice cannot be shown to be axial"),
            Reason::ImageType { found, kind } => {
                write!(f, "ImageType {found} is a {kind}, not an ORIGINAL\\PRIMARY acquisition slice")
            }
            Reason::NoImageType => write!(f, "no ImageType: the slice cannot be shown to be an original acquisition"),
            Reason::Thickness { mm, min, max } => {
                write!(
                    f,
                    "SliceThickness {} mm is outside {min}..{max} mm (CTPA is reconstructed at 0.6-2 mm)",
                    trim(*mm)
                )
            }
            Reason::NoThickness => write!(f, "no SliceThickness: the slice cannot be shown to be thin"),
            Reason::NoContrast { measured: None } => {
                write!(f, "no contrast: ContrastBolusAgent and ContrastBolusRoute are empty (image test not run)")
            }
            Reason::NoContrast { measured: Some(m) } => write!(
                f,
                "no contrast: ContrastBolusAgent and ContrastBolusRoute are empty and the image test found no \
                 contrast-filled blood ({m})"
            ),
            Reason::PixelSpacing { mm, min, max } => {
                write!(f, "PixelSpacing {} mm is outside {min}..{max} mm", trim(*mm))
            }
            Reason::NoPixelSpacing => write!(f, "no PixelSpacing: the slice's scale is unknown"),
            Reason::Matrix { rows, columns, min, max } => {
                write!(f, "matrix {columns}x{rows} is outside {min}..{max} pixels a side")
            }
            Reason::BodyPart { found } => write!(f, "BodyPartExamined is {found}, not chest"),
            Reason::NoHeader => {
                write!(f, "PNG/JPEG input has no DICOM header and the profile sets raster_input = \"not-analysed\"")
            }
        }
    }
}

/// What the header said about contrast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contrast {
    /// ContrastBolusAgent or ContrastBolusRoute is filled in (or the rule is off).
    Stated,
    /// Both empty: the image test decides (when enabled), after the pixels are decoded.
    ImageTest,
}

/// One slice's header against the rules.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderVerdict {
    /// Empty: eligible by the header (subject to `contrast`).
    pub reasons: Vec<Reason>,
    pub contrast: Contrast,
}

/// Angle (degrees) between the slice normal and the patient's z axis, and the plane it is closest to.
pub fn tilt(o: &[f64; 6]) -> Option<(f64, &'static str)> {
    let n = [o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]];
    let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
    if len.is_nan() || len <= 1e-6 {
        return None;
    }
    let (x, y, z) = (n[0].abs() / len, n[1].abs() / len, n[2].abs() / len);
    let deg = z.clamp(0.0, 1.0).acos().to_degrees();
    let plane = if z >= x && z >= y {
        "axial"
    } else if y >= x {
        "coronal"
    } else {
        "sagittal"
    };
    Some((deg, plane))
}

pub fn judge(r: &Rules, h: &SliceHeader) -> HeaderVerdict {
    let mut reasons = Vec::new();
    if r.modality {
        if h.modality.as_deref() != Some("CT") {
            reasons.push(Reason::NotCt { modality: h.modality.clone() });
        } else if !h.sop_class_uid.as_deref().is_some_and(|c| CT_SOP_CLASSES.contains(&c)) {
            reasons.push(Reason::NotCtImage { sop_class: h.sop_class_uid.clone() });
        }
    }
    if r.image_type {
        if h.image_type.is_empty() {
            reasons.push(Reason::NoImageType);
        } else {
            let found = h.image_type.join("\\");
            let excluded = h.image_type.iter().find_map(|v| EXCLUDED_IMAGE_TYPES.iter().find(|(t, _)| t == v));
            match excluded {
                Some((_, kind)) => reasons.push(Reason::ImageType { found, kind }),
                None if h.image_type.first().map(String::as_str) != Some("ORIGINAL") => {
                    reasons.push(Reason::ImageType { found, kind: "derived image" })
                }
                None if h.image_type.get(1).map(String::as_str) != Some("PRIMARY") => {
                    reasons.push(Reason::ImageType { found, kind: "secondary image" })
                }
                None => {}
            }
        }
    }
    if r.axial {
        match h.orientation.as_ref().and_then(tilt) {
            None => reasons.push(Reason::NoOrientation),
            Some((deg, plane)) if deg > r.max_tilt_deg => {
                let plane = if plane == "axial" { "oblique" } else { plane };
                reasons.push(Reason::NotAxial { tilt_deg: deg, plane, max_deg: r.max_tilt_deg })
            }
            Some(_) => {}
        }
    }
    if r.slice_thickness {
        match h.slice_thickness_mm {
            None => reasons.push(Reason::NoThickness),
            Some(mm) if !(r.min_slice_mm..=r.max_slice_mm).contains(&mm) => {
                reasons.push(Reason::Thickness { mm, min: r.min_slice_mm, max: r.max_slice_mm })
            }
            Some(_) => {}
        }
    }
    if r.geometry {
        match h.pixel_spacing_mm {
            None => reasons.push(Reason::NoPixelSpacing),
            Some(s) => {
                if let Some(&mm) = s.iter().find(|&&v| !(r.min_pixel_mm..=r.max_pixel_mm).contains(&v)) {
                    reasons.push(Reason::PixelSpacing { mm, min: r.min_pixel_mm, max: r.max_pixel_mm });
                }
            }
        }
        let (rows, columns) = (h.rows.unwrap_or(0), h.columns.unwrap_or(0));
        let ok = |v: u32| (r.min_matrix..=r.max_matrix).contains(&v);
        if !ok(rows) || !ok(columns) {
            reasons.push(Reason::Matrix { rows, columns, min: r.min_matrix, max: r.max_matrix });
        }
    }
    if r.body_part {
        if let Some(b) = &h.body_part {
            let norm =
                |s: &str| s.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_uppercase();
            if !r.body_parts.iter().any(|p| norm(p) == norm(b)) {
                reasons.push(Reason::BodyPart { found: b.clone() });
            }
        }
    }
    let stated = h.contrast_agent.is_some() || h.contrast_route.is_some();
    let contrast = if !r.contrast || stated { Contrast::Stated } else { Contrast::ImageTest };
    if contrast == Contrast::ImageTest && (!reasons.is_empty() || !r.contrast_image_test) {
        // Ineligible already (the pixels are not decoded for it), or no image test allowed.
        reasons.push(Reason::NoContrast { measured: None });
    }
    HeaderVerdict { reasons, contrast }
}
