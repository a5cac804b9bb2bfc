//! `[dicom]` of the board profile as far as the results sender goes: `[dicom.send]` (the type
//! lives in the sender's crate, `pe_sentinel_send::config`, so the analyser that writes the
//! outbox and the sender that empties it read the same table the same way). Touches nothing.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DicomTable {
    /// Results (SC + SR per series verdict) to a PACS; absent: none. See docs/dicom-results.md.
    pub send: Option<pe_sentinel_send::config::SendConfig>,
}
