//! The capture-card source: frames of the scanner console's screen (V4L2, or a replay of
//! recorded/rendered frames) -> gray -> the viewport crop -> new-slice detection -> `Slice`s with a
//! capture series label. Layered so that only `v4l2` touches a device: everything above the
//! [`FrameSource`] trait runs in tests on a [`replay::ReplaySource`].
//!
//! - `convert`: YUYV / MJPEG / GREY frames to 8-bit gray (BT.601 luma) in a reused buffer.
//! - `viewport`: the configured pixel rectangle of the console's image, the crop, the automatic
//!   finder, and drawing the rectangle for `pe-sentinel check --capture`.
//! - `detect`: which frames show a new slice (change threshold, settling, masks, re-displays),
//!   and the series label (`capture-<start time>`, a new series after an idle gap).
//! - `runner`: the capture thread: faults, retry with backoff, stall timeout, latest-wins hand-off.
//! - `console`: renders phantom slices into 1920x1080 console-like frames (the test recorder).
//! - `replay`: frame sources without a device (rendered frames, or an MJPEG file).
//! - `mode`: the capture mode to open: the profile's, else the nearest the device offers.
//! - `v4l2` (feature `v4l`): the thin ioctl layer — open, negotiate, mmap streaming.

pub mod console;
pub mod convert;
pub mod detect;
pub mod mode;
pub mod open;
pub mod replay;
pub mod runner;
#[cfg(feature = "v4l")]
pub mod v4l2;
pub mod viewport;

use std::fmt;

/// Pixel formats a capture card may deliver that this source understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    /// Packed 4:2:2 Y0 U Y1 V, 2 bytes per pixel.
    Yuyv,
    /// Motion JPEG: each frame one JPEG image (possibly without Huffman tables, AVI1 style).
    Mjpeg,
    /// 8-bit gray, 1 byte per pixel.
    Grey,
}

impl PixelFormat {
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Yuyv => *b"YUYV",
            PixelFormat::Mjpeg => *b"MJPG",
            PixelFormat::Grey => *b"GREY",
        }
    }

    pub fn from_fourcc(f: [u8; 4]) -> Option<PixelFormat> {
        match &f {
            b"YUYV" => Some(PixelFormat::Yuyv),
            b"MJPG" => Some(PixelFormat::Mjpeg),
            b"GREY" => Some(PixelFormat::Grey),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PixelFormat::Yuyv => "yuyv",
            PixelFormat::Mjpeg => "mjpeg",
            PixelFormat::Grey => "grey",
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a source delivers once negotiated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamFormat {
    pub pixel: PixelFormat,
    pub width: u32,
    pub height: u32,
    /// Bytes per line for the uncompressed formats (0 for MJPEG).
    pub stride: usize,
    pub fps: f32,
}

/// One captured frame, borrowed from the source's buffer until the next call.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub format: StreamFormat,
    pub data: &'a [u8],
    /// The driver's (or replay's) frame counter: gaps are dropped frames.
    pub sequence: u64,
    /// Capture time in microseconds on the source's clock.
    pub timestamp_us: u64,
}

/// Errors of the capture path. `Stalled` and `Gone` are faults the runner retries; `Decode` costs
/// one frame; the rest are configuration problems reported at start.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("capture device {device}: cannot open: {reason}; check the cable and power of the capture card, that it is listed by `v4l2-ctl --list-devices`, and the [capture] device key")]
    Open { device: String, reason: String },
    #[error("capture device {device}: cannot deliver {wanted}; it offers: {offered}. Set [capture] format/width/height/fps to one of these")]
    FormatUnavailable { device: String, wanted: String, offered: String },
    #[error("capture device {device}: no frame for {waited_ms} ms (stream stalled); the console may be off or the cable loose — retrying")]
    Stalled { device: String, waited_ms: u64 },
    #[error("capture device {device}: lost ({reason}); unplugged? retrying")]
    Gone { device: String, reason: String },
    #[error("capture frame {sequence}: {reason}; frame skipped")]
    Decode { sequence: u64, reason: String },
    #[error("capture source {device}: end of the recording")]
    Ended { device: String },
    #[error("capture device {device}: this build has no V4L2 support (cargo feature `v4l` off); rebuild with default features")]
    Unsupported { device: String },
}

impl CaptureError {
    /// Whether the runner should close the source, wait and reopen it.
    pub fn is_fault(&self) -> bool {
        matches!(self, CaptureError::Stalled { .. } | CaptureError::Gone { .. } | CaptureError::Open { .. })
    }
}

/// A source of console frames: the V4L2 device or a replay. Thin: no pixel work happens here.
pub trait FrameSource: Send {
    /// Device path or replay name, for messages.
    fn name(&self) -> &str;
    fn format(&self) -> StreamFormat;
    /// The next frame; waits at most the source's stall timeout (then `CaptureError::Stalled`).
    fn next_frame(&mut self) -> Result<Frame<'_>, CaptureError>;
}
