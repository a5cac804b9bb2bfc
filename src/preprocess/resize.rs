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
