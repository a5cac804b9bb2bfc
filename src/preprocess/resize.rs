//! Bilinear resampling taps and the slice <-> network coordinate mapping.
//!
//! Convention: PyTorch `F.interpolate(x, size=.., mode="bilinear", align_corners=False,
//! antialias=False)`, which is also OpenCV's `INTER_LINEAR` and ONNX `Resize` with
//! `coordinate_transformation_mode="half_pixel"`, `mode="linear"`: the source coordinate of output
//! pixel `d` is `max((d + 0.5) * in / out - 0.5, 0)`; the right/lower neighbour is clamped to the
//! last pixel. No antialiasing filter on downscaling (PIL's `resize` does filter, so it is *not*
//! this). See: PyTorch `aten/src/ATen/native/UpSample.h` `area_pixel_compute_source_index`.
//!
//! Pure computation; touches nothing outside its arguments.
use crate::model::ResizeMode;

/// One output coordinate's two source neighbours and the weight of the second.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Tap {
    pub i0: usize,
    pub i1: usize,
    pub w1: f32,
}

/// Fills `taps` (already `out_len` long) for resampling `in_len` source pixels to `taps.len()`.
pub(crate) fn fill_taps(in_len: usize, taps: &mut [Tap]) {
    let out_len = taps.len();
    // f64 so that the coordinate of the last pixel of a large image keeps its fraction.
    let scale = in_len as f64 / out_len as f64;
    let last = in_len.saturating_sub(1);
    for (d, tap) in taps.iter_mut().enumerate() {
        let src = ((d as f64 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (src as usize).min(last);
        let i1 = if i0 < last { i0 + 1 } else { i0 };
        *tap = Tap { i0, i1, w1: (src - i0 as f64) as f32 };
    }
}

/// A resampling kernel for one axis, any filter width: output `d` is
/// `sum(weights[d * ksize + k] * src[start[d] + k] for k in 0..ksize)`, with `start[d] + ksize`
/// never past the source and weights outside a pixel's support zero.
#[derive(Debug, Clone, Default)]
pub(crate) struct Kernel {
    pub ksize: usize,
    pub start: Vec<usize>,
    pub weights: Vec<f32>,
    /// The `(in_len, out_len)` the kernel holds: the slices of a series share a size, so the
    /// weights are computed once per size, not per slice (~25 us per slice for both models).
    filled_for: Option<(usize, usize)>,
}

impl Kernel {
    /// Sized for up to `max_out` outputs from up to `max_in` sources, any `out <= max_out`:
    /// `out * ksize <= out * (2 * ceil(in / out) + 1) <= 2 * in + 3 * out`.
    pub fn with_capacity(max_out: usize, max_in: usize) -> Kernel {
        Kernel { ksize: 0, start: vec![0; max_out], weights: vec![0.0; 2 * max_in + 3 * max_out], filled_for: None }
    }

    /// The triangle filter stretched by the downscale factor, as Pillow's `BILINEAR` resize
    /// computes it (`precompute_coeffs` in `libImaging/Resample.c`): output `d` is centred on
    /// source coordinate `(d + 0.5) * in / out`, the filter `max(1 - |t|, 0)` is widened by
    /// `max(in / out, 1)`, taps outside the image are dropped and the rest normalized to sum 1.
    /// Upscaling gives exactly the half-pixel bilinear of [`fill_taps`]. `1 <= out_len <= max_out`
    /// and `1 <= in_len <= max_in` of [`Kernel::with_capacity`] (the preprocessor's checks ensure it).
    pub fn fill_triangle(&mut self, in_len: usize, out_len: usize) {
        if self.filled_for == Some((in_len, out_len)) {
            return;
        }
        self.filled_for = Some((in_len, out_len));
        let scale = in_len as f64 / out_len as f64;
        let filterscale = scale.max(1.0);
        let support = filterscale;
        // Pillow truncates toward zero, then clamps: the same for the values that survive.
        let span = |d: usize| {
            let center = (d as f64 + 0.5) * scale;
            let lo = ((center - support + 0.5).max(0.0) as usize).min(in_len - 1);
            let hi = ((center + support + 0.5).max(0.0) as usize).clamp(lo + 1, in_len);
            (center, lo, hi)
        };
        // As many taps as the widest output needs (Pillow's bound, 2 * ceil(support) + 1, is up to
        // two more, which would be zeros multiplied on every row).
        let ksize = (0..out_len)
            .map(|d| {
                let (_, lo, hi) = span(d);
                hi - lo
            })
            .max()
            .unwrap_or(1)
            .min(in_len);
        self.ksize = ksize;
        let weights = &mut self.weights[..out_len * ksize];
        weights.fill(0.0);
        for (d, (start, w)) in self.start[..out_len].iter_mut().zip(weights.chunks_exact_mut(ksize)).enumerate() {
            let (center, lo, hi) = span(d);
            // Keep the window inside the source: shift it left at the right edge.
            let first = lo.min(in_len - ksize);
            *start = first;
            let end = hi.min(first + ksize);
            let tri = |x: usize| (1.0 - ((x as f64 - center + 0.5) / filterscale).abs()).max(0.0);
            let sum: f64 = (lo..end).map(tri).sum();
            if sum > 0.0 {
                for x in lo..end {
                    w[x - first] = (tri(x) / sum) as f32;
                }
            }
        }
    }
}

/// Outputs a [`Band`] computes together: one AVX2 vector of f32 (two SSE vectors).
pub(crate) const LANES: usize = 8;
/// Widest source a [`Band`] is laid out for; wider sources take the per-output form (a CT slice
/// is 512 or 1024 wide).
pub(crate) const BAND_MAX_IN: usize = 4096;

/// A [`Kernel`] laid out for the vector units, for the horizontal pass: the outputs in blocks of
/// [`LANES`]; every block reads `len` consecutive sources from `first[b]` and holds, for each of
/// them, `LANES` weights (zero where the source is outside that output's taps). Each lane adds
/// its kernel's terms in the kernel's order, plus exact zeros: the sums are bit for bit the
/// per-output dot products (a sum that starts at +0 never becomes -0, and the inputs are finite
/// window values). One vector multiply-add per source instead of `ksize` scalar ones per output,
/// and, as every block has the same length, two blocks at a time (two independent chains of
/// additions: a single chain waits on each addition's latency).
#[derive(Debug, Clone, Default)]
pub(crate) struct Band {
    first: Vec<usize>,
    len: usize,
    weights: Vec<f32>,
    /// `(in_len, out_len)` held, when the band is usable.
    filled_for: Option<(usize, usize)>,
}

impl Band {
    /// Room for the kernels of up to `max_out` outputs from up to `min(max_in, BAND_MAX_IN)`
    /// sources that matter here: `len` is at most `(LANES - 1) * in / out + ksize + 1` sources,
    /// about `(LANES + 1) * in / out + 4`, so `blocks * len * LANES` stays below
    /// `LANES * (4 * in + 2 * out)` for these; a kernel that does not fit is refused (see `fill`).
    pub fn with_capacity(max_out: usize, max_in: usize) -> Band {
        let blocks = max_out.div_ceil(LANES);
        let cap = LANES * (4 * max_in.min(BAND_MAX_IN) + 2 * max_out);
        Band { first: vec![0; blocks], len: 0, weights: vec![0.0; cap], filled_for: None }
    }

    /// Lays out `k` (filled for `in_len -> out_len`); false when it does not fit (a source wider
    /// than [`BAND_MAX_IN`], or more weights than the capacity): the caller then uses `k` itself.
    pub fn fill(&mut self, k: &Kernel, in_len: usize, out_len: usize) -> bool {
        if self.filled_for == Some((in_len, out_len)) {
            return true;
        }
        self.filled_for = None;
        let ks = k.ksize;
        let blocks = out_len.div_ceil(LANES);
        if in_len > BAND_MAX_IN
            || blocks > self.first.len()
            || k.start.len() < out_len
            || k.weights.len() < out_len * ks
        {
            return false;
        }
        let span = |b: usize| {
            let (d0, d1) = (b * LANES, ((b + 1) * LANES).min(out_len));
            k.start[d1 - 1] + ks - k.start[d0]
        };
        let len = (0..blocks).map(span).max().unwrap_or(0).min(in_len);
        let Some(all) = self.weights.get_mut(..blocks * len * LANES) else { return false };
        all.fill(0.0);
        for (b, w) in all.chunks_exact_mut((len * LANES).max(1)).enumerate() {
            let d0 = b * LANES;
            // Shifted left at the right edge so that every block reads `len` sources.
            let first = k.start[d0].min(in_len - len);
            for d in d0..((b + 1) * LANES).min(out_len) {
                for (j, &wk) in k.weights[d * ks..(d + 1) * ks].iter().enumerate() {
                    w[(k.start[d] + j - first) * LANES + (d - d0)] = wk;
                }
            }
            self.first[b] = first;
        }
        self.len = len;
        self.filled_for = Some((in_len, out_len));
        true
    }

    /// The band holds the kernel for `in_len -> out_len` (its last `fill` for that size fitted).
    pub fn holds(&self, in_len: usize, out_len: usize) -> bool {
        self.filled_for == Some((in_len, out_len))
    }

    /// Block `b`'s sources and weights (empty when out of range).
    #[inline(always)]
    fn parts<'a>(&'a self, src: &'a [f32], b: usize) -> (&'a [f32], &'a [f32]) {
        let len = self.len;
        let first = self.first.get(b).copied().unwrap_or(usize::MAX);
        let at = b.saturating_mul(len * LANES);
        match (src.get(first..first.saturating_add(len)), self.weights.get(at..at.saturating_add(len * LANES))) {
            (Some(s), Some(w)) => (s, w),
            _ => (&[], &[]),
        }
    }

    /// Blocks `b` and `b + 1`'s sums, their additions interleaved (inlined into the caller, so
    /// that it gets the caller's vector instructions and keeps the sums in registers).
    #[inline(always)]
    fn pair(&self, src: &[f32], b: usize) -> [[f32; LANES]; 2] {
        let (mut x, mut y) = ([0.0f32; LANES], [0.0f32; LANES]);
        let ((s0, w0), (s1, w1)) = (self.parts(src, b), self.parts(src, b + 1));
        for (((&v0, w0), &v1), w1) in s0.iter().zip(w0.chunks_exact(LANES)).zip(s1).zip(w1.chunks_exact(LANES)) {
            for l in 0..LANES {
                x[l] += w0[l] * v0;
                y[l] += w1[l] * v1;
            }
        }
        [x, y]
    }

    /// Block `b`'s sums.
    #[inline(always)]
    fn single(&self, src: &[f32], b: usize) -> [f32; LANES] {
        let mut x = [0.0f32; LANES];
        let (s, w) = self.parts(src, b);
        for (&v, w) in s.iter().zip(w.chunks_exact(LANES)) {
            for l in 0..LANES {
                x[l] += w[l] * v;
            }
        }
        x
    }

    /// `out[d] = sum(k.weights[d][j] * src[k.start[d] + j])` for the `out.len()` outputs of the
    /// last `fill`.
    #[inline(always)]
    pub fn apply(&self, src: &[f32], out: &mut [f32]) {
        // Whole pairs of blocks, then single blocks; each whole block is one vector store
        // (a slice copy of a length known only at run time would be a memcpy call).
        let mut groups = out.chunks_exact_mut(2 * LANES);
        let mut b = 0;
        for o in &mut groups {
            let sums = self.pair(src, b);
            for (o, sum) in o.chunks_exact_mut(LANES).zip(sums) {
                if let Ok(o) = <&mut [f32; LANES]>::try_from(o) {
                    *o = sum;
                }
            }
            b += 2;
        }
        let rest = groups.into_remainder();
        let mut singles = rest.chunks_exact_mut(LANES);
        for o in &mut singles {
            if let Ok(o) = <&mut [f32; LANES]>::try_from(o) {
                *o = self.single(src, b);
            }
            b += 1;
        }
        let tail = singles.into_remainder();
        if !tail.is_empty() {
            let sum = self.single(src, b);
            tail.copy_from_slice(&sum[..tail.len()]);
        }
    }
}

/// How a slice sits inside the network input, to map boxes back to slice pixels.
///
/// Coordinates are continuous pixel coordinates (pixel `i` covers `[i, i + 1)`), so
/// `network = slice * scale + pad` on each axis, exactly the geometry the resize used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub slice_width: usize,
    pub slice_height: usize,
    pub network_width: usize,
    pub network_height: usize,
    /// Network pixels per slice pixel, horizontally.
    pub scale_x: f32,
    /// Network pixels per slice pixel, vertically.
    pub scale_y: f32,
    /// Left padding, network pixels (0 for stretch).
    pub pad_x: f32,
    /// Top padding, network pixels (0 for stretch).
    pub pad_y: f32,
    /// Width of the resized slice inside the network input.
    pub inner_width: usize,
    /// Height of the resized slice inside the network input.
    pub inner_height: usize,
}

impl Letterbox {
    /// The placement `mode` gives a `slice_width` x `slice_height` slice in the network input.
    /// Letterbox centres the slice with one scale for both axes, rounding the inner size to whole
    /// pixels and the padding down (as darknet's `letterbox_image` does).
    pub fn new(
        mode: ResizeMode,
        slice_width: usize,
        slice_height: usize,
        network_width: usize,
        network_height: usize,
    ) -> Letterbox {
        let (sw, sh) = (slice_width.max(1), slice_height.max(1));
        let (inner_width, inner_height) = match mode {
            ResizeMode::Stretch => (network_width, network_height),
            ResizeMode::Letterbox => {
                let s = (network_width as f64 / sw as f64).min(network_height as f64 / sh as f64);
                let w = ((sw as f64 * s).round() as usize).clamp(1, network_width);
                let h = ((sh as f64 * s).round() as usize).clamp(1, network_height);
                (w, h)
            }
        };
        Letterbox {
            slice_width: sw,
            slice_height: sh,
            network_width,
            network_height,
            scale_x: (inner_width as f64 / sw as f64) as f32,
            scale_y: (inner_height as f64 / sh as f64) as f32,
            pad_x: ((network_width - inner_width) / 2) as f32,
            pad_y: ((network_height - inner_height) / 2) as f32,
            inner_width,
            inner_height,
        }
    }

    /// Network-input pixel coordinates to slice pixel coordinates (not clamped).
    pub fn to_slice(&self, x: f32, y: f32) -> (f32, f32) {
        ((x - self.pad_x) / self.scale_x, (y - self.pad_y) / self.scale_y)
    }

    /// Slice pixel coordinates to network-input pixel coordinates.
    pub fn to_network(&self, x: f32, y: f32) -> (f32, f32) {
        (x * self.scale_x + self.pad_x, y * self.scale_y + self.pad_y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps_match_torch_half_pixel() {
        // torch: F.interpolate(arange(2), size=4, align_corners=False) samples at
        // max(-0.25, 0), 0.25, 0.75, 1.25 -> clamped neighbour.
        let mut t = [Tap::default(); 4];
        fill_taps(2, &mut t);
        assert_eq!(t[0], Tap { i0: 0, i1: 1, w1: 0.0 });
        assert_eq!(t[1], Tap { i0: 0, i1: 1, w1: 0.25 });
        assert_eq!(t[2], Tap { i0: 0, i1: 1, w1: 0.75 });
        assert_eq!(t[3], Tap { i0: 1, i1: 1, w1: 0.25 });
        // Identity size: each output pixel is its own source.
        let mut t = [Tap::default(); 5];
        fill_taps(5, &mut t);
        for (d, tap) in t.iter().enumerate() {
            assert_eq!(tap.i0, d);
            assert_eq!(tap.w1, 0.0);
        }
    }

    #[test]
    fn triangle_kernel_rows_sum_to_one_and_stay_inside() {
        for &(i, o) in &[(512, 224), (512, 416), (7, 3), (3, 7), (1, 5), (16384, 1), (100, 100), (5, 4)] {
            let mut k = Kernel::with_capacity(o, 16384);
            k.fill_triangle(i, o);
            for d in 0..o {
                let w = &k.weights[d * k.ksize..(d + 1) * k.ksize];
                let sum: f32 = w.iter().sum();
                assert!((sum - 1.0).abs() < 1e-5, "{i}->{o} row {d} sums to {sum}");
                assert!(k.start[d] + k.ksize <= i, "{i}->{o} row {d} reads past the source");
                assert!(w.iter().all(|&v| v >= 0.0));
            }
        }
    }

    /// The banded layout gives the per-output dot products bit for bit, for downscales,
    /// upscales, sizes that are not a multiple of the lane count, and a refill to another size;
    /// a source wider than `BAND_MAX_IN` is refused (the caller keeps the per-output form).
    #[test]
    fn band_equals_the_per_output_sums_bit_for_bit() {
        let mut band = Band::with_capacity(416, 16384);
        for &(i, o) in &[
            (512, 224),
            (512, 416),
            (37, 16),
            (224, 416),
            (1, 5),
            (4096, 3),
            (100, 100),
            (512, 24),
            (300, 44),
            (512, 224),
        ] {
            let mut k = Kernel::with_capacity(o, 16384);
            k.fill_triangle(i, o);
            assert!(band.fill(&k, i, o), "{i}->{o} should fit");
            let mut x = 0x9e37_79b9u32;
            let src: Vec<f32> = (0..i)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x % 25600) as f32 / 100.0
                })
                .collect();
            let mut got = vec![f32::NAN; o];
            band.apply(&src, &mut got);
            for d in 0..o {
                let mut want = 0.0f32;
                for (j, &w) in k.weights[d * k.ksize..(d + 1) * k.ksize].iter().enumerate() {
                    want += w * src[k.start[d] + j];
                }
                assert_eq!(got[d].to_bits(), want.to_bits(), "{i}->{o} output {d}: {} vs {want}", got[d]);
            }
        }
        let mut k = Kernel::with_capacity(224, 16384);
        k.fill_triangle(BAND_MAX_IN + 1, 224);
        assert!(!band.fill(&k, BAND_MAX_IN + 1, 224));
    }

    #[test]
    fn triangle_upscale_is_half_pixel_bilinear() {
        for &(i, o) in &[(2, 4), (5, 13), (224, 416), (1, 3)] {
            let mut k = Kernel::with_capacity(o, i);
            k.fill_triangle(i, o);
            let mut t = vec![Tap::default(); o];
            fill_taps(i, &mut t);
            for d in 0..o {
                let mut dense = vec![0.0f32; i];
                for (j, &w) in k.weights[d * k.ksize..(d + 1) * k.ksize].iter().enumerate() {
                    dense[k.start[d] + j] += w;
                }
                let mut want = vec![0.0f32; i];
                want[t[d].i0] += 1.0 - t[d].w1;
                want[t[d].i1] += t[d].w1;
                for (a, b) in dense.iter().zip(&want) {
                    assert!((a - b).abs() < 1e-6, "{i}->{o} at {d}: {dense:?} vs {want:?}");
                }
            }
        }
    }

    #[test]
    fn letterbox_geometry() {
        let l = Letterbox::new(ResizeMode::Letterbox, 512, 256, 416, 416);
        assert_eq!((l.inner_width, l.inner_height), (416, 208));
        assert_eq!((l.pad_x, l.pad_y), (0.0, 104.0));
        assert_eq!(l.to_slice(0.0, 104.0), (0.0, 0.0));
        assert_eq!(l.to_slice(416.0, 312.0), (512.0, 256.0));
        let (x, y) = l.to_network(100.0, 50.0);
        assert_eq!(l.to_slice(x, y), (100.0, 50.0));

        let s = Letterbox::new(ResizeMode::Stretch, 512, 256, 416, 416);
        assert_eq!((s.pad_x, s.pad_y), (0.0, 0.0));
        assert_eq!(s.to_slice(416.0, 416.0), (512.0, 256.0));
    }
}
