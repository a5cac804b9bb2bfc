//! Frame sources without a device: frames rendered on demand by a closure (the console
//! recorder, scripted faults in tests), or an MJPEG recording (concatenated JPEG frames, as
//! `ffmpeg -f v4l2 -input_format mjpeg -i /dev/video0 -c copy -f mjpeg rec.mjpeg` writes), paced at
//! the recording's frame rate or as fast as the consumer takes them. Reads only the recording.

use super::{CaptureError, Frame, FrameSource, StreamFormat};
use std::path::Path;
use std::time::{Duration, Instant};

/// Renders frame `sequence` into the buffer; `Ok(false)` ends the replay.
pub type RenderFn = Box<dyn FnMut(u64, &mut Vec<u8>) -> Result<bool, CaptureError> + Send>;

pub struct ReplaySource {
    name: String,
    format: StreamFormat,
    render: RenderFn,
    buf: Vec<u8>,
    sequence: u64,
    /// When set, frame n is not delivered before start + n / fps.
    paced_from: Option<Instant>,
    realtime: bool,
}

impl ReplaySource {
    pub fn new(name: impl Into<String>, format: StreamFormat, render: RenderFn) -> Self {
        Self { name: name.into(), format, render, buf: Vec::new(), sequence: 0, paced_from: None, realtime: false }
    }

    /// Delivers frames at the stream's frame rate (as a card would) instead of on demand.
    pub fn realtime(mut self, on: bool) -> Self {
        self.realtime = on;
        self
    }

    /// An MJPEG recording: JPEG frames back to back. Width and height come from the first frame.
    pub fn mjpeg_file(path: &Path, fps: f32) -> Result<Self, CaptureError> {
        let name = format!("replay:{}", path.display());
        let open = |reason: String| CaptureError::Open { device: name.clone(), reason };
        let bytes = std::fs::read(path).map_err(|e| open(e.to_string()))?;
        let frames = split_jpegs(&bytes);
        let first = frames.first().ok_or_else(|| open("no JPEG frame (FF D8 ... FF D9) in the file".into()))?;
        let mut dec = zune_jpeg::JpegDecoder::new(zune_core::bytestream::ZCursor::new(&bytes[first.clone()]));
        dec.decode_headers().map_err(|e| open(format!("first frame: {e:?}")))?;
        let (w, h) = dec.dimensions().ok_or_else(|| open("first frame has no size".into()))?;
        let format =
            StreamFormat { pixel: super::PixelFormat::Mjpeg, width: w as u32, height: h as u32, stride: 0, fps };
        let render: RenderFn = Box::new(move |seq, buf| match frames.get(seq as usize) {
            Some(r) => {
                buf.clear();
                buf.extend_from_slice(&bytes[r.clone()]);
                Ok(true)
            }
            None => Ok(false),
        });
        Ok(Self::new(name, format, render).realtime(true))
    }
}

/// Byte ranges of the JPEG images in a concatenation (SOI to EOI).
pub fn split_jpegs(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == 0xFF && bytes[i + 1] == 0xD8 {
            let start = i;
            i += 2;
            while i + 1 < bytes.len() && !(bytes[i] == 0xFF && bytes[i + 1] == 0xD9) {
                i += 1;
            }
            if i + 1 < bytes.len() {
                out.push(start..i + 2);
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    out
}

impl FrameSource for ReplaySource {
    fn name(&self) -> &str {
        &self.name
    }

    fn format(&self) -> StreamFormat {
        self.format
    }

    fn next_frame(&mut self) -> Result<Frame<'_>, CaptureError> {
        let seq = self.sequence;
        if !(self.render)(seq, &mut self.buf)? {
            return Err(CaptureError::Ended { device: self.name.clone() });
        }
        let period_us = (1e6 / f64::from(self.format.fps.max(0.1))) as u64;
        if self.realtime {
            let start = *self.paced_from.get_or_insert_with(Instant::now);
            let due = start + Duration::from_micros(seq * period_us);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        self.sequence += 1;
        Ok(Frame { format: self.format, data: &self.buf, sequence: seq, timestamp_us: seq * period_us })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_concatenations_split_at_soi_and_eoi() {
        let data = [0, 0xFF, 0xD8, 1, 0xFF, 0x00, 2, 0xFF, 0xD9, 9, 0xFF, 0xD8, 0xFF, 0xD9, 0xFF, 0xD8, 5];
        assert_eq!(split_jpegs(&data), vec![1..9, 10..14]);
    }
}
