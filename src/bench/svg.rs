//! `latency.svg`, the picture `bench` writes beside its figures: end-to-end latency per slice over
//! the run (one line per engine, the budget dashed) and a histogram per stage. Pure text out of
//! the runs it is given; touches no file.

use super::EngineRun;
use crate::budget::SliceTimes;
use std::fmt::Write as _;

const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// `latency.svg`: end-to-end latency per slice over the run (one line per engine, the budget
/// dashed), and a histogram per stage.
pub fn svg(runs: &[EngineRun], budget_ms: u32) -> String {
    let (w, top_h, cell_w, cell_h) = (960.0f64, 260.0f64, 240.0f64, 150.0f64);
    let h = top_h + 2.0 * cell_h + 60.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    // Top: total latency per slice.
    let (x0, y0, pw, ph) = (50.0, 30.0, w - 70.0, top_h - 60.0);
    let n = runs.iter().map(|r| r.rows.len()).max().unwrap_or(1).max(2);
    let ymax = runs
        .iter()
        .flat_map(|r| r.rows.iter().map(|x| f64::from(x.times.total) / 1000.0))
        .fold(f64::from(budget_ms) * 1.1, f64::max)
        .max(1.0);
    let _ = writeln!(
        s,
        r#"<text x="{x0}" y="18" font-size="13">End-to-end latency per slice (arrival to verdict), ms</text>"#
    );
    let _ = writeln!(s, r#"<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="gray"/>"#);
    for k in 0..=4 {
        let v = ymax * f64::from(k) / 4.0;
        let y = y0 + ph - ph * v / ymax;
        let _ = writeln!(s, r#"<text x="{}" y="{:.1}" text-anchor="end">{v:.0}</text>"#, x0 - 4.0, y + 4.0);
    }
    let by = y0 + ph - ph * f64::from(budget_ms) / ymax;
    let _ = writeln!(
        s,
        r#"<line x1="{x0}" x2="{}" y1="{by:.1}" y2="{by:.1}" stroke="dimgray" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" text-anchor="end">budget {budget_ms} ms</text>"#,
        x0 + pw,
        x0 + pw - 4.0,
        by - 4.0
    );
    for (k, r) in runs.iter().enumerate() {
        let c = COLORS[k % COLORS.len()];
        let pts: Vec<String> = r
            .rows
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let px = x0 + pw * i as f64 / (n - 1) as f64;
                let py = y0 + ph - ph * (f64::from(x.times.total) / 1000.0) / ymax;
                format!("{px:.1},{py:.1}")
            })
            .collect();
        let _ = writeln!(s, r#"<polyline fill="none" stroke="{c}" stroke-width="1.2" points="{}"/>"#, pts.join(" "));
        let _ =
            writeln!(s, r#"<text x="{}" y="{}" fill="{c}">{}</text>"#, x0 + 8.0, y0 + 14.0 + 13.0 * k as f64, r.engine);
    }
    let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">slice</text>"#, x0 + pw / 2.0, y0 + ph + 16.0);
    // Bottom: one histogram per stage.
    for (i, name) in SliceTimes::STAGES.iter().enumerate() {
        let cx = 20.0 + cell_w * (i % 4) as f64;
        let cy = top_h + cell_h * (i / 4) as f64 + 10.0;
        let (hx, hy, hw, hh) = (cx + 10.0, cy + 20.0, cell_w - 40.0, cell_h - 50.0);
        let hi = runs
            .iter()
            .flat_map(|r| r.rows.iter().map(|x| f64::from(x.times.values()[i]) / 1000.0))
            .fold(0.0f64, f64::max)
            .max(0.001);
        let _ = writeln!(s, r#"<text x="{hx}" y="{}">{name} (0 to {hi:.1} ms)</text>"#, cy + 12.0);
        let _ = writeln!(s, r#"<rect x="{hx}" y="{hy}" width="{hw}" height="{hh}" fill="none" stroke="lightgray"/>"#);
        const BINS: usize = 24;
        for (k, r) in runs.iter().enumerate() {
            let mut bins = [0usize; BINS];
            for x in &r.rows {
                let v = f64::from(x.times.values()[i]) / 1000.0;
                bins[((v / hi * BINS as f64) as usize).min(BINS - 1)] += 1;
            }
            let top = bins.iter().copied().max().unwrap_or(1).max(1) as f64;
            let bw = hw / BINS as f64;
            for (b, &cnt) in bins.iter().enumerate() {
                if cnt == 0 {
                    continue;
                }
                let bh = hh * cnt as f64 / top;
                let _ = writeln!(
                    s,
                    r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{}" fill-opacity="0.5"/>"#,
                    hx + bw * b as f64,
                    hy + hh - bh,
                    bw,
                    COLORS[k % COLORS.len()]
                );
            }
        }
    }
    s.push_str("</svg>\n");
    s
}
