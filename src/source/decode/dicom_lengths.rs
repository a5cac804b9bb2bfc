//! A walk over the element headers of a DICOM Part 10 file held in memory, refusing any declared
//! length that runs past the end of the file, before dicom-rs parses it. dicom-rs 0.10 allocates
//! (and zero-fills) an element's declared length before reading it, so a damaged length field
//! costs gigabytes: fuzzing found 7 kB files that took 1.9 and 3.7 GB (fuzz/, tests/data/fuzz/).
//! Touches nothing but the bytes given.
//!
//! Two passes. The walk below is this module's own reading of the bytes (cheap; it also finds
//! native pixel data for the decoder's fast path). Each of its divergences from dicom-rs's reading
//! was a fuzzing finding, so after it, `token_guard` reads the data set with dicom-rs's own token
//! stream (`DataSetReader`, the reader dicom-rs then builds the object from) and refuses a
//! declared length before dicom-rs reads that value: no divergence is possible there.
//!
//! Covered: the file meta group; explicit VR little and big endian and implicit VR little endian
//! data sets, descending into sequences and items; encapsulated pixel data fragments; deflated
//! data sets, inflated first with a size cap (`MAX_INFLATED`) and then walked. Not covered (the
//! walk leaves them to dicom-rs): the contents of private or unknown tags holding a sequence in
//! an implicit VR data set (the standard dictionary, which dicom-rs also consults, does not name
//! them; their total length is still checked).

/// A deflated data set that inflates beyond this is refused (a CT slice is a few hundred kB).
pub const MAX_INFLATED: u64 = 256 << 20;
/// Bytes allowed after the end of a deflated data set's stream (padding), see `check_and_locate`.
const MAX_DEFLATE_TRAILER: u64 = 64;

const UNDEFINED: u32 = 0xFFFF_FFFF;

/// A 16-bit integer at `at`, big or little endian (also read by `codestream.rs`).
pub(super) fn u16_at(b: &[u8], at: usize, big: bool) -> Option<u16> {
    let x: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
    Some(if big { u16::from_be_bytes(x) } else { u16::from_le_bytes(x) })
}

/// A 32-bit integer at `at`, big or little endian (also read by `codestream.rs`).
pub(super) fn u32_at(b: &[u8], at: usize, big: bool) -> Option<u32> {
    let x: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(if big { u32::from_be_bytes(x) } else { u32::from_le_bytes(x) })
}

/// VRs whose explicit header has a 16-bit length (PS3.5 7.1.2). Every other VR, including one
/// that is not a VR at all, has 2 reserved bytes and a 32-bit length: that is how dicom-rs reads
/// it (an unknown VR is taken as UN), and the walk must split the bytes into elements the same way
/// or it checks different length fields than the ones dicom-rs then trusts (fuzzing found a
/// `\0\0` VR that made dicom-rs read 0xFFFCFFFC as a length: tests/data/fuzz/dicom-oom-5.dcm).
fn short_vr(vr: &[u8]) -> bool {
    matches!(
        vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

fn long_vr(vr: &[u8]) -> bool {
    !short_vr(vr)
}

/// Whether the standard dictionary says this tag is a sequence (how dicom-rs reads implicit VR).
fn implicit_sequence(group: u16, element: u16) -> bool {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
    dicom_dictionary_std::StandardDataDictionary
        .by_tag(dicom_core::Tag(group, element))
        .is_some_and(|e| e.vr().relaxed() == dicom_core::VR::SQ)
}

/// `Err(what)` when an element at some offset declares more bytes than the file has left.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    checked(bytes, Extent::Whole).map(|_| ())
}

/// As [`check`], for a parse that stops before the pixel data (`read_until(PIXEL_DATA)`): the
/// token guard stops there too.
pub fn check_header(bytes: &[u8]) -> Result<(), String> {
    checked(bytes, Extent::UntilPixelData).map(|_| ())
}

/// How far dicom-rs will read the data set after the check.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Extent {
    Whole,
    UntilPixelData,
}

/// As [`check`], and where the samples of native (uncompressed) little-endian pixel data lie in
/// `bytes`: `Some` only for the implicit and explicit VR little-endian transfer syntaxes, when
/// the walk met exactly one Pixel Data element, of defined length, and it ends the file (so it
/// is the data set's own, not one inside a sequence item). Anything else is `None`, and the
/// caller leaves the pixel data to dicom-rs.
pub fn check_and_locate(bytes: &[u8]) -> Result<Option<std::ops::Range<usize>>, String> {
    // Located native pixel data: the decoder has dicom-rs read only up to it.
    let located = walk_file(bytes)?;
    let extent = if located.pixels.is_some() { Extent::UntilPixelData } else { Extent::Whole };
    token_guard(&located, bytes, extent)?;
    Ok(located.pixels)
}

fn checked(bytes: &[u8], extent: Extent) -> Result<Option<std::ops::Range<usize>>, String> {
    let located = walk_file(bytes)?;
    token_guard(&located, bytes, extent)?;
    Ok(located.pixels)
}

/// What the walk of a whole file found: where the data set starts, in which transfer syntax,
/// the inflated data set of a deflated one, and the native pixel data for the fast path.
struct Walked {
    /// `None`: nothing for the guard (no DICM, or a file meta group dicom-rs refuses by itself).
    data_start: Option<usize>,
    transfer_syntax: String,
    inflated: Option<Vec<u8>>,
    pixels: Option<std::ops::Range<usize>>,
}

fn walk_file(bytes: &[u8]) -> Result<Walked, String> {
    let nothing = Walked { data_start: None, transfer_syntax: String::new(), inflated: None, pixels: None };
    let n = bytes.len();
    let mut pos = if bytes.get(128..132) == Some(b"DICM") {
        132
    } else if bytes.get(0..4) == Some(b"DICM") {
        4
    } else {
        return Ok(nothing);
    };
    let too_long = |group: u16, element: u16, len: u32, at: usize| {
        format!(
            "element ({group:04X},{element:04X}) at byte {at} declares {len} bytes, but the file has only {} left \
             (damaged length field)",
            n.saturating_sub(at)
        )
    };
    // File meta group: always explicit VR little endian, read as dicom-rs 0.10 reads it
    // (`FileMetaTable::read_from`): (0002,0000) with a 4-byte value first, then whole elements of
    // any group until that many bytes are read; the data set starts where that stops. Going by
    // the group number instead ended the walk's meta group early when fuzzing damaged one tag
    // ((0002,0013) to (0C02,0000)), so the walk inflated the wrong bytes while dicom-rs inflated
    // the real 2.3 MB data set and grew to 3.1 GB (tests/data/fuzz/dicom-deflate-oom-6.dcm).
    // Whatever dicom-rs refuses there (no group length first, an undefined length, a header cut
    // off) it refuses before reading any data set, so the walk leaves it to dicom-rs.
    let meta_header = |at: usize| -> Option<(u16, u16, u32, usize)> {
        let group = u16_at(bytes, at, false)?;
        let element = u16_at(bytes, at + 2, false)?;
        let vr = bytes.get(at + 4..at + 6)?;
        if long_vr(vr) {
            Some((group, element, u32_at(bytes, at + 8, false)?, 12))
        } else {
            Some((group, element, u32::from(u16_at(bytes, at + 6, false)?), 8))
        }
    };
    let group_length = match meta_header(pos) {
        Some((0x0002, 0x0000, 4, header)) => match u32_at(bytes, pos + header, false) {
            Some(l) => {
                pos += header + 4;
                l
            }
            None => return Ok(nothing),
        },
        _ => return Ok(nothing),
    };
    let mut transfer_syntax = String::new();
    let mut read: u32 = 0;
    while read < group_length {
        let Some((group, element, len, header)) = meta_header(pos) else { return Ok(nothing) };
        if len == UNDEFINED {
            return Ok(nothing);
        }
        let start = pos + header;
        if start + len as usize > n {
            return Err(too_long(group, element, len, pos));
        }
        if (group, element) == (0x0002, 0x0010) {
            transfer_syntax =
                String::from_utf8_lossy(&bytes[start..start + len as usize]).trim_end_matches(['\0', ' ']).to_string();
        }
        pos = start + len as usize;
        read = read.saturating_add(header as u32).saturating_add(len);
    }
    let (explicit, big) = match transfer_syntax.as_str() {
        "1.2.840.10008.1.2" => (false, false),
        "1.2.840.10008.1.2.2" => (true, true),
        // Deflated (raw deflate, then explicit VR little endian): inflate with a cap, walk that.
        "1.2.840.10008.1.2.1.99" => {
            use std::io::Read;
            let mut inflated = Vec::new();
            let mut z = flate2::bufread::DeflateDecoder::new(&bytes[pos..]);
            if let Err(e) = (&mut z).take(MAX_INFLATED + 1).read_to_end(&mut inflated) {
                return Err(format!("deflated data set at byte {pos} cannot be inflated ({e})"));
            }
            if inflated.len() as u64 > MAX_INFLATED {
                return Err(format!(
                    "deflated data set at byte {pos} inflates beyond {} MiB (damaged or hostile file)",
                    MAX_INFLATED >> 20
                ));
            }
            // The deflate stream must end with the file, but for a little padding (pydicom's real
            // image_dfl.dcm has 8 bytes after it): bytes after its end are no part of the data set
            // this walk sees. A second guard: the file that first showed this
            // (tests/data/fuzz/dicom-deflate-oom-6.dcm, 105 bytes after its stream) came from
            // the meta group being read differently (above), which is fixed; either guard refuses it.
            let used = pos as u64 + z.total_in();
            if (n as u64).saturating_sub(used) > MAX_DEFLATE_TRAILER {
                return Err(format!(
                    "deflated data set at byte {pos} ends at byte {used}, but the file goes on to byte {n} \
                     (damaged length field or trailing data)"
                ));
            }
            walk(&inflated, 0, true, false).map_err(|e| format!("in the inflated data set: {e}"))?;
            return Ok(Walked { data_start: Some(pos), transfer_syntax, inflated: Some(inflated), pixels: None });
        }
        _ => (true, false),
    };
    let pixels = walk(bytes, pos, explicit, big)?;
    let native_le = matches!(transfer_syntax.as_str(), "1.2.840.10008.1.2" | "1.2.840.10008.1.2.1");
    let pixels = match pixels {
        PixelData::One(r) if native_le && r.end == n => Some(r),
        _ => None,
    };
    Ok(Walked { data_start: Some(pos), transfer_syntax, inflated: None, pixels })
}

/// Reads the data set with dicom-rs's own token stream, as far as dicom-rs will (`extent`), and
/// refuses an element or item whose declared length exceeds the whole data set, before its value
/// is read (the stream reads a value only when asked for the token after its header). dicom-rs
/// builds the object from this same reader, so what it will trust is exactly what is checked here.
/// The walk above missed such lengths whenever it split the bytes differently from dicom-rs
/// (fuzzing: tests/data/fuzz/dicom-oom-9.dcm, an item tag outside any sequence, which dicom-rs
/// reads as a 4-byte element and the walk entered as an item; the next header then declared
/// 3.9 GB). A data set that does not parse is left to dicom-rs, which stops at the same place.
fn token_guard(walked: &Walked, bytes: &[u8], extent: Extent) -> Result<(), String> {
    use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
    use dicom_parser::dataset::{DataSetReader, DataToken};
    let Some(start) = walked.data_start else { return Ok(()) };
    let (data, uid) = match &walked.inflated {
        Some(inflated) => (inflated.as_slice(), "1.2.840.10008.1.2.1"),
        None => (bytes.get(start..).unwrap_or_default(), walked.transfer_syntax.as_str()),
    };
    let Some(ts) = dicom_transfer_syntax_registry::TransferSyntaxRegistry.get(uid) else { return Ok(()) };
    let Ok(reader) = DataSetReader::new_with_ts(data, ts) else { return Ok(()) };
    let limit = data.len() as u64;
    let refuse = |what: String, len: u32| {
        Err(format!(
            "{what} declares {len} bytes, more than the {limit} bytes of the whole data set (damaged length field)"
        ))
    };
    let stop = |tag: dicom_core::Tag, depth: usize| {
        extent == Extent::UntilPixelData && depth == 0 && tag >= dicom_core::Tag(0x7FE0, 0x0010)
    };
    let mut depth = 0usize;
    for token in reader {
        let Ok(token) = token else { return Ok(()) };
        match token {
            DataToken::ElementHeader(h) => {
                if stop(h.tag, depth) {
                    break;
                }
                if let Some(len) = h.len.get().filter(|&l| u64::from(l) > limit) {
                    return refuse(format!("element {}", h.tag), len);
                }
            }
            DataToken::ItemStart { len } => {
                if let Some(len) = len.get().filter(|&l| u64::from(l) > limit) {
                    return refuse("an item".to_string(), len);
                }
            }
            DataToken::SequenceStart { tag, .. } => {
                if stop(tag, depth) {
                    break;
                }
                depth += 1;
            }
            DataToken::PixelSequenceStart => {
                if stop(dicom_core::Tag(0x7FE0, 0x0010), depth) {
                    break;
                }
                depth += 1;
            }
            DataToken::SequenceEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// The Pixel Data elements of defined length a walk met.
enum PixelData {
    None,
    One(std::ops::Range<usize>),
    Several,
}

impl PixelData {
    fn add(&mut self, r: std::ops::Range<usize>) {
        *self = match self {
            PixelData::None => PixelData::One(r),
            _ => PixelData::Several,
        };
    }
}

/// Walks the data set in `bytes` from `pos` (after the file meta group).
fn walk(bytes: &[u8], mut pos: usize, explicit: bool, big: bool) -> Result<PixelData, String> {
    let n = bytes.len();
    let too_long = |group: u16, element: u16, len: u32, at: usize| {
        format!(
            "element ({group:04X},{element:04X}) at byte {at} declares {len} bytes, but the file has only {} left \
             (damaged length field)",
            n.saturating_sub(at)
        )
    };
    let mut in_fragments = false;
    let mut pixels = PixelData::None;
    while pos + 8 <= n {
        let (Some(group), Some(element)) = (u16_at(bytes, pos, big), u16_at(bytes, pos + 2, big)) else {
            return Ok(pixels);
        };
        if group == 0xFFFE {
            // Item and delimiters: tag and a 4-byte length, no VR.
            let Some(len) = u32_at(bytes, pos + 4, big) else { return Ok(pixels) };
            let at = pos;
            pos += 8;
            match element {
                0xE000 if len != UNDEFINED => {
                    if pos + len as usize > n {
                        return Err(too_long(group, element, len, at));
                    }
                    if in_fragments {
                        pos += len as usize;
                    }
                }
                0xE0DD => in_fragments = false,
                0xE000 | 0xE00D => {}
                // Not an item or a delimiter: dicom-rs reads it as a UN element of `len` bytes
                // (fuzzing: (FFFE,000D) with 0xE0000400 bytes cost 3.7 GB, tests/data/fuzz/dicom-oom-8.dcm).
                _ if len != UNDEFINED => {
                    if pos + len as usize > n {
                        return Err(too_long(group, element, len, at));
                    }
                    pos += len as usize;
                }
                _ => {}
            }
            continue;
        }
        let at = pos;
        let (len, vr, header) = if explicit {
            let Some(vr) = bytes.get(pos + 4..pos + 6) else { return Ok(pixels) };
            if long_vr(vr) {
                (u32_at(bytes, pos + 8, big), Some(vr), 12)
            } else {
                (u16_at(bytes, pos + 6, big).map(u32::from), Some(vr), 8)
            }
        } else {
            (u32_at(bytes, pos + 4, big), None, 8)
        };
        let Some(len) = len else { return Ok(pixels) };
        pos += header;
        if len == UNDEFINED {
            // Undefined length: pixel data fragments, or a sequence. dicom-rs 0.10 reads a UN (or
            // unknown VR) of undefined length as a sequence in the data set's own encoding, so the
            // walk goes on into it the same way (it used to stop there, and fuzzing found a file
            // whose damaged length after such an element cost 4 GB: tests/data/fuzz/dicom-oom-7.dcm).
            if (group, element) == (0x7FE0, 0x0010) {
                in_fragments = true;
            }
            continue;
        }
        if pos + len as usize > n {
            return Err(too_long(group, element, len, at));
        }
        // A sequence: walk into its items. Implicit VR has no VR field; dicom-rs takes the VR
        // from the standard dictionary, and so does this walk (fuzzing found a damaged length
        // inside a defined-length sequence of an implicit VR file that made dicom-rs allocate
        // 4 GB: tests/data/fuzz/dicom-oom-6.dcm).
        if vr == Some(b"SQ".as_slice()) || (vr.is_none() && implicit_sequence(group, element)) {
            continue;
        }
        if (group, element) == (0x7FE0, 0x0010) {
            pixels.add(pos..pos + len as usize);
        }
        pos += len as usize;
    }
    Ok(pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dataset: &[u8], ts: &str) -> Vec<u8> {
        let mut ts = ts.as_bytes().to_vec();
        if ts.len() % 2 == 1 {
            ts.push(0);
        }
        let mut b = vec![0u8; 128];
        b.extend_from_slice(b"DICM");
        b.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0]);
        b.extend_from_slice(&(8 + ts.len() as u32).to_le_bytes());
        b.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I']);
        b.extend_from_slice(&(ts.len() as u16).to_le_bytes());
        b.extend_from_slice(&ts);
        b.extend_from_slice(dataset);
        b
    }

    #[test]
    fn lengths_within_the_file_pass_and_a_length_past_its_end_is_named() {
        // (0010,0010) PN "AB", then (0028,0010) US 2 bytes.
        let ok = [0x10, 0x00, 0x10, 0x00, b'P', b'N', 2, 0, b'A', b'B', 0x28, 0, 0x10, 0, b'U', b'S', 2, 0, 1, 0];
        assert_eq!(check(&file(&ok, "1.2.840.10008.1.2.1")), Ok(()));
        // (0008,1030) LO claiming 0xFFF0 bytes.
        let bad = [0x08, 0x00, 0x30, 0x10, b'L', b'O', 0xF0, 0xFF, b'x', b'y'];
        let e = check(&file(&bad, "1.2.840.10008.1.2.1")).expect_err("past the end");
        assert!(e.contains("(0008,1030)") && e.contains("65520 bytes"), "{e}");
        // Implicit VR: a 4-byte length of 0x7FFFFFFF.
        let bad = [0x08, 0x00, 0x30, 0x10, 0xFF, 0xFF, 0xFF, 0x7F, b'x', b'y'];
        assert!(check(&file(&bad, "1.2.840.10008.1.2")).is_err());
        // Inside an undefined-length sequence item.
        let seq = [
            0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, // SQ, undefined
            0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF, // item, undefined
            0x08, 0x00, 0x50, 0x11, b'U', b'I', 0x00, 0x40, b'1', 0, // UI claiming 16384 bytes
        ];
        assert!(check(&file(&seq, "1.2.840.10008.1.2.1")).is_err());
        // Not Part 10: left to dicom-rs.
        assert_eq!(check(b"not dicom"), Ok(()));
        // Deflated: the same damaged element, compressed, is found after inflating.
        use std::io::Write;
        let deflate = |raw: &[u8]| {
            let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(raw).expect("deflate");
            z.finish().expect("deflate")
        };
        assert_eq!(check(&file(&deflate(&ok), "1.2.840.10008.1.2.1.99")), Ok(()));
        let bad = [0x08, 0x00, 0x30, 0x10, b'L', b'O', 0xF0, 0xFF, b'x', b'y'];
        let e = check(&file(&deflate(&bad), "1.2.840.10008.1.2.1.99")).expect_err("inflated, past the end");
        assert!(e.contains("inflated") && e.contains("(0008,1030)"), "{e}");
        // Not deflate data at all: refused, not passed on.
        assert!(check(&file(&[0xFF; 40], "1.2.840.10008.1.2.1.99")).is_err());
    }

    #[test]
    fn the_meta_group_ends_where_its_group_length_says_as_dicom_rs_reads_it() {
        // Group length 10 + 20, covering an element of another group ((0C02,0000), a damaged tag)
        // and then the transfer syntax, implicit VR. The data set's (0010,0010) declares 0x7FFF0000
        // bytes. A walk that ended the meta group at the first tag outside group 2 read the rest
        // as explicit VR and missed that length; dicom-rs reads on to the transfer syntax.
        let ts = b"1.2.840.10008.1.2\0";
        let mut b = vec![0u8; 128];
        b.extend_from_slice(b"DICM");
        b.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0]);
        b.extend_from_slice(&(10 + 8 + ts.len() as u32).to_le_bytes());
        b.extend_from_slice(&[0x02, 0x0C, 0x00, 0x00, b'S', b'H', 2, 0, b'A', b'B']);
        b.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I', ts.len() as u8, 0]);
        b.extend_from_slice(ts);
        b.extend_from_slice(&[0x10, 0x00, 0x10, 0x00, 0x00, 0x00, 0xFF, 0x7F, b'A', b'B']);
        let e = check(&b).expect_err("past the end");
        assert!(e.contains("(0010,0010)") && e.contains("2147418112"), "{e}");
        // Without the group length first, dicom-rs refuses the file before any data set: left to it.
        let mut no_length = b[..132].to_vec();
        no_length.extend_from_slice(&b[144..]);
        assert_eq!(check_and_locate(&no_length), Ok(None));
    }
}
