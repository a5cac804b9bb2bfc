//! From the `[capture]` table to a running source: which frame source to open (V4L2 device by
//! path or stable udev name, or an MJPEG recording), and the runner's settings. Touches the
//! device node or the recording named in the profile.

use super::replay::ReplaySource;
use super::runner::{OpenFn, RunnerConfig};
use super::{CaptureError, FrameSource};
use crate::config::capture::Capture;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `/dev/...` paths as given; a bare name is looked up among the stable udev names
/// (`/dev/v4l/by-id/NAME`, then `/dev/v4l/by-path/NAME`), else `/dev/NAME`.
pub fn resolve_device(name: &str, dev_root: &Path) -> PathBuf {
    if name.contains('/') {
        return PathBuf::from(name);
    }
    for sub in ["v4l/by-id", "v4l/by-path"] {
        let p = dev_root.join(sub).join(name);
        if p.exists() {
            return p;
        }
    }
    dev_root.join(name)
}

/// Opens the configured source once.
pub fn open_source(c: &Capture) -> Result<Box<dyn FrameSource>, CaptureError> {
    if let Some(path) = c.device.strip_prefix("replay:") {
        return Ok(Box::new(ReplaySource::mjpeg_file(Path::new(path), c.fps as f32)?));
    }
    let device = resolve_device(&c.device, Path::new("/dev"));
    #[cfg(feature = "v4l")]
    {
        let cfg = super::v4l2::V4l2Config {
            device,
            pixel: c.format,
            width: c.width,
            height: c.height,
            fps: c.fps,
            stall_timeout: Duration::from_secs_f64(c.stall_timeout_s),
            buffers: 4,
        };
        Ok(Box::new(super::v4l2::V4l2Source::open(&cfg)?))
    }
    #[cfg(not(feature = "v4l"))]
    {
        Err(CaptureError::Unsupported { device: device.display().to_string() })
    }
}

/// The runner's open function (called again after every fault).
pub fn opener(c: &Capture) -> OpenFn {
    let c = c.clone();
    Box::new(move || open_source(&c))
}

pub fn runner_config(c: &Capture) -> RunnerConfig {
    RunnerConfig {
        detect: c.detect_config(),
        series_gap_ms: (c.new_series_after_s * 1000.0) as u64,
        lossless: c.device.starts_with("replay:"),
        backoff_min: Duration::from_millis(500),
        backoff_max: Duration::from_secs(30),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_are_stable_udev_names() {
        let t = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(t.path().join("v4l/by-id")).expect("mkdir");
        std::fs::write(t.path().join("v4l/by-id/usb-Card-video-index0"), b"").expect("touch");
        assert_eq!(resolve_device("usb-Card-video-index0", t.path()), t.path().join("v4l/by-id/usb-Card-video-index0"));
        assert_eq!(resolve_device("video3", t.path()), t.path().join("video3"));
        assert_eq!(resolve_device("/dev/video0", t.path()), PathBuf::from("/dev/video0"));
    }
}
