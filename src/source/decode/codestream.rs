//! The image size a compressed frame's own header declares (JPEG and JPEG-LS: the SOF segment;
//! JPEG 2000: the SIZ segment) and the layout of an RLE frame (segment count, offsets, decoded
//! lengths), read before the codec sees the frame. The codecs allocate the size their header
//! declares, not the DICOM Rows and Columns: fuzzing found a 3.6 kB JPEG 2000 file whose SIZ said
//! 512 x 1,572,864 under Rows 512, Columns 512, and openjp2 zeroed 3.2 GB for it
//! (tests/data/fuzz/dicom-oom-10.dcm). Touches nothing but the bytes given.

use super::dicom_lengths::{u16_at, u32_at};

/// The codestream family of a transfer syntax whose frames carry their own header.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Family {
    /// JPEG (ISO 10918: baseline, extended, lossless) and JPEG-LS.
    Jpeg,
    /// JPEG 2000 and High-Throughput JPEG 2000.
    Jpeg2000,
    /// RLE Lossless: a header of segment count and offsets, no size.
    Rle,
}

/// `None` for transfer syntaxes whose frames have no such header (native, deflate, video).
pub fn family(transfer_syntax: &str) -> Option<Family> {
    if transfer_syntax == "1.2.840.10008.1.2.5" {
        return Some(Family::Rle);
    }
    let n: u32 = transfer_syntax.strip_prefix("1.2.840.10008.1.2.4.")?.parse().ok()?;
    match n {
        50..=81 => Some(Family::Jpeg),
        90..=93 | 201..=203 => Some(Family::Jpeg2000),
        _ => None,
    }
}

/// The most segments an RLE Lossless frame may have (PS3.5 G.3.1: 15 offsets in its header).
pub const RLE_MAX_SEGMENTS: u32 = 15;

/// The segment count an RLE Lossless frame's header declares. dicom-rs 0.10 allocates a vector of
/// that many offsets before it checks the header's length: a damaged count of 0xFFFFFFFF asks for
/// 16 GB (fuzzing, 2026-12-07; contained there as a panic only because this machine's memory
/// overcommit lent it the address space, and a Jetson's 8 GB would abort the process instead).
pub fn rle_segments(frame: &[u8]) -> Option<u32> {
    le32(frame, 0)
}

/// Width, height and components a frame's header declares; `None` when no header is found in
/// the first bytes (a continuation fragment), which leaves the frame to the codec as before.
pub fn declared_size(frame: &[u8], family: Family) -> Option<(u32, u32, u32)> {
    match family {
        Family::Rle => None,
        Family::Jpeg => frame.starts_with(&[0xFF, 0xD8]).then(|| jpeg_sof(frame)).flatten(),
        // A JPEG 2000 codestream (SOC then SIZ) at the start of the frame, or inside JP2 boxes
        // (the JP2 signature box first). Anywhere else such bytes may be compressed data.
        Family::Jpeg2000 => {
            const SOC_SIZ: [u8; 4] = [0xFF, 0x4F, 0xFF, 0x51];
            const JP2: [u8; 12] = [0, 0, 0, 12, b'j', b'P', b' ', b' ', 13, 10, 0x87, 10];
            let at = if frame.starts_with(&SOC_SIZ) {
                0
            } else if frame.starts_with(&JP2) {
                frame[..frame.len().min(4096)].windows(4).position(|w| w == SOC_SIZ)?
            } else {
                return None;
            };
            j2k_siz(&frame[at + 4..])
        }
    }
}

/// Refuses frames whose own headers declare more pixels than Rows x Columns, other than one
/// component (SamplesPerPixel 1 is already required; more overran dicom-rs's JPEG 2000 frame
/// buffer, a contained panic seen 944 times in the 2026-12-07 fuzzing), or an RLE frame that
/// `check_rle` refuses: the codecs allocate what their header says. `bytes_per_sample` is Bits
/// Allocated / 8, the RLE segments each frame needs.
pub fn check_frames<F: AsRef<[u8]>>(
    fragments: &[F],
    family: Family,
    rows: u64,
    columns: u64,
    bytes_per_sample: u32,
) -> Result<(), String> {
    for fragment in fragments.iter().map(AsRef::as_ref) {
        if family == Family::Rle {
            check_rle(fragment, rows * columns, bytes_per_sample)?;
        }
        if let Some((w, h, c)) = declared_size(fragment, family) {
            if u64::from(w) * u64::from(h) > rows * columns || c != 1 {
                return Err(format!(
                    "a compressed frame's own header declares {w}x{h} pixels and {c} component(s), but Columns x \
                     Rows is {columns}x{rows} with 1 sample per pixel (a damaged or inconsistent file); not decoded"
                ));
            }
        }
    }
    Ok(())
}

/// One RLE Lossless frame (PS3.5 G.3): a 64-byte header (segment count, then 15 offsets), then
/// segments of PackBits data, each of which must decode to `pixels` bytes (Rows x Columns), one
/// segment per byte of a sample. dicom-rs 0.10 indexes past a segment that decodes to fewer: a
/// contained panic, seen about 67,000 times in the 2026-12-07 fuzzing, reported only as "the
/// pixel decoder failed". This says which segment is short, before the codec.
pub fn check_rle(frame: &[u8], pixels: u64, needed: u32) -> Result<(), String> {
    let damaged = "(a damaged file); not decoded";
    if frame.len() < 64 {
        return Err(format!(
            "an RLE Lossless frame of {} bytes, shorter than its 64-byte header {damaged}",
            frame.len()
        ));
    }
    let n = rle_segments(frame).unwrap_or(0);
    if n > RLE_MAX_SEGMENTS {
        return Err(format!(
            "an RLE Lossless frame declares {n} segments, more than the {RLE_MAX_SEGMENTS} the standard allows {damaged}"
        ));
    }
    if n < needed {
        return Err(format!(
            "an RLE Lossless frame declares {n} segment(s), but {needed} byte(s) per sample need {needed} {damaged}"
        ));
    }
    let offset = |i: u32| le32(frame, 4 + 4 * i as usize).map_or(frame.len(), |v| v as usize);
    for i in 0..needed {
        let (start, end) = (offset(i), if i + 1 < n { offset(i + 1) } else { frame.len() });
        let segment = frame.get(start..end).ok_or_else(|| {
            format!(
                "RLE Lossless segment {i} is declared at bytes {start}..{end} of a {}-byte frame {damaged}",
                frame.len()
            )
        })?;
        let got = packbits_len(segment, pixels);
        if got < pixels {
            return Err(format!(
                "RLE Lossless segment {i} decodes to {got} bytes, fewer than the {pixels} (Rows x Columns) it must \
                 hold {damaged}"
            ));
        }
    }
    Ok(())
}

/// How many bytes a PackBits segment decodes to, counted up to `enough`, without decoding it. As
/// dicom-rs reads it: a literal run cut short gives what is there; a repeat without its byte ends.
fn packbits_len(segment: &[u8], enough: u64) -> u64 {
    let (mut at, mut out) = (0, 0u64);
    while at < segment.len() && out < enough {
        let header = segment[at] as i8;
        at += 1;
        match header {
            0..=127 => {
                let run = header as usize + 1;
                out += run.min(segment.len() - at) as u64;
                at += run;
            }
            -127..=-1 => {
                if at >= segment.len() {
                    break;
                }
                out += (1 - i64::from(header)) as u64;
                at += 1;
            }
            // -128: no operation.
            _ => {}
        }
    }
    out
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    u32_at(b, at, false)
}

fn be16(b: &[u8], at: usize) -> Option<u32> {
    u16_at(b, at, true).map(u32::from)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    u32_at(b, at, true)
}

/// JPEG (ISO 10918, any SOFn) and JPEG-LS (SOF55, 0xFFF7): walks the marker segments from SOI.
fn jpeg_sof(b: &[u8]) -> Option<(u32, u32, u32)> {
    let mut pos = 2;
    while pos + 4 <= b.len() {
        if b[pos] != 0xFF {
            return None;
        }
        let marker = b[pos + 1];
        match marker {
            // Fill bytes, and markers without a segment (TEM, RSTn).
            0xFF => pos += 1,
            0x01 | 0xD0..=0xD7 => pos += 2,
            // SOFn (not DHT, JPG, DAC) and JPEG-LS's SOF55: P, Y (lines), X (samples per line), Nf.
            0xC0..=0xCF | 0xF7 if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                let height = be16(b, pos + 5)?;
                let width = be16(b, pos + 7)?;
                let components = u32::from(*b.get(pos + 9)?);
                return Some((width, height, components));
            }
            // SOS or EOI before any SOF: no size to read.
            0xDA | 0xD9 => return None,
            _ => pos += 2 + be16(b, pos + 2)? as usize,
        }
    }
    None
}

/// JPEG 2000 SIZ after its marker: Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz, tiles, Csiz.
fn j2k_siz(b: &[u8]) -> Option<(u32, u32, u32)> {
    let (x, y, x0, y0) = (be32(b, 4)?, be32(b, 8)?, be32(b, 12)?, be32(b, 16)?);
    let components = be16(b, 36)?;
    Some((x.saturating_sub(x0), y.saturating_sub(y0), components))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_jpeg_ls_and_jpeg_2000_headers_give_their_size() {
        // SOI, an APP0 segment of 4 bytes, SOF0: 8 bits, 300 lines, 200 samples, 1 component.
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 1, 2, 0xFF, 0xC0, 0, 11, 8, 1, 44, 0, 200, 1, 1, 0x11, 0];
        assert_eq!(declared_size(&jpeg, Family::Jpeg), Some((200, 300, 1)));
        // JPEG-LS: SOF55 after SOI.
        let ls = [0xFF, 0xD8, 0xFF, 0xF7, 0, 11, 16, 2, 0, 2, 0, 1, 1, 0x11, 0];
        assert_eq!(declared_size(&ls, Family::Jpeg), Some((512, 512, 1)));
        // A DHT before SOF is skipped by its length, not read as a frame header.
        let dht = [0xFF, 0xD8, 0xFF, 0xC4, 0, 3, 0, 0xFF, 0xC3, 0, 11, 16, 0, 10, 0, 20, 1, 1, 0x11, 0];
        assert_eq!(declared_size(&dht, Family::Jpeg), Some((20, 10, 1)));
        // JPEG 2000 codestream: SOC, SIZ with Xsiz 600, Ysiz 1000, offsets 88 and 0, 1 component.
        let mut j2k = vec![0xFF, 0x4F, 0xFF, 0x51, 0, 41, 0, 0];
        for v in [600u32, 1000, 88, 0, 512, 512, 0, 0] {
            j2k.extend_from_slice(&v.to_be_bytes());
        }
        j2k.extend_from_slice(&[0, 1, 15, 1, 1]);
        assert_eq!(declared_size(&j2k, Family::Jpeg2000), Some((512, 1000, 1)));
        // Inside a JP2 box header, found all the same.
        let mut jp2 = vec![0, 0, 0, 12, b'j', b'P', b' ', b' ', 13, 10, 0x87, 10];
        jp2.extend_from_slice(&j2k);
        assert_eq!(declared_size(&jp2, Family::Jpeg2000), Some((512, 1000, 1)));
        // A continuation fragment, SOC and SIZ bytes not at the start (compressed data), a cut-off
        // SOF, a JPEG 2000 codestream read as JPEG: nothing to read.
        assert_eq!(declared_size(&[0x12, 0x34, 0x56], Family::Jpeg2000), None);
        assert_eq!(declared_size(&[&[0x12, 0x34][..], &j2k].concat(), Family::Jpeg2000), None);
        assert_eq!(declared_size(&jpeg[..14], Family::Jpeg), None);
        assert_eq!(declared_size(&j2k, Family::Jpeg), None);
        // Which transfer syntaxes carry such headers; RLE and native ones do not.
        assert_eq!(family("1.2.840.10008.1.2.4.70"), Some(Family::Jpeg));
        assert_eq!(family("1.2.840.10008.1.2.4.80"), Some(Family::Jpeg));
        assert_eq!(family("1.2.840.10008.1.2.4.90"), Some(Family::Jpeg2000));
        assert_eq!(family("1.2.840.10008.1.2.4.202"), Some(Family::Jpeg2000));
        assert_eq!(family("1.2.840.10008.1.2.5"), Some(Family::Rle));
        assert_eq!(declared_size(&jpeg, Family::Rle), None);
        assert_eq!(rle_segments(&[1, 0, 0, 0, 64, 0, 0, 0]), Some(1));
        assert_eq!(rle_segments(&[0xFF; 3]), None);
        assert_eq!(family("1.2.840.10008.1.2.1"), None);
    }

    /// An RLE frame header declaring `count` segments at `offsets`, followed by `body`.
    fn rle(count: u32, offsets: &[u32], body: &[u8]) -> Vec<u8> {
        let mut f = count.to_le_bytes().to_vec();
        for i in 0..15 {
            f.extend_from_slice(&offsets.get(i).copied().unwrap_or(0).to_le_bytes());
        }
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn packbits_runs_are_counted_as_dicom_rs_decodes_them() {
        // A literal of 3, a repeat of 5 (header -4), a no-op, a repeat of 128.
        let seg = [2, 10, 11, 12, 0xFC, 7, 0x80, 0x81, 9];
        assert_eq!(packbits_len(&seg, u64::MAX), 3 + 5 + 128);
        // Counting stops once there is enough.
        assert_eq!(packbits_len(&seg, 4), 8);
        // A literal cut short gives what is there; a repeat without its byte gives nothing.
        assert_eq!(packbits_len(&[9, 1, 2], u64::MAX), 2);
        assert_eq!(packbits_len(&[2, 1, 2, 3, 0xFE], u64::MAX), 3);
        assert_eq!(packbits_len(&[], u64::MAX), 0);
    }

    #[test]
    fn rle_frames_must_hold_every_segment_they_need() {
        // 2x2 pixels, 16 bits: two segments of 4 bytes each (repeat runs of 4).
        let good = rle(2, &[64, 66], &[0xFD, 1, 0xFD, 2]);
        assert_eq!(check_rle(&good, 4, 2), Ok(()));
        assert_eq!(check_frames(&[&good], Family::Rle, 2, 2, 2), Ok(()));
        // The second segment decodes to 3 bytes.
        let short = rle(2, &[64, 66], &[0xFD, 1, 0xFE, 2]);
        let e = check_rle(&short, 4, 2).unwrap_err();
        assert!(e.contains("segment 1 decodes to 3 bytes, fewer than the 4"), "{e}");
        // One segment where 16 bits need two; a header cut off; offsets past the frame or backwards.
        assert!(check_rle(&rle(1, &[64], &[0xFD, 1]), 4, 2).unwrap_err().contains("1 segment(s), but 2"));
        assert!(check_rle(&good[..40], 4, 2).unwrap_err().contains("shorter than its 64-byte header"));
        let e = check_rle(&rle(2, &[64, 90], &[0xFD, 1, 0xFD, 2]), 4, 2).unwrap_err();
        assert!(e.contains("segment 0 is declared at bytes 64..90 of a 68-byte frame"), "{e}");
        assert!(check_rle(&rle(2, &[66, 64], &[0xFD, 1, 0xFD, 2]), 4, 2).is_err());
        // 8 bits need one segment; more than 15 are refused whatever the rest says.
        assert_eq!(check_rle(&rle(1, &[64], &[0xFD, 1]), 4, 1), Ok(()));
        assert!(check_rle(&rle(16, &[64], &[0xFD, 1]), 4, 1).unwrap_err().contains("16 segments, more than the 15"));
    }
}
