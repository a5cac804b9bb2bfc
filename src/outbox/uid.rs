//! UIDs of the result objects: `2.25.` and a 128-bit number (PS3.5 B.2) taken from the sha256 of
//! what the object says (the series, its verdict and the figures behind it) and which object it
//! is. The same result written again (after a restart) gets the same UIDs, so the PACS sees one
//! instance, not two; a changed result (more slices arrived) gets new ones. Pure.

use sha2::{Digest, Sha256};

/// `2.25.<decimal of the first 128 bits of sha256(parts joined by NUL)>`, at most 44 characters.
pub fn derived(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    format!("2.25.{}", u128::from_be_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_distinct_and_valid() {
        let a = derived(&["1.2.3", "sc", "positive"]);
        assert_eq!(a, derived(&["1.2.3", "sc", "positive"]));
        assert_ne!(a, derived(&["1.2.3", "sr", "positive"]));
        // NUL-joined: ("ab","c") is not ("a","bc").
        assert_ne!(derived(&["ab", "c"]), derived(&["a", "bc"]));
        assert!(a.len() <= 64 && a.starts_with("2.25."));
        let digits = &a[5..];
        assert!(digits.chars().all(|c| c.is_ascii_digit()) && !digits.starts_with('0'), "{a}");
    }
}
