//! The thin ioctl layer (cargo feature `v4l`): opens a V4L2 capture device, negotiates pixel
//! format, size and frame rate (with an error listing what the device offers when the wish
//! cannot be met), and streams through memory-mapped buffers with a stall timeout. No pixel work
//! happens here. Touches the device node only. Not exercised by the test suite (no
//! `/dev/video*` on the build machines): see docs/capture.md.

use super::{CaptureError, Frame, FrameSource, PixelFormat, StreamFormat};
use std::path::PathBuf;
use std::time::Duration;
use v4l::buffer::Type;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::capture::Parameters;
use v4l::video::Capture;
use v4l::{Device, Format, FourCC};

/// What to open and ask for (from `[capture]`).
#[derive(Debug, Clone)]
pub struct V4l2Config {
    pub device: PathBuf,
    pub pixel: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub stall_timeout: Duration,
    /// Memory-mapped buffers queued with the driver.
    pub buffers: u32,
}

pub struct V4l2Source {
    name: String,
    format: StreamFormat,
    stall_ms: u64,
    // Field order matters: the stream (its mappings) is dropped before the device.
    stream: Stream<'static>,
    _dev: Device,
}

fn fourcc_str(f: FourCC) -> String {
    f.repr.iter().map(|&b| if b.is_ascii_graphic() { b as char } else { '?' }).collect()
}

/// Everything the device offers: `YUYV 1920x1080@30,25 MJPG 1280x720@60 ...`.
fn offers(dev: &Device) -> String {
    let mut out = Vec::new();
    for d in dev.enum_formats().unwrap_or_default() {
        let mut sizes = Vec::new();
        for s in dev.enum_framesizes(d.fourcc).unwrap_or_default() {
            for size in s.size.to_discrete() {
                let rates: Vec<String> = dev
                    .enum_frameintervals(d.fourcc, size.width, size.height)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|i| match i.interval {
                        v4l::frameinterval::FrameIntervalEnum::Discrete(f) if f.numerator > 0 => {
                            Some(format!("{}", f.denominator / f.numerator))
                        }
                        v4l::frameinterval::FrameIntervalEnum::Stepwise(s) => Some(format!("{s}")),
                        _ => None,
                    })
                    .collect();
                sizes.push(format!("{}x{}@{}", size.width, size.height, rates.join(",")));
            }
        }
        out.push(format!("{} ({}) {}", fourcc_str(d.fourcc), d.description, sizes.join(" ")));
    }
    if out.is_empty() {
        "nothing (no capture formats enumerated)".into()
    } else {
        out.join("; ")
    }
}

impl V4l2Source {
    pub fn open(cfg: &V4l2Config) -> Result<Self, CaptureError> {
        let name = cfg.device.display().to_string();
        let open_err = |reason: String| CaptureError::Open { device: name.clone(), reason };
        let dev = Device::with_path(&cfg.device).map_err(|e| open_err(e.to_string()))?;
        let caps = dev.query_caps().map_err(|e| open_err(format!("VIDIOC_QUERYCAP: {e}")))?;
        let flags = caps.capabilities;
        if !flags.contains(v4l::capability::Flags::VIDEO_CAPTURE) || !flags.contains(v4l::capability::Flags::STREAMING)
        {
            return Err(open_err(format!(
                "{} ({}) is not a streaming single-plane video capture device (capabilities {flags:?})",
                caps.card, caps.driver
            )));
        }
        let wanted = format!("{} {}x{} at {} fps", cfg.pixel, cfg.width, cfg.height, cfg.fps);
        let unavailable = |dev: &Device| CaptureError::FormatUnavailable {
            device: name.clone(),
            wanted: wanted.clone(),
            offered: offers(dev),
        };
        let fourcc = FourCC::new(&cfg.pixel.fourcc());
        let got = dev.set_format(&Format::new(cfg.width, cfg.height, fourcc)).map_err(|_| unavailable(&dev))?;
        if got.fourcc != fourcc || got.width != cfg.width || got.height != cfg.height {
            return Err(unavailable(&dev));
        }
        let params = dev.set_params(&Parameters::with_fps(cfg.fps)).map_err(|_| unavailable(&dev))?;
        let i = params.interval;
        let fps = if i.numerator > 0 { i.denominator as f32 / i.numerator as f32 } else { 0.0 };
        if (fps - cfg.fps as f32).abs() > 1.0 {
            return Err(unavailable(&dev));
        }
        let mut stream = Stream::with_buffers(&dev, Type::VideoCapture, cfg.buffers)
            .map_err(|e| open_err(format!("cannot map {} streaming buffers: {e}", cfg.buffers)))?;
        stream.set_timeout(cfg.stall_timeout);
        log::info!(
            "capture device {name}: {} ({}, bus {}), {wanted}, {} bytes per line",
            caps.card,
            caps.driver,
            caps.bus,
            got.stride
        );
        let format = StreamFormat {
            pixel: cfg.pixel,
            width: got.width,
            height: got.height,
            stride: if cfg.pixel == PixelFormat::Mjpeg { 0 } else { got.stride as usize },
            fps,
        };
        Ok(Self { name, format, stall_ms: cfg.stall_timeout.as_millis() as u64, stream, _dev: dev })
    }
}

impl FrameSource for V4l2Source {
    fn name(&self) -> &str {
        &self.name
    }

    fn format(&self) -> StreamFormat {
        self.format
    }

    fn next_frame(&mut self) -> Result<Frame<'_>, CaptureError> {
        let waited_ms = self.stall_ms;
        match CaptureStream::next(&mut self.stream) {
            Ok((buf, meta)) => {
                let used = (meta.bytesused as usize).min(buf.len());
                let ts = meta.timestamp;
                Ok(Frame {
                    format: self.format,
                    data: &buf[..used],
                    sequence: u64::from(meta.sequence),
                    timestamp_us: (ts.sec as u64).saturating_mul(1_000_000).saturating_add(ts.usec as u64),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                Err(CaptureError::Stalled { device: self.name.clone(), waited_ms })
            }
            Err(e) => Err(CaptureError::Gone { device: self.name.clone(), reason: e.to_string() }),
        }
    }
}
