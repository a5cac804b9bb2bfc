//! Typed failures of one input on its way to a verdict, and which of three things the daemon does
//! with each. Pure types; touches nothing.
//!
//! - **Reject** ([`RejectCode`]): the input itself cannot be analysed (damaged, not CT, too large,
//!   unsupported encoding). Retrying gives the same answer, so the file moves to `rejected/` with
//!   its reason beside it and a row in the journal's `rejected` table carrying the code.
//! - **Ineligible**: a readable CT slice outside the intended use (issue 21 decides which); it is
//!   recorded as not analysed, never silently dropped. `RejectCode::Ineligible` is its code.
//! - **Fault**: the machine failed, not the input (an engine or head error at run time, e.g. a
//!   CUDA error on a Jetson; the journal or a folder on a full disk). The file stays in the drop
//!   folder and is retried after a growing pause; the display and systemd status show FAULT.

use serde::Serialize;

/// Why an input was rejected, as stored in the journal's `rejected.code` and printed by `history`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RejectCode {
    /// Larger than the daemon's file limit (read unopened).
    FileTooLarge,
    /// Zero bytes.
    EmptyFile,
    /// Not a readable DICOM, PNG or JPEG file (damaged, truncated, another format).
    Unreadable,
    /// A DICOM image whose modality is not CT.
    NotCt,
    /// A DICOM encoding or image kind this build cannot decode (colour, 12-bit JPEG, ...).
    Unsupported,
    /// A required DICOM attribute is missing or invalid (Rows, Columns, Pixel Data, ...).
    MissingAttribute,
    /// Declares more pixels or frames than the limits.
    ImageTooLarge,
    /// Smaller than any CT slice.
    ImageTooSmall,
    /// The pixel data cannot be decoded (truncated, damaged compressed stream).
    DamagedPixels,
    /// Decoded, but the slice's geometry or pixels cannot be made into a model input.
    CannotPreprocess,
    /// Outside the intended use (filled in by the eligibility check).
    Ineligible,
    /// Deeper below the drop folder than the folders taken (`drop_folder::MAX_FOLDERS`).
    TooDeep,
}

impl RejectCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::FileTooLarge => "file-too-large",
            RejectCode::TooDeep => "too-deep",
            RejectCode::EmptyFile => "empty-file",
            RejectCode::Unreadable => "unreadable",
            RejectCode::NotCt => "not-ct",
            RejectCode::Unsupported => "unsupported",
            RejectCode::MissingAttribute => "missing-attribute",
            RejectCode::ImageTooLarge => "image-too-large",
            RejectCode::ImageTooSmall => "image-too-small",
            RejectCode::DamagedPixels => "damaged-pixels",
            RejectCode::CannotPreprocess => "cannot-preprocess",
            RejectCode::Ineligible => "ineligible",
        }
    }
}

impl std::fmt::Display for RejectCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An input the daemon will not analyse: the code for the journal, the sentence for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: RejectCode,
    pub reason: String,
}

impl Rejection {
    pub fn new(code: RejectCode, reason: impl Into<String>) -> Rejection {
        Rejection { code, reason: reason.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_kebab_case_and_match_serde() {
        for c in [RejectCode::FileTooLarge, RejectCode::NotCt, RejectCode::CannotPreprocess, RejectCode::Ineligible] {
            let json = serde_json::to_string(&c).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
    }
}
