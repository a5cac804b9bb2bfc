//! Renders the README's picture: a positive phantom slice (console window W700/L100) with its
//! truth boxes in red, next to a crop enlarged 3x around the largest box.
//! Usage: `cargo run --example doc_picture -- docs/phantom-positive-slice.png [SEED]`

use pe_sentinel::phantom::{
    render::{Canvas, SIZE},
    window_gray, SeriesPlan, PNG_WINDOW_CENTER, PNG_WINDOW_WIDTH,
};
use pe_sentinel::store::overlay::{self, OverlayBox};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let out = args.get(1).ok_or("usage: doc_picture OUT.png [SEED]")?;
    let seed: u64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(3);
    let slices = 96;
    let plan = SeriesPlan::new(seed, 0, slices, true);
    let mut canvas = Canvas::default();
    let mut boxes = Vec::new();
    // Pick the slice whose largest box is biggest: the clearest view of a defect.
    let mut best = (0, 0u32);
    for k in 0..slices {
        plan.render(k, &mut canvas, &mut boxes);
        let area = boxes.iter().map(|b| (b.x1 - b.x0) * (b.y1 - b.y0)).max().unwrap_or(0);
        if area > best.1 {
            best = (k, area);
        }
    }
    plan.render(best.0, &mut canvas, &mut boxes);
    let gray: Vec<u8> =
        canvas.hu.iter().map(|&h| window_gray(h.round(), PNG_WINDOW_CENTER, PNG_WINDOW_WIDTH)).collect();
    let obs: Vec<OverlayBox> =
        boxes.iter().map(|b| OverlayBox { x0: b.x0, y0: b.y0, x1: b.x1, y1: b.y1, rgb: [255, 40, 40] }).collect();
    let full = overlay::draw(&gray, SIZE as u32, SIZE as u32, &obs);
    // Enlarged crop around the largest box.
    let b = boxes.iter().max_by_key(|b| (b.x1 - b.x0) * (b.y1 - b.y0)).ok_or("no box")?;
    let (cx, cy) = ((b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2);
    let half = 42u32;
    let x0 = cx.saturating_sub(half).min(SIZE as u32 - 2 * half);
    let y0 = cy.saturating_sub(half).min(SIZE as u32 - 2 * half);
    let mut sheet = image::RgbImage::new(SIZE as u32 * 2, SIZE as u32);
    image::imageops::replace(&mut sheet, &full, 0, 0);
    let crop = image::imageops::crop_imm(&full, x0, y0, 2 * half, 2 * half).to_image();
    let big = image::imageops::resize(&crop, SIZE as u32, SIZE as u32, image::imageops::FilterType::Nearest);
    image::imageops::replace(&mut sheet, &big, SIZE as i64, 0);
    sheet.save(out)?;
    println!("seed {seed}, slice {} of {slices}, {} box(es), written to {out}", best.0 + 1, boxes.len());
    Ok(())
}
