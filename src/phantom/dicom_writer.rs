//! A minimal DICOM Part 10 writer for the phantom's CT Image Storage files: explicit VR little
//! endian, 16-bit unsigned pixels with RescaleIntercept -1024. Written by hand rather than through
//! a DICOM library so the bytes are fully determined by the phantom's seed; read back by
//! dicom-rs (`source::decode::dicom`) and by pydicom in CI. Writes one file per call.

use std::io::{self, Write};

/// CT Image Storage SOP class.
pub const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
/// Explicit VR Little Endian transfer syntax.
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// This implementation's class UID (a 2.25 UUID-derived root, fixed).
pub const IMPLEMENTATION_UID: &str = "2.25.301974916316315640839152390727461542051";
/// Stored value = HU - RESCALE_INTERCEPT.
pub const RESCALE_INTERCEPT: f32 = -1024.0;

/// What kind of series the header describes. `Ctpa` is what a CT pulmonary angiogram has (and
/// what the models are meant for); the others are the ineligible kinds a scanner also sends, for
/// testing the intended-use rules (`crate::eligibility`). Only the header changes: the pixels stay
/// the phantom's axial contrast-enhanced slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Acquisition {
    /// ORIGINAL\PRIMARY\AXIAL, axial, IV contrast stated, chest, a PE protocol name.
    #[default]
    Ctpa,
    /// As `Ctpa` but with ContrastBolusAgent and ContrastBolusRoute left empty: the image test decides.
    ContrastUnstated,
    /// DERIVED\SECONDARY\REFORMATTED, coronal orientation, 3 mm.
    CoronalReformat,
    /// ORIGINAL\PRIMARY\LOCALIZER.
    Scout,
    /// 5 mm slices, no contrast stated, a routine non-contrast chest protocol.
    ThickNonContrast,
}

impl Acquisition {
    pub fn as_str(self) -> &'static str {
        match self {
            Acquisition::Ctpa => "ctpa",
            Acquisition::ContrastUnstated => "contrast-unstated",
            Acquisition::CoronalReformat => "coronal-reformat",
            Acquisition::Scout => "scout",
            Acquisition::ThickNonContrast => "thick-non-contrast",
        }
    }

    fn image_type(self) -> &'static str {
        match self {
            Acquisition::CoronalReformat => "DERIVED\\SECONDARY\\REFORMATTED",
            Acquisition::Scout => "ORIGINAL\\PRIMARY\\LOCALIZER",
            _ => "ORIGINAL\\PRIMARY\\AXIAL",
        }
    }

    fn orientation(self) -> &'static str {
        match self {
            Acquisition::CoronalReformat => "1\\0\\0\\0\\0\\-1",
            _ => "1\\0\\0\\0\\1\\0",
        }
    }

    /// (ContrastBolusAgent, ContrastBolusRoute)
    fn contrast(self) -> (&'static str, &'static str) {
        match self {
            Acquisition::Ctpa | Acquisition::CoronalReformat => ("IOHEXOL 350", "IV"),
            _ => ("", ""),
        }
    }

    fn protocol(self) -> &'static str {
        match self {
            Acquisition::ThickNonContrast => "CHEST ROUTINE NON CONTRAST 5MM",
            Acquisition::Scout => "CTPA PE PROTOCOL SCOUT",
            _ => "CTPA PE PROTOCOL",
        }
    }

    /// The slice thickness the header states, given the phantom's own.
    fn thickness_mm(self, phantom_mm: f32) -> f32 {
        match self {
            Acquisition::ThickNonContrast => 5.0,
            Acquisition::CoronalReformat => 3.0,
            _ => phantom_mm,
        }
    }
}

/// Everything that varies between the slices the phantom writes.
pub struct CtSlice<'a> {
    pub study_uid: &'a str,
    pub series_uid: &'a str,
    pub sop_uid: &'a str,
    pub frame_uid: &'a str,
    pub series_number: u32,
    pub instance_number: u32,
    pub series_description: &'a str,
    pub patient_id: &'a str,
    pub patient_name: &'a str,
    pub position_mm: [f32; 3],
    pub pixel_spacing_mm: f32,
    pub slice_thickness_mm: f32,
    pub window_center: f32,
    pub window_width: f32,
    pub rows: u16,
    pub columns: u16,
    /// Stored values (HU - intercept), row-major.
    pub pixels: &'a [u16],
    /// The kind of series the header describes.
    pub acquisition: Acquisition,
}

/// Stored values of `hu` into `out` (HU rounded, minus [`RESCALE_INTERCEPT`]), pairwise.
pub fn store_hu(hu: &[f32], out: &mut [u16]) {
    for (o, &h) in out.iter_mut().zip(hu) {
        *o = (h.round() - RESCALE_INTERCEPT) as u16;
    }
}

impl<'a> CtSlice<'a> {
    /// A `side` x `side` axial slice at the origin with fixed identifiers and the phantom's usual
    /// geometry (0.7 mm pixels, 1 mm thick, window 100/700): for benchmarks that need a valid CT
    /// file, not a study. Override fields with struct update syntax.
    pub fn fixed(pixels: &'a [u16], side: u16, instance_number: u32) -> CtSlice<'a> {
        CtSlice {
            study_uid: "2.25.1",
            series_uid: "2.25.2",
            sop_uid: "2.25.3",
            frame_uid: "2.25.4",
            series_number: 1,
            instance_number,
            series_description: "bench",
            patient_id: "bench",
            patient_name: "bench",
            position_mm: [0.0, 0.0, 0.0],
            pixel_spacing_mm: 0.7,
            slice_thickness_mm: 1.0,
            window_center: 100.0,
            window_width: 700.0,
            rows: side,
            columns: side,
            pixels,
            acquisition: Acquisition::Ctpa,
        }
    }
}

fn ds(v: f32) -> String {
    // DS is at most 16 characters; four decimals are plenty at millimetre scale.
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

struct Enc {
    buf: Vec<u8>,
}

impl Enc {
    fn header(&mut self, group: u16, elem: u16, vr: &[u8; 2], len: usize) {
        self.buf.extend_from_slice(&group.to_le_bytes());
        self.buf.extend_from_slice(&elem.to_le_bytes());
        self.buf.extend_from_slice(vr);
        if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
            self.buf.extend_from_slice(&[0, 0]);
            self.buf.extend_from_slice(&(len as u32).to_le_bytes());
        } else {
            self.buf.extend_from_slice(&(len as u16).to_le_bytes());
        }
    }

    /// A text element, padded to even length (UI with NUL, others with a space).
    fn text(&mut self, group: u16, elem: u16, vr: &[u8; 2], value: &str) {
        let mut v = value.as_bytes().to_vec();
        if v.len() % 2 == 1 {
            v.push(if vr == b"UI" { 0 } else { b' ' });
        }
        self.header(group, elem, vr, v.len());
        self.buf.extend_from_slice(&v);
    }

    /// A sequence of defined length holding `items` (each an encoded data set), in explicit VR.
    fn sequence(&mut self, group: u16, elem: u16, items: &[Vec<u8>]) {
        let len: usize = items.iter().map(|i| 8 + i.len()).sum();
        self.header(group, elem, b"SQ", len);
        for item in items {
            self.buf.extend_from_slice(&0xFFFEu16.to_le_bytes());
            self.buf.extend_from_slice(&0xE000u16.to_le_bytes());
            self.buf.extend_from_slice(&(item.len() as u32).to_le_bytes());
            self.buf.extend_from_slice(item);
        }
    }

    fn us(&mut self, group: u16, elem: u16, value: u16) {
        self.header(group, elem, b"US", 2);
        self.buf.extend_from_slice(&value.to_le_bytes());
    }
}

/// Encodes one slice as a complete DICOM file (preamble, file meta, data set).
pub fn encode(s: &CtSlice<'_>, out: &mut Vec<u8>) {
    encode_header(s, None, out);
    out.reserve(s.pixels.len() * 2);
    for v in s.pixels {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Enhanced CT Image Storage SOP class (multi-frame).
pub const ENHANCED_CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2.1";

/// A whole series as one multi-frame file, as Enhanced CT objects and some exports carry it: one
/// InstanceNumber, `NumberOfFrames` frames of `rows x columns` each.
pub struct MultiFrame<'a> {
    pub frames: u32,
    /// Each frame's ImagePositionPatient, written in the Per-frame Functional Groups Sequence
    /// (Plane Position); `None`: no per-frame positions (the frames' order is only their index).
    pub positions_mm: Option<&'a [[f32; 3]]>,
}

/// Everything of a multi-frame file before its samples: preamble, file meta, data set and the
/// Pixel Data element's header for `m.frames` frames. `s` gives the identifiers and geometry (its
/// `pixels` are not written). Append each frame's stored values, little endian, in frame order.
pub fn encode_multiframe_header(s: &CtSlice<'_>, m: &MultiFrame<'_>, out: &mut Vec<u8>) {
    encode_header(s, Some(m), out);
}

/// The file up to and including the Pixel Data element's header.
fn encode_header(s: &CtSlice<'_>, multi: Option<&MultiFrame<'_>>, out: &mut Vec<u8>) {
    let sop_class = if multi.is_some() { ENHANCED_CT_IMAGE_STORAGE } else { CT_IMAGE_STORAGE };
    let frames = multi.map_or(1, |m| m.frames.max(1));
    let per_frame = multi.and_then(|m| m.positions_mm);
    out.clear();
    out.extend_from_slice(&[0u8; 128]);
    out.extend_from_slice(b"DICM");

    let mut meta = Enc { buf: Vec::with_capacity(256) };
    meta.header(0x0002, 0x0001, b"OB", 2);
    meta.buf.extend_from_slice(&[0, 1]);
    meta.text(0x0002, 0x0002, b"UI", sop_class);
    meta.text(0x0002, 0x0003, b"UI", s.sop_uid);
    meta.text(0x0002, 0x0010, b"UI", EXPLICIT_VR_LE);
    meta.text(0x0002, 0x0012, b"UI", IMPLEMENTATION_UID);
    meta.text(0x0002, 0x0013, b"SH", "PE_SENTINEL_01");
    let mut group_len = Enc { buf: Vec::new() };
    group_len.header(0x0002, 0x0000, b"UL", 4);
    group_len.buf.extend_from_slice(&(meta.buf.len() as u32).to_le_bytes());
    out.extend_from_slice(&group_len.buf);
    out.extend_from_slice(&meta.buf);

    let mut d = Enc { buf: std::mem::take(out) };
    let p = s.position_mm;
    d.text(0x0008, 0x0005, b"CS", "ISO_IR 100");
    let a = s.acquisition;
    d.text(0x0008, 0x0008, b"CS", a.image_type());
    d.text(0x0008, 0x0016, b"UI", sop_class);
    d.text(0x0008, 0x0018, b"UI", s.sop_uid);
    d.text(0x0008, 0x0020, b"DA", "20260101");
    d.text(0x0008, 0x0030, b"TM", "120000");
    d.text(0x0008, 0x0050, b"SH", "");
    d.text(0x0008, 0x0060, b"CS", "CT");
    d.text(0x0008, 0x0070, b"LO", crate::eligibility::PHANTOM_MANUFACTURER);
    d.text(0x0008, 0x0090, b"PN", "");
    d.text(0x0008, 0x103E, b"LO", s.series_description);
    d.text(0x0010, 0x0010, b"PN", s.patient_name);
    d.text(0x0010, 0x0020, b"LO", s.patient_id);
    d.text(0x0010, 0x0030, b"DA", "");
    d.text(0x0010, 0x0040, b"CS", "O");
    let (agent, route) = a.contrast();
    d.text(0x0018, 0x0010, b"LO", agent);
    d.text(0x0018, 0x0015, b"CS", "CHEST");
    d.text(0x0018, 0x0050, b"DS", &ds(a.thickness_mm(s.slice_thickness_mm)));
    d.text(0x0018, 0x0060, b"DS", "100");
    d.text(0x0018, 0x1030, b"LO", a.protocol());
    d.text(0x0018, 0x1040, b"LO", route);
    d.text(0x0020, 0x000D, b"UI", s.study_uid);
    d.text(0x0020, 0x000E, b"UI", s.series_uid);
    d.text(0x0020, 0x0010, b"SH", "1");
    d.text(0x0020, 0x0011, b"IS", &s.series_number.to_string());
    d.text(0x0020, 0x0013, b"IS", &s.instance_number.to_string());
    // With per-frame positions the position lives in the functional groups only (Enhanced CT).
    if per_frame.is_none() {
        d.text(0x0020, 0x0032, b"DS", &position(p));
    }
    d.text(0x0020, 0x0037, b"DS", a.orientation());
    d.text(0x0020, 0x0052, b"UI", s.frame_uid);
    d.text(0x0020, 0x1040, b"LO", "");
    if multi.is_none() {
        d.text(0x0020, 0x1041, b"DS", &ds(p[2]));
    }
    d.us(0x0028, 0x0002, 1);
    d.text(0x0028, 0x0004, b"CS", "MONOCHROME2");
    if multi.is_some() {
        d.text(0x0028, 0x0008, b"IS", &frames.to_string());
    }
    d.us(0x0028, 0x0010, s.rows);
    d.us(0x0028, 0x0011, s.columns);
    let ps = ds(s.pixel_spacing_mm);
    d.text(0x0028, 0x0030, b"DS", &format!("{ps}\\{ps}"));
    d.us(0x0028, 0x0100, 16);
    d.us(0x0028, 0x0101, 16);
    d.us(0x0028, 0x0102, 15);
    d.us(0x0028, 0x0103, 0);
    d.text(0x0028, 0x1050, b"DS", &ds(s.window_center));
    d.text(0x0028, 0x1051, b"DS", &ds(s.window_width));
    d.text(0x0028, 0x1052, b"DS", &ds(RESCALE_INTERCEPT));
    d.text(0x0028, 0x1053, b"DS", "1");
    d.text(0x0028, 0x1054, b"LO", "HU");
    if let Some(positions) = per_frame {
        // Per-frame Functional Groups Sequence: one item per frame, each with a Plane Position
        // Sequence holding that frame's ImagePositionPatient (explicit lengths throughout).
        let items: Vec<Vec<u8>> = positions
            .iter()
            .map(|&fp| {
                let mut ipp = Enc { buf: Vec::new() };
                ipp.text(0x0020, 0x0032, b"DS", &position(fp));
                let mut group = Enc { buf: Vec::new() };
                group.sequence(0x0020, 0x9113, &[ipp.buf]);
                group.buf
            })
            .collect();
        d.sequence(0x5200, 0x9230, &items);
    }
    let samples = usize::from(s.rows) * usize::from(s.columns) * frames as usize;
    d.header(0x7FE0, 0x0010, b"OW", samples * 2);
    *out = d.buf;
}

fn position(p: [f32; 3]) -> String {
    format!("{}\\{}\\{}", ds(p[0]), ds(p[1]), ds(p[2]))
}

/// Encodes and writes one slice to `w`.
pub fn write(s: &CtSlice<'_>, scratch: &mut Vec<u8>, w: &mut impl Write) -> io::Result<()> {
    encode(s, scratch);
    w.write_all(scratch)
}

/// A DICOM UID under the 2.25 (UUID) root, derived deterministically from a 128-bit value.
pub fn uid_from(hi: u64, lo: u64) -> String {
    let v = (u128::from(hi) << 64 | u128::from(lo)) >> 2; // keep it well under 39 digits
    format!("2.25.{v}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ds_is_short_and_plain() {
        assert_eq!(ds(0.7), "0.7");
        assert_eq!(ds(-1024.0), "-1024");
        assert_eq!(ds(-0.00001), "0");
        assert_eq!(ds(-178.8375), "-178.8375");
        assert!(ds(-12345.679).len() <= 16);
    }

    #[test]
    fn each_acquisition_writes_the_header_the_eligibility_rules_expect() {
        use crate::eligibility::{header, rules, Contrast, Rules};
        let pixels = vec![1024u16; 512 * 512];
        for (a, want) in [
            (Acquisition::Ctpa, vec![]),
            (Acquisition::ContrastUnstated, vec![]),
            (Acquisition::CoronalReformat, vec!["image-type", "axial"]),
            (Acquisition::Scout, vec!["image-type", "contrast"]),
            (Acquisition::ThickNonContrast, vec!["slice-thickness", "contrast"]),
        ] {
            let s = CtSlice { acquisition: a, ..CtSlice::fixed(&pixels, 512, 1) };
            let mut bytes = Vec::new();
            encode(&s, &mut bytes);
            let h = header::read(&bytes, std::path::Path::new("p.dcm")).expect("the phantom's header reads");
            assert!(h.is_phantom() && h.body_part.as_deref() == Some("CHEST"), "{h:?}");
            let v = rules::judge(&Rules::default(), &h);
            assert_eq!(v.reasons.iter().map(|r| r.rule()).collect::<Vec<_>>(), want, "{a:?}");
            let image_test = a == Acquisition::ContrastUnstated;
            let silent = image_test || a == Acquisition::Scout || a == Acquisition::ThickNonContrast;
            assert_eq!(v.contrast == Contrast::ImageTest, silent, "{a:?}");
        }
    }

    #[test]
    fn uids_fit_the_64_character_limit() {
        let u = uid_from(u64::MAX, u64::MAX);
        assert!(u.len() <= 64 && u.starts_with("2.25."), "{u}");
        assert!(u.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
    }
}
