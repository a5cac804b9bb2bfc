//! Fuzz target: arbitrary bytes as a dropped DICOM file, through the daemon's decoder (both
//! acceptance modes). Every input must give slices or an error, never a panic or an allocation
//! beyond libFuzzer's -malloc_limit_mb. Slices that come out must be self-consistent.
//!
//! The decoder contains panics of the pixel codecs itself (`catch_unwind`: a codec bug costs one
//! file, not the daemon; tests/fuzz_regressions.rs `dicom_rle_panic_4`); the target's panic hook
//! (common/contained.rs) lets such panics through and can save their inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pe_sentinel::slice::Pixels;
use pe_sentinel::source::decode::dicom::{decode_bytes, Accept};
use std::path::Path;

#[path = "../common/contained.rs"]
mod contained;

fuzz_target!(|data: &[u8]| {
    contained::input(data);
    for accept in [Accept::CtOnly, Accept::AnyGrayscale] {
        if let Ok(slices) = decode_bytes(data, Path::new("fuzz.dcm"), accept) {
            for s in &slices {
                let n = s.width as usize * s.height as usize;
                let len = match &s.pixels {
                    Pixels::Hu(v) => v.len(),
                    Pixels::Gray8(v) => v.len(),
                    Pixels::Gray16(v) => v.len(),
                };
                assert_eq!(len, n, "slice of {}x{} holds {len} pixels", s.width, s.height);
            }
        }
    }
});
