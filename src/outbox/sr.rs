//! The Comprehensive 3D SR (PS3.3 A.35.13) with a TID 1500 Measurement Report: who observed
//! (the device, TID 1004), the image library (the source slice and our Secondary Capture), and
//! one measurement group (TID 1410) per result: the finding (SNOMED CT 59282003 pulmonary
//! embolism) with its presence, the score, the algorithm's name, version and model sha256, and
//! for a positive the region on the key slice (SCOORD POLYLINE selected from the source slice).
//! A series that was not analysed: presence Undetermined, a comment saying why, no score and no
//! region; its image library names one slice of the series (never decoded) so the report sits
//! with the series it speaks of.
//! Pure: values in, object out.

use super::elements::{code, container, image, num, obj, s, scoord_box, seq, text, uidref, Code, SopRef};
use super::{Facts, Finding, SOFTWARE};
use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

pub const SR_CLASS: &str = "1.2.840.10008.5.1.4.1.1.88.34";
pub const SR_SERIES_NUMBER: &str = "9902";

const PE: Code = Code("59282003", "SCT", "Pulmonary embolism");
/// Our own code for the score (a private coding scheme, declared in the object).
const SCORE: Code = Code("PE-SCORE", "99PESENT", "Classifier probability of pulmonary embolism");
const NO_UNITS: Code = Code("1", "UCUM", "no units");

fn presence(f: Finding) -> Code {
    match f {
        Finding::Positive => Code("52101004", "SCT", "Present"),
        Finding::Negative => Code("2667000", "SCT", "Absent"),
        Finding::NotAnalysed => Code("373068000", "SCT", "Undetermined"),
    }
}

pub struct SrRefs<'a> {
    pub sop_instance: &'a str,
    pub series_uid: &'a str,
    /// Our Secondary Capture, when one was written.
    pub sc: Option<(&'a SopRef, &'a str)>,
    /// UID of this device (the observer).
    pub device_uid: &'a str,
    /// Tracking UID of the finding.
    pub tracking_uid: &'a str,
}

pub fn build(f: &Facts, r: &SrRefs<'_>) -> InMemDicomObject {
    let src = &f.source;
    let key = SopRef { class: src.sop_class.clone(), instance: src.sop_instance.clone(), frame: src.frame };
    let mut library = vec![image("CONTAINS", None, &key)];
    if let Some((sc, _)) = r.sc {
        library.push(image("CONTAINS", None, sc));
    }
    let mut group = vec![
        text("HAS OBS CONTEXT", Code("112039", "DCM", "Tracking Identifier"), "pe-sentinel finding 1"),
        uidref("HAS OBS CONTEXT", Code("112040", "DCM", "Tracking Unique Identifier"), r.tracking_uid),
        code("CONTAINS", Code("121071", "DCM", "Finding"), PE),
        code("HAS CONCEPT MOD", PE, presence(f.finding)),
        text("HAS CONCEPT MOD", Code("111001", "DCM", "Algorithm Name"), "pe-sentinel"),
        text("HAS CONCEPT MOD", Code("111003", "DCM", "Algorithm Version"), SOFTWARE),
    ];
    for m in &f.models {
        group.push(text(
            "HAS CONCEPT MOD",
            Code("111002", "DCM", "Algorithm Parameters"),
            &format!("{} model {} sha256 {} training_domain {}", m.role, m.name, m.sha256, m.training_domain),
        ));
    }
    if f.demo {
        group.push(text("HAS CONCEPT MOD", Code("121106", "DCM", "Comment"), super::picture::NOT_FOR_DIAGNOSIS));
    }
    if let Some(why) = &f.reasons {
        // Not analysed: presence Undetermined, and why, in words the radiologist reads.
        group.push(text(
            "HAS CONCEPT MOD",
            Code("121106", "DCM", "Comment"),
            &format!("Series NOT analysed by pe-sentinel ({} slices): {why}", f.slices),
        ));
    }
    if f.key_p.is_finite() {
        group.push(num("CONTAINS", SCORE, f64::from(f.key_p), NO_UNITS));
    }
    if f.finding == Finding::Positive {
        for b in &f.key_boxes {
            group.push(scoord_box("CONTAINS", Code("111030", "DCM", "Image Region"), [b[0], b[1], b[2], b[3]], &key));
        }
    }
    let content = vec![
        code(
            "HAS CONCEPT MOD",
            Code("121049", "DCM", "Language of Content Item and Descendants"),
            Code("en-US", "RFC5646", "English (United States)"),
        ),
        code("HAS OBS CONTEXT", Code("121005", "DCM", "Observer Type"), Code("121007", "DCM", "Device")),
        uidref("HAS OBS CONTEXT", Code("121012", "DCM", "Device Observer UID"), r.device_uid),
        text("HAS OBS CONTEXT", Code("121013", "DCM", "Device Observer Name"), "pe-sentinel"),
        text("HAS OBS CONTEXT", Code("121014", "DCM", "Device Observer Manufacturer"), "pe-sentinel"),
        code("HAS CONCEPT MOD", Code("121058", "DCM", "Procedure reported"), Code("77477000", "SCT", "CT")),
        container(
            "CONTAINS",
            Code("111028", "DCM", "Image Library"),
            vec![container("CONTAINS", Code("126200", "DCM", "Image Library Group"), library)],
        ),
        container(
            "CONTAINS",
            Code("126010", "DCM", "Imaging Measurements"),
            vec![container("CONTAINS", Code("125007", "DCM", "Measurement Group"), group)],
        ),
    ];
    let root = container("", Code("126000", "DCM", "Imaging Measurement Report"), content);

    let mut evidence_series = vec![obj([
        s(tags::SERIES_INSTANCE_UID, VR::UI, src.series_uid.clone()),
        seq(tags::REFERENCED_SOP_SEQUENCE, vec![key.item()]),
    ])];
    if let Some((sc, sc_series)) = r.sc {
        evidence_series.push(obj([
            s(tags::SERIES_INSTANCE_UID, VR::UI, sc_series),
            seq(tags::REFERENCED_SOP_SEQUENCE, vec![sc.item()]),
        ]));
    }
    let evidence = obj([
        s(tags::STUDY_INSTANCE_UID, VR::UI, src.study_uid.clone()),
        seq(tags::REFERENCED_SERIES_SEQUENCE, evidence_series),
    ]);
    let (date, time) = (f.content_date.as_str(), f.content_time.as_str());
    let mut o = obj(src.copied.iter().cloned());
    for e in root.into_iter() {
        o.put(e);
    }
    for e in [
        s(tags::SOP_CLASS_UID, VR::UI, SR_CLASS),
        s(tags::SOP_INSTANCE_UID, VR::UI, r.sop_instance),
        s(tags::INSTANCE_CREATION_DATE, VR::DA, date),
        s(tags::INSTANCE_CREATION_TIME, VR::TM, time),
        s(tags::MODALITY, VR::CS, "SR"),
        s(tags::SERIES_INSTANCE_UID, VR::UI, r.series_uid),
        s(tags::SERIES_NUMBER, VR::IS, SR_SERIES_NUMBER),
        s(
            tags::SERIES_DESCRIPTION,
            VR::LO,
            match (f.finding == Finding::NotAnalysed, f.demo) {
                (false, false) => "pe-sentinel report",
                (false, true) => "pe-sentinel report (NOT FOR DIAGNOSIS)",
                (true, false) => "pe-sentinel report: series NOT analysed",
                (true, true) => "pe-sentinel report: series NOT analysed (NOT FOR DIAGNOSIS)",
            },
        ),
        seq(tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE, vec![]),
        s(tags::MANUFACTURER, VR::LO, "pe-sentinel"),
        s(tags::MANUFACTURER_MODEL_NAME, VR::LO, "pe-sentinel"),
        s(tags::DEVICE_SERIAL_NUMBER, VR::LO, r.device_uid),
        s(tags::SOFTWARE_VERSIONS, VR::LO, SOFTWARE),
        s(tags::INSTANCE_NUMBER, VR::IS, "1"),
        s(tags::COMPLETION_FLAG, VR::CS, "COMPLETE"),
        s(tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED"),
        s(tags::CONTENT_DATE, VR::DA, date),
        s(tags::CONTENT_TIME, VR::TM, time),
        seq(tags::PERFORMED_PROCEDURE_CODE_SEQUENCE, vec![]),
        seq(tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE, vec![evidence]),
        seq(
            tags::CONTENT_TEMPLATE_SEQUENCE,
            vec![obj([s(tags::MAPPING_RESOURCE, VR::CS, "DCMR"), s(tags::TEMPLATE_IDENTIFIER, VR::CS, "1500")])],
        ),
        seq(
            tags::CODING_SCHEME_IDENTIFICATION_SEQUENCE,
            vec![obj([
                s(tags::CODING_SCHEME_DESIGNATOR, VR::SH, "99PESENT"),
                s(tags::CODING_SCHEME_NAME, VR::ST, "pe-sentinel local codes"),
                s(tags::CODING_SCHEME_RESPONSIBLE_ORGANIZATION, VR::ST, "pe-sentinel developers"),
            ])],
        ),
    ] {
        o.put(e);
    }
    super::put_type2(&mut o);
    o
}
