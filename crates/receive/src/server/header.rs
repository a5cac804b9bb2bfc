//! The check of a received instance before it is committed: its data set, read from the
//! temporary file up to the pixel data, must parse and must say what the C-STORE command said
//! (SOP Class and Instance UID) and carry a Series Instance UID.
//!
//! Read as dicom-rs's token stream, not as an object, because dicom-rs 0.10 allocates an
//! element's declared length before reading its value: a 6 kB instance with a damaged length
//! made the receiver allocate and zero about 2 GB (found by the `receive_pdus` fuzz target; under
//! the unit's `MemoryMax=512M` an OOM kill of every association at once). Each element header
//! and item is seen here before its value is read, and a declared length the data set cannot
//! hold is refused (0xC000) without reading it. Reads only the one temporary file.

use super::spool::{InstanceMeta, StoreFailure};
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::{Codec, TransferSyntaxIndex};
use dicom_parser::dataset::{DataSetReader, DataToken};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Deflate's largest expansion (a deflated data set cannot inflate to more than this many times
/// its size), for the bound on a deflated data set's declared lengths.
const DEFLATE_MAX_RATIO: u64 = 1032;

/// Checks the data set of the file at `path`, which starts at byte `data_start` (after the
/// preamble and file meta information the spool wrote). `max_bytes` bounds a deflated data set's
/// declared lengths (`[dicom] max_instance_mb`).
pub fn check(path: &Path, data_start: u64, meta: &InstanceMeta, max_bytes: u64) -> Result<(), StoreFailure> {
    let bad = |why: String| StoreFailure::CannotUnderstand(why);
    let ts = TransferSyntaxRegistry
        .get(meta.transfer_syntax_uid.trim_end_matches(['\0', ' ']))
        .ok_or_else(|| bad(format!("transfer syntax {} is not known", meta.transfer_syntax_uid)))?;
    let io = |e: std::io::Error| StoreFailure::OutOfResources(format!("cannot read back {}: {e}", path.display()));
    let mut file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len().saturating_sub(data_start);
    file.seek(SeekFrom::Start(data_start)).map_err(io)?;
    let src: Box<dyn Read> = Box::new(BufReader::new(file));
    // The longest value the data set can hold: what was received, or what it can inflate to.
    let (src, limit) = match ts.codec() {
        Codec::Dataset(Some(adapter)) => {
            (adapter.adapt_reader(src), size.saturating_mul(DEFLATE_MAX_RATIO).min(max_bytes.max(size)))
        }
        Codec::Dataset(None) => return Err(bad(format!("transfer syntax {} cannot be read here", ts.uid()))),
        _ => (src, size),
    };
    let parse = |e: &dyn std::fmt::Display| bad(format!("the data set does not parse as DICOM: {e}"));
    let reader = DataSetReader::new_with_ts(src, ts).map_err(|e| parse(&e))?;
    let damaged = |what: String, len: u32| {
        bad(format!(
            "the data set does not parse as DICOM: {what} declares {len} bytes, more than the {limit} bytes the \
             data set can hold (a damaged length field)"
        ))
    };
    let mut depth = 0usize;
    let mut wanted: Option<Tag> = None;
    let (mut class, mut instance, mut series) = (None, None, None);
    for token in reader {
        match token.map_err(|e| parse(&e))? {
            DataToken::ElementHeader(h) => {
                if depth == 0 && h.tag == tags::PIXEL_DATA {
                    break;
                }
                if let Some(n) = h.len.get() {
                    if u64::from(n) > limit {
                        return Err(damaged(format!("element {}", h.tag), n));
                    }
                }
                wanted = (depth == 0
                    && [tags::SOP_CLASS_UID, tags::SOP_INSTANCE_UID, tags::SERIES_INSTANCE_UID].contains(&h.tag))
                .then_some(h.tag);
            }
            DataToken::PrimitiveValue(v) => {
                if let Some(tag) = wanted.take() {
                    let s = Some(v.to_str().trim_end_matches(['\0', ' ']).to_string());
                    match tag {
                        t if t == tags::SOP_CLASS_UID => class = s,
                        t if t == tags::SOP_INSTANCE_UID => instance = s,
                        _ => series = s,
                    }
                }
            }
            DataToken::ItemStart { len } => {
                if let Some(n) = len.get() {
                    if u64::from(n) > limit {
                        return Err(damaged("an item".into(), n));
                    }
                }
            }
            DataToken::SequenceStart { .. } => depth += 1,
            DataToken::PixelSequenceStart if depth == 0 => break,
            DataToken::PixelSequenceStart => depth += 1,
            DataToken::SequenceEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let class = class.ok_or_else(|| bad("the data set has no SOP Class UID".into()))?;
    if class != meta.sop_class_uid.trim_end_matches(['\0', ' ']) {
        return Err(StoreFailure::DoesNotMatchSopClass(format!(
            "the data set's SOP Class UID {class} is not the command's {}",
            meta.sop_class_uid
        )));
    }
    let instance = instance.ok_or_else(|| bad("the data set has no SOP Instance UID".into()))?;
    if instance != meta.sop_instance_uid.trim_end_matches(['\0', ' ']) {
        return Err(bad(format!(
            "the data set's SOP Instance UID {instance} is not the command's {}",
            meta.sop_instance_uid
        )));
    }
    if series.is_none_or(|s| s.is_empty()) {
        return Err(bad("the data set has no Series Instance UID".into()));
    }
    Ok(())
}
