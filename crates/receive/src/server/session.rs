//! One association's DIMSE messages: P-DATA values in, responses out. C-ECHO is answered; a
//! C-STORE's data set is streamed into the spool and answered only once it is durable in the drop
//! folder (or with the failure status); another storage class is acknowledged and set aside; any
//! other command gets 0x0211 (unrecognised operation). A protocol violation (data without a
//! command, an unknown presentation context, a command that does not parse) is returned as an
//! error, and the caller aborts the association. Independent of the socket, so the fuzz target
//! drives it with PDUs straight from bytes. Touches the spool only.

use super::classes::{self, Handling};
use super::spool::{Incoming, InstanceMeta, Spool};
use dicom_core::{dicom_value, DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;
use dicom_ul::pdu::{PDataValue, PDataValueType};
use dicom_ul::Pdu;

/// A command set larger than this is not a command: the association is aborted.
const MAX_COMMAND_BYTES: usize = 64 * 1024;

const C_STORE_RQ: u16 = 0x0001;
const C_ECHO_RQ: u16 = 0x0030;
const C_CANCEL_RQ: u16 = 0x0FFF;
const NO_DATA_SET: u16 = 0x0101;
const STATUS_SUCCESS: u16 = 0x0000;
const STATUS_UNRECOGNIZED_OPERATION: u16 = 0x0211;

/// A negotiated presentation context the session may see.
#[derive(Debug, Clone)]
pub struct Context {
    pub id: u8,
    pub abstract_syntax: String,
    pub transfer_syntax: String,
    pub handling: Handling,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub instances: u64,
    pub set_aside: u64,
    pub failed: u64,
    pub bytes: u64,
}

/// Why the association must be aborted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Violation(pub String);

/// The message whose data set is arriving.
struct Pending {
    pc: u8,
    command_field: u16,
    message_id: u16,
    sop_class: String,
    sop_instance: String,
    sink: Sink,
}

enum Sink {
    Spool(Incoming),
    /// Read off the wire and not kept; the response carries `status`.
    Discard {
        status: u16,
        reason: Option<String>,
    },
}

pub struct Session<'a> {
    spool: &'a Spool,
    contexts: Vec<Context>,
    calling_ae: String,
    command: Vec<u8>,
    command_pc: Option<u8>,
    pending: Option<Pending>,
    pub counts: Counts,
}

impl<'a> Session<'a> {
    pub fn new(spool: &'a Spool, contexts: Vec<Context>, calling_ae: &str) -> Self {
        Session {
            spool,
            contexts,
            calling_ae: calling_ae.trim().to_string(),
            command: Vec::new(),
            command_pc: None,
            pending: None,
            counts: Counts::default(),
        }
    }

    /// Whether a message is half received (its data set not complete).
    pub fn in_message(&self) -> bool {
        self.pending.is_some() || self.command_pc.is_some()
    }

    fn context(&self, id: u8) -> Result<&Context, Violation> {
        self.contexts
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| Violation(format!("P-DATA on presentation context {id}, which was not accepted")))
    }

    /// Handles the values of one P-DATA-TF PDU; responses are appended to `out`.
    pub fn on_pdata(&mut self, values: Vec<PDataValue>, out: &mut Vec<Pdu>) -> Result<(), Violation> {
        for v in values {
            self.context(v.presentation_context_id)?;
            match v.value_type {
                PDataValueType::Command => {
                    if self.pending.is_some() {
                        return Err(Violation("a command arrived before the previous data set was complete".into()));
                    }
                    if self.command_pc.is_some_and(|pc| pc != v.presentation_context_id) {
                        return Err(Violation("command fragments on two presentation contexts".into()));
                    }
                    self.command_pc = Some(v.presentation_context_id);
                    if self.command.len() + v.data.len() > MAX_COMMAND_BYTES {
                        return Err(Violation(format!("a command set longer than {MAX_COMMAND_BYTES} bytes")));
                    }
                    self.command.extend_from_slice(&v.data);
                    if v.is_last {
                        let bytes = std::mem::take(&mut self.command);
                        self.command_pc = None;
                        self.on_command(v.presentation_context_id, &bytes, out)?;
                    }
                }
                PDataValueType::Data => {
                    let Some(p) = self.pending.as_mut() else {
                        return Err(Violation("a data set arrived without a command".into()));
                    };
                    if p.pc != v.presentation_context_id {
                        return Err(Violation(format!(
                            "data set on presentation context {} for a command on {}",
                            v.presentation_context_id, p.pc
                        )));
                    }
                    self.counts.bytes += v.data.len() as u64;
                    if let Sink::Spool(inc) = &mut p.sink {
                        inc.write(&v.data);
                    }
                    if v.is_last {
                        if let Some(p) = self.pending.take() {
                            self.finish(p, out);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn on_command(&mut self, pc: u8, bytes: &[u8], out: &mut Vec<Pdu>) -> Result<(), Violation> {
        check_command_lengths(bytes)?;
        let ts = IMPLICIT_VR_LITTLE_ENDIAN.erased();
        let cmd = InMemDicomObject::read_dataset_with_ts(bytes, &ts)
            .map_err(|e| Violation(format!("a command set that does not parse: {e}")))?;
        let u16_of = |tag| cmd.element(tag).ok().and_then(|e| e.to_int::<u16>().ok());
        let str_of = |tag| {
            cmd.element(tag).ok().and_then(|e| e.to_str().ok()).map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        };
        let field = u16_of(tags::COMMAND_FIELD).ok_or_else(|| Violation("a command without Command Field".into()))?;
        if field == C_CANCEL_RQ {
            return Ok(());
        }
        let message_id = u16_of(tags::MESSAGE_ID).ok_or_else(|| Violation("a command without Message ID".into()))?;
        let has_data = u16_of(tags::COMMAND_DATA_SET_TYPE).unwrap_or(NO_DATA_SET) != NO_DATA_SET;
        let ctx = self.context(pc)?.clone();
        let sop_class = str_of(tags::AFFECTED_SOP_CLASS_UID).unwrap_or_default();
        let sop_instance = str_of(tags::AFFECTED_SOP_INSTANCE_UID).unwrap_or_default();
        match (field, ctx.handling) {
            (C_ECHO_RQ, _) if !has_data => {
                out.push(response(pc, field, message_id, &sop_class, None, STATUS_SUCCESS, None));
                Ok(())
            }
            (C_STORE_RQ, Handling::Analysed | Handling::SetAside) if has_data => {
                let sink = if sop_instance.is_empty() || sop_class.is_empty() {
                    Sink::Discard {
                        status: 0xC000,
                        reason: Some("the C-STORE request names no Affected SOP Class/Instance UID".into()),
                    }
                } else if sop_class != ctx.abstract_syntax.trim_end_matches(['\0', ' ']) {
                    Sink::Discard {
                        status: 0xA900,
                        reason: Some(format!(
                            "SOP class {sop_class} sent on the presentation context of {}",
                            ctx.abstract_syntax
                        )),
                    }
                } else if ctx.handling == Handling::SetAside {
                    Sink::Discard { status: STATUS_SUCCESS, reason: None }
                } else {
                    let meta = InstanceMeta {
                        sop_class_uid: &sop_class,
                        sop_instance_uid: &sop_instance,
                        transfer_syntax_uid: &ctx.transfer_syntax,
                        calling_ae: &self.calling_ae,
                    };
                    match self.spool.begin(&meta) {
                        Ok(inc) => Sink::Spool(inc),
                        Err(f) => Sink::Discard { status: f.status(), reason: Some(f.reason().to_string()) },
                    }
                };
                self.pending = Some(Pending { pc, command_field: field, message_id, sop_class, sop_instance, sink });
                Ok(())
            }
            _ => {
                log::warn!(
                    "{}: command 0x{field:04X} on {} answered 0x0211 (unrecognised operation)",
                    self.calling_ae,
                    classes::name(&ctx.abstract_syntax)
                );
                let status = STATUS_UNRECOGNIZED_OPERATION;
                if has_data {
                    let sink = Sink::Discard { status, reason: None };
                    self.pending =
                        Some(Pending { pc, command_field: field, message_id, sop_class, sop_instance, sink });
                } else {
                    out.push(response(pc, field, message_id, &sop_class, Some(&sop_instance), status, None));
                }
                Ok(())
            }
        }
    }

    /// The data set is complete: commit or report, then respond.
    fn finish(&mut self, p: Pending, out: &mut Vec<Pdu>) {
        let (status, comment) = match p.sink {
            Sink::Spool(inc) => {
                let ctx_ts = self.contexts.iter().find(|c| c.id == p.pc).map(|c| c.transfer_syntax.clone());
                let meta = InstanceMeta {
                    sop_class_uid: &p.sop_class,
                    sop_instance_uid: &p.sop_instance,
                    transfer_syntax_uid: ctx_ts.as_deref().unwrap_or_default(),
                    calling_ae: &self.calling_ae,
                };
                match self.spool.commit(inc, &meta) {
                    Ok(path) => {
                        self.counts.instances += 1;
                        log::debug!("{}: stored {}", self.calling_ae, path.display());
                        (STATUS_SUCCESS, None)
                    }
                    Err(f) => {
                        self.counts.failed += 1;
                        log::warn!(
                            "{}: C-STORE of {} answered 0x{:04X}: {}",
                            self.calling_ae,
                            p.sop_instance,
                            f.status(),
                            f.reason()
                        );
                        (f.status(), Some(f.reason().to_string()))
                    }
                }
            }
            Sink::Discard { status, reason } => {
                if p.command_field == C_STORE_RQ && status == STATUS_SUCCESS {
                    self.counts.set_aside += 1;
                    log::info!(
                        "{}: {} {} acknowledged and set aside (not analysed, not kept)",
                        self.calling_ae,
                        classes::name(&p.sop_class),
                        p.sop_instance
                    );
                } else if status != STATUS_SUCCESS {
                    self.counts.failed += 1;
                    if let Some(r) = &reason {
                        log::warn!("{}: C-STORE of {} answered 0x{status:04X}: {r}", self.calling_ae, p.sop_instance);
                    }
                }
                (status, reason)
            }
        };
        out.push(response(p.pc, p.command_field, p.message_id, &p.sop_class, Some(&p.sop_instance), status, comment));
    }
}

/// Walks a command set's elements (implicit VR little endian: tag, 32-bit length, value) and
/// refuses one whose length runs past the end, before the parser sees it: a length of 2 GB in a
/// 30-byte command would otherwise be an allocation of 2 GB.
fn check_command_lengths(bytes: &[u8]) -> Result<(), Violation> {
    let mut pos = 0usize;
    while pos < bytes.len() {
        let Some(head) = bytes.get(pos..pos + 8) else {
            return Err(Violation(format!("a command set cut inside an element header at byte {pos}")));
        };
        let group = u16::from_le_bytes([head[0], head[1]]);
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        if group != 0x0000 {
            return Err(Violation(format!("a command set holding group {group:04X} (only group 0000 belongs there)")));
        }
        if len > bytes.len() - pos - 8 {
            return Err(Violation(format!(
                "a command element at byte {pos} says {len} bytes, {} remain",
                bytes.len() - pos - 8
            )));
        }
        pos += 8 + len;
    }
    Ok(())
}

/// A response command (RQ field | 0x8000) as one P-DATA PDU.
fn response(
    pc: u8,
    rq_field: u16,
    message_id: u16,
    sop_class: &str,
    sop_instance: Option<&str>,
    status: u16,
    comment: Option<String>,
) -> Pdu {
    let mut elements = vec![
        DataElement::new(tags::COMMAND_FIELD, VR::US, dicom_value!(U16, [rq_field | 0x8000])),
        DataElement::new(tags::MESSAGE_ID_BEING_RESPONDED_TO, VR::US, dicom_value!(U16, [message_id])),
        DataElement::new(tags::COMMAND_DATA_SET_TYPE, VR::US, dicom_value!(U16, [NO_DATA_SET])),
        DataElement::new(tags::STATUS, VR::US, dicom_value!(U16, [status])),
    ];
    if !sop_class.is_empty() {
        elements.push(DataElement::new(tags::AFFECTED_SOP_CLASS_UID, VR::UI, dicom_value!(Str, sop_class)));
    }
    if let Some(i) = sop_instance.filter(|s| !s.is_empty()) {
        elements.push(DataElement::new(tags::AFFECTED_SOP_INSTANCE_UID, VR::UI, dicom_value!(Str, i)));
    }
    if let Some(c) = comment {
        // Error Comment is LO: at most 64 characters.
        let c: String = c.chars().filter(|ch| *ch != '\\').take(64).collect();
        elements.push(DataElement::new(tags::ERROR_COMMENT, VR::LO, dicom_value!(Str, c)));
    }
    let cmd = InMemDicomObject::command_from_element_iter(elements);
    let mut data = Vec::with_capacity(256);
    let ts = IMPLICIT_VR_LITTLE_ENDIAN.erased();
    if let Err(e) = cmd.write_dataset_with_ts(&mut data, &ts) {
        // Our own fixed elements: this cannot fail short of a bug, and an empty command makes
        // the peer abort rather than hang.
        log::error!("cannot encode a response command: {e}");
    }
    Pdu::PData {
        data: vec![PDataValue {
            presentation_context_id: pc,
            value_type: PDataValueType::Command,
            is_last: true,
            data,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_object::FileMetaTableBuilder;

    const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
    const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

    fn contexts() -> Vec<Context> {
        vec![
            Context {
                id: 1,
                abstract_syntax: CT.into(),
                transfer_syntax: EXPLICIT_LE.into(),
                handling: Handling::Analysed,
            },
            Context {
                id: 3,
                abstract_syntax: "1.2.840.10008.5.1.4.1.1.88.33".into(),
                transfer_syntax: EXPLICIT_LE.into(),
                handling: Handling::SetAside,
            },
        ]
    }

    fn command(field: u16, id: u16, class: &str, instance: &str) -> Vec<u8> {
        let cmd = InMemDicomObject::command_from_element_iter([
            DataElement::new(tags::AFFECTED_SOP_CLASS_UID, VR::UI, dicom_value!(Str, class)),
            DataElement::new(tags::COMMAND_FIELD, VR::US, dicom_value!(U16, [field])),
            DataElement::new(tags::MESSAGE_ID, VR::US, dicom_value!(U16, [id])),
            DataElement::new(tags::COMMAND_DATA_SET_TYPE, VR::US, dicom_value!(U16, [0x0000])),
            DataElement::new(tags::AFFECTED_SOP_INSTANCE_UID, VR::UI, dicom_value!(Str, instance)),
        ]);
        let mut out = Vec::new();
        cmd.write_dataset_with_ts(&mut out, &IMPLICIT_VR_LITTLE_ENDIAN.erased()).expect("command");
        out
    }

    fn data_set(class: &str, instance: &str) -> Vec<u8> {
        let obj = InMemDicomObject::from_element_iter([
            DataElement::new(tags::SOP_CLASS_UID, VR::UI, dicom_value!(Str, class)),
            DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, dicom_value!(Str, instance)),
            DataElement::new(tags::SERIES_INSTANCE_UID, VR::UI, dicom_value!(Str, "1.2.3.4")),
            DataElement::new(tags::PIXEL_DATA, VR::OW, dicom_core::PrimitiveValue::U16(vec![7u16; 1000].into())),
        ]);
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(class)
            .media_storage_sop_instance_uid(instance)
            .transfer_syntax(EXPLICIT_LE)
            .build()
            .expect("meta");
        let mut out = Vec::new();
        obj.with_exact_meta(meta).write_dataset(&mut out).expect("data set");
        out
    }

    fn pdv(pc: u8, command: bool, last: bool, data: &[u8]) -> PDataValue {
        PDataValue {
            presentation_context_id: pc,
            value_type: if command { PDataValueType::Command } else { PDataValueType::Data },
            is_last: last,
            data: data.to_vec(),
        }
    }

    fn status(pdu: &Pdu) -> u16 {
        let Pdu::PData { data } = pdu else { panic!("not P-DATA: {pdu:?}") };
        let cmd = InMemDicomObject::read_dataset_with_ts(data[0].data.as_slice(), &IMPLICIT_VR_LITTLE_ENDIAN.erased())
            .expect("response parses");
        cmd.element(tags::STATUS).expect("status").to_int::<u16>().expect("u16")
    }

    fn receiving(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir.join(super::super::spool::RECEIVING)).expect("receiving").count()
    }

    #[test]
    fn a_store_in_fragments_lands_whole_and_an_unfinished_one_leaves_nothing() {
        let t = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(t.path(), 0, 1 << 30).expect("spool");
        let ds = data_set(CT, "1.2.3.4.5");
        let mut s = Session::new(&spool, contexts(), "CT1");
        let mut out = Vec::new();
        s.on_pdata(vec![pdv(1, true, true, &command(C_STORE_RQ, 9, CT, "1.2.3.4.5"))], &mut out).expect("command");
        let (a, b) = ds.split_at(ds.len() / 3);
        s.on_pdata(vec![pdv(1, false, false, a)], &mut out).expect("part");
        assert!(out.is_empty(), "no response before the data set is complete");
        assert_eq!(receiving(t.path()), 1);
        s.on_pdata(vec![pdv(1, false, true, b)], &mut out).expect("last part");
        assert_eq!(out.len(), 1);
        assert_eq!(status(&out[0]), 0x0000);
        let stored = t.path().join("1.2.3.4.5.dcm");
        let obj = dicom_object::open_file(&stored).expect("a whole Part 10 file");
        assert_eq!(obj.meta().transfer_syntax(), EXPLICIT_LE);
        assert_eq!(obj.element(tags::PIXEL_DATA).expect("pixels").to_multi_int::<u16>().expect("u16").len(), 1000);
        assert_eq!(s.counts.instances, 1);
        // The same instance again: stored beside, never replacing (the analyser dedups by content).
        out.clear();
        s.on_pdata(
            vec![pdv(1, true, true, &command(C_STORE_RQ, 10, CT, "1.2.3.4.5")), pdv(1, false, true, &ds)],
            &mut out,
        )
        .expect("again");
        assert_eq!(status(&out[0]), 0x0000);
        assert!(t.path().join("1.2.3.4.5.1.dcm").exists());
        // Half an instance, then the association ends.
        out.clear();
        s.on_pdata(
            vec![pdv(1, true, true, &command(C_STORE_RQ, 11, CT, "1.2.3.4.6")), pdv(1, false, false, a)],
            &mut out,
        )
        .expect("half");
        assert_eq!(receiving(t.path()), 1);
        drop(s);
        assert_eq!(receiving(t.path()), 0, "the temporary file goes with the session");
        assert!(!t.path().join("1.2.3.4.6.dcm").exists());
    }

    #[test]
    fn bad_data_sets_get_failure_statuses_and_protocol_errors_abort() {
        let t = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(t.path(), 0, 1 << 30).expect("spool");
        let mut s = Session::new(&spool, contexts(), "CT1");
        let mut out = Vec::new();
        // A data set that says another instance than the command: 0xC000, nothing kept.
        let other = data_set(CT, "9.9.9");
        s.on_pdata(
            vec![pdv(1, true, true, &command(C_STORE_RQ, 1, CT, "1.2.3")), pdv(1, false, true, &other)],
            &mut out,
        )
        .expect("store");
        assert_eq!(status(&out[0]), 0xC000);
        // Not DICOM at all: 0xC000.
        out.clear();
        s.on_pdata(
            vec![pdv(1, true, true, &command(C_STORE_RQ, 2, CT, "1.2.4")), pdv(1, false, true, b"\x08\x00")],
            &mut out,
        )
        .expect("store");
        assert_eq!(status(&out[0]), 0xC000);
        // A set-aside class: success, not kept.
        out.clear();
        let sr = "1.2.840.10008.5.1.4.1.1.88.33";
        s.on_pdata(
            vec![pdv(3, true, true, &command(C_STORE_RQ, 3, sr, "1.2.5")), pdv(3, false, true, &data_set(sr, "1.2.5"))],
            &mut out,
        )
        .expect("store");
        assert_eq!(status(&out[0]), 0x0000);
        // Over the instance limit: 0xA700 once the whole data set has been read.
        let small = Spool::open(t.path(), 0, 100).expect("spool");
        let mut s2 = Session::new(&small, contexts(), "CT1");
        out.clear();
        s2.on_pdata(
            vec![pdv(1, true, true, &command(C_STORE_RQ, 4, CT, "1.2.6")), pdv(1, false, true, &data_set(CT, "1.2.6"))],
            &mut out,
        )
        .expect("store");
        assert_eq!(status(&out[0]), 0xA700);
        assert_eq!(s.counts, Counts { instances: 0, set_aside: 1, failed: 2, bytes: s.counts.bytes });
        assert_eq!(std::fs::read_dir(t.path()).expect("dir").count(), 1, "only .receiving/, no instance kept");
        assert_eq!(receiving(t.path()), 0);
        // Protocol errors: the caller aborts.
        for bad in [
            vec![pdv(1, false, true, b"data first")],
            vec![pdv(2, true, true, &command(C_ECHO_RQ, 1, "1.2.840.10008.1.1", ""))],
            vec![pdv(1, true, true, b"\x00\x00\x00\x00\xff\xff\xff\x7fxx")],
            vec![pdv(1, true, true, &command(C_STORE_RQ, 5, CT, "1.2.7")), pdv(1, true, true, b"")],
        ] {
            let mut s = Session::new(&spool, contexts(), "CT1");
            assert!(s.on_pdata(bad, &mut Vec::new()).is_err());
        }
    }
}
