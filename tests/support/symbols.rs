//! The symbols of a built binary, read with `nm` (binutils, which gcc needs): shared by the
//! `least_privilege` tests of the analyser (tests/) and of the receiver and sender (crates/*/tests/,
//! through `#[path]`). Touches nothing but the binary.

use std::process::Command;

/// Symbols of the inference engines and of the analyser's own code.
pub const ANALYSIS: &[&str] = &[
    "tract_core::",
    "tract_linalg::",
    "tract_onnx",
    "onnxruntime",
    " ort::",
    "<ort::",
    "pe_sentinel::",
    "pe_sentinel_trt",
];

/// Demangled symbols of `binary` that contain any of `needles`.
pub fn matching(binary: &str, needles: &[&str]) -> Vec<String> {
    let out = Command::new("nm").args(["-C", binary]).output().expect("nm (binutils) runs");
    assert!(out.status.success(), "nm {binary}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().count() > 1000, "{binary} has a symbol table (not stripped)");
    text.lines().filter(|l| needles.iter().any(|n| l.contains(n))).map(str::to_string).collect()
}
