//! The thin ioctl layer (cargo feature `v4l`): opens a V4L2 capture device, negotiates pixel
//! format, size and frame rate (the profile's mode, else the nearest the device offers, chosen by
//! `mode::nearest` and logged; an error listing what the device offers when it has nothing this
//! source reads), and streams through memory-mapped buffers with a stall timeout. No pixel work
//! happens here. Touches the device node only. Not exercised by the test suite (no
//! `/dev/video*` on the build machines): the VM bench (scripts/vmtest, check 3) runs it against
//! the kernel's vivid driver; see docs/capture.md.

use super::mode::{self, Mode, Offer, Rates, Sizes};
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

/// Frame interval (seconds per frame) to frames per second; None for a zero fraction.
fn per_second(f: v4l::Fraction) -> Option<f32> {
    (f.numerator > 0 && f.denominator > 0).then(|| f.denominator as f32 / f.numerator as f32)
}

fn rates(dev: &Device, fourcc: FourCC, width: u32, height: u32) -> Rates {
    let mut list = Vec::new();
    for i in dev.enum_frameintervals(fourcc, width, height).unwrap_or_default() {
        match i.interval {
            v4l::frameinterval::FrameIntervalEnum::Discrete(f) => list.extend(per_second(f)),
            // The longest interval is the lowest rate.
            v4l::frameinterval::FrameIntervalEnum::Stepwise(s) => {
                if let (Some(min), Some(max)) = (per_second(s.max), per_second(s.min)) {
                    return Rates::Range { min, max };
                }
            }
        }
    }
    if list.is_empty() {
        Rates::Unknown
    } else {
        Rates::Discrete(list)
    }
}

/// What the device offers in the pixel formats this source reads, for `mode::nearest`.
fn readable_offers(dev: &Device) -> Vec<Offer> {
    let mut out = Vec::new();
    for d in dev.enum_formats().unwrap_or_default() {
        let Some(pixel) = PixelFormat::from_fourcc(d.fourcc.repr) else { continue };
        let mut discrete = Vec::new();
        let mut stepwise = None;
        for s in dev.enum_framesizes(d.fourcc).unwrap_or_default() {
            match s.size {
                v4l::framesize::FrameSizeEnum::Discrete(z) => {
                    discrete.push((z.width, z.height, rates(dev, d.fourcc, z.width, z.height)))
                }
                v4l::framesize::FrameSizeEnum::Stepwise(z) => {
                    let r = rates(dev, d.fourcc, z.max_width, z.max_height);
                    stepwise = Some(Sizes::Stepwise {
                        min: (z.min_width, z.min_height),
                        max: (z.max_width, z.max_height),
                        step: (z.step_width.max(1), z.step_height.max(1)),
                        rates: r,
                    });
                }
            }
        }
        let sizes = stepwise.unwrap_or(Sizes::Discrete(discrete));
        out.push(Offer { pixel, sizes });
    }
    out
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
        let wish = Mode { pixel: cfg.pixel, width: cfg.width, height: cfg.height, fps: cfg.fps as f32 };
        let unavailable = |dev: &Device| CaptureError::FormatUnavailable {
            device: name.clone(),
            wanted: wish.to_string(),
            offered: offers(dev),
        };
        // The profile's mode is a wish: the device's nearest offer is taken (and logged below).
        let readable = readable_offers(&dev);
        let chosen = mode::nearest(&readable, wish).ok_or_else(|| unavailable(&dev))?;
        let fourcc = FourCC::new(&chosen.pixel.fourcc());
        let got = dev.set_format(&Format::new(chosen.width, chosen.height, fourcc)).map_err(|_| unavailable(&dev))?;
        // The driver may round the size once more; its answer is what streams.
        let pixel = PixelFormat::from_fourcc(got.fourcc.repr).ok_or_else(|| unavailable(&dev))?;
        let params = dev.set_params(&Parameters::with_fps(chosen.fps.round().max(1.0) as u32)).ok();
        let fps = params.and_then(|p| per_second(p.interval)).unwrap_or(chosen.fps);
        let took = Mode { pixel, width: got.width, height: got.height, fps };
        let mut stream = Stream::with_buffers(&dev, Type::VideoCapture, cfg.buffers)
            .map_err(|e| open_err(format!("cannot map {} streaming buffers: {e}", cfg.buffers)))?;
        stream.set_timeout(cfg.stall_timeout);
        let as_asked = (took.pixel, took.width, took.height) == (wish.pixel, wish.width, wish.height)
            && (took.fps - wish.fps).abs() < 0.5;
        if as_asked {
            log::info!(
                "capture device {name}: {} ({}, bus {}), {took} as asked, {} bytes per line",
                caps.card,
                caps.driver,
                caps.bus,
                got.stride
            );
        } else {
            log::warn!(
                "capture device {name}: {} ({}, bus {}) cannot deliver {wish}; took the nearest it offers: {took}, \
                 {} bytes per line (it offers, in the formats this source reads: {}). Set [capture] \
                 format/width/height/fps to silence this",
                caps.card,
                caps.driver,
                caps.bus,
                got.stride,
                mode::describe(&readable)
            );
        }
        let format = StreamFormat {
            pixel,
            width: got.width,
            height: got.height,
            stride: if pixel == PixelFormat::Mjpeg { 0 } else { got.stride as usize },
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
