//! Capture-side cost per 1080p console frame, against the 33.3 ms frame interval at 30 fps:
//! gray conversion (YUYV, GREY, MJPEG), viewport crop, and the change test (fingerprint and
//! comparison; `SliceDetector::push`, which includes its own crop). Frames come from the console
//! recorder, 60 frames with a slice change every 6. Median and p99 in ms, and the share of the
//! frame interval. Run: `cargo bench --bench capture` (single thread, release).

use pe_sentinel::source::capture::console::{self, ConsoleSim, READOUT, VIEWPORT};
use pe_sentinel::source::capture::convert::GrayConverter;
use pe_sentinel::source::capture::detect::{DetectConfig, SliceDetector};
use pe_sentinel::source::capture::viewport::crop_into;
use pe_sentinel::source::capture::{Frame, PixelFormat};
use std::time::Instant;

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (p(0.5), p(0.99))
}

fn line(what: &str, v: Vec<f64>) {
    let (med, p99) = stats(v);
    let interval = 1000.0 / f64::from(console::FPS);
    println!(
        "{what:<34} median {med:7.3} ms  p99 {p99:7.3} ms  ({:5.1} % of a {interval:.1} ms frame)",
        100.0 * p99 / interval
    );
}

fn main() {
    let frames = 60u64;
    let slices = console::phantom_slices(1, 0, 10, true);
    let sched: Vec<usize> = (0..frames as usize).map(|n| n / 6).collect();
    let mut sim = ConsoleSim::new(slices, sched);
    println!("capture bench: {frames} frames of {}x{} per format", console::WIDTH, console::HEIGHT);
    let mut crop = Vec::new();
    for pixel in [PixelFormat::Yuyv, PixelFormat::Grey, PixelFormat::Mjpeg] {
        let encoded: Vec<Vec<u8>> = (0..frames)
            .map(|n| {
                let mut b = Vec::new();
                sim.encode(n, pixel, &mut b).expect("encode");
                b
            })
            .collect();
        let format = console::stream_format(pixel);
        let mut conv = GrayConverter::new(format.width, format.height);
        let mut det_cfg = DetectConfig::new(VIEWPORT);
        det_cfg.masks = vec![READOUT];
        let mut det = SliceDetector::new(det_cfg);
        let (mut tc, mut tcrop, mut tdet) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..3 {
            for (n, data) in encoded.iter().enumerate() {
                let f = Frame { format, data, sequence: n as u64, timestamp_us: 0 };
                let t = Instant::now();
                let g = conv.convert(&f).expect("convert");
                let c = t.elapsed().as_secs_f64() * 1e3;
                let t = Instant::now();
                crop_into(g, &VIEWPORT, &mut crop);
                let cr = t.elapsed().as_secs_f64() * 1e3;
                let t = Instant::now();
                std::hint::black_box(det.push(g));
                let d = t.elapsed().as_secs_f64() * 1e3;
                if round > 0 {
                    tc.push(c);
                    tcrop.push(cr);
                    tdet.push(d);
                }
            }
        }
        line(&format!("convert {pixel} -> gray"), tc);
        if pixel == PixelFormat::Yuyv {
            line("crop 512x512 viewport", tcrop);
            line("change test (crop+fingerprint+compare)", tdet);
        }
    }
}
