//! Darknet `.weights` reader: the header, then each convolutional layer's floats in cfg order.
//!
//! Format (darknet `load_weights_upto`): int32 major, minor, revision; then `seen` as int64 when
//! `major*10 + minor >= 2` (and both below 1000), otherwise int32; then little-endian f32 values,
//! per convolutional layer: biases[filters], and with batch-norm scales[filters],
//! rolling_mean[filters], rolling_variance[filters]; then weights[filters][c/groups][size][size].
//! Only convolutional layers carry weights in the layouts the importer accepts. Pure: works on
//! the bytes it is given.

/// The parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub major: i32,
    pub minor: i32,
    pub revision: i32,
    pub seen: u64,
    /// Header length in bytes (16 or 20).
    pub len: usize,
}

/// Reads the header; `None` when the file is shorter than its header.
pub fn header(bytes: &[u8]) -> Option<Header> {
    let i32_at = |o: usize| bytes.get(o..o + 4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let (major, minor, revision) = (i32_at(0)?, i32_at(4)?, i32_at(8)?);
    let wide = major * 10 + minor >= 2 && major < 1000 && minor < 1000;
    if wide {
        let b = bytes.get(12..20)?;
        let seen = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        Some(Header { major, minor, revision, seen, len: 20 })
    } else {
        let seen = i32_at(12)? as u32 as u64;
        Some(Header { major, minor, revision, seen, len: 16 })
    }
}

/// Writes a header in the modern layout (major 0, minor 2, int64 `seen`), for test fixtures.
pub fn write_header(out: &mut Vec<u8>, seen: u64) {
    for v in [0i32, 2, 0] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&seen.to_le_bytes());
}

/// A cursor over the float section.
pub struct Floats<'a> {
    bytes: &'a [u8],
    /// Byte offset of the next float in the whole file.
    pub offset: usize,
}

impl<'a> Floats<'a> {
    pub fn new(bytes: &'a [u8], header: &Header) -> Floats<'a> {
        Floats { bytes, offset: header.len }
    }

    /// The next `n` floats, or `None` (and no advance) when the file ends first.
    pub fn take(&mut self, n: usize) -> Option<Vec<f32>> {
        let end = self.offset.checked_add(n.checked_mul(4)?)?;
        let chunk = self.bytes.get(self.offset..end)?;
        self.offset = end;
        Some(chunk.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }

    /// Bytes left after the cursor.
    pub fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_widths() {
        let mut b = Vec::new();
        write_header(&mut b, 7);
        b.extend_from_slice(&1.5f32.to_le_bytes());
        let h = header(&b).unwrap();
        assert_eq!((h.major, h.minor, h.seen, h.len), (0, 2, 7, 20));
        let mut f = Floats::new(&b, &h);
        assert_eq!(f.take(1), Some(vec![1.5]));
        assert_eq!(f.take(1), None);
        // Old layout: major 0, minor 1 -> int32 seen.
        let mut old = Vec::new();
        for v in [0i32, 1, 0, 9] {
            old.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(header(&old).map(|h| (h.seen, h.len)), Some((9, 16)));
        assert_eq!(header(&old[..10]), None);
    }
}
