//! What the receiver negotiates: the SOP classes it stores for analysis, the other storage classes
//! it accepts and sets aside (so a scanner's "send everything" job never fails on a dose report or
//! a localizer), and the transfer syntaxes the analyser's decoder reads. Tables only.

use super::storage_classes::STORAGE_CLASSES;
use dicom_dictionary_std::uids;

/// Verification (C-ECHO).
pub const VERIFICATION: &str = uids::VERIFICATION;

/// Stored into the drop folder and analysed.
pub const ANALYSED: [&str; 3] =
    [uids::CT_IMAGE_STORAGE, uids::ENHANCED_CT_IMAGE_STORAGE, uids::SECONDARY_CAPTURE_IMAGE_STORAGE];

/// The transfer syntaxes accepted, in our order of preference when a proposal offers several
/// (dicom-ul takes the first of the requestor's list that is here). All are read by the analyser's
/// decoder (dicom-pixeldata with `native`, `openjp2`, `charls`). Not here: JPEG Extended
/// (1.2.840.10008.1.2.4.51, 12-bit samples are not decoded) and the JPEG XL / HTJ2K / video
/// syntaxes, so a sender that proposes them falls back to one of these.
pub const TRANSFER_SYNTAXES: [&str; 12] = [
    uids::EXPLICIT_VR_LITTLE_ENDIAN,
    uids::IMPLICIT_VR_LITTLE_ENDIAN,
    uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    // Retired, still decoded; listed after the little-endian ones so it is only taken when alone.
    "1.2.840.10008.1.2.2",
    uids::RLE_LOSSLESS,
    uids::JPEG_BASELINE8_BIT,
    uids::JPEG_LOSSLESS,
    uids::JPEG_LOSSLESS_SV1,
    uids::JPEGLS_LOSSLESS,
    uids::JPEGLS_NEAR_LOSSLESS,
    uids::JPEG2000_LOSSLESS,
    uids::JPEG2000,
];

/// How an accepted abstract syntax is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    Verification,
    /// Stored for analysis.
    Analysed,
    /// Another storage class: acknowledged with success, logged, counted, not kept.
    SetAside,
}

pub fn handling(abstract_syntax: &str) -> Option<Handling> {
    let a = abstract_syntax.trim_end_matches(['\0', ' ']);
    if a == VERIFICATION {
        Some(Handling::Verification)
    } else if ANALYSED.contains(&a) {
        Some(Handling::Analysed)
    } else if is_storage(a) {
        Some(Handling::SetAside)
    } else {
        None
    }
}

/// Every storage SOP class of the standard (see [`STORAGE_CLASSES`]).
pub fn storage_classes() -> impl Iterator<Item = &'static str> {
    STORAGE_CLASSES.iter().map(|(uid, _)| *uid)
}

fn is_storage(uid: &str) -> bool {
    STORAGE_CLASSES.iter().any(|(u, _)| *u == uid)
}

/// The class's name for log lines (its UID when unknown).
pub fn name(uid: &str) -> &str {
    let u = uid.trim_end_matches(['\0', ' ']);
    STORAGE_CLASSES.iter().find(|(c, _)| *c == u).map(|(_, n)| *n).unwrap_or(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_classes_cover_what_a_send_everything_job_holds() {
        let all: Vec<&str> = storage_classes().collect();
        for uid in ANALYSED {
            assert!(all.contains(&uid), "{uid}");
            assert_eq!(handling(uid), Some(Handling::Analysed));
        }
        // Dose SR, Comprehensive SR, X-Ray Radiation Dose SR, Grayscale Softcopy Presentation State.
        for uid in ["1.2.840.10008.5.1.4.1.1.88.67", "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.11.1"] {
            assert_eq!(handling(uid), Some(Handling::SetAside), "{uid} {}", name(uid));
        }
        // Query/retrieve and storage commitment are not storage.
        assert_eq!(handling("1.2.840.10008.5.1.4.1.2.2.1"), None);
        assert_eq!(handling("1.2.840.10008.1.20.1"), None);
        assert_eq!(handling("1.2.840.10008.1.1\0"), Some(Handling::Verification));
        assert!(all.len() > 100 && all.len() < 400, "{}", all.len());
        assert!(all.iter().all(|u| u.starts_with("1.2.840.10008.5.1.4.1.1.")));
    }
}
