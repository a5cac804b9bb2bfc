//! Inputs found by the cargo-fuzz targets in fuzz/ (scripts/fuzz.sh), kept as regression tests.
//! Each must be refused or decoded with bounded memory and no panic.

use pe_sentinel::source::decode::dicom::{decode_bytes, Accept};
use std::path::PathBuf;

fn data(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz").join(p)
}

fn vm_hwm_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn refused_with_bounded_memory(name: &str) {
    refused_saying_with_bounded_memory(name, "damaged length field");
}

/// The reason the fixture `name` is refused with, in each acceptance mode (empty if decoded).
fn refusals(name: &str) -> Vec<(Accept, String)> {
    let bytes = std::fs::read(data(name)).expect("fixture");
    [Accept::CtOnly, Accept::AnyGrayscale]
        .into_iter()
        .map(|accept| {
            (accept, decode_bytes(&bytes, &data(name), accept).err().map(|e| e.to_string()).unwrap_or_default())
        })
        .collect()
}

/// As `refused_with_bounded_memory`, the refusal saying `why`.
fn refused_saying_with_bounded_memory(name: &str, why: &str) {
    let before = vm_hwm_kb();
    for (accept, e) in refusals(name) {
        assert!(e.contains(name) && e.contains(why), "{accept:?}: {e}");
    }
    let grown = vm_hwm_kb().saturating_sub(before);
    assert!(grown < 64 * 1024, "decoding {name} raised the peak RSS by {} MB", grown / 1024);
}

/// A string-valued element's damaged length: dicom-rs allocated ~1.9 GB (infallibly).
#[test]
fn dicom_oom_2() {
    refused_with_bounded_memory("dicom-oom-2.dcm");
}

/// An OB element's damaged length: dicom-rs allocated and zeroed ~3.7 GB.
#[test]
fn dicom_oom_1() {
    refused_with_bounded_memory("dicom-oom-1.dcm");
}

/// A damaged length inside a *deflated* data set (transfer syntax 1.2.840.10008.1.2.1.99): dicom-rs
/// allocated ~3 GB; now the data set is inflated (capped) and walked first, and the file refused.
#[test]
fn dicom_deflate_oom_3() {
    let name = "dicom-deflate-oom-3.dcm";
    let bytes = std::fs::read(data(name)).expect("fixture");
    let before = vm_hwm_kb();
    let _ = decode_bytes(&bytes, &data(name), Accept::AnyGrayscale);
    let grown = vm_hwm_kb().saturating_sub(before);
    assert!(grown < 64 * 1024, "decoding a {} byte file raised the peak RSS by {} MB", bytes.len(), grown / 1024);
}

/// A 32 kB deflated file (2.3 MB inflated, junk after the Pixel Data) whose deflate stream ends
/// 105 bytes before the file: the length walk passed it and dicom-rs grew to 3.1 GB (cargo-fuzz
/// `dicom_decode`, 2026-12-07). Now a deflate stream that ends before the file does is refused,
/// with bounded memory (with that check removed, this test fails).
#[test]
fn dicom_deflate_oom_6() {
    refused_with_bounded_memory("dicom-deflate-oom-6.dcm");
}

/// An item tag outside any sequence: dicom-rs reads it as a 4-byte element, the length walk entered
/// it as an item, and the next header dicom-rs read declared 3.9 GB. The token guard (dicom-rs's
/// own token stream, read before the object is built) refuses it.
#[test]
fn dicom_oom_9() {
    refused_with_bounded_memory("dicom-oom-9.dcm");
}

/// A JPEG 2000 frame whose codestream (SIZ) declares 512 x 1,572,864 pixels under Rows and Columns
/// 512: openjp2 allocates what the codestream says and zeroed 3.2 GB. Refused before the codec.
#[test]
fn dicom_oom_10() {
    refused_saying_with_bounded_memory("dicom-oom-10.dcm", "512x1572864 pixels");
}

/// A 454-byte JPEG on which zune-jpeg (through the image crate) indexes out of bounds (fuzzing,
/// 2026-12-07, raster_decode after 4,026,084 executions). The raster decoder had no panic
/// containment: the daemon would have ended on this file, and again after every restart. Now the
/// file is refused with its name and the process goes on.
#[test]
fn raster_jpeg_panic_11() {
    let name = "raster-jpeg-panic-11.jpg";
    let bytes = std::fs::read(data(name)).expect("fixture");
    let e = pe_sentinel::source::decode::raster::decode_bytes(
        &bytes,
        &data(name),
        pe_sentinel::slice::SeriesId("s".into()),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(e.contains(name) && e.contains("the image decoder failed"), "{e}");
}

/// An RLE Lossless frame whose header declares 0xFFFFFFFF segments (pydicom's MR_small_RLE.dcm with
/// that count patched in; fuzzing hit the same line of dicom-rs 214 times on 2026-12-07): dicom-rs
/// allocates a vector of that many offsets (16 GB) before it checks the header. Here memory
/// overcommit lends the address space and dicom-rs then panics (contained); on an 8 GB board the
/// allocation fails and the process aborts. Refused before the codec, naming the count.
#[test]
fn dicom_rle_segment_count() {
    let name = "dicom-rle-segments.dcm";
    let bytes = std::fs::read(data(name)).expect("fixture");
    let e = decode_bytes(&bytes, &data(name), Accept::AnyGrayscale).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains(name) && e.contains("4294967295 segments"), "{e}");
}

/// A damaged RLE Lossless segment that decodes to too few bytes: dicom-rs's RLE decoder indexes
/// past it and panics. The panic was contained (the file refused as "the pixel decoder failed");
/// the segment is now measured before the codec, so the reason says which segment is short.
#[test]
fn dicom_rle_panic_4() {
    let name = "dicom-rle-panic-4.dcm";
    for (accept, e) in refusals(name) {
        assert!(e.contains(name), "{accept:?}: {e}");
        if accept == Accept::AnyGrayscale {
            assert!(e.contains("RLE Lossless segment") && e.contains("fewer than the 4096 (Rows x Columns)"), "{e}");
        }
    }
}

/// A `\0\0` VR after the pixel data: the length walk read it with a 16-bit length, dicom-rs as
/// UN with a 32-bit one, so the two split the following bytes differently and dicom-rs trusted a
/// length of 0xFFFCFFFC the walk never saw (4 GB). The walk now splits as dicom-rs does.
#[test]
fn dicom_oom_5() {
    refused_with_bounded_memory("dicom-oom-5.dcm");
}

/// An implicit VR file (RT Plan) with a damaged length inside a defined-length sequence: the
/// walk skipped sequences of implicit VR files whole (no VR field to tell it one was a sequence),
/// so dicom-rs trusted a length the walk never saw (4 GB). The walk now asks the standard
/// dictionary, as dicom-rs does.
#[test]
fn dicom_oom_6() {
    refused_with_bounded_memory("dicom-oom-6.dcm");
}

/// An element with a garbage VR and undefined length, then a damaged length further on: the walk
/// stopped at the first (taking it for implicit VR content), dicom-rs read on and trusted the
/// second (4 GB). The walk now reads on as dicom-rs does.
#[test]
fn dicom_oom_7() {
    refused_with_bounded_memory("dicom-oom-7.dcm");
}

/// A tag in the item group that is neither an item nor a delimiter, (FFFE,000D), with a length
/// of 0xE0000400 inside a sequence: the walk ignored lengths in that group except items', dicom-rs
/// read it as a UN element and allocated 3.7 GB.
#[test]
fn dicom_oom_8() {
    refused_with_bounded_memory("dicom-oom-8.dcm");
}

/// A damaged JPEG 2000 codestream on which openjp2 0.6.1 overflows (`t2.rs:1211`, a negative
/// `numbps` cast to u32 plus one). Found in session 12's fuzzing as a contained panic, saved by
/// the target's panic hook. With overflow checks (this test build, the fuzz builds) it panics
/// inside the codec; release builds wrap, as openjp2's C original does. Either way the file must
/// be refused with its name, the panic never leaving the decoder.
#[test]
fn dicom_openjp2_overflow_12() {
    let name = "dicom-openjp2-overflow-12.dcm";
    for (accept, e) in refusals(name) {
        assert!(e.contains(name), "{accept:?}: {e}");
    }
}
