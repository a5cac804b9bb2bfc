//! The Secondary Capture Image (PS3.3 A.8.1) of the key slice: a new series in the source's
//! study, DERIVED\SECONDARY, BurnedInAnnotation YES, RGB 8-bit with the boxes and text burned
//! in, and a Source Image Sequence pointing at the slice it shows. For a series that was not
//! analysed: a text card (ORIGINAL\SECONDARY) saying so and why, referring to one of the
//! series' slices. Pure: values in, object out.

use super::elements::{obj, s, seq, us, Code, SopRef};
use super::picture::Picture;
use super::{Facts, Finding, SOFTWARE};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

pub const SC_CLASS: &str = "1.2.840.10008.5.1.4.1.1.7";
/// Series numbers of our results, high so they sort after the scanner's own series.
pub const SC_SERIES_NUMBER: &str = "9901";

pub fn build(f: &Facts, pic: &Picture, sop_instance: &str, series_uid: &str) -> InMemDicomObject {
    let src = &f.source;
    let mut o = obj(src.copied.iter().cloned());
    let (date, time) = (f.content_date.as_str(), f.content_time.as_str());
    // Not analysed: a text card, made from no slice's pixels (ORIGINAL), that names the series
    // it speaks of (Referenced Image Sequence) instead of a source image.
    let card = f.finding == Finding::NotAnalysed;
    let description = match (card, f.demo) {
        (false, false) => "pe-sentinel key slice",
        (false, true) => "pe-sentinel key slice (NOT FOR DIAGNOSIS)",
        (true, false) => "pe-sentinel: series NOT analysed",
        (true, true) => "pe-sentinel: series NOT analysed (NOT FOR DIAGNOSIS)",
    };
    let source_ref = SopRef { class: src.sop_class.clone(), instance: src.sop_instance.clone(), frame: src.frame };
    let mut source_item = source_ref.item();
    if card {
        o.put(s(tags::IMAGE_TYPE, VR::CS, "ORIGINAL\\SECONDARY"));
        o.put(seq(tags::REFERENCED_IMAGE_SEQUENCE, vec![source_item]));
        let why = f.reasons.as_deref().unwrap_or("");
        o.put(s(tags::IMAGE_COMMENTS, VR::LT, format!("{}: {why}", f.summary_line())));
    } else {
        source_item.put(seq(
            tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
            vec![Code("121322", "DCM", "Source image for image processing operation").item()],
        ));
        o.put(s(tags::IMAGE_TYPE, VR::CS, "DERIVED\\SECONDARY"));
        o.put(s(tags::DERIVATION_DESCRIPTION, VR::ST, derivation(f)));
        o.put(seq(tags::SOURCE_IMAGE_SEQUENCE, vec![source_item]));
        o.put(s(tags::IMAGE_COMMENTS, VR::LT, f.summary_line()));
    }
    for e in [
        s(tags::SOP_CLASS_UID, VR::UI, SC_CLASS),
        s(tags::SOP_INSTANCE_UID, VR::UI, sop_instance),
        s(tags::INSTANCE_CREATION_DATE, VR::DA, date),
        s(tags::INSTANCE_CREATION_TIME, VR::TM, time),
        s(tags::CONTENT_DATE, VR::DA, date),
        s(tags::CONTENT_TIME, VR::TM, time),
        s(tags::MODALITY, VR::CS, "OT"),
        s(tags::CONVERSION_TYPE, VR::CS, "WSD"),
        s(tags::MANUFACTURER, VR::LO, "pe-sentinel"),
        s(tags::SERIES_DESCRIPTION, VR::LO, description),
        s(tags::SERIES_INSTANCE_UID, VR::UI, series_uid),
        s(tags::SERIES_NUMBER, VR::IS, SC_SERIES_NUMBER),
        s(tags::INSTANCE_NUMBER, VR::IS, "1"),
        DataElement::new(tags::PATIENT_ORIENTATION, VR::CS, PrimitiveValue::Empty),
        // General Series, type 2C: the chest is not a paired body part, so empty.
        DataElement::new(tags::LATERALITY, VR::CS, PrimitiveValue::Empty),
        s(tags::BURNED_IN_ANNOTATION, VR::CS, "YES"),
        s(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"),
        s(tags::SECONDARY_CAPTURE_DEVICE_MANUFACTURER, VR::LO, "pe-sentinel"),
        s(tags::SECONDARY_CAPTURE_DEVICE_MANUFACTURER_MODEL_NAME, VR::LO, "pe-sentinel"),
        s(tags::SECONDARY_CAPTURE_DEVICE_SOFTWARE_VERSIONS, VR::LO, SOFTWARE),
        us(tags::SAMPLES_PER_PIXEL, 3),
        s(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB"),
        us(tags::PLANAR_CONFIGURATION, 0),
        us(tags::ROWS, pic.height as u16),
        us(tags::COLUMNS, pic.width as u16),
        us(tags::BITS_ALLOCATED, 8),
        us(tags::BITS_STORED, 8),
        us(tags::HIGH_BIT, 7),
        us(tags::PIXEL_REPRESENTATION, 0),
        DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(pic.rgb.clone())),
    ] {
        o.put(e);
    }
    // Type 2 attributes of the Patient and General Study modules, empty when the source lacks them.
    super::put_type2(&mut o);
    o
}

fn derivation(f: &Facts) -> String {
    format!(
        "Key slice of series {} through the HU window of {}; detector boxes and the result burned in by {SOFTWARE}",
        f.source.series_uid, f.models[0].name
    )
}
