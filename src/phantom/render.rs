//! Renders one axial slice of a `Scene` into Hounsfield units: tissue classes per pixel, then
//! capsules (vessels, airways, ribs) with slab partial volume, emboli, confounders, mild blur and
//! noise; and the truth boxes of the emboli cut by the slice. Writes only into buffers the caller
//! owns (`Canvas`), so rendering a series allocates once.

use super::anatomy::{spine_y, Scene};
use super::geometry::{Capsule, V3};
use super::rng::Rng;

/// Slice size in pixels (square).
pub const SIZE: usize = 512;
/// Values written are clamped to what a 12-bit CT store holds.
pub const HU_MIN: f32 = -1024.0;
pub const HU_MAX: f32 = 3071.0;
/// A defect cross-section smaller than this many pixels is partial volume, not a labelled box.
pub const MIN_BOX_PIXELS: usize = 3;

/// A truth box in pixel units: columns x0..x1 and rows y0..y1, end-exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PixelBox {
    pub embolus: usize,
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
    pub pixels: u32,
}

/// Reusable per-thread buffers for rendering slices.
pub struct Canvas {
    pub hu: Vec<f32>,
    lung: Vec<bool>,
    tmp: Vec<f32>,
}

impl Default for Canvas {
    fn default() -> Self {
        Self { hu: vec![0.0; SIZE * SIZE], lung: vec![false; SIZE * SIZE], tmp: vec![0.0; SIZE * SIZE] }
    }
}

/// Pixel geometry of a slice: centre of pixel (i, j) in patient mm.
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    pub spacing: f32,
    pub origin: f32,
}

impl Grid {
    pub fn new(spacing: f32) -> Self {
        Self { spacing, origin: -((SIZE - 1) as f32) * 0.5 * spacing }
    }
    pub fn x(&self, i: usize) -> f32 {
        self.origin + i as f32 * self.spacing
    }
    /// Pixel index range [lo, hi) whose centres can fall within mm range [a, b].
    fn span(&self, a: f32, b: f32) -> (usize, usize) {
        let lo = ((a - self.origin) / self.spacing).floor().max(0.0) as usize;
        let hi = (((b - self.origin) / self.spacing).ceil() + 1.0).clamp(0.0, SIZE as f32) as usize;
        (lo.min(SIZE), hi)
    }
}

/// Soft inclusion of a point at distance `d` from a boundary at `r`, one pixel wide.
fn soft(r: f32, d: f32, width: f32) -> f32 {
    ((r - d) / width + 0.5).clamp(0.0, 1.0)
}

/// The two planes through the slab at which partial volume is sampled.
fn planes(z: f32, thickness: f32) -> [f32; 2] {
    [z - 0.25 * thickness, z + 0.25 * thickness]
}

/// Renders slice `index` of `scene` into `canvas.hu` and returns its truth boxes.
pub fn render_slice(scene: &Scene, rng: &Rng, index: u32, canvas: &mut Canvas, boxes: &mut Vec<PixelBox>) {
    let z = scene.slice_z(index);
    let grid = Grid::new(scene.pixel_spacing);
    tissue(scene, z, grid, canvas);
    opacities(scene, z, grid, canvas);
    heart_chambers(scene, z, grid, &mut canvas.hu);
    let slab = planes(z, scene.slice_thickness);
    for c in &scene.airways {
        paint(&mut canvas.hu, grid, slab, c, -960.0, 1.0);
    }
    for c in &scene.aorta {
        paint(&mut canvas.hu, grid, slab, c, scene.aorta_hu, 1.0);
    }
    paint(&mut canvas.hu, grid, slab, &scene.svc, scene.svc_hu, 1.0);
    for c in &scene.veins {
        paint(&mut canvas.hu, grid, slab, c, scene.aorta_hu * 0.8, 1.0);
    }
    for v in &scene.arteries {
        paint(&mut canvas.hu, grid, slab, &v.seg, v.hu, 1.0);
    }
    for m in &scene.mixing {
        paint_inside(&mut canvas.hu, grid, slab, &m.shape, &[&scene.arteries[m.host].seg], m.hu, 4.0);
    }
    for e in &scene.emboli {
        let hosts: Vec<&Capsule> = e.hosts.iter().map(|&h| &scene.arteries[h].seg).collect();
        paint_inside(&mut canvas.hu, grid, slab, &e.shape, &hosts, e.hu, 1.0);
    }
    for c in &scene.ribs {
        paint(&mut canvas.hu, grid, slab, c, 820.0, 1.0);
    }
    paint(&mut canvas.hu, grid, slab, &scene.sternum, 620.0, 1.0);
    let mut r = rng.fork(1000 + u64::from(index));
    if scene.streaks {
        streaks(scene, z, grid, &mut canvas.hu, &mut r);
    }
    blur(&mut canvas.hu, &mut canvas.tmp);
    for v in canvas.hu.iter_mut() {
        *v = (*v + scene.noise_sigma * r.normal()).clamp(HU_MIN, HU_MAX);
    }
    truth_boxes(scene, z, grid, boxes);
}

fn tissue(s: &Scene, z: f32, g: Grid, c: &mut Canvas) {
    let (a, b, cy) = (s.body_a, s.body_b, s.body_cy);
    let (fa, fb) = (a - s.fat_mm, b - s.fat_mm);
    let (ca, cb) = (s.cavity_a(), s.cavity_b());
    let lungs = [s.lung_ellipse(-1.0, z), s.lung_ellipse(1.0, z)];
    let sy = spine_y(cy, b);
    let heart = heart_section(s, z, V3::new(0.0, 0.0, 0.0), s.heart_semi, 4.0);
    let table_y = cy + b + 6.0;
    for j in 0..SIZE {
        let y = g.x(j);
        let row = &mut c.hu[j * SIZE..(j + 1) * SIZE];
        let lrow = &mut c.lung[j * SIZE..(j + 1) * SIZE];
        for i in 0..SIZE {
            let x = g.x(i);
            lrow[i] = false;
            let e_body = (x / a).powi(2) + ((y - cy) / b).powi(2);
            if e_body >= 1.0 {
                row[i] = if y > table_y && y < table_y + 9.0 && x.abs() < 200.0 { 150.0 } else { -1000.0 };
                continue;
            }
            if (x / fa).powi(2) + ((y - cy) / fb).powi(2) >= 1.0 {
                row[i] = -100.0;
                continue;
            }
            if (x / ca).powi(2) + ((y - cy) / cb).powi(2) >= 1.0 {
                row[i] = 45.0;
                continue;
            }
            let mut v = 35.0;
            if s.in_mediastinum(x, y, z) {
                v = -90.0;
            }
            for (k, side) in [-1.0f32, 1.0].iter().enumerate() {
                if let Some((lx, ly, la, lb)) = lungs[k] {
                    let q = ((x - lx) / la).powi(2) + ((y - ly) / lb).powi(2);
                    if q < 1.0 {
                        if z > s.lung_floor(*side, x, y) {
                            if !s.in_mediastinum(x, y, z) && !heart.is_some_and(|h| h.contains(x, y)) {
                                v = s.lung_hu + 35.0 * ((y - ly) / lb);
                                lrow[i] = true;
                            }
                        } else {
                            v = if *side < 0.0 { 60.0 } else { 45.0 };
                        }
                    }
                }
            }
            if let Some(h) = heart {
                if h.contains(x, y) {
                    v = if h.q(x, y) > 0.9 { -80.0 } else { 40.0 };
                    lrow[i] = false;
                }
            }
            // Vertebral body (cortex and cancellous bone), canal, and posterior arch.
            let dv = (x * x + (y - sy).powi(2)).sqrt();
            let dc = (x * x + (y - sy - 25.0).powi(2)).sqrt();
            if dv < 16.0 {
                v = if dv > 13.5 { 1050.0 } else { 340.0 };
                lrow[i] = false;
            } else if dc < 7.0 {
                v = 25.0;
                lrow[i] = false;
            } else if dc < 11.5 && y > sy + 14.0 {
                v = 780.0;
                lrow[i] = false;
            } else if super::anatomy::in_spine_zone(x, y, cy, b) {
                lrow[i] = false;
                if v < -500.0 {
                    v = 45.0;
                }
            }
            row[i] = v;
        }
    }
}

/// Axial cross-section of an ellipsoid centred at the heart centre plus `offset`.
#[derive(Clone, Copy)]
struct Section {
    cx: f32,
    cy: f32,
    a: f32,
    b: f32,
}

impl Section {
    fn q(&self, x: f32, y: f32) -> f32 {
        ((x - self.cx) / self.a).powi(2) + ((y - self.cy) / self.b).powi(2)
    }
    fn contains(&self, x: f32, y: f32) -> bool {
        self.q(x, y) < 1.0
    }
}

fn heart_section(s: &Scene, z: f32, offset: V3, semi: V3, margin: f32) -> Option<Section> {
    let c = s.heart_center.plus(offset);
    let dz = (z - c.z) / (semi.z + margin);
    if dz.abs() >= 1.0 {
        return None;
    }
    let k = (1.0 - dz * dz).sqrt();
    Some(Section { cx: c.x, cy: c.y, a: (semi.x + margin) * k, b: (semi.y + margin) * k })
}

fn heart_chambers(s: &Scene, z: f32, g: Grid, hu: &mut [f32]) {
    let h = s.heart_semi;
    let chambers = [
        (V3::new(-0.25 * h.x, -0.3 * h.y, 0.0), V3::new(0.45 * h.x, 0.4 * h.y, 0.6 * h.z), s.pa_hu),
        (V3::new(0.25 * h.x, 0.15 * h.y, -0.05 * h.z), V3::new(0.38 * h.x, 0.42 * h.y, 0.6 * h.z), s.aorta_hu),
        (V3::new(0.0, 0.55 * h.y, 0.35 * h.z), V3::new(0.35 * h.x, 0.28 * h.y, 0.3 * h.z), s.aorta_hu),
    ];
    for (off, semi, v) in chambers {
        let Some(sec) = heart_section(s, z, off, semi, 0.0) else {
            continue;
        };
        let (i0, i1) = g.span(sec.cx - sec.a, sec.cx + sec.a);
        let (j0, j1) = g.span(sec.cy - sec.b, sec.cy + sec.b);
        for j in j0..j1 {
            for i in i0..i1 {
                let q = sec.q(g.x(i), g.x(j));
                if q < 1.0 {
                    let k = soft(1.0, q.sqrt(), 0.08);
                    let p = &mut hu[j * SIZE + i];
                    *p += (v - *p) * k;
                }
            }
        }
    }
}

fn opacities(s: &Scene, z: f32, g: Grid, c: &mut Canvas) {
    for o in &s.opacities {
        let dz = (z - o.center.z) / o.semi.z;
        if dz.abs() >= 1.0 {
            continue;
        }
        let (i0, i1) = g.span(o.center.x - o.semi.x, o.center.x + o.semi.x);
        let (j0, j1) = g.span(o.center.y - o.semi.y, o.center.y + o.semi.y);
        for j in j0..j1 {
            for i in i0..i1 {
                let k = j * SIZE + i;
                if !c.lung[k] {
                    continue;
                }
                let q =
                    ((g.x(i) - o.center.x) / o.semi.x).powi(2) + ((g.x(j) - o.center.y) / o.semi.y).powi(2) + dz * dz;
                if q < 1.0 {
                    // Smooth rim: full density inside 70 % of the radius, fading to lung at the edge.
                    let t = ((1.0 - q.sqrt()) / 0.3).clamp(0.0, 1.0);
                    let w = t * t * (3.0 - 2.0 * t);
                    c.hu[k] += (o.hu - c.hu[k]) * w;
                }
            }
        }
    }
}

/// Paints a capsule with slab partial volume: the pixel takes the capsule's value in proportion
/// to how much of the slab the capsule fills there.
fn paint(hu: &mut [f32], g: Grid, slab: [f32; 2], cap: &Capsule, v: f32, edge_mm: f32) {
    paint_inside(hu, g, slab, cap, &[], v, edge_mm);
}

/// Paints `shape` with slab partial volume, only where it lies inside one of `hosts` (a filling
/// defect or a mixing swirl); with no hosts, wherever it is.
fn paint_inside(hu: &mut [f32], g: Grid, slab: [f32; 2], shape: &Capsule, hosts: &[&Capsule], v: f32, edge_mm: f32) {
    let Some(rect) = shape.slab_bounds(slab[0], slab[1]) else {
        return;
    };
    let (i0, i1) = g.span(rect.x0, rect.x1);
    let (j0, j1) = g.span(rect.y0, rect.y1);
    let w = edge_mm.max(g.spacing);
    let host_cover = |p: V3| {
        if hosts.is_empty() {
            1.0
        } else {
            hosts.iter().map(|h| soft(h.r, h.axis_distance(p), g.spacing)).fold(0.0f32, f32::max)
        }
    };
    for j in j0..j1 {
        let y = g.x(j);
        for i in i0..i1 {
            let x = g.x(i);
            let cov = 0.5
                * slab
                    .iter()
                    .map(|&zs| {
                        let p = V3::new(x, y, zs);
                        soft(shape.r, shape.axis_distance(p), w).min(host_cover(p))
                    })
                    .sum::<f32>();
            if cov > 0.0 {
                let p = &mut hu[j * SIZE + i];
                *p += (v - *p) * cov;
            }
        }
    }
}

/// Beam-hardening and photon-starvation streaks radiating from dense contrast in the SVC.
fn streaks(s: &Scene, z: f32, g: Grid, hu: &mut [f32], r: &mut Rng) {
    let c = &s.svc;
    let (lo, hi) = c.z_extent();
    if z < lo || z > hi {
        return;
    }
    let dz = c.b.z - c.a.z;
    let t = if dz.abs() > 1e-6 { ((z - c.a.z) / dz).clamp(0.0, 1.0) } else { 0.0 };
    let centre = c.at(t);
    let strength = (s.svc_hu - 400.0).max(0.0) / 1000.0;
    let n = 8 + r.below(9);
    for _ in 0..n {
        let ang = r.range(0.0, std::f32::consts::TAU);
        let amp = r.range(40.0, 140.0) * strength * if r.chance(0.5) { 1.0 } else { -1.0 };
        let (dx, dy) = (ang.cos(), ang.sin());
        let step = 0.5 * g.spacing;
        let mut d = c.r;
        while d < 260.0 {
            let x = centre.x + dx * d;
            let y = centre.y + dy * d;
            let fi = (x - g.origin) / g.spacing;
            let fj = (y - g.origin) / g.spacing;
            if fi < 0.0 || fj < 0.0 || fi >= (SIZE - 1) as f32 || fj >= (SIZE - 1) as f32 {
                break;
            }
            let (i, j) = (fi as usize, fj as usize);
            let k = j * SIZE + i;
            if hu[k] > -950.0 {
                hu[k] += amp * (-d / 110.0).exp() * 0.5;
            }
            d += step;
        }
    }
}

/// Mild separable [1 2 1]/4 blur: the scanner's point-spread function.
fn blur(hu: &mut [f32], tmp: &mut [f32]) {
    for j in 0..SIZE {
        let row = &hu[j * SIZE..(j + 1) * SIZE];
        let out = &mut tmp[j * SIZE..(j + 1) * SIZE];
        out[0] = row[0];
        out[SIZE - 1] = row[SIZE - 1];
        for i in 1..SIZE - 1 {
            out[i] = 0.25 * row[i - 1] + 0.5 * row[i] + 0.25 * row[i + 1];
        }
    }
    hu[..SIZE].copy_from_slice(&tmp[..SIZE]);
    hu[(SIZE - 1) * SIZE..].copy_from_slice(&tmp[(SIZE - 1) * SIZE..]);
    for j in 1..SIZE - 1 {
        for i in 0..SIZE {
            hu[j * SIZE + i] =
                0.25 * tmp[(j - 1) * SIZE + i] + 0.5 * tmp[j * SIZE + i] + 0.25 * tmp[(j + 1) * SIZE + i];
        }
    }
}

/// Whether pixel (i, j) of slice z is inside an embolus and its host lumen (sampled at the slice
/// centre; this is the ground-truth defect mask).
pub fn in_defect(s: &Scene, e: usize, p: V3) -> bool {
    let em = &s.emboli[e];
    em.shape.contains(p) && em.hosts.iter().any(|&h| s.arteries[h].seg.contains(p))
}

fn truth_boxes(s: &Scene, z: f32, g: Grid, boxes: &mut Vec<PixelBox>) {
    boxes.clear();
    for (k, e) in s.emboli.iter().enumerate() {
        let Some(rect) = e.shape.slab_bounds(z, z) else {
            continue;
        };
        let (i0, i1) = g.span(rect.x0, rect.x1);
        let (j0, j1) = g.span(rect.y0, rect.y1);
        let mut b = PixelBox { embolus: k, x0: u32::MAX, y0: u32::MAX, x1: 0, y1: 0, pixels: 0 };
        for j in j0..j1 {
            for i in i0..i1 {
                if in_defect(s, k, V3::new(g.x(i), g.x(j), z)) {
                    b.x0 = b.x0.min(i as u32);
                    b.y0 = b.y0.min(j as u32);
                    b.x1 = b.x1.max(i as u32 + 1);
                    b.y1 = b.y1.max(j as u32 + 1);
                    b.pixels += 1;
                }
            }
        }
        if b.pixels as usize >= MIN_BOX_PIXELS {
            boxes.push(b);
        }
    }
}
