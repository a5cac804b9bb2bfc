//! Slice pixels -> model input tensor, as the model's manifest says.
//!
//! In: a [`SliceView`] (HU from DICOM, or gray from PNG/JPEG) and a caller-owned `&mut [f32]` of
//! exactly [`Preprocessor::input_len`] elements. Out: the tensor written in place, and the
//! [`Letterbox`] that maps network pixels back to slice pixels. Steps, in order:
//! 1. HU window (DICOM only): `gray = clamp((HU - (c - w/2)) / w, 0, 1) * 255`; PNG/JPEG gray is
//!    used as shown (8 bit as is, 16 bit scaled by 255/65535).
//! 2. Resize, stretch or letterbox, with the manifest's filter: `bilinear` (2x2 taps, see
//!    [`resize`] for the exact convention) or `triangle` (antialiased, Pillow's `BILINEAR`, see
//!    [`resize::Kernel::fill_triangle`]); letterbox padding is gray 0 (black, what air shows as in
//!    any CT window).
//! 3. `tensor = (gray * scale - mean[c]) / std[c]`, gray replicated to every channel, NCHW or NHWC.
//!
//! After [`Preprocessor::new`] nothing allocates. Touches nothing outside its arguments.
pub mod resize;

pub use resize::Letterbox;

use crate::model::{Layout, Manifest, PreprocessSpec, ResizeFilter, ResizeMode};
use resize::{fill_taps, Band, Kernel, Tap};

/// Largest slice side accepted; larger is a broken or hostile header, not a CT slice.
pub const MAX_SLICE_SIDE: usize = 16384;

/// The pixels of one slice, row-major, `width * height` of them.
#[derive(Debug, Clone, Copy)]
pub enum Pixels<'a> {
    /// Hounsfield units (after RescaleSlope/Intercept); the manifest's window is applied.
    Hu(&'a [f32]),
    /// 8-bit gray, used as shown.
    Gray8(&'a [u8]),
    /// 16-bit gray, used as shown, scaled to 0..=255.
    Gray16(&'a [u16]),
}

impl Pixels<'_> {
    fn len(&self) -> usize {
        match self {
            Pixels::Hu(p) => p.len(),
            Pixels::Gray8(p) => p.len(),
            Pixels::Gray16(p) => p.len(),
        }
    }
}

/// A borrowed slice image.
#[derive(Debug, Clone, Copy)]
pub struct SliceView<'a> {
    pub width: usize,
    pub height: usize,
    pub pixels: Pixels<'a>,
}

/// A CT display window in Hounsfield units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HuWindow {
    pub center_hu: f32,
    pub width_hu: f32,
}

impl HuWindow {
    /// `clamp((hu - (c - w/2)) / w, 0, 1) * 255`; NaN maps to 0.
    ///
    /// Arithmetic rather than a LUT: HU arrive as f32 and need not be integers (RescaleSlope may be
    /// fractional), and a subtract, a multiply and two compares cost no more than a table lookup.
    // `max`/`min` rather than `clamp`: they map NaN to 0, where `clamp` would pass NaN on.
    #[allow(clippy::manual_clamp)]
    #[inline]
    pub fn gray(&self, hu: f32) -> f32 {
        let lo = self.center_hu - self.width_hu / 2.0;
        ((hu - lo) * (255.0 / self.width_hu)).max(0.0).min(255.0)
    }
}

/// Errors for one slice; the slice is rejected, the daemon carries on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PreprocessError {
    #[error("slice is {width}x{height} pixels, outside 1..={MAX_SLICE_SIDE} per side; the file's geometry is broken")]
    BadSize { width: usize, height: usize },
    #[error("slice declares {width}x{height} pixels but holds {found}; the decoder returned a short or long buffer")]
    PixelCount { width: usize, height: usize, found: usize },
    #[error(
        "input buffer holds {found} values but the model input needs {expected}; size it with Preprocessor::input_len"
    )]
    BufferLen { expected: usize, found: usize },
}

fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One row's horizontal pass with a kernel `K` taps wide: `row[x] = sum(w[x][k] * src[start[x] + k])`.
#[inline(always)]
fn horizontal<const K: usize>(src: &[f32], kernel: &Kernel, row: &mut [f32]) {
    for ((o, &x0), wx) in row.iter_mut().zip(&kernel.start).zip(kernel.weights.chunks_exact(K)) {
        let (Ok(s), Ok(wx)) = (<&[f32; K]>::try_from(&src[x0..x0 + K]), <&[f32; K]>::try_from(wx)) else {
            continue;
        };
        let mut sum = 0.0;
        for k in 0..K {
            sum += wx[k] * s[k];
        }
        *o = sum;
    }
}

/// The horizontal pass with any kernel width, per output (the source wider than a [`Band`]
/// holds); widths up to 8 as constants, so that each dot product unrolls.
#[inline(always)]
fn horizontal_any(src: &[f32], kernel: &Kernel, row: &mut [f32]) {
    match kernel.ksize {
        1 => horizontal::<1>(src, kernel, row),
        2 => horizontal::<2>(src, kernel, row),
        3 => horizontal::<3>(src, kernel, row),
        4 => horizontal::<4>(src, kernel, row),
        5 => horizontal::<5>(src, kernel, row),
        6 => horizontal::<6>(src, kernel, row),
        7 => horizontal::<7>(src, kernel, row),
        8 => horizontal::<8>(src, kernel, row),
        ks => {
            for ((o, &x0), wx) in row.iter_mut().zip(&kernel.start).zip(kernel.weights.chunks_exact(ks)) {
                *o = wx.iter().zip(src.get(x0..x0 + ks).unwrap_or(&[])).map(|(a, b)| a * b).sum();
            }
        }
    }
}

/// How a resized gray row becomes tensor values: size, layout, channels, normalization.
#[derive(Debug, Clone, Copy)]
struct OutFormat {
    layout: Layout,
    channels: usize,
    net_w: usize,
    net_h: usize,
    /// `tensor = gray * gain[c] + offset[c]`.
    gain: [f32; 3],
    offset: [f32; 3],
}

impl OutFormat {
    /// Writes `row` (one resized row, gray 0..=255) as row `y` of the inner image: `gray *
    /// gain[c] + offset[c]` into every channel, in the manifest's layout.
    #[inline(always)]
    fn write_row(&self, row: &[f32], y: usize, lb: &Letterbox, out: &mut [f32]) {
        let oy = y + lb.pad_y as usize;
        let ox = lb.pad_x as usize;
        match self.layout {
            Layout::Nchw => {
                let plane = self.net_w * self.net_h;
                for c in 0..self.channels {
                    let start = c * plane + oy * self.net_w + ox;
                    let (g, off) = (self.gain[c], self.offset[c]);
                    for (t, v) in out[start..start + row.len()].iter_mut().zip(row.iter()) {
                        *t = v * g + off;
                    }
                }
            }
            Layout::Nhwc => {
                let start = (oy * self.net_w + ox) * self.channels;
                let dst = &mut out[start..start + row.len() * self.channels];
                for (px, v) in dst.chunks_exact_mut(self.channels).zip(row.iter()) {
                    for (c, t) in px.iter_mut().enumerate() {
                        *t = v * self.gain[c] + self.offset[c];
                    }
                }
            }
        }
    }
}

/// The preprocessing plan for one model, with its scratch; one per inference thread.
#[derive(Debug, Clone)]
pub struct Preprocessor {
    window: HuWindow,
    resize: ResizeMode,
    filter: ResizeFilter,
    fmt: OutFormat,
    xtaps: Vec<Tap>,
    ytaps: Vec<Tap>,
    /// The `triangle` filter's kernels (empty for `bilinear`).
    xkernel: Kernel,
    ykernel: Kernel,
    /// `xkernel` laid out for the vector units (when it fits: see [`Band::fill`]).
    xband: Band,
    /// One source row through the window/gray map (`MAX_SLICE_SIDE` long); for `triangle`, the
    /// vertical blend of the source rows under one output row.
    line: Vec<f32>,
    /// Two source rows resampled horizontally, and which source rows they hold.
    hrows: [Vec<f32>; 2],
    hrow_of: [usize; 2],
    /// One output row, after the vertical blend.
    row: Vec<f32>,
    /// The CPU has AVX2: `run` uses its AVX2 build (x86-64 only).
    use_avx2: bool,
}

impl Preprocessor {
    /// Builds the plan and sizes every scratch buffer from a validated manifest.
    pub fn new(manifest: &Manifest) -> Preprocessor {
        let input = manifest.input();
        Preprocessor::from_spec(manifest.preprocess(), input.layout, input.channels(), input.width(), input.height())
    }

    /// As [`Preprocessor::new`], from the pieces; `channels` is 1 or 3 and `mean`/`std` hold one
    /// value or one per channel (a validated manifest guarantees both).
    pub fn from_spec(
        spec: &PreprocessSpec,
        layout: Layout,
        channels: usize,
        width: usize,
        height: usize,
    ) -> Preprocessor {
        let channels = channels.clamp(1, 3);
        let mut gain = [0.0; 3];
        let mut offset = [0.0; 3];
        for c in 0..channels {
            let mean = spec.mean.get(c).or(spec.mean.first()).copied().unwrap_or(0.0);
            let std = spec.std.get(c).or(spec.std.first()).copied().unwrap_or(1.0);
            gain[c] = spec.scale / std;
            offset[c] = -mean / std;
        }
        Preprocessor {
            window: HuWindow { center_hu: spec.window_center_hu, width_hu: spec.window_width_hu },
            resize: spec.resize,
            filter: spec.filter,
            fmt: OutFormat { layout, channels, net_w: width, net_h: height, gain, offset },
            xtaps: vec![Tap::default(); width],
            ytaps: vec![Tap::default(); height],
            xkernel: match spec.filter {
                ResizeFilter::Bilinear => Kernel::default(),
                ResizeFilter::Triangle => Kernel::with_capacity(width, MAX_SLICE_SIDE),
            },
            ykernel: match spec.filter {
                ResizeFilter::Bilinear => Kernel::default(),
                ResizeFilter::Triangle => Kernel::with_capacity(height, MAX_SLICE_SIDE),
            },
            xband: match spec.filter {
                ResizeFilter::Bilinear => Band::default(),
                ResizeFilter::Triangle => Band::with_capacity(width, MAX_SLICE_SIDE),
            },
            line: vec![0.0; MAX_SLICE_SIDE],
            hrows: [vec![0.0; width], vec![0.0; width]],
            hrow_of: [usize::MAX; 2],
            row: vec![0.0; width],
            use_avx2: avx2(),
        }
    }

    /// The same plan forced onto the portable build of `run` (tests compare the two).
    #[doc(hidden)]
    pub fn portable(mut self) -> Preprocessor {
        self.use_avx2 = false;
        self
    }

    /// Number of f32 values the output buffer must hold.
    pub fn input_len(&self) -> usize {
        self.fmt.net_w * self.fmt.net_h * self.fmt.channels
    }

    pub fn window(&self) -> HuWindow {
        self.window
    }

    /// Writes the model input for `slice` into `out`; returns the slice <-> network mapping.
    pub fn run(&mut self, slice: SliceView<'_>, out: &mut [f32]) -> Result<Letterbox, PreprocessError> {
        if self.use_avx2 {
            // SAFETY: `use_avx2` is true only when the running CPU reported AVX2
            // (`is_x86_feature_detected!` in `Preprocessor::from_spec`), the one requirement of the call.
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            return unsafe { self.run_avx2(slice, out) };
        }
        self.run_portable(slice, out)
    }

    /// [`Self::run_portable`] compiled for AVX2. x86-64 builds target baseline SSE2 so that one
    /// binary runs on any x86-64 box; this build is chosen at run time when the CPU has AVX2. The
    /// same operations in the same order (Rust does not fuse multiply-adds), so the output is
    /// bit-identical; a test checks it.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn run_avx2(&mut self, slice: SliceView<'_>, out: &mut [f32]) -> Result<Letterbox, PreprocessError> {
        self.run_portable(slice, out)
    }

    #[inline(always)]
    fn run_portable(&mut self, slice: SliceView<'_>, out: &mut [f32]) -> Result<Letterbox, PreprocessError> {
        let (w, h) = (slice.width, slice.height);
        if !(1..=MAX_SLICE_SIDE).contains(&w) || !(1..=MAX_SLICE_SIDE).contains(&h) {
            return Err(PreprocessError::BadSize { width: w, height: h });
        }
        if slice.pixels.len() != w * h {
            return Err(PreprocessError::PixelCount { width: w, height: h, found: slice.pixels.len() });
        }
        if out.len() != self.input_len() {
            return Err(PreprocessError::BufferLen { expected: self.input_len(), found: out.len() });
        }
        let lb = Letterbox::new(self.resize, w, h, self.fmt.net_w, self.fmt.net_h);
        match self.filter {
            ResizeFilter::Bilinear => {
                fill_taps(w, &mut self.xtaps[..lb.inner_width]);
                fill_taps(h, &mut self.ytaps[..lb.inner_height]);
            }
            ResizeFilter::Triangle => {
                self.xkernel.fill_triangle(w, lb.inner_width);
                self.ykernel.fill_triangle(h, lb.inner_height);
                // A kernel the band cannot hold is used as it is (`resample_kernel` asks).
                self.xband.fill(&self.xkernel, w, lb.inner_width);
            }
        }
        if lb.inner_width != self.fmt.net_w || lb.inner_height != self.fmt.net_h {
            for c in 0..self.fmt.channels {
                let pad = self.fmt.offset[c];
                match self.fmt.layout {
                    Layout::Nchw => {
                        let plane = self.fmt.net_w * self.fmt.net_h;
                        out[c * plane..(c + 1) * plane].fill(pad);
                    }
                    Layout::Nhwc => out.iter_mut().skip(c).step_by(self.fmt.channels).for_each(|v| *v = pad),
                }
            }
        }
        // Same arithmetic as `HuWindow::gray`, with its constants hoisted out of the loop.
        let lo = self.window.center_hu - self.window.width_hu / 2.0;
        let k = 255.0 / self.window.width_hu;
        #[allow(clippy::manual_clamp)]
        let hu_gray = move |v: f32| ((v - lo) * k).max(0.0).min(255.0);
        let gray8 = |v: u8| v as f32;
        let gray16 = |v: u16| v as f32 * (255.0 / 65535.0);
        match (self.filter, slice.pixels) {
            (ResizeFilter::Bilinear, Pixels::Hu(p)) => self.resample(p, w, &lb, out, hu_gray),
            (ResizeFilter::Bilinear, Pixels::Gray8(p)) => self.resample(p, w, &lb, out, gray8),
            (ResizeFilter::Bilinear, Pixels::Gray16(p)) => self.resample(p, w, &lb, out, gray16),
            (ResizeFilter::Triangle, Pixels::Hu(p)) => self.resample_kernel(p, w, &lb, out, hu_gray),
            (ResizeFilter::Triangle, Pixels::Gray8(p)) => self.resample_kernel(p, w, &lb, out, gray8),
            (ResizeFilter::Triangle, Pixels::Gray16(p)) => self.resample_kernel(p, w, &lb, out, gray16),
        }
        Ok(lb)
    }

    /// Bilinear resample of `src` (row length `w`) through `gray`, one output row at a time.
    ///
    /// Separable: each source row that is needed goes through `gray` once and is resampled
    /// horizontally once (kept for the next output row, which usually shares it); each output row
    /// is then one vertical blend. Same arithmetic as the 2x2 formula, `top + (bottom - top) * wy`
    /// with `top = a + (b - a) * wx`.
    #[inline(always)]
    fn resample<P: Copy>(&mut self, src: &[P], w: usize, lb: &Letterbox, out: &mut [f32], gray: impl Fn(P) -> f32) {
        let xtaps = &self.xtaps[..lb.inner_width];
        let line = &mut self.line[..w];
        let mut hrow = |r: usize, dst: &mut [f32]| {
            for (l, &v) in line.iter_mut().zip(&src[r * w..(r + 1) * w]) {
                *l = gray(v);
            }
            for (d, t) in dst.iter_mut().zip(xtaps) {
                let (a, b) = (line[t.i0], line[t.i1]);
                *d = a + (b - a) * t.w1;
            }
        };
        self.hrow_of = [usize::MAX; 2];
        for y in 0..lb.inner_height {
            let ty = self.ytaps[y];
            if self.hrow_of[0] != ty.i0 {
                if self.hrow_of[1] == ty.i0 {
                    self.hrows.swap(0, 1);
                    self.hrow_of.swap(0, 1);
                } else {
                    hrow(ty.i0, &mut self.hrows[0][..lb.inner_width]);
                    self.hrow_of[0] = ty.i0;
                }
            }
            if self.hrow_of[1] != ty.i1 {
                hrow(ty.i1, &mut self.hrows[1][..lb.inner_width]);
                self.hrow_of[1] = ty.i1;
            }
            let row = &mut self.row[..lb.inner_width];
            let wy = ty.w1;
            for ((o, &top), &bottom) in row.iter_mut().zip(&self.hrows[0]).zip(&self.hrows[1]) {
                *o = top + (bottom - top) * wy;
            }
            self.fmt.write_row(&self.row[..lb.inner_width], y, lb, out);
        }
    }

    /// Kernel resample of `src` (row length `w`) through `gray`, one output row at a time.
    ///
    /// Vertical pass first, on whole source rows (a vectorized multiply-add per tap row, with the
    /// gray map recomputed per tap: cheaper than caching windowed rows), then the horizontal pass
    /// on the one blended row. The same sums as Pillow's horizontal-then-vertical order (the
    /// passes are linear), without Pillow's rounding to 8 bits between and after them.
    #[inline(always)]
    fn resample_kernel<P: Copy>(
        &mut self,
        src: &[P],
        w: usize,
        lb: &Letterbox,
        out: &mut [f32],
        gray: impl Fn(P) -> f32,
    ) {
        let (ky, kx) = (&self.ykernel, &self.xkernel);
        for y in 0..lb.inner_height {
            let acc = &mut self.line[..w];
            let y0 = ky.start[y];
            let mut first = true;
            for (k, &wk) in ky.weights[y * ky.ksize..(y + 1) * ky.ksize].iter().enumerate() {
                if wk == 0.0 {
                    continue;
                }
                let r = (y0 + k) * w;
                if first {
                    for (a, &v) in acc.iter_mut().zip(&src[r..r + w]) {
                        *a = wk * gray(v);
                    }
                    first = false;
                } else {
                    for (a, &v) in acc.iter_mut().zip(&src[r..r + w]) {
                        *a += wk * gray(v);
                    }
                }
            }
            if first {
                acc.fill(0.0);
            }
            let row = &mut self.row[..lb.inner_width];
            if self.xband.holds(w, lb.inner_width) {
                self.xband.apply(acc, row);
            } else {
                horizontal_any(acc, kx, row);
            }
            self.fmt.write_row(&self.row[..lb.inner_width], y, lb, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(resize: ResizeMode, mean: Vec<f32>, std: Vec<f32>) -> PreprocessSpec {
        PreprocessSpec {
            window_center_hu: 100.0,
            window_width_hu: 700.0,
            resize,
            filter: ResizeFilter::Bilinear,
            scale: 1.0 / 255.0,
            mean,
            std,
        }
    }

    /// Straight from the definition, in f64: window the whole slice, then resize each output pixel
    /// with PyTorch's `align_corners=False` formula written out again.
    fn reference(gray: &[f64], w: usize, h: usize, lb: &Letterbox) -> Vec<f64> {
        let mut out = vec![0.0; lb.network_width * lb.network_height];
        let src = |i: usize, in_len: usize, out_len: usize| {
            let s = ((i as f64 + 0.5) * in_len as f64 / out_len as f64 - 0.5).max(0.0);
            let i0 = s.floor() as usize;
            let i1 = (i0 + 1).min(in_len - 1);
            (i0, i1, s - i0 as f64)
        };
        for y in 0..lb.inner_height {
            let (y0, y1, fy) = src(y, h, lb.inner_height);
            for x in 0..lb.inner_width {
                let (x0, x1, fx) = src(x, w, lb.inner_width);
                let p = |xx: usize, yy: usize| gray[yy * w + xx];
                let v = (1.0 - fy) * ((1.0 - fx) * p(x0, y0) + fx * p(x1, y0))
                    + fy * ((1.0 - fx) * p(x0, y1) + fx * p(x1, y1));
                out[(y + lb.pad_y as usize) * lb.network_width + x + lb.pad_x as usize] = v;
            }
        }
        out
    }

    /// A deterministic pseudo-random HU slice (xorshift), spanning the window and beyond.
    fn hu_slice(w: usize, h: usize, seed: u64) -> Vec<f32> {
        let mut s = seed | 1;
        (0..w * h)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % 3000) as f32 - 1200.0 + (s % 7) as f32 * 0.25
            })
            .collect()
    }

    #[test]
    fn window_formula() {
        let win = HuWindow { center_hu: 100.0, width_hu: 700.0 };
        assert_eq!(win.gray(-250.0), 0.0);
        assert_eq!(win.gray(-1000.0), 0.0);
        assert_eq!(win.gray(450.0), 255.0);
        assert!((win.gray(100.0) - 127.5).abs() < 1e-4);
        assert_eq!(win.gray(f32::NAN), 0.0);
    }

    #[test]
    fn torch_known_values_2x2_to_4x4() {
        // torch.nn.functional.interpolate(torch.arange(4.).view(1,1,2,2), size=4,
        //     mode="bilinear", align_corners=False)
        let want = [0.0, 0.25, 0.75, 1.0, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2.0, 2.25, 2.75, 3.0];
        let s = PreprocessSpec { scale: 1.0, ..spec(ResizeMode::Stretch, vec![0.0], vec![1.0]) };
        let mut p = Preprocessor::from_spec(&s, Layout::Nchw, 1, 4, 4);
        let mut out = vec![0.0; 16];
        let px = [0u8, 1, 2, 3];
        p.run(SliceView { width: 2, height: 2, pixels: Pixels::Gray8(&px) }, &mut out).unwrap();
        assert_eq!(out, want);
    }

    #[test]
    fn triangle_matches_pillow_known_values() {
        // Pillow 13, float images (no 8-bit rounding): Image.fromarray(a, mode="F")
        //     .resize((w, h), Image.BILINEAR)
        let tri = || PreprocessSpec {
            scale: 1.0,
            filter: ResizeFilter::Triangle,
            ..spec(ResizeMode::Stretch, vec![0.0], vec![1.0])
        };
        let mut p = Preprocessor::from_spec(&tri(), Layout::Nchw, 1, 2, 1);
        let mut out = vec![0.0; 2];
        let px = [0u8, 1, 2, 3];
        p.run(SliceView { width: 4, height: 1, pixels: Pixels::Gray8(&px) }, &mut out).unwrap();
        assert!((out[0] - 0.714_285_73).abs() < 1e-5 && (out[1] - 2.285_714_4).abs() < 1e-5, "{out:?}");
        // a = round(arange(35) ** 1.5).reshape(5, 7), 7x5 resized to 3x2 (both axes downscale,
        // uneven factors); 16-bit gray (mapped to v * 255/65535), scale undoes that.
        let a: Vec<u16> = (0..35).map(|v| (v as f64).powf(1.5).round() as u16).collect();
        let s = PreprocessSpec { scale: 65535.0 / 255.0, ..tri() };
        let mut p = Preprocessor::from_spec(&s, Layout::Nchw, 1, 3, 2);
        let mut out = vec![0.0; 6];
        p.run(SliceView { width: 7, height: 5, pixels: Pixels::Gray16(&a) }, &mut out).unwrap();
        let want = [27.139_61, 35.997_326, 46.227_272, 105.006_49, 120.516_045, 136.422_09];
        for (g, w) in out.iter().zip(want) {
            assert!((g - w).abs() < 1e-3, "{out:?} vs {want:?}");
        }
    }

    #[test]
    fn the_avx2_build_is_bit_identical_to_the_portable_one() {
        // On a CPU without AVX2 both sides are the portable build and this only checks determinism.
        let hu: Vec<f32> = (0..512 * 512).map(|i| ((i * 7919) % 3001) as f32 - 1024.0).collect();
        let g16: Vec<u16> = (0..300 * 200).map(|i| (i * 37 % 65536) as u16).collect();
        let cases = [(224, 224, ResizeMode::Stretch), (416, 416, ResizeMode::Letterbox)];
        for (&(nw, nh, mode), filter) in
            cases.iter().flat_map(|c| [(c, ResizeFilter::Triangle), (c, ResizeFilter::Bilinear)])
        {
            let s = PreprocessSpec { filter, ..spec(mode, vec![0.0], vec![1.0]) };
            let mut fast = Preprocessor::from_spec(&s, Layout::Nchw, 1, nw, nh);
            let mut portable = Preprocessor::from_spec(&s, Layout::Nchw, 1, nw, nh).portable();
            for view in [
                SliceView { width: 512, height: 512, pixels: Pixels::Hu(&hu) },
                SliceView { width: 300, height: 200, pixels: Pixels::Gray16(&g16) },
            ] {
                let (mut a, mut b) = (vec![0.0; fast.input_len()], vec![1.0; portable.input_len()]);
                fast.run(view, &mut a).unwrap();
                portable.run(view, &mut b).unwrap();
                assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{nw}x{nh} {mode:?} {filter:?}");
            }
        }
    }

    /// The two horizontal passes, the band (sources up to `BAND_MAX_IN` wide) and the
    /// per-output one (wider sources), give the same row bit for bit, kernel widths below and
    /// above the unrolled 8 included.
    #[test]
    fn band_and_per_output_horizontal_passes_agree() {
        for &(i, o) in &[(512, 224), (512, 416), (512, 40), (37, 16), (100, 100), (300, 44)] {
            let mut k = Kernel::with_capacity(o, i);
            k.fill_triangle(i, o);
            let mut band = Band::with_capacity(o, i);
            assert!(band.fill(&k, i, o) && band.holds(i, o));
            let src: Vec<f32> = hu_slice(i, 1, i as u64)
                .iter()
                .map(|&v| HuWindow { center_hu: 100.0, width_hu: 700.0 }.gray(v))
                .collect();
            let (mut a, mut b) = (vec![f32::NAN; o], vec![f32::NAN; o]);
            band.apply(&src, &mut a);
            horizontal_any(&src, &k, &mut b);
            assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{i}->{o} (ksize {})", k.ksize);
        }
    }

    /// The kernels are kept between slices of one size: a preprocessor that saw other sizes in
    /// between gives what a fresh one gives, bit for bit.
    #[test]
    fn a_reused_preprocessor_follows_each_slice_size() {
        for filter in [ResizeFilter::Triangle, ResizeFilter::Bilinear] {
            let s = PreprocessSpec { filter, ..spec(ResizeMode::Letterbox, vec![0.1], vec![0.5]) };
            let mut reused = Preprocessor::from_spec(&s, Layout::Nchw, 1, 224, 224);
            for (i, &(w, h)) in
                [(512, 512), (37, 23), (512, 512), (640, 480), (512, 300), (512, 512)].iter().enumerate()
            {
                let hu = hu_slice(w, h, 40 + i as u64);
                let view = SliceView { width: w, height: h, pixels: Pixels::Hu(&hu) };
                let mut got = vec![f32::NAN; reused.input_len()];
                let lb_got = reused.run(view, &mut got).unwrap();
                let mut fresh = Preprocessor::from_spec(&s, Layout::Nchw, 1, 224, 224);
                let mut want = vec![f32::NAN; fresh.input_len()];
                let lb_want = fresh.run(view, &mut want).unwrap();
                assert_eq!(lb_got, lb_want, "{filter:?} {w}x{h}");
                assert!(
                    got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{filter:?} {w}x{h} (slice {i})"
                );
            }
        }
    }

    #[test]
    fn triangle_keeps_a_flat_slice_flat_and_rejects_nothing_valid() {
        for &(w, h, nw, nh) in &[(512, 512, 224, 224), (512, 512, 416, 416), (640, 480, 416, 416), (1, 1, 8, 8)] {
            for mode in [ResizeMode::Stretch, ResizeMode::Letterbox] {
                let s = PreprocessSpec { filter: ResizeFilter::Triangle, ..spec(mode, vec![0.0], vec![1.0]) };
                let mut p = Preprocessor::from_spec(&s, Layout::Nchw, 1, nw, nh);
                let px = vec![200u8; w * h];
                let mut out = vec![f32::NAN; p.input_len()];
                let lb = p.run(SliceView { width: w, height: h, pixels: Pixels::Gray8(&px) }, &mut out).unwrap();
                for y in 0..lb.inner_height {
                    for x in 0..lb.inner_width {
                        let v = out[(y + lb.pad_y as usize) * nw + x + lb.pad_x as usize];
                        assert!((v - 200.0 / 255.0).abs() < 1e-5, "{w}x{h}->{nw}x{nh} {mode:?} ({x},{y}) = {v}");
                    }
                }
                assert!(out.iter().all(|v| v.is_finite()));
            }
        }
    }

    #[test]
    fn matches_naive_reference_for_many_sizes() {
        let sizes = [
            (512, 512, 224, 224),
            (512, 512, 416, 416),
            (37, 23, 16, 29),
            (5, 300, 64, 64),
            (1, 1, 8, 8),
            (640, 480, 416, 416),
        ];
        for (i, &(w, h, nw, nh)) in sizes.iter().enumerate() {
            for mode in [ResizeMode::Stretch, ResizeMode::Letterbox] {
                let hu = hu_slice(w, h, 7 + i as u64);
                let s = spec(mode, vec![0.1], vec![0.5]);
                let mut p = Preprocessor::from_spec(&s, Layout::Nchw, 1, nw, nh);
                let mut out = vec![f32::NAN; p.input_len()];
                let lb = p.run(SliceView { width: w, height: h, pixels: Pixels::Hu(&hu) }, &mut out).unwrap();
                let win = p.window();
                let gray: Vec<f64> = hu.iter().map(|&v| win.gray(v) as f64).collect();
                let want = reference(&gray, w, h, &lb);
                for (k, (&got, &g)) in out.iter().zip(&want).enumerate() {
                    let t = (g / 255.0 - 0.1) / 0.5;
                    assert!((got as f64 - t).abs() < 1e-4, "{w}x{h}->{nw}x{nh} {mode:?} at {k}: {got} vs {t}");
                }
            }
        }
    }

    #[test]
    fn layouts_and_channels_agree() {
        let (w, h, n) = (50, 40, 32);
        let hu = hu_slice(w, h, 3);
        let s = spec(ResizeMode::Letterbox, vec![0.485, 0.456, 0.406], vec![0.229, 0.224, 0.225]);
        let mut one =
            Preprocessor::from_spec(&spec(ResizeMode::Letterbox, vec![0.0], vec![1.0]), Layout::Nchw, 1, n, n);
        let mut nchw = Preprocessor::from_spec(&s, Layout::Nchw, 3, n, n);
        let mut nhwc = Preprocessor::from_spec(&s, Layout::Nhwc, 3, n, n);
        let view = SliceView { width: w, height: h, pixels: Pixels::Hu(&hu) };
        let mut g = vec![0.0; n * n];
        let mut a = vec![0.0; 3 * n * n];
        let mut b = vec![0.0; 3 * n * n];
        one.run(view, &mut g).unwrap();
        nchw.run(view, &mut a).unwrap();
        nhwc.run(view, &mut b).unwrap();
        for c in 0..3 {
            for i in 0..n * n {
                let want = (g[i] - s.mean[c]) / s.std[c];
                assert!((a[c * n * n + i] - want).abs() < 1e-4);
                assert!((b[i * 3 + c] - want).abs() < 1e-4);
            }
        }
        // Letterbox padding is gray 0 in every channel.
        assert!((a[0] - (-s.mean[0] / s.std[0])).abs() < 1e-6);
        assert!((b[2] - (-s.mean[2] / s.std[2])).abs() < 1e-6);
    }

    #[test]
    fn gray16_scales_to_255() {
        let s = PreprocessSpec { scale: 1.0, ..spec(ResizeMode::Stretch, vec![0.0], vec![1.0]) };
        let mut p = Preprocessor::from_spec(&s, Layout::Nchw, 1, 2, 2);
        let px = [65535u16; 4];
        let mut out = [0.0; 4];
        p.run(SliceView { width: 2, height: 2, pixels: Pixels::Gray16(&px) }, &mut out).unwrap();
        assert!(out.iter().all(|v| (v - 255.0).abs() < 1e-3));
    }

    #[test]
    fn rejects_bad_input_without_panicking() {
        let s = spec(ResizeMode::Stretch, vec![0.0], vec![1.0]);
        let mut p = Preprocessor::from_spec(&s, Layout::Nchw, 1, 8, 8);
        let mut out = vec![0.0; 64];
        let px = [0u8; 10];
        let bad = |w, h| SliceView { width: w, height: h, pixels: Pixels::Gray8(&px) };
        assert!(matches!(p.run(bad(0, 10), &mut out), Err(PreprocessError::BadSize { .. })));
        assert!(matches!(p.run(bad(60000, 60000), &mut out), Err(PreprocessError::BadSize { .. })));
        assert!(matches!(p.run(bad(3, 3), &mut out), Err(PreprocessError::PixelCount { .. })));
        assert!(matches!(p.run(bad(5, 2), &mut out[..10]), Err(PreprocessError::BufferLen { .. })));
        assert!(p.run(bad(5, 2), &mut out).is_ok());
    }
}
