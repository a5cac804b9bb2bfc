//! Fuzz target: arbitrary text as a board profile. Parsing must give a profile or an error whose
//! message names the file, never a panic; an accepted profile must pass its own range checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pe_sentinel::config::BoardProfile;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match BoardProfile::parse(text, Path::new("fuzz.toml")) {
        Ok(p) => {
            assert!((1..=64).contains(&p.engine.threads));
            assert!(p.verdict.suspicious_min >= 1 && p.verdict.suspicious_min <= p.verdict.window_slices);
        }
        Err(e) => assert!(e.to_string().contains("fuzz.toml"), "{e}"),
    }
});
