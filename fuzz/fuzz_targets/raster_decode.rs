//! Fuzz target: arbitrary bytes as a dropped PNG/JPEG file. The decoder reads from a path, so each
//! input is written to a file in /dev/shm (a memory file system) first. Every input must give a
//! slice or an error, never a panic; a slice must hold width x height pixels.
//!
//! The decoder contains panics of the image codecs itself (`catch_unwind`, since fuzzing found a
//! zune-jpeg panic: tests/fuzz_regressions.rs `raster_jpeg_panic_11`); the target's panic hook
//! (common/contained.rs) lets such panics through and can save their inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pe_sentinel::slice::{Pixels, SeriesId};
use pe_sentinel::source::decode::raster::decode_file;
use std::path::PathBuf;

#[path = "../common/contained.rs"]
mod contained;

fuzz_target!(|data: &[u8]| {
    contained::input(data);
    let dir = std::env::var_os("FUZZ_TMP").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/dev/shm"));
    let path = dir.join(format!("pe-sentinel-fuzz-{}.png", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(s) = decode_file(&path, SeriesId("fuzz".into())) {
        let n = s.width as usize * s.height as usize;
        let len = match &s.pixels {
            Pixels::Hu(v) => v.len(),
            Pixels::Gray8(v) => v.len(),
            Pixels::Gray16(v) => v.len(),
        };
        assert_eq!(len, n, "slice of {}x{} holds {len} pixels", s.width, s.height);
    }
});
