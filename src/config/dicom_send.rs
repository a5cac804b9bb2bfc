//! `[dicom]` of the board profile: the receiver's keys (the type lives in the receiver's crate,
//! `pe_sentinel_receive::config::Dicom`) and `[dicom.send]` (in the sender's crate,
//! `pe_sentinel_send::config`), so the analyser, the receiver and the sender read the same table
//! the same way. Touches nothing.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "pe_sentinel_receive::config::Dicom")]
pub struct DicomTable {
    /// The receiver's keys (AE title, allowed senders, limits); see docs/dicom.md.
    pub receive: pe_sentinel_receive::config::Dicom,
    /// Results (SC + SR per series verdict) to a PACS; absent: none. See docs/dicom-results.md.
    pub send: Option<pe_sentinel_send::config::SendConfig>,
}

impl TryFrom<pe_sentinel_receive::config::Dicom> for DicomTable {
    type Error = String;

    /// The receiver's schema carries `[dicom.send]` unread; it is parsed here as the sender does.
    fn try_from(mut receive: pe_sentinel_receive::config::Dicom) -> Result<Self, String> {
        let send = match receive.send.take() {
            Some(v) => Some(v.try_into().map_err(|e| format!("[dicom.send]: {e}"))?),
            None => None,
        };
        Ok(DicomTable { receive, send })
    }
}
