//! Review overlays: a gray slice with boxes drawn over it, saved as an RGB PNG. Used for every
//! suspicious slice the daemon sees and for the phantom's documentation picture. Writes one file
//! per call (and, for [`write_slice`], the series folder it goes in), nothing else.

use image::{Rgb, RgbImage};
use std::path::{Path, PathBuf};

use crate::postprocess::Detection;
use crate::preprocess::HuWindow;
use crate::slice::{Pixels, Slice};

/// Writes the overlay of one analysed slice to `root/<series>/<name>-f<frame>.png` (the series id
/// made path-safe): HU through `window`, display gray as shown, `detections` in red. Returns the
/// file written, or what failed and where.
pub fn write_slice(
    root: &Path,
    slice: &Slice,
    name: &str,
    window: HuWindow,
    detections: &[Detection],
) -> Result<PathBuf, String> {
    let gray: Vec<u8> = match &slice.pixels {
        Pixels::Hu(v) => v.iter().map(|&h| window.gray(h).round() as u8).collect(),
        Pixels::Gray8(v) => v.clone(),
        Pixels::Gray16(v) => v.iter().map(|&g| (g / 257) as u8).collect(),
    };
    let boxes: Vec<OverlayBox> = detections
        .iter()
        .map(|d| OverlayBox {
            x0: d.bbox.x0 as u32,
            y0: d.bbox.y0 as u32,
            x1: d.bbox.x1.ceil() as u32,
            y1: d.bbox.y1.ceil() as u32,
            rgb: [255, 40, 40],
        })
        .collect();
    let mut safe: String = slice
        .series
        .0
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
        .collect();
    // "", "." and ".." (a series id is outside input) would name the root or its parent.
    if safe.chars().all(|c| c == '.') {
        safe.insert(0, '_');
    }
    let dir = root.join(safe);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create overlay folder {}: {e}", dir.display()))?;
    let path = dir.join(format!("{name}-f{}.png", slice.frame));
    save(&path, &gray, slice.width, slice.height, &boxes)
        .map_err(|e| format!("cannot write overlay {}: {e}", path.display()))?;
    Ok(path)
}

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

    #[test]
    fn write_slice_windows_hu_boxes_the_detection_and_keeps_the_path_safe() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (w, h) = (40u32, 30u32);
        // -250 HU is the window's black, 450 HU its white (centre 100, width 700).
        let hu: Vec<f32> = (0..w * h).map(|i| if i % w < 20 { -250.0 } else { 450.0 }).collect();
        let slice = Slice {
            source: PathBuf::from("x.dcm"),
            frame: 2,
            width: w,
            height: h,
            pixels: Pixels::Hu(hu),
            series: crate::slice::SeriesId("../a/b c".into()),
            instance: Some(1),
            order: 1,
            position_z: None,
        };
        let det = Detection {
            bbox: crate::postprocess::BBox { x0: 5.0, y0: 5.0, x1: 10.2, y1: 9.0 },
            confidence: 0.9,
            class: 0,
        };
        let window = HuWindow { center_hu: 100.0, width_hu: 700.0 };
        let path = write_slice(dir.path(), &slice, "s1", window, &[det]).expect("written");
        assert_eq!(path, dir.path().join(".._a_b_c").join("s1-f2.png"));
        let img = image::open(&path).expect("a PNG").to_rgb8();
        assert_eq!(img.dimensions(), (w, h));
        assert_eq!(img.get_pixel(30, 20).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(15, 20).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(4, 7).0, [255, 40, 40], "the box's outline, left of x0");
        // A series id of dots stays inside the root.
        let dots = Slice { series: crate::slice::SeriesId("..".into()), ..slice.clone() };
        let p = write_slice(dir.path(), &dots, "s1", window, &[]).expect("written");
        assert_eq!(p, dir.path().join("_..").join("s1-f2.png"));
        // A folder that cannot be created is an error naming it, not a panic.
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").expect("write");
        let err = write_slice(&blocker, &slice, "s1", window, &[]).expect_err("a file is not a folder");
        assert!(err.contains("cannot create overlay folder"), "{err}");
    }
}
