//! Review overlays: a gray slice with boxes drawn over it, saved as an RGB PNG. Used for every
//! suspicious slice the daemon sees and for the phantom's documentation picture. Writes one file
//! per call, nothing else.

use image::{Rgb, RgbImage};
use std::path::Path;

/// A box to draw, in the slice's pixel coordinates (end-exclusive), with its colour.
#[derive(Debug, Clone, Copy)]
pub struct OverlayBox {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
    pub rgb: [u8; 3],
}

/// Draws `boxes` (2 px outline, outside the box so the boxed pixels stay visible) over a gray image.
pub fn draw(gray: &[u8], width: u32, height: u32, boxes: &[OverlayBox]) -> RgbImage {
    let mut img = RgbImage::from_fn(width, height, |x, y| {
        let g = gray.get((y * width + x) as usize).copied().unwrap_or(0);
        Rgb([g, g, g])
    });
    for b in boxes {
        for t in 1..=2u32 {
            let (x0, y0) = (b.x0.saturating_sub(t), b.y0.saturating_sub(t));
            let (x1, y1) = ((b.x1 + t - 1).min(width - 1), (b.y1 + t - 1).min(height - 1));
            for x in x0..=x1 {
                img.put_pixel(x, y0, Rgb(b.rgb));
                img.put_pixel(x, y1, Rgb(b.rgb));
            }
            for y in y0..=y1 {
                img.put_pixel(x0, y, Rgb(b.rgb));
                img.put_pixel(x1, y, Rgb(b.rgb));
            }
        }
    }
    img
}

/// Draws and saves as PNG.
pub fn save(path: &Path, gray: &[u8], width: u32, height: u32, boxes: &[OverlayBox]) -> Result<(), image::ImageError> {
    draw(gray, width, height, boxes).save_with_format(path, image::ImageFormat::Png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outline_surrounds_the_box_and_leaves_it_untouched() {
        let gray = vec![100u8; 32 * 32];
        let img = draw(&gray, 32, 32, &[OverlayBox { x0: 10, y0: 10, x1: 15, y1: 14, rgb: [255, 0, 0] }]);
        assert_eq!(img.get_pixel(9, 12).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(15, 12).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(12, 9).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(12, 14).0, [255, 0, 0]);
        for (x, y) in [(10, 10), (14, 13), (12, 12)] {
            assert_eq!(img.get_pixel(x, y).0, [100, 100, 100]);
        }
        assert_eq!(img.get_pixel(0, 0).0, [100, 100, 100]);
    }
}
