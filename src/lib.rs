//! pe-sentinel: an edge appliance daemon for pulmonary-embolism (PE) alerts beside a CT scanner.
//!
//! The library holds every stage of one slice's path (see `shared/ARCHITECTURE.md`); the binary
//! in `main.rs` only parses the command line, calls into here and turns results into exit codes.
//! Library code never prints: it returns values and errors.
#![deny(unsafe_code)]

pub mod alloc_count;
pub mod bench;
pub mod budget;
pub mod check;
pub mod civil;
pub mod cli_docs;
pub mod config;
pub mod daemon;
pub mod display;
pub mod eligibility;
pub mod engine;
pub mod eval;
pub mod failure;
pub mod import;
pub mod infer;
pub mod model;
pub mod outbox;
pub mod phantom;
pub mod pipeline;
pub mod postprocess;
pub mod preprocess;
pub mod progress;
pub mod runtime;
pub mod service;
pub mod slice;
pub mod source;
pub mod store;
pub mod verdict;
