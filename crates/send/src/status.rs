//! What a C-STORE response status means for an object in the outbox (PS3.4 B.2.3, PS3.7 C):
//! delivered (success or warning), worth another try later (out of resources, processing
//! failure, cancel), or refused for good (the PACS will never take this object as it is:
//! parked for a person). Pure; touches nothing.

/// The fate of one object after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 0x0000, or a PACS that already holds this SOP instance (0x0111).
    Delivered,
    /// Stored with a warning (0x0001, 0x0107, 0x0116, 0xBxxx): delivered; the status is recorded.
    Warning,
    /// A passing refusal: try again after the backoff (counts toward `max_attempts`).
    Transient,
    /// A refusal that will not change by trying again: park at once.
    Permanent,
}

/// Classifies a C-STORE response status.
pub fn classify(status: u16) -> Class {
    match status {
        0x0000 | 0x0111 => Class::Delivered,
        0x0001 | 0x0107 | 0x0116 | 0xB000..=0xBFFF => Class::Warning,
        // Refused: out of resources; processing failure; cancel; pending answered as final.
        0xA700..=0xA7FF | 0x0110 | 0xFE00 | 0xFF00 | 0xFF01 => Class::Transient,
        // Data set does not match SOP class; cannot understand; SOP class not supported; not
        // authorized; duplicate invocation; unrecognized operation; mistyped argument ...
        0xA900..=0xA9FF | 0xC000..=0xCFFF | 0x0122 | 0x0124 | 0x0210..=0x0212 => Class::Permanent,
        // Anything else is unknown: tried again, and parked after `max_attempts`.
        _ => Class::Transient,
    }
}

/// A short name of a status for logs and the ledger.
pub fn describe(status: u16) -> &'static str {
    match status {
        0x0000 => "success",
        0x0111 => "duplicate SOP instance (already stored)",
        0x0001 | 0x0107 | 0x0116 => "warning",
        0xB000 => "warning: coercion of data elements",
        0xB006 => "warning: elements discarded",
        0xB007 => "warning: data set does not match SOP class",
        0xB001..=0xB005 | 0xB008..=0xBFFF => "warning",
        0xA700..=0xA7FF => "refused: out of resources",
        0x0110 => "processing failure",
        0xFE00 => "cancelled",
        0xA900..=0xA9FF => "error: data set does not match SOP class",
        0xC000..=0xCFFF => "error: cannot understand",
        0x0122 => "refused: SOP class not supported",
        0x0124 => "refused: not authorized",
        _ => "unknown status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert_eq!(classify(0x0000), Class::Delivered);
        assert_eq!(classify(0x0111), Class::Delivered);
        assert_eq!(classify(0xB000), Class::Warning);
        assert_eq!(classify(0xA700), Class::Transient);
        assert_eq!(classify(0xA7FF), Class::Transient);
        assert_eq!(classify(0x0110), Class::Transient);
        assert_eq!(classify(0xA900), Class::Permanent);
        assert_eq!(classify(0xC000), Class::Permanent);
        assert_eq!(classify(0xC123), Class::Permanent);
        assert_eq!(classify(0x0122), Class::Permanent);
        assert_eq!(classify(0x1234), Class::Transient);
        assert_eq!(describe(0xA701), "refused: out of resources");
    }
}
