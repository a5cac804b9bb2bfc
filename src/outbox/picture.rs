//! The picture of the Secondary Capture: the key slice through the classifier's HU window, the
//! detector's boxes in red, and text burned in (a yellow banner at the top: the finding and
//! score, and "NOT FOR DIAGNOSIS" when demo models made it), lines too long wrapped; and a text
//! card for a result with no slice to show. Pure: pixels in, RGB bytes out.

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
    // Lines too long for the picture go on to the next line rather than off its edge.
    let per_line = (w.saturating_sub(4) / (6 * scale)).max(1) as usize;
    let lines: Vec<String> = lines.iter().flat_map(|l| wrap(l, per_line)).collect();
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

/// A text card: `lines` in yellow on black, `width` x `height`, for a result with no slice to
/// show (a series that was not analysed: its pixels were never decoded).
pub fn card(width: u32, height: u32, lines: &[String]) -> Picture {
    let slice = Slice {
        source: std::path::PathBuf::new(),
        frame: 0,
        width,
        height,
        pixels: Pixels::Gray8(vec![0; (width * height) as usize]),
        series: crate::slice::SeriesId(String::new()),
        instance: None,
        position_z: None,
        order: 0,
    };
    let lines: Vec<String> = lines.iter().map(|l| printable(l)).collect();
    render(&slice, HuWindow { center_hu: 0.0, width_hu: 1.0 }, &[], &lines)
}

/// `text` in the font's characters: upper case; `;` as `,`; quotes dropped; others as a space.
fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '"' | '\''))
        .map(|c| match c.to_ascii_uppercase() {
            ';' => ',',
            '[' | '<' | '{' => '(',
            ']' | '>' | '}' => ')',
            c @ ('A'..='Z' | '0'..='9' | ' ' | '.' | ',' | ':' | '-' | '+' | '/' | '(' | ')' | '%' | '=' | '!') => c,
            _ => ' ',
        })
        .collect()
}

/// `text` cut into lines of at most `width` characters, at spaces where it can.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let mut word = word.to_string();
        while word.chars().count() > width {
            if !line.is_empty() {
                out.push(std::mem::take(&mut line));
            }
            let head: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            out.push(head);
        }
        let fits = line.is_empty() || line.chars().count() + 1 + word.chars().count() <= width;
        if !fits {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() || out.is_empty() {
        out.push(line);
    }
    out
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
            order: 1,
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

    #[test]
    fn long_lines_wrap_at_spaces_and_a_card_is_text_on_black() {
        assert_eq!(wrap("AB CD EF", 5), ["AB CD", "EF"]);
        assert_eq!(wrap("ABCDEFG", 3), ["ABC", "DEF", "G"]);
        assert_eq!(wrap("", 3), [""]);
        assert_eq!(printable("SliceThickness 5 mm; \"x_y\""), "SLICETHICKNESS 5 MM, X Y");
        let long = "NOT ANALYSED ".repeat(8);
        let p = card(512, 512, &[long]);
        let yellow_rows =
            (0..512u32).filter(|&y| (0..512u32).any(|x| p.rgb[((y * 512 + x) * 3) as usize..][..3] == YELLOW)).count();
        // 104 characters at 42 a line: three lines of 14-pixel glyphs.
        assert!(yellow_rows > 28 && yellow_rows <= 3 * 18, "{yellow_rows} rows with text");
        assert!(p.rgb[(400 * 512 * 3)..].iter().all(|&b| b == 0), "below the text: black");
    }
}
