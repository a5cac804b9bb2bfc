//! Where slices come from. `decode` turns files into `Slice`s; the drop folder and capture card
//! sources (core-path and capture issues) are built on it. Reads the files it is given.

pub mod capture;
pub mod decode;
pub mod drop_folder;
