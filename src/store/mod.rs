//! Where results go: the SQLite journal of every slice, series and rejected input, and the review
//! overlays. Writes only the files it is asked to write.

pub mod journal;
pub mod overlay;
pub mod rows;
