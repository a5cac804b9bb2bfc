//! Least privilege, checked in the built binary: `pe-sentinel-receive` faces the hospital network, so it holds
//! no inference engine (tract, onnxruntime, TensorRT) and none of the analyser's code. Reads the
//! symbol table with `nm` (binutils, which gcc needs). Touches nothing but the binary.

use std::process::Command;

#[test]
fn the_network_binary_has_no_inference_engine_and_no_analysis_code() {
    let binary = env!("CARGO_BIN_EXE_pe-sentinel-receive");
    let out = Command::new("nm").args(["-C", binary]).output().expect("nm (binutils) runs");
    assert!(out.status.success(), "nm {binary}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let matching = |needles: &[&str]| -> Vec<String> {
        text.lines().filter(|l| needles.iter().any(|n| l.contains(n))).map(str::to_string).collect()
    };
    let found = matching(&[
        "tract_core::",
        "tract_linalg::",
        "tract_onnx",
        "onnxruntime",
        " ort::",
        "<ort::",
        "pe_sentinel::",
        "pe_sentinel_trt",
    ]);
    assert!(
        found.is_empty(),
        "{binary} links analysis code ({} symbols), first: {:?}",
        found.len(),
        &found[..found.len().min(5)]
    );
    // The check sees real symbols: the binary's own network code is there.
    assert!(
        !matching(&["pe_sentinel_receive::server::"]).is_empty(),
        "no pe_sentinel_receive::server:: symbols in {binary}: stripped?"
    );
}
