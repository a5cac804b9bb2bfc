//! Least privilege, checked in the built binary: the analyser (`pe-sentinel`; `PrivateNetwork=yes`
//! under systemd) holds no code that opens a TCP or UDP socket, no TLS and no DICOM network code,
//! whatever its library dependencies bring along (it uses the results sender's crate for the
//! `[dicom.send]` table and the outbox only). Reads the symbol table with `nm` (binutils, which
//! gcc needs). Touches nothing but the binary.

use std::process::Command;

/// Symbols of the binary (demangled) that contain any of `needles`.
fn symbols_matching(binary: &str, needles: &[&str]) -> Vec<String> {
    let out = Command::new("nm").args(["-C", binary]).output().expect("nm (binutils) runs");
    assert!(out.status.success(), "nm {binary}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().count() > 1000, "{binary} has a symbol table (not stripped)");
    text.lines().filter(|l| needles.iter().any(|n| l.contains(n))).map(str::to_string).collect()
}

#[test]
fn the_analyser_binary_has_no_network_tls_or_dicom_network_code() {
    let found = symbols_matching(
        env!("CARGO_BIN_EXE_pe-sentinel"),
        &[
            "TcpStream>::connect",
            "TcpListener>::bind",
            "UdpSocket>::bind",
            "net::connection::socket::lookup_host",
            " rustls::",
            "<rustls::",
            " ring::",
            "<ring::",
            "dicom_ul::",
        ],
    );
    assert!(
        found.is_empty(),
        "the analyser links network code ({} symbols), first: {:?}",
        found.len(),
        &found[..found.len().min(5)]
    );
    // The check sees real symbols: the analyser's own code is there.
    assert!(!symbols_matching(env!("CARGO_BIN_EXE_pe-sentinel"), &["pe_sentinel::daemon::"]).is_empty());
}
