//! Fuzz target: arbitrary bytes as what a peer sends after association, through the receiver's
//! own code: dicom-ul's PDU reader, then every P-DATA-TF into the receiver's session (command
//! parsing, C-ECHO / C-STORE handling, the spool's temporary files, header checks and commits).
//! Every input must end in responses or a violation (an A-ABORT in the real receiver), never a
//! panic or an allocation beyond libFuzzer's -malloc_limit_mb; no temporary file may outlive it.
#![no_main]

use dicom_ul::pdu::read_pdu;
use dicom_ul::Pdu;
use libfuzzer_sys::fuzz_target;
use pe_sentinel_receive::server::classes::Handling;
use pe_sentinel_receive::server::session::{Context, Session};
use pe_sentinel_receive::server::spool::{Spool, RECEIVING};
use std::path::PathBuf;
use std::sync::OnceLock;

struct Env {
    dir: PathBuf,
    spool: Spool,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pe-sentinel-fuzz-receive-{}", std::process::id()));
        let spool = Spool::open(&dir, 0, 64 * 1024 * 1024).expect("fuzz spool folder");
        Env { dir, spool }
    })
}

fuzz_target!(|data: &[u8]| {
    let env = env();
    let contexts = vec![
        Context {
            id: 1,
            abstract_syntax: "1.2.840.10008.5.1.4.1.1.2".into(),
            transfer_syntax: "1.2.840.10008.1.2.1".into(),
            handling: Handling::Analysed,
        },
        Context {
            id: 3,
            abstract_syntax: "1.2.840.10008.5.1.4.1.1.7".into(),
            transfer_syntax: "1.2.840.10008.1.2".into(),
            handling: Handling::Analysed,
        },
        Context {
            id: 5,
            abstract_syntax: "1.2.840.10008.5.1.4.1.1.88.33".into(),
            transfer_syntax: "1.2.840.10008.1.2.1".into(),
            handling: Handling::SetAside,
        },
        Context {
            id: 7,
            abstract_syntax: "1.2.840.10008.1.1".into(),
            transfer_syntax: "1.2.840.10008.1.2".into(),
            handling: Handling::Verification,
        },
    ];
    let stored = {
        let mut session = Session::new(&env.spool, contexts, "FUZZ");
        let mut buf = data;
        let mut out = Vec::new();
        // The receiver's largest PDU (16 MiB): read_pdu refuses longer ones.
        while let Ok(Some(pdu)) = read_pdu(&mut buf, 16 * 1024 * 1024, false) {
            match pdu {
                Pdu::PData { data } => {
                    if session.on_pdata(data, &mut out).is_err() {
                        break;
                    }
                    for r in out.drain(..) {
                        assert!(matches!(r, Pdu::PData { .. }), "responses are P-DATA");
                    }
                }
                Pdu::ReleaseRQ | Pdu::AbortRQ { .. } => break,
                _ => break,
            }
        }
        session.counts.instances
    };
    // The session is gone: an unfinished instance must have taken its temporary file with it.
    let left = std::fs::read_dir(env.dir.join(RECEIVING)).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "a temporary file outlived its session");
    if stored > 0 {
        for e in std::fs::read_dir(&env.dir).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "dcm") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
});
