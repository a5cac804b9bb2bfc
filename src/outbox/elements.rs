//! Small builders of DICOM elements and SR content items (dicom-object), so the SC and SR
//! writers read as the tables of the standard they follow. Pure; touches nothing.

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

pub type Elem = dicom_object::mem::InMemElement;

pub fn s(tag: Tag, vr: VR, v: impl Into<String>) -> Elem {
    DataElement::new(tag, vr, PrimitiveValue::from(v.into()))
}

pub fn us(tag: Tag, v: u16) -> Elem {
    DataElement::new(tag, VR::US, PrimitiveValue::from(v))
}

/// An element of type 2 with no value.
pub fn empty(tag: Tag, vr: VR) -> Elem {
    DataElement::new(tag, vr, PrimitiveValue::Empty)
}

pub fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> Elem {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

pub fn obj(elems: impl IntoIterator<Item = Elem>) -> InMemDicomObject {
    InMemDicomObject::from_element_iter(elems)
}

/// A coded concept (Code Sequence Macro): value, scheme, meaning.
#[derive(Debug, Clone, Copy)]
pub struct Code(pub &'static str, pub &'static str, pub &'static str);

impl Code {
    pub fn item(self) -> InMemDicomObject {
        obj([
            s(tags::CODE_VALUE, VR::SH, self.0),
            s(tags::CODING_SCHEME_DESIGNATOR, VR::SH, self.1),
            s(tags::CODE_MEANING, VR::LO, self.2),
        ])
    }
}

/// The start of an SR content item: relationship, value type and concept name.
fn item(rel: &str, value_type: &str, name: Code) -> Vec<Elem> {
    let mut v = Vec::with_capacity(6);
    if !rel.is_empty() {
        v.push(s(tags::RELATIONSHIP_TYPE, VR::CS, rel));
    }
    v.push(s(tags::VALUE_TYPE, VR::CS, value_type));
    v.push(seq(tags::CONCEPT_NAME_CODE_SEQUENCE, vec![name.item()]));
    v
}

pub fn container(rel: &str, name: Code, children: Vec<InMemDicomObject>) -> InMemDicomObject {
    let mut v = item(rel, "CONTAINER", name);
    v.push(s(tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE"));
    v.push(seq(tags::CONTENT_SEQUENCE, children));
    obj(v)
}

pub fn code(rel: &str, name: Code, value: Code) -> InMemDicomObject {
    let mut v = item(rel, "CODE", name);
    v.push(seq(tags::CONCEPT_CODE_SEQUENCE, vec![value.item()]));
    obj(v)
}

pub fn text(rel: &str, name: Code, value: &str) -> InMemDicomObject {
    let mut v = item(rel, "TEXT", name);
    v.push(s(tags::TEXT_VALUE, VR::UT, value));
    obj(v)
}

pub fn uidref(rel: &str, name: Code, uid: &str) -> InMemDicomObject {
    let mut v = item(rel, "UIDREF", name);
    v.push(s(tags::UID, VR::UI, uid));
    obj(v)
}

pub fn num(rel: &str, name: Code, value: f64, unit: Code) -> InMemDicomObject {
    let mut v = item(rel, "NUM", name);
    let mv = obj([
        s(tags::NUMERIC_VALUE, VR::DS, format!("{value:.4}")),
        seq(tags::MEASUREMENT_UNITS_CODE_SEQUENCE, vec![unit.item()]),
    ]);
    v.push(seq(tags::MEASURED_VALUE_SEQUENCE, vec![mv]));
    obj(v)
}

/// A reference to one SOP instance (and frame, for multi-frame images).
#[derive(Debug, Clone)]
pub struct SopRef {
    pub class: String,
    pub instance: String,
    pub frame: Option<u32>,
}

impl SopRef {
    pub fn item(&self) -> InMemDicomObject {
        let mut v = vec![
            s(tags::REFERENCED_SOP_CLASS_UID, VR::UI, self.class.clone()),
            s(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, self.instance.clone()),
        ];
        if let Some(f) = self.frame {
            v.push(s(tags::REFERENCED_FRAME_NUMBER, VR::IS, (f + 1).to_string()));
        }
        obj(v)
    }
}

pub fn image(rel: &str, name: Option<Code>, r: &SopRef) -> InMemDicomObject {
    let mut v = vec![s(tags::RELATIONSHIP_TYPE, VR::CS, rel), s(tags::VALUE_TYPE, VR::CS, "IMAGE")];
    if let Some(n) = name {
        v.push(seq(tags::CONCEPT_NAME_CODE_SEQUENCE, vec![n.item()]));
    }
    v.push(seq(tags::REFERENCED_SOP_SEQUENCE, vec![r.item()]));
    obj(v)
}

/// A closed polyline around a box, in image pixel coordinates (column, row), selected from `on`.
pub fn scoord_box(rel: &str, name: Code, b: [f32; 4], on: &SopRef) -> InMemDicomObject {
    let [x0, y0, x1, y1] = b;
    let mut v = item(rel, "SCOORD", name);
    v.push(s(tags::GRAPHIC_TYPE, VR::CS, "POLYLINE"));
    v.push(DataElement::new(
        tags::GRAPHIC_DATA,
        VR::FL,
        PrimitiveValue::F32([x0, y0, x1, y0, x1, y1, x0, y1, x0, y0].into_iter().collect()),
    ));
    v.push(seq(tags::CONTENT_SEQUENCE, vec![image("SELECTED FROM", None, on)]));
    obj(v)
}
