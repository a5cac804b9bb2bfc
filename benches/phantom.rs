//! Phantom generation speed: slices per second per core at 512x512, with each stage's median and
//! p99, next to a peer measured in the same run (PNG encoding of the same slice by the `image`
//! crate, a well-known cost). Run: `cargo bench --bench phantom` (single thread, release).

use pe_sentinel::phantom::dicom_writer::{self, CtSlice};
use pe_sentinel::phantom::render::{Canvas, SIZE};
use pe_sentinel::phantom::{window_gray, SeriesPlan};
use std::time::Instant;

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (p(0.5), p(0.99))
}

fn main() {
    let slices = 200u32;
    let series = 3u32;
    let (mut render, mut dicom, mut png) = (Vec::new(), Vec::new(), Vec::new());
    let mut canvas = Canvas::default();
    let mut boxes = Vec::new();
    let mut stored = vec![0u16; SIZE * SIZE];
    let mut gray = vec![0u8; SIZE * SIZE];
    let mut buf = Vec::new();
    let mut png_buf = Vec::new();
    let total = Instant::now();
    for s in 0..series {
        let plan = SeriesPlan::new(1, s, slices, s % 2 == 0);
        for k in 0..slices {
            let t = Instant::now();
            plan.render(k, &mut canvas, &mut boxes);
            render.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            dicom_writer::store_hu(&canvas.hu, &mut stored);
            let slice = CtSlice {
                study_uid: &plan.study_uid,
                series_uid: &plan.series_uid,
                ..CtSlice::fixed(&stored, SIZE as u16, k + 1)
            };
            dicom_writer::encode(&slice, &mut buf);
            dicom.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            for (g, &h) in gray.iter_mut().zip(&canvas.hu) {
                *g = window_gray(h.round(), 100.0, 700.0);
            }
            png_buf.clear();
            use image::ImageEncoder;
            image::codecs::png::PngEncoder::new(&mut png_buf)
                .write_image(&gray, SIZE as u32, SIZE as u32, image::ExtendedColorType::L8)
                .expect("encoding an in-memory PNG");
            png.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let wall = total.elapsed().as_secs_f64();
    let n = (slices * series) as f64;
    let (rm, rp) = stats(render.clone());
    let (dm, dp) = stats(dicom);
    let (pm, pp) = stats(png);
    println!("phantom bench: {} slices of {SIZE}x{SIZE}, 1 thread", n as u32);
    println!("{:<28} {:>10} {:>10}", "stage", "median ms", "p99 ms");
    println!("{:<28} {:>10.2} {:>10.2}", "render (scene, blur, noise)", rm, rp);
    println!("{:<28} {:>10.2} {:>10.2}", "DICOM encode", dm, dp);
    println!("{:<28} {:>10.2} {:>10.2}", "peer: window + PNG encode", pm, pp);
    println!("render / PNG-encode peer ratio (median): {:.2}", rm / pm);
    println!("slices per second per core (render + DICOM + PNG, no disk): {:.1}", n / wall);
    println!("a 400-slice series at this rate: {:.1} s on one core", 400.0 / (n / wall));
}
