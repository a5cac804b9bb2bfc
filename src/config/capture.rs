//! The board profile's optional `[capture]` table: the capture card, its format, the viewport
//! and masks, and change-detection settings. Parsed with unknown keys rejected; range-checked
//! with the key named. Touches nothing but the values it is given.

use super::raw::ConfigError;
use crate::source::capture::detect::DetectConfig;
use crate::source::capture::viewport::Rect;
use crate::source::capture::PixelFormat;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capture {
    /// Device path (`/dev/video0`), a stable udev name (`/dev/v4l/by-id/...`), or
    /// `replay:/path/rec.mjpeg` for a recording.
    pub device: String,
    #[serde(default = "d_format")]
    pub format: PixelFormat,
    #[serde(default = "d_width")]
    pub width: u32,
    #[serde(default = "d_height")]
    pub height: u32,
    #[serde(default = "d_fps")]
    pub fps: u32,
    /// The console's image rectangle in frame pixels.
    pub viewport: Rect,
    #[serde(default)]
    pub masks: Vec<Rect>,
    #[serde(default = "d_pixel_threshold")]
    pub pixel_threshold: u8,
    #[serde(default = "d_changed_fraction")]
    pub changed_fraction: f32,
    #[serde(default = "d_settle_frames")]
    pub settle_frames: u32,
    /// A stream without a frame for this long is a fault (stalled).
    #[serde(default = "d_stall_timeout_s")]
    pub stall_timeout_s: f64,
    /// No new slice for this long: the next one starts a new capture series.
    #[serde(default = "d_new_series_after_s")]
    pub new_series_after_s: f64,
}

fn d_format() -> PixelFormat {
    PixelFormat::Yuyv
}
fn d_width() -> u32 {
    1920
}
fn d_height() -> u32 {
    1080
}
fn d_fps() -> u32 {
    30
}
fn d_pixel_threshold() -> u8 {
    12
}
fn d_changed_fraction() -> f32 {
    0.01
}
fn d_settle_frames() -> u32 {
    1
}
fn d_stall_timeout_s() -> f64 {
    2.0
}
fn d_new_series_after_s() -> f64 {
    60.0
}

impl Capture {
    pub fn detect_config(&self) -> DetectConfig {
        let mut d = DetectConfig::new(self.viewport);
        d.masks = self.masks.clone();
        d.pixel_threshold = self.pixel_threshold;
        d.changed_fraction = self.changed_fraction;
        d.settle_frames = self.settle_frames;
        d
    }

    pub fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let range = |key: &'static str, found: String, allowed: &'static str| ConfigError::Range {
            path: path.to_path_buf(),
            key,
            found,
            allowed,
        };
        if self.device.trim().is_empty() {
            return Err(range("capture.device", "\"\"".into(), "a device path, /dev/v4l/by-id/NAME or replay:FILE"));
        }
        if !(16..=7680).contains(&self.width) {
            return Err(range("capture.width", self.width.to_string(), "16 to 7680"));
        }
        if !(16..=4320).contains(&self.height) {
            return Err(range("capture.height", self.height.to_string(), "16 to 4320"));
        }
        if !(1..=240).contains(&self.fps) {
            return Err(range("capture.fps", self.fps.to_string(), "1 to 240"));
        }
        let v = self.viewport;
        if !v.fits(self.width, self.height) || v.width < 64 || v.height < 64 {
            return Err(range(
                "capture.viewport",
                v.to_string(),
                "at least 64x64 pixels, inside capture.width x capture.height",
            ));
        }
        for m in &self.masks {
            if !m.fits(self.width, self.height) {
                return Err(range("capture.masks", m.to_string(), "non-empty rectangles inside the frame"));
            }
        }
        if self.masks.len() > 64 {
            return Err(range("capture.masks", self.masks.len().to_string(), "at most 64 rectangles"));
        }
        if self.pixel_threshold == 0 {
            return Err(range("capture.pixel_threshold", "0".into(), "1 to 255 gray levels"));
        }
        let f = self.changed_fraction;
        if !(0.0001..=0.5).contains(&f) || f.is_nan() {
            return Err(range("capture.changed_fraction", f.to_string(), "0.0001 to 0.5"));
        }
        if self.settle_frames > 30 {
            return Err(range("capture.settle_frames", self.settle_frames.to_string(), "0 to 30"));
        }
        if !(0.1..=60.0).contains(&self.stall_timeout_s) {
            return Err(range("capture.stall_timeout_s", self.stall_timeout_s.to_string(), "0.1 to 60 seconds"));
        }
        if !(1.0..=86_400.0).contains(&self.new_series_after_s) {
            return Err(range("capture.new_series_after_s", self.new_series_after_s.to_string(), "1 to 86400 seconds"));
        }
        Ok(())
    }
}
