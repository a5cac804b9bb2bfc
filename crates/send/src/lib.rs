//! pe-sentinel-send: delivers the analyser's result objects (a Secondary Capture of the key slice
//! and a Comprehensive 3D SR per series verdict) from the on-disk outbox to the PACS with C-STORE,
//! retrying with bounded backoff and recording every attempt in its own ledger. Links no
//! inference engine and no analysis code: DICOM, SQLite and the outbox folder only. See
//! docs/dicom-results.md. Without the `sender` feature (as the analyser
//! uses it) only `config` and `outbox` are built.
#![deny(unsafe_code)]

pub mod config;
#[cfg(feature = "sender")]
pub mod ledger;
pub mod outbox;
#[cfg(feature = "sender")]
pub mod run;
#[cfg(feature = "sender")]
pub mod scu;
#[cfg(feature = "sender")]
pub mod status;
#[cfg(feature = "sender")]
pub mod tls;
