//! The picture of the Secondary Capture: the key slice through the classifier's HU window, the
//! detector's boxes in red, and text burned in (a yellow banner at the top: the finding and
//! score, and "NOT FOR DIAGNOSIS" when demo models made it). Pure: pixels in, RGB bytes out.

use super::font;
use crate::preprocess::HuWindow;
use crate::slice::{Pixels, Slice};
use crate::store::overlay::{self, OverlayBox};

pub const NOT_FOR_DIAGNOSIS: &str = "NOT FOR DIAGNOSIS - DEMO MODELS";
const YELLOW: [u8; 3] = [255, 220, 0];

/// Interleaved RGB, `width * height * 3` bytes.
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

/// Draws the slice, `boxes` (`[x0, y0, x1, y1]` in slice pixels) and `lines` of text (the first
/// at the top, each on a black band so it reads on any anatomy).
pub fn render(slice: &Slice, window: HuWindow, boxes: &[[f32; 4]], lines: &[String]) -> Picture {
    let gray: Vec<u8> = match &slice.pixels {
        Pixels::Hu(v) => v.iter().map(|&h| window.gray(h).round() as u8).collect(),
        Pixels::Gray8(v) => v.clone(),
        Pixels::Gray16(v) => v.iter().map(|&g| (g / 257) as u8).collect(),
    };
    let (w, h) = (slice.width, slice.height);
    let ob: Vec<OverlayBox> = boxes
        .iter()
        .map(|b| OverlayBox {
            x0: b[0].max(0.0) as u32,
            y0: b[1].max(0.0) as u32,
            x1: (b[2].ceil().max(0.0) as u32).min(w),
            y1: (b[3].ceil().max(0.0) as u32).min(h),
            rgb: [255, 40, 40],
        })
        .collect();
    let mut img = overlay::draw(&gray, w, h, &ob);
    // 2x glyphs on a 512-pixel slice (14 px tall), never below 1x.
    let scale = (w / 256).clamp(1, 4);
    let line_h = 9 * scale;
    for (i, line) in lines.iter().enumerate() {
        let y0 = 2 + i as u32 * line_h;
        if y0 + line_h > h {
            break;
        }
        let tw = font::text_width(line, scale).min(w.saturating_sub(2));
        for y in y0..y0 + line_h {
            for x in 0..(tw + 4).min(w) {
                img.put_pixel(x, y, image::Rgb([0, 0, 0]));
            }
        }
        font::draw(line, 2, y0 + scale, scale, |x, y| {
            if x < w && y < h {
                img.put_pixel(x, y, image::Rgb(YELLOW));
            }
        });
    }
    Picture { width: w, height: h, rgb: img.into_raw() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slice::SeriesId;

    #[test]
    fn boxes_red_text_yellow_on_black_and_the_rest_windowed() {
        let (w, h) = (512u32, 512u32);
        let slice = Slice {
            source: "x.dcm".into(),
            frame: 0,
            width: w,
            height: h,
            pixels: Pixels::Hu(vec![100.0; (w * h) as usize]),
            series: SeriesId("1.2".into()),
            instance: Some(1),
            position_z: None,
        };
        let window = HuWindow { center_hu: 100.0, width_hu: 700.0 };
        let p = render(&slice, window, &[[200.0, 300.0, 240.0, 330.0]], &[NOT_FOR_DIAGNOSIS.to_string()]);
        assert_eq!(p.rgb.len(), (w * h * 3) as usize);
        let px = |x: u32, y: u32| {
            let i = ((y * w + x) * 3) as usize;
            [p.rgb[i], p.rgb[i + 1], p.rgb[i + 2]]
        };
        assert_eq!(px(199, 310), [255, 40, 40], "box outline");
        assert_eq!(px(220, 315), [128, 128, 128], "inside the box: the slice, windowed");
        assert_eq!(px(400, 400), [128, 128, 128]);
        let band: Vec<_> = (0..100).map(|x| px(x, 6)).collect();
        assert!(band.contains(&YELLOW) && band.contains(&[0, 0, 0]), "text on its band");
    }
}
