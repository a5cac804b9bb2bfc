//! Least privilege, checked in the built binary: the analyser (`pe-sentinel`; `PrivateNetwork=yes`
//! under systemd) holds no code that opens a TCP or UDP socket, no TLS and no DICOM network code,
//! whatever its library dependencies bring along (it uses the results sender's crate for the
//! `[dicom.send]` table and the outbox only). Reads the symbol table with `nm` (tests/support).

#[path = "support/symbols.rs"]
mod symbols;

#[test]
fn the_analyser_binary_has_no_network_tls_or_dicom_network_code() {
    let found = symbols::matching(
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
    // The check sees real symbols: the analyser holds the engines and its own code, which are what
    // the receiver's and sender's tests look for with the same list (`symbols::ANALYSIS`).
    assert!(!symbols::matching(env!("CARGO_BIN_EXE_pe-sentinel"), symbols::ANALYSIS).is_empty());
}
