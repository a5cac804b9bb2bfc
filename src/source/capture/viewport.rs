//! The viewport: the pixel rectangle of the console screen that shows the CT image. Configured
//! by the installer (confirmed with `pe-sentinel check --capture`), or proposed by
//! [`find_viewport`]: the largest dark, roughly square region with image content. Also the crop
//! into a reused buffer and drawing rectangles for the check picture. Pure computation.

use super::convert::GrayFrame;

/// A pixel rectangle: columns x..x+width, rows y..y+height.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    pub fn new(x: u32, y: u32, width: u32, height: u32) -> Self {
        Self { x, y, width, height }
    }

    pub fn right(&self) -> u32 {
        self.x + self.width
    }

    pub fn bottom(&self) -> u32 {
        self.y + self.height
    }

    /// Whether the rectangle lies inside a `w` x `h` frame and is not empty.
    pub fn fits(&self, w: u32, h: u32) -> bool {
        self.width > 0 && self.height > 0 && self.right() <= w && self.bottom() <= h
    }

    /// The part of `other` inside `self`, in `self`'s coordinates.
    pub fn intersect_local(&self, other: &Rect) -> Option<Rect> {
        let x0 = self.x.max(other.x);
        let y0 = self.y.max(other.y);
        let x1 = self.right().min(other.right());
        let y1 = self.bottom().min(other.bottom());
        (x0 < x1 && y0 < y1).then(|| Rect::new(x0 - self.x, y0 - self.y, x1 - x0, y1 - y0))
    }
}

impl std::fmt::Display for Rect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{} at ({}, {})", self.width, self.height, self.x, self.y)
    }
}

/// Copies the viewport out of `frame` into `out` (resized only if the viewport changed size).
/// The caller has checked `rect.fits(frame.width, frame.height)`.
pub fn crop_into(frame: &GrayFrame, rect: &Rect, out: &mut Vec<u8>) {
    let (w, fw) = (rect.width as usize, frame.width as usize);
    out.resize(w * rect.height as usize, 0);
    for (r, dst) in out.chunks_exact_mut(w).enumerate() {
        let start = (rect.y as usize + r) * fw + rect.x as usize;
        dst.copy_from_slice(&frame.pixels[start..start + w]);
    }
}

/// Gray level at or below which a pixel counts as the viewport's dark background.
pub const DARK: u8 = 24;
/// The finder works on blocks of this many pixels square (then refines edges at full resolution).
const BLOCK: usize = 4;

/// Proposes the viewport: the bounding box of the largest connected dark region (at block
/// resolution, pieces cut apart by a bright band merged) that is roughly square (aspect 0.75..1.33), at least 128 pixels on a side, and has
/// image content (5..90 % of its box not dark). Edges are refined at full resolution to the
/// outermost dark pixel rows/columns. `None` when nothing qualifies.
pub fn find_viewport(frame: &GrayFrame) -> Option<Rect> {
    let (fw, fh) = (frame.width as usize, frame.height as usize);
    let (bw, bh) = (fw / BLOCK, fh / BLOCK);
    if bw < 2 || bh < 2 {
        return None;
    }
    // A block is dark when all its pixels are.
    let mut dark = vec![false; bw * bh];
    for by in 0..bh {
        for bx in 0..bw {
            let mut all = true;
            'b: for y in by * BLOCK..(by + 1) * BLOCK {
                for &v in &frame.pixels[y * fw + bx * BLOCK..y * fw + (bx + 1) * BLOCK] {
                    if v > DARK {
                        all = false;
                        break 'b;
                    }
                }
            }
            dark[by * bw + bx] = all;
        }
    }
    let mut label = vec![u32::MAX; bw * bh];
    let mut stack = Vec::new();
    // Components as block boxes [x0, y0, x1, y1] (inclusive) with their dark block counts.
    let mut comps: Vec<([usize; 4], usize)> = Vec::new();
    for start in 0..bw * bh {
        if !dark[start] || label[start] != u32::MAX {
            continue;
        }
        let id = start as u32;
        label[start] = id;
        stack.push(start);
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        let mut count = 0usize;
        while let Some(i) = stack.pop() {
            let (x, y) = (i % bw, i / bw);
            count += 1;
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
            let mut visit = |j: usize| {
                if dark[j] && label[j] == u32::MAX {
                    label[j] = id;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < bw {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - bw);
            }
            if y + 1 < bh {
                visit(i + bw);
            }
        }
        if count >= 4 {
            comps.push(([x0, y0, x1, y1], count));
        }
    }
    // Bright structures spanning the image (a CT table, a body touching the edge) cut its dark
    // background into pieces: merge pieces that lie one beside the other with the same span.
    const SLACK: usize = 2;
    const GAP: usize = 32;
    let mut merged = true;
    while merged {
        merged = false;
        'outer: for i in 0..comps.len() {
            for j in 0..comps.len() {
                if i == j {
                    continue;
                }
                let (a, b) = (comps[i].0, comps[j].0);
                let x_within = a[0].abs_diff(b[0]) <= SLACK && a[2].abs_diff(b[2]) <= SLACK;
                let y_within = a[1].abs_diff(b[1]) <= SLACK && a[3].abs_diff(b[3]) <= SLACK;
                let y_near = b[1] <= a[3] + GAP && a[1] <= b[3] + GAP;
                let x_near = b[0] <= a[2] + GAP && a[0] <= b[2] + GAP;
                if (x_within && y_near) || (y_within && x_near) {
                    let n = comps[i].1 + comps[j].1;
                    comps[i] = ([a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])], n);
                    comps.swap_remove(j);
                    merged = true;
                    break 'outer;
                }
            }
        }
    }
    let mut best: Option<(u64, Rect)> = None;
    for ([x0, y0, x1, y1], count) in comps {
        let (w, h) = ((x1 - x0 + 1) * BLOCK, (y1 - y0 + 1) * BLOCK);
        let aspect = w as f32 / h as f32;
        let content = 1.0 - count as f32 / ((x1 - x0 + 1) * (y1 - y0 + 1)) as f32;
        if w < 128 || h < 128 || !(0.75..=1.34).contains(&aspect) || !(0.05..=0.9).contains(&content) {
            continue;
        }
        let area = (w * h) as u64;
        if !matches!(best, Some((a, _)) if a >= area) {
            best = Some((area, Rect::new((x0 * BLOCK) as u32, (y0 * BLOCK) as u32, w as u32, h as u32)));
        }
    }
    best.map(|(_, r)| refine(frame, r))
}

/// Moves each edge of a block-resolution box out to the last full-resolution line that is still
/// mostly dark, at most one block.
fn refine(frame: &GrayFrame, r: Rect) -> Rect {
    let fw = frame.width as usize;
    let px = |x: usize, y: usize| frame.pixels[y * fw + x];
    let b = BLOCK as i64;
    // A line belongs to the viewport when at least half of it (over the box span) is dark.
    let col_dark = |x: i64| -> bool {
        if x < 0 || x >= frame.width as i64 {
            return false;
        }
        let n = (r.y..r.bottom()).filter(|&y| px(x as usize, y as usize) <= DARK).count();
        n * 2 >= r.height as usize
    };
    let row_dark = |y: i64| -> bool {
        if y < 0 || y >= frame.height as i64 {
            return false;
        }
        let n = (r.x..r.right()).filter(|&x| px(x as usize, y as usize) <= DARK).count();
        n * 2 >= r.width as usize
    };
    let (mut x0, mut y0, mut x1, mut y1) = (r.x as i64, r.y as i64, r.right() as i64 - 1, r.bottom() as i64 - 1);
    // The block-resolution box lies inside the true edge (a block straddling it is not all
    // dark), so each edge only grows outward, by less than a block.
    let grow = |v: &mut i64, step: i64, ok: &dyn Fn(i64) -> bool| {
        for _ in 0..b {
            if !ok(*v + step) {
                break;
            }
            *v += step;
        }
    };
    grow(&mut x0, -1, &col_dark);
    grow(&mut x1, 1, &col_dark);
    grow(&mut y0, -1, &row_dark);
    grow(&mut y1, 1, &row_dark);
    Rect::new(x0 as u32, y0 as u32, (x1 - x0 + 1) as u32, (y1 - y0 + 1) as u32)
}

/// Draws a rectangle outline (2 px) into an RGB image, clipped to it.
pub fn draw_rect(img: &mut image::RgbImage, r: &Rect, rgb: [u8; 3]) {
    let (w, h) = img.dimensions();
    for t in 0..2u32 {
        for x in r.x.saturating_sub(t + 1)..(r.right() + t + 1).min(w) {
            for y in [r.y.checked_sub(t + 1), Some(r.bottom() + t)].into_iter().flatten() {
                if y < h {
                    img.put_pixel(x, y, image::Rgb(rgb));
                }
            }
        }
        for y in r.y.saturating_sub(t + 1)..(r.bottom() + t + 1).min(h) {
            for x in [r.x.checked_sub(t + 1), Some(r.right() + t)].into_iter().flatten() {
                if x < w {
                    img.put_pixel(x, y, image::Rgb(rgb));
                }
            }
        }
    }
}

/// The check picture: the gray frame with the viewport (green) and masks (orange) drawn just
/// outside their edges, so the pixels inside stay visible.
pub fn check_picture(frame: &GrayFrame, viewport: Option<&Rect>, masks: &[Rect]) -> image::RgbImage {
    let mut img = image::RgbImage::from_fn(frame.width, frame.height, |x, y| {
        let v = frame.pixels[y as usize * frame.width as usize + x as usize];
        image::Rgb([v, v, v])
    });
    for m in masks {
        draw_rect(&mut img, m, [255, 150, 0]);
    }
    if let Some(v) = viewport {
        draw_rect(&mut img, v, [0, 230, 0]);
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_copies_the_rectangle_and_intersections_are_local() {
        let f = GrayFrame { width: 4, height: 3, pixels: (0..12).collect() };
        let mut out = Vec::new();
        crop_into(&f, &Rect::new(1, 1, 2, 2), &mut out);
        assert_eq!(out, vec![5, 6, 9, 10]);
        let v = Rect::new(10, 10, 100, 100);
        assert_eq!(v.intersect_local(&Rect::new(0, 0, 20, 15)), Some(Rect::new(0, 0, 10, 5)));
        assert_eq!(v.intersect_local(&Rect::new(200, 0, 20, 15)), None);
        assert!(v.fits(110, 110) && !v.fits(109, 110));
    }

    #[test]
    fn the_finder_finds_a_dark_square_with_content_on_a_gray_screen_to_the_pixel() {
        let (w, h) = (640u32, 400u32);
        let truth = Rect::new(203, 61, 301, 299);
        let mut f = GrayFrame::new(w, h);
        for y in 0..h {
            for x in 0..w {
                let inside = x >= truth.x && x < truth.right() && y >= truth.y && y < truth.bottom();
                let (cx, cy) = (x as f32 - 353.0, y as f32 - 210.0);
                let body = cx * cx / 110.0f32.powi(2) + cy * cy / 90.0f32.powi(2) < 1.0;
                f.pixels[(y * w + x) as usize] = match (inside, body) {
                    (true, true) => 140,
                    (true, false) => 3,
                    // Chrome, with a dark toolbar strip too thin and wide to be a viewport.
                    (false, _) if (10..30).contains(&y) => 10,
                    (false, _) => 90,
                };
            }
        }
        assert_eq!(find_viewport(&f), Some(truth));
        let blank = GrayFrame { width: w, height: h, pixels: vec![90; (w * h) as usize] };
        assert_eq!(find_viewport(&blank), None);
    }
}
