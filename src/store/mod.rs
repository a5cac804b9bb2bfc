//! Where results go: the review overlays (and, with the core path, the SQLite journal).
//! Writes only the files it is asked to write.

pub mod overlay;
