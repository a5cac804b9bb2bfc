//! pe-sentinel-receive: the DICOM network node's receiving half (issue 22). Without the `server`
//! feature it is only the `[dicom]` profile section ([`config`]) and the association audit
//! ([`audit`]), which the main crate uses; with it, the C-ECHO/C-STORE receiver ([`server`]) that
//! writes complete instances into the analyser's drop folder. It never loads a model, opens a
//! device or writes the analyser's journal.
#![deny(unsafe_code)]

pub mod audit;
pub mod config;
#[cfg(feature = "server")]
pub mod server;
