//! The recorder for tests, benchmarks and demos: renders CT slices (phantom slices, windowed as
//! the phantom's PNGs) into 1920x1080 scanner-console-like frames — window chrome, a title bar
//! with a ticking clock, side panels, a slice counter and a cursor read-out that change, a moving
//! mouse cursor that crosses the image, capture noise — and encodes them as GREY, YUYV or MJPEG
//! like a capture card would deliver them. Which slice each frame shows is a script, so every
//! slice change is known. Pure computation; writes only buffers it owns or is handed.

use super::convert::GrayFrame;
use super::replay::{RenderFn, ReplaySource};
use super::viewport::Rect;
use super::{PixelFormat, StreamFormat};
use crate::phantom::render::{Canvas, SIZE};
use crate::phantom::{window_gray, SeriesPlan, PNG_WINDOW_CENTER, PNG_WINDOW_WIDTH};

pub const WIDTH: u32 = 1920;
pub const HEIGHT: u32 = 1080;
pub const FPS: f32 = 30.0;
/// Where the console draws the 512x512 image (its own black background included).
pub const VIEWPORT: Rect = Rect { x: 704, y: 276, width: SIZE as u32, height: SIZE as u32 };
/// The cursor read-out (HU under the mouse) drawn inside the image's bottom-left corner: it
/// changes whenever the mouse moves, so an installer masks it.
pub const READOUT: Rect = Rect { x: VIEWPORT.x + 6, y: VIEWPORT.y + SIZE as u32 - 20, width: 120, height: 14 };
/// The slice counter in the image's top-left corner (changes with the slice).
pub const COUNTER: Rect = Rect { x: VIEWPORT.x + 6, y: VIEWPORT.y + 6, width: 120, height: 14 };
/// Title bar clock (outside the viewport).
pub const CLOCK: Rect = Rect { x: 1740, y: 8, width: 160, height: 16 };

/// The windowed gray slices of one phantom series (what the console would display).
pub fn phantom_slices(run_seed: u64, index: u32, slices: u32, positive: bool) -> Vec<Vec<u8>> {
    let plan = SeriesPlan::new(run_seed, index, slices, positive);
    let mut canvas = Canvas::default();
    let mut boxes = Vec::new();
    (0..slices)
        .map(|k| {
            plan.render(k, &mut canvas, &mut boxes);
            canvas.hu.iter().map(|&hu| window_gray(hu.round(), PNG_WINDOW_CENTER, PNG_WINDOW_WIDTH)).collect()
        })
        .collect()
}

/// The stream format of recorded console frames in `pixel` format.
pub fn stream_format(pixel: PixelFormat) -> StreamFormat {
    let stride = match pixel {
        PixelFormat::Yuyv => WIDTH as usize * 2,
        PixelFormat::Grey => WIDTH as usize,
        PixelFormat::Mjpeg => 0,
    };
    StreamFormat { pixel, width: WIDTH, height: HEIGHT, stride, fps: FPS }
}

/// A console session: slices and which one each frame shows.
pub struct ConsoleSim {
    slices: Vec<Vec<u8>>,
    /// Slice index per frame.
    pub schedule: Vec<usize>,
    pub noise: u8,
    pub jpeg_quality: u8,
    /// Seconds on the clock at frame 0.
    pub clock_start_s: u64,
    gray: GrayFrame,
    rgb: Vec<u8>,
}

/// A tiny stand-in font: 3x5 cells, glyph bits from the character (text need not be readable,
/// only change like text does).
fn glyph(c: char) -> u16 {
    if c == ' ' {
        return 0;
    }
    let mut h = (c as u32).wrapping_mul(2_654_435_761);
    h ^= h >> 15;
    (h as u16 & 0x7FFF) | 0x4001
}

impl ConsoleSim {
    pub fn new(slices: Vec<Vec<u8>>, schedule: Vec<usize>) -> Self {
        Self {
            slices,
            schedule,
            noise: 2,
            jpeg_quality: 85,
            clock_start_s: 12 * 3600,
            gray: GrayFrame::new(WIDTH, HEIGHT),
            rgb: Vec::new(),
        }
    }

    pub fn frames(&self) -> usize {
        self.schedule.len()
    }

    /// Mouse position at frame `n`: a slow Lissajous path over the whole screen, image included.
    pub fn cursor(n: u64) -> (u32, u32) {
        let t = n as f32 / FPS;
        let x = 960.0 + 700.0 * (t * 0.9).sin();
        let y = 540.0 + 420.0 * (t * 1.3 + 0.5).sin();
        (x as u32, y as u32)
    }

    fn text(&mut self, x: u32, y: u32, s: &str, ink: u8) {
        let (w, scale) = (WIDTH as usize, 2usize);
        for (i, c) in s.chars().enumerate() {
            let g = glyph(c);
            for b in 0..15 {
                if g >> b & 1 == 0 {
                    continue;
                }
                let (gx, gy) = (x as usize + i * 4 * scale + (b % 3) * scale, y as usize + (b / 3) * scale);
                for dy in 0..scale {
                    for dx in 0..scale {
                        if gx + dx < w && gy + dy < HEIGHT as usize {
                            self.gray.pixels[(gy + dy) * w + gx + dx] = ink;
                        }
                    }
                }
            }
        }
    }

    fn fill(&mut self, r: Rect, v: u8) {
        let w = WIDTH as usize;
        for y in r.y..r.bottom().min(HEIGHT) {
            let row = y as usize * w;
            self.gray.pixels[row + r.x as usize..row + r.right().min(WIDTH) as usize].fill(v);
        }
    }

    /// The screen at frame `n` as 8-bit gray (the truth the converters must reproduce).
    pub fn render_gray(&mut self, n: u64) -> &GrayFrame {
        let slice = self.schedule.get(n as usize).copied().unwrap_or(0).min(self.slices.len().saturating_sub(1));
        // Chrome: desk gray, title bar, side panels with buttons.
        self.gray.pixels.fill(64);
        self.fill(Rect::new(0, 0, WIDTH, 32), 110);
        self.fill(Rect::new(0, 32, 300, HEIGHT - 32), 84);
        self.fill(Rect::new(1500, 32, 420, HEIGHT - 32), 84);
        for i in 0..8 {
            self.fill(Rect::new(20, 60 + i * 70, 260, 50), 150);
            self.text(40, 78 + i * 70, "BUTTON", 30);
        }
        self.text(16, 8, "CT CONSOLE  PHANTOM^PATIENT", 235);
        let secs = self.clock_start_s + (n as f32 / FPS) as u64;
        let clock = format!("{:02}:{:02}:{:02}", secs / 3600 % 24, secs / 60 % 60, secs % 60);
        self.text(CLOCK.x, CLOCK.y, &clock, 235);
        let total = self.slices.len();
        self.text(1520, 60, &format!("SERIES 1  IMAGES {total}"), 220);
        self.text(1520, 90, &format!("IM {}", slice + 1), 220);
        // The image, 1:1.
        if let Some(px) = self.slices.get(slice) {
            let (vx, vy, side) = (VIEWPORT.x as usize, VIEWPORT.y as usize, SIZE);
            for r in 0..side {
                let dst = (vy + r) * WIDTH as usize + vx;
                self.gray.pixels[dst..dst + side].copy_from_slice(&px[r * side..(r + 1) * side]);
            }
        }
        // Annotations inside the image: the slice counter and the HU read-out under the mouse.
        let (mx, my) = Self::cursor(n);
        self.text(COUNTER.x, COUNTER.y, &format!("IM {}/{total}", slice + 1), 200);
        let under = self.gray.pixels[(my.min(HEIGHT - 1) * WIDTH + mx.min(WIDTH - 1)) as usize];
        self.text(READOUT.x, READOUT.y, &format!("HU {}", i32::from(under) * 3 - 250), 200);
        // The mouse cursor: a white arrow with a black edge, 12x19.
        for dy in 0..19u32 {
            let span = (dy * 12 / 19).max(1);
            for dx in 0..=span {
                let (x, y) = (mx + dx, my + dy);
                if x < WIDTH && y < HEIGHT {
                    let edge = dx == 0 || dx == span || dy == 18;
                    self.gray.pixels[(y * WIDTH + x) as usize] = if edge { 0 } else { 255 };
                }
            }
        }
        // Capture noise: +-noise gray levels, a different pattern every frame.
        if self.noise > 0 {
            let mut s = 0x9E37_79B9_7F4A_7C15u64 ^ n.wrapping_mul(0xD1B5_4A32_D192_ED03);
            let span = 2 * u64::from(self.noise) + 1;
            for p in self.gray.pixels.iter_mut() {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let d = (s % span) as i16 - i16::from(self.noise);
                *p = (i16::from(*p) + d).clamp(0, 255) as u8;
            }
        }
        &self.gray
    }

    /// Frame `n` encoded as `pixel` into `out`. The title bar carries chroma (a blue tint) so
    /// converters are checked to ignore it; luma is the gray frame in every format.
    pub fn encode(&mut self, n: u64, pixel: PixelFormat, out: &mut Vec<u8>) -> Result<(), String> {
        self.render_gray(n);
        let (w, h) = (WIDTH as usize, HEIGHT as usize);
        let chroma = |y: usize| if y < 32 { (160u8, 110u8) } else { (128, 128) };
        out.clear();
        match pixel {
            PixelFormat::Grey => out.extend_from_slice(&self.gray.pixels),
            PixelFormat::Yuyv => {
                out.reserve(w * h * 2);
                for (y, row) in self.gray.pixels.chunks_exact(w).enumerate() {
                    let (u, v) = chroma(y);
                    for pair in row.chunks_exact(2) {
                        out.extend_from_slice(&[pair[0], u, pair[1], v]);
                    }
                }
            }
            PixelFormat::Mjpeg => {
                self.rgb.resize(w * h * 3, 0);
                for (i, (&g, o)) in self.gray.pixels.iter().zip(self.rgb.chunks_exact_mut(3)).enumerate() {
                    let (u, v) = chroma(i / w);
                    let (y, u, v) = (f32::from(g), f32::from(u) - 128.0, f32::from(v) - 128.0);
                    o[0] = (y + 1.402 * v).round().clamp(0.0, 255.0) as u8;
                    o[1] = (y - 0.344_136 * u - 0.714_136 * v).round().clamp(0.0, 255.0) as u8;
                    o[2] = (y + 1.772 * u).round().clamp(0.0, 255.0) as u8;
                }
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut *out, self.jpeg_quality)
                    .encode(&self.rgb, WIDTH, HEIGHT, image::ExtendedColorType::Rgb8)
                    .map_err(|e| format!("JPEG encoding of frame {n}: {e}"))?;
            }
        }
        Ok(())
    }

    /// A replay source delivering this session in `pixel` format, frame after frame.
    pub fn into_source(mut self, pixel: PixelFormat) -> ReplaySource {
        let format = stream_format(pixel);
        let render: RenderFn = Box::new(move |n, buf| {
            if n as usize >= self.frames() {
                return Ok(false);
            }
            self.encode(n, pixel, buf).map_err(|reason| super::CaptureError::Decode { sequence: n, reason })?;
            Ok(true)
        });
        ReplaySource::new(format!("console-sim ({pixel})"), format, render)
    }
}
