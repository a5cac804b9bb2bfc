//! Least privilege, checked in the built binary: `pe-sentinel-receive` faces the hospital network, so it holds
//! no inference engine (tract, onnxruntime, TensorRT) and none of the analyser's code.

#[path = "../../../tests/support/symbols.rs"]
mod symbols;

#[test]
fn the_network_binary_has_no_inference_engine_and_no_analysis_code() {
    let binary = env!("CARGO_BIN_EXE_pe-sentinel-receive");
    let found = symbols::matching(binary, symbols::ANALYSIS);
    assert!(
        found.is_empty(),
        "{binary} links analysis code ({} symbols), first: {:?}",
        found.len(),
        &found[..found.len().min(5)]
    );
    // The check sees real symbols: the binary's own network code is there.
    assert!(
        !symbols::matching(binary, &["pe_sentinel_receive::server::"]).is_empty(),
        "no pe_sentinel_receive::server:: symbols in {binary}"
    );
}
