//! One association to the PACS as a Storage SCU (dicom-ul): proposes a presentation context per
//! SOP class in the batch (the file's own transfer syntax, then Explicit and Implicit VR Little
//! Endian), sends C-STORE requests one at a time and reads each response's status. Over plain TCP
//! or, with `[dicom.send.tls]`, TLS (a handshake that fails is a [`LinkError::Tls`]: retried,
//! never parked). Touches one TCP connection; reads nothing from disk (the caller hands in the
//! objects).

use crate::config::SendConfig;
use dicom_core::{dicom_value, DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use dicom_transfer_syntax_registry::{entries, TransferSyntaxRegistry};
use dicom_ul::association::client::{ClientAssociation, TlsStream};
use dicom_ul::pdu::{PDataValue, PDataValueType, PresentationContextNegotiated, PresentationContextResultReason};
use dicom_ul::{ClientAssociationOptions, Pdu};
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
pub const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
/// Our largest P-DATA PDU: what we ask the PACS to send us (responses are small).
const MAX_PDU: u32 = 64 * 1024;

/// A failure of the link, not of one object: the PACS is unreachable, refused the association,
/// or the association broke. Never parks an object; the queue waits and tries again.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot reach the PACS {peer}: {reason}; check that it is running and that [dicom.send] host and port are right")]
    Unreachable { peer: String, reason: String },
    #[error("the PACS {peer} rejected the association ({permanence}): {reason}; check [dicom.send] peer_ae and calling_ae against the PACS's configuration")]
    Rejected { peer: String, permanence: &'static str, reason: String },
    #[error("the association with {peer} broke: {reason}")]
    Broken { peer: String, reason: String },
    #[error("TLS with the PACS {peer} failed: {reason}; check that [dicom.send.tls] ca is the CA that signed the PACS's certificate, that the certificate names server_name (default: host) and is in date, and, for mutual TLS, that the PACS trusts our cert")]
    Tls { peer: String, reason: String },
}

/// What the PACS said about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// The C-STORE response's status.
    Status(u16),
    /// No accepted presentation context can carry it: the PACS refused its SOP class (or every
    /// transfer syntax we offered) at negotiation.
    NotNegotiated(String),
}

/// An object to send, as read from the outbox.
pub struct Outgoing {
    pub object: DefaultDicomObject,
    pub sop_class: String,
    pub sop_instance: String,
    pub transfer_syntax: String,
}

/// The abstract syntax and transfer syntaxes to propose for an object.
pub fn proposal(o: &Outgoing) -> (String, Vec<String>) {
    let mut ts = vec![o.transfer_syntax.clone()];
    for t in [EXPLICIT_VR_LE, IMPLICIT_VR_LE] {
        if !ts.iter().any(|x| x == t) {
            ts.push(t.to_string());
        }
    }
    (o.sop_class.clone(), ts)
}

/// The association over plain TCP or over TLS (`[dicom.send.tls]`).
enum Assoc {
    Plain(ClientAssociation<TcpStream>),
    Tls(Box<ClientAssociation<TlsStream>>),
}

impl Assoc {
    fn presentation_contexts(&self) -> &[PresentationContextNegotiated] {
        match self {
            Assoc::Plain(a) => a.presentation_contexts(),
            Assoc::Tls(a) => a.presentation_contexts(),
        }
    }

    fn send(&mut self, pdu: &Pdu) -> Result<(), dicom_ul::association::Error> {
        match self {
            Assoc::Plain(a) => a.send(pdu),
            Assoc::Tls(a) => a.send(pdu),
        }
    }

    fn receive(&mut self) -> Result<Pdu, dicom_ul::association::Error> {
        match self {
            Assoc::Plain(a) => a.receive(),
            Assoc::Tls(a) => a.receive(),
        }
    }

    /// Writes `data` as P-DATA on presentation context `pc_id`, split into PDUs.
    fn send_pdata(&mut self, pc_id: u8, data: &[u8]) -> std::io::Result<()> {
        match self {
            Assoc::Plain(a) => {
                let mut w = a.send_pdata(pc_id);
                w.write_all(data)?;
                w.finish()
            }
            Assoc::Tls(a) => {
                let mut w = a.send_pdata(pc_id);
                w.write_all(data)?;
                w.finish()
            }
        }
    }

    fn release(self) -> Result<(), dicom_ul::association::Error> {
        match self {
            Assoc::Plain(a) => a.release(),
            Assoc::Tls(a) => a.release(),
        }
    }

    fn abort(self) -> Result<(), dicom_ul::association::Error> {
        match self {
            Assoc::Plain(a) => a.abort(),
            Assoc::Tls(a) => a.abort(),
        }
    }
}

/// `[dicom.send.tls]` made ready at start: the rustls configuration and the name the PACS's
/// certificate must carry.
#[derive(Clone)]
pub struct TlsClient {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: String,
}

/// An open association.
pub struct Session {
    assoc: Assoc,
    next_id: u16,
    peer: String,
}

impl Session {
    /// Connects (over TLS when `tls` is given) and negotiates `contexts` (abstract syntax,
    /// transfer syntaxes), at most 127.
    pub fn open(
        cfg: &SendConfig,
        tls: Option<&TlsClient>,
        contexts: &[(String, Vec<String>)],
    ) -> Result<Session, LinkError> {
        let peer = cfg.peer();
        let timeout = Duration::from_secs_f64(cfg.timeout_s);
        let mut opts = ClientAssociationOptions::new()
            .calling_ae_title(cfg.calling_ae.trim().to_string())
            .called_ae_title(cfg.peer_ae.trim().to_string())
            .max_pdu_length(MAX_PDU)
            .connection_timeout(timeout)
            .read_timeout(timeout)
            .write_timeout(timeout);
        for (abstract_syntax, ts) in contexts.iter().take(127) {
            opts = opts.with_presentation_context(abstract_syntax.clone(), ts.clone());
        }
        let unreachable = |reason: String| LinkError::Unreachable { peer: peer.clone(), reason };
        let addrs: Vec<_> = (cfg.host.as_str(), cfg.port)
            .to_socket_addrs()
            .map_err(|e| unreachable(format!("cannot resolve {}: {e}", cfg.host)))?
            .collect();
        let established = match tls {
            None => opts.establish(&addrs[..]).map(Assoc::Plain),
            Some(t) => opts
                .tls_config(Arc::clone(&t.config))
                .server_name(&t.server_name)
                .establish_tls(&addrs[..])
                .map(|a| Assoc::Tls(Box::new(a))),
        };
        let assoc = established.map_err(|e| match e {
            dicom_ul::association::Error::Rejected { association_rj, .. } => LinkError::Rejected {
                peer: peer.clone(),
                permanence: match association_rj.result {
                    dicom_ul::pdu::AssociationRJResult::Permanent => "permanent",
                    dicom_ul::pdu::AssociationRJResult::Transient => "transient",
                },
                reason: format!("{:?}", association_rj.source),
            },
            dicom_ul::association::Error::NoAcceptedPresentationContexts { .. } => LinkError::Rejected {
                peer: peer.clone(),
                permanence: "permanent",
                reason: "no presentation context accepted (the PACS takes none of our SOP classes)".into(),
            },
            e @ (dicom_ul::association::Error::TlsHandshake { .. }
            | dicom_ul::association::Error::TlsConnection { .. }) => {
                LinkError::Tls { peer: peer.clone(), reason: chain(&e) }
            }
            other => unreachable(chain(&other)),
        })?;
        Ok(Session { assoc, next_id: 1, peer })
    }

    /// Sends one object with C-STORE and waits for its response.
    pub fn store(&mut self, o: &Outgoing) -> Result<Stored, LinkError> {
        let accepted: Vec<_> = self
            .assoc
            .presentation_contexts()
            .iter()
            .filter(|pc| pc.abstract_syntax == o.sop_class && pc.reason == PresentationContextResultReason::Acceptance)
            .cloned()
            .collect();
        let pick = accepted
            .iter()
            .find(|pc| pc.transfer_syntax == o.transfer_syntax)
            .or_else(|| accepted.iter().find(|pc| pc.transfer_syntax == EXPLICIT_VR_LE))
            .or_else(|| accepted.first());
        let Some(pc) = pick else {
            return Ok(Stored::NotNegotiated(format!(
                "the PACS accepted no presentation context for SOP class {}",
                o.sop_class
            )));
        };
        let Some(ts) = TransferSyntaxRegistry.get(&pc.transfer_syntax) else {
            return Ok(Stored::NotNegotiated(format!("transfer syntax {} is unknown here", pc.transfer_syntax)));
        };
        let encapsulated = |uid: &str| TransferSyntaxRegistry.get(uid).is_some_and(|t| t.is_encapsulated_pixel_data());
        if pc.transfer_syntax != o.transfer_syntax
            && (encapsulated(&o.transfer_syntax) || ts.is_encapsulated_pixel_data())
        {
            return Ok(Stored::NotNegotiated(format!(
                "the PACS accepted only {} for {}, and the object is in {} (no transcoding of compressed pixel data)",
                pc.transfer_syntax, o.sop_class, o.transfer_syntax
            )));
        }
        let mut data = Vec::with_capacity(1 << 20);
        o.object
            .write_dataset_with_ts(&mut data, ts)
            .map_err(|e| self.broken(format!("cannot encode {} in {}: {e}", o.sop_instance, pc.transfer_syntax)))?;
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let mut cmd = Vec::with_capacity(256);
        store_rq(&o.sop_class, &o.sop_instance, id)
            .write_dataset_with_ts(&mut cmd, &entries::IMPLICIT_VR_LITTLE_ENDIAN.erased())
            .map_err(|e| self.broken(format!("cannot encode the C-STORE request: {e}")))?;
        let pc_id = pc.id;
        let command = Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc_id,
                value_type: PDataValueType::Command,
                is_last: true,
                data: cmd,
            }],
        };
        self.assoc.send(&command).map_err(|e| self.broken(chain(&e)))?;
        self.assoc.send_pdata(pc_id, &data).map_err(|e| self.broken(e.to_string()))?;
        self.response(id)
    }

    /// Reads PDUs until the command of the response to message `id` is complete.
    fn response(&mut self, id: u16) -> Result<Stored, LinkError> {
        let mut command = Vec::new();
        loop {
            let pdu = self.assoc.receive().map_err(|e| self.broken(chain(&e)))?;
            let Pdu::PData { data } = pdu else {
                return Err(self.broken(format!("expected a C-STORE response, got {}", pdu_name(&pdu))));
            };
            for v in data {
                if v.value_type != PDataValueType::Command {
                    continue;
                }
                command.extend_from_slice(&v.data);
                if !v.is_last {
                    continue;
                }
                let obj =
                    InMemDicomObject::read_dataset_with_ts(&command[..], &entries::IMPLICIT_VR_LITTLE_ENDIAN.erased())
                        .map_err(|e| self.broken(format!("unreadable C-STORE response: {e}")))?;
                let answered =
                    obj.element(tags::MESSAGE_ID_BEING_RESPONDED_TO).ok().and_then(|e| e.to_int::<u16>().ok());
                let status = obj
                    .element(tags::STATUS)
                    .ok()
                    .and_then(|e| e.to_int::<u16>().ok())
                    .ok_or_else(|| self.broken("C-STORE response without a Status".into()))?;
                if answered.is_some_and(|a| a != id) {
                    return Err(self.broken(format!("response to message {answered:?}, expected {id}")));
                }
                return Ok(Stored::Status(status));
            }
        }
    }

    fn broken(&self, reason: String) -> LinkError {
        LinkError::Broken { peer: self.peer.clone(), reason }
    }

    /// Releases the association (A-RELEASE); a failure here loses nothing, so it is only logged.
    pub fn release(self) {
        if let Err(e) = self.assoc.release() {
            log::debug!("release of the association with {}: {}", self.peer, chain(&e));
        }
    }

    /// Aborts the association (after a protocol error).
    pub fn abort(self) {
        let _ = self.assoc.abort();
    }
}

fn pdu_name(p: &Pdu) -> &'static str {
    match p {
        Pdu::AbortRQ { .. } => "A-ABORT",
        Pdu::ReleaseRQ => "A-RELEASE-RQ",
        Pdu::ReleaseRP => "A-RELEASE-RP",
        Pdu::AssociationRQ(_) | Pdu::AssociationAC(_) | Pdu::AssociationRJ(_) => "an association PDU",
        Pdu::PData { .. } => "P-DATA",
        Pdu::Unknown { .. } => "an unknown PDU",
    }
}

/// An error with its sources, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// The C-STORE-RQ command set (PS3.7 9.3.1.1).
fn store_rq(sop_class: &str, sop_instance: &str, message_id: u16) -> InMemDicomObject {
    InMemDicomObject::command_from_element_iter([
        DataElement::new(tags::AFFECTED_SOP_CLASS_UID, VR::UI, dicom_value!(Str, sop_class)),
        DataElement::new(tags::COMMAND_FIELD, VR::US, dicom_value!(U16, [0x0001])),
        DataElement::new(tags::MESSAGE_ID, VR::US, dicom_value!(U16, [message_id])),
        DataElement::new(tags::PRIORITY, VR::US, dicom_value!(U16, [0x0000])),
        DataElement::new(tags::COMMAND_DATA_SET_TYPE, VR::US, dicom_value!(U16, [0x0000])),
        DataElement::new(tags::AFFECTED_SOP_INSTANCE_UID, VR::UI, dicom_value!(Str, sop_instance)),
    ])
}
