//! Inputs found by the `receive_pdus` fuzz target (fuzz/, docs/install.md "Fuzzing"), replayed
//! the way the target feeds them: dicom-ul's PDU reader, then each P-DATA-TF into the receiver's
//! session over a real spool. Each must end in a refusal with bounded memory and no panic, and
//! leave no file behind. The inputs live in tests/data/fuzz-regressions/ (see its README.md).

use dicom_ul::pdu::{read_pdu, PDataValueType};
use dicom_ul::Pdu;
use pe_sentinel_receive::server::classes::Handling;
use pe_sentinel_receive::server::session::{Context, Session};
use pe_sentinel_receive::server::spool::{Spool, RECEIVING};
use std::path::PathBuf;

fn input(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/fuzz-regressions").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

fn vm_hwm_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The presentation contexts of the fuzz target (fuzz/fuzz_targets/receive_pdus.rs).
fn contexts() -> Vec<Context> {
    let c = |id, abstract_syntax: &str, transfer_syntax: &str, handling| Context {
        id,
        abstract_syntax: abstract_syntax.into(),
        transfer_syntax: transfer_syntax.into(),
        handling,
    };
    vec![
        c(1, "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1", Handling::Analysed),
        c(3, "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.1.2", Handling::Analysed),
        c(5, "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.1.2.1", Handling::SetAside),
        c(7, "1.2.840.10008.1.1", "1.2.840.10008.1.2", Handling::Verification),
    ]
}

/// The Status (0000,0900) of each response command set (implicit VR little endian).
fn statuses(responses: &[Pdu]) -> Vec<u16> {
    let mut out = Vec::new();
    for r in responses {
        if let Pdu::PData { data } = r {
            for v in data.iter().filter(|v| v.value_type == PDataValueType::Command) {
                let d = &v.data;
                let mut i = 0;
                while i + 8 <= d.len() {
                    let tag = (u16::from_le_bytes([d[i], d[i + 1]]), u16::from_le_bytes([d[i + 2], d[i + 3]]));
                    let len = u32::from_le_bytes([d[i + 4], d[i + 5], d[i + 6], d[i + 7]]) as usize;
                    if tag == (0x0000, 0x0900) && len == 2 && i + 10 <= d.len() {
                        out.push(u16::from_le_bytes([d[i + 8], d[i + 9]]));
                    }
                    i += 8 + len;
                }
            }
        }
    }
    out
}

/// Replays `name`; returns the response statuses and the peak RSS growth in kB.
fn replay(name: &str, drop: &std::path::Path) -> (Vec<u16>, u64) {
    let spool = Spool::open(drop, 0, 1024 * 1024 * 1024).expect("spool");
    let data = input(name);
    let before = vm_hwm_kb();
    let mut responses = Vec::new();
    {
        let mut session = Session::new(&spool, contexts(), "FUZZ");
        let mut buf = data.as_slice();
        while let Ok(Some(pdu)) = read_pdu(&mut buf, 16 * 1024 * 1024, false) {
            match pdu {
                Pdu::PData { data } => {
                    if session.on_pdata(data, &mut responses).is_err() {
                        break;
                    }
                }
                _ => break,
            }
        }
    }
    (statuses(&responses), vm_hwm_kb().saturating_sub(before))
}

/// A Secondary Capture instance (implicit VR) of 6 kB whose data set holds a damaged element
/// length: the header check read it with dicom-object, which allocated and zeroed the declared
/// length, about 2 GB (libFuzzer: out-of-memory, 1959 MB). Now the length is seen before the
/// value is read and the instance is refused with 0xC000, in bounded memory, nothing stored.
#[test]
fn receive_pdus_oom_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (st, grown_kb) = replay("receive-pdus-oom-1.bin", dir.path());
    assert_eq!(st, vec![0xC000], "one C-STORE response, cannot understand");
    assert!(grown_kb < 64 * 1024, "replaying a 6 kB input raised the peak RSS by {} MB", grown_kb / 1024);
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("drop")
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != RECEIVING)
        .collect();
    assert!(left.is_empty(), "nothing stored: {left:?}");
    assert_eq!(std::fs::read_dir(dir.path().join(RECEIVING)).expect("receiving").count(), 0, "no temporary file");
}
