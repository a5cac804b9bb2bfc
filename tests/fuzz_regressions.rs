//! Inputs found by the cargo-fuzz targets in fuzz/ (scripts/fuzz.sh), kept as regression tests.
//! Each must be refused or decoded with bounded memory and no panic.

use pe_sentinel::source::decode::dicom::{decode_bytes, Accept};
use std::path::PathBuf;

/// As in the binary: the DICOM parser's allocations are capped (src/alloc_cap.rs).
#[global_allocator]
static ALLOC: pe_sentinel::alloc_cap::CappedAlloc = pe_sentinel::alloc_cap::CappedAlloc;

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

#[test]
fn dicom_oom_1() {
    let bytes = std::fs::read(data("dicom-oom-1.dcm")).expect("fixture");
    let before = vm_hwm_kb();
    for accept in [Accept::CtOnly, Accept::AnyGrayscale] {
        let r = decode_bytes(&bytes, &data("dicom-oom-1.dcm"), accept);
        let e = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("dicom-oom-1.dcm") && e.contains("not a readable DICOM file"), "{e}");
    }
    let grown = vm_hwm_kb().saturating_sub(before);
    eprintln!("peak grew by {} MB", grown / 1024);
    assert!(grown < 256 * 1024, "decoding a 7.6 kB file raised the peak RSS by {} MB", grown / 1024);
}
