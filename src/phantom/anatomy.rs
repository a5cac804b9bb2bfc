//! The 3D scene of one phantom series: body wall, lungs, mediastinum, heart, great vessels, the
//! contrast-filled pulmonary arterial tree, spine, ribs, emboli (filling defects) and the
//! confounders that must not be labelled (ground-glass opacities and consolidation, mixing
//! artefacts, dense-contrast streaks; partial volume arises from the slab sampling in `render`).
//! Built once per series from its seed; pure data, touches nothing.

use super::geometry::{perpendiculars, Capsule, V3};
use super::rng::Rng;
use serde::Serialize;

/// Where a vessel sits in the pulmonary arterial tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Trunk,
    Main,
    Lobar,
    Segmental,
    Subsegmental,
}

#[derive(Debug, Clone)]
pub struct Vessel {
    pub seg: Capsule,
    pub level: Level,
    /// Contrast-enhanced lumen value (HU).
    pub hu: f32,
}

/// The kinds of filling defect the generator places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbolusKind {
    /// Straddles the bifurcation of the pulmonary trunk.
    Saddle,
    /// Floats in the lumen with contrast around it ("polo mint").
    Central,
    /// Lies against the vessel wall.
    Eccentric,
    /// Fills the whole lumen.
    Occlusive,
}

#[derive(Debug, Clone)]
pub struct Embolus {
    pub kind: EmbolusKind,
    pub shape: Capsule,
    /// Indices into `Scene::arteries` of the vessels whose lumen the defect fills.
    pub hosts: Vec<usize>,
    pub hu: f32,
    pub level: Level,
}

/// A soft-edged ellipsoid (mm): ground-glass, consolidation or a mixing artefact.
#[derive(Debug, Clone)]
pub struct Blob {
    pub center: V3,
    pub semi: V3,
    pub hu: f32,
}

/// A mixing artefact: poorly opacified inflow inside an artery, a soft low-contrast swirl.
#[derive(Debug, Clone)]
pub struct Mixing {
    pub shape: Capsule,
    pub host: usize,
    pub hu: f32,
}

/// Everything that defines one series' anatomy and acquisition.
#[derive(Debug, Clone)]
pub struct Scene {
    pub pixel_spacing: f32,
    pub slice_thickness: f32,
    pub noise_sigma: f32,
    /// Body outline semi-axes (mm) and centre y.
    pub body_a: f32,
    pub body_b: f32,
    pub body_cy: f32,
    pub fat_mm: f32,
    pub muscle_mm: f32,
    pub lung_hu: f32,
    pub pa_hu: f32,
    pub aorta_hu: f32,
    pub arteries: Vec<Vessel>,
    pub veins: Vec<Capsule>,
    pub aorta: Vec<Capsule>,
    pub svc: Capsule,
    pub svc_hu: f32,
    pub airways: Vec<Capsule>,
    pub ribs: Vec<Capsule>,
    pub sternum: Capsule,
    pub heart_center: V3,
    pub heart_semi: V3,
    pub emboli: Vec<Embolus>,
    pub opacities: Vec<Blob>,
    pub mixing: Vec<Mixing>,
    /// Dense contrast in the SVC throws streaks across the slice.
    pub streaks: bool,
    /// Scan range: z of the first (most cranial) slice, and number of slices.
    pub z_first: f32,
    pub slices: u32,
}

/// Lung apex height (mm) in the scene frame; the bases sit around z = 30-45.
const APEX_Z: f32 = 255.0;

impl Scene {
    pub fn cavity_a(&self) -> f32 {
        self.body_a - self.fat_mm - self.muscle_mm
    }
    pub fn cavity_b(&self) -> f32 {
        self.body_b - self.fat_mm - self.muscle_mm
    }

    /// Centre and semi-axes of one lung's axial cross-section at height z (side -1 right, +1 left),
    /// or None above the apex.
    pub fn lung_ellipse(&self, side: f32, z: f32) -> Option<(f32, f32, f32, f32)> {
        let t_apex = ((APEX_Z - z) / 70.0).clamp(0.0, 1.0);
        if t_apex <= 0.0 {
            return None;
        }
        let t_base = ((APEX_Z - z) / 200.0).clamp(0.0, 1.0);
        let s = t_apex.sqrt() * (0.78 + 0.22 * t_base);
        let (ca, cb) = (self.cavity_a(), self.cavity_b());
        Some((side * 0.5 * ca, self.body_cy + 0.04 * cb, 0.47 * ca * s, 0.88 * cb * s))
    }

    /// Height of the diaphragm dome under a lung at (x, y).
    pub fn lung_floor(&self, side: f32, x: f32, y: f32) -> f32 {
        let (cx, cy, a, b) = match self.lung_ellipse(side, 60.0) {
            Some(e) => e,
            None => return APEX_Z,
        };
        let r2 = ((x - cx) / a).powi(2) + ((y - cy) / b).powi(2);
        let base = if side < 0.0 { 42.0 } else { 34.0 };
        base + 28.0 * (1.0 - r2).max(0.0)
    }

    pub fn in_heart(&self, p: V3, margin: f32) -> bool {
        let s = self.heart_semi;
        let d = p.minus(self.heart_center);
        (d.x / (s.x + margin)).powi(2) + (d.y / (s.y + margin)).powi(2) + (d.z / (s.z + margin)).powi(2) < 1.0
    }

    /// Mediastinum (above the heart): an ellipse of fat around the great vessels.
    pub fn in_mediastinum(&self, x: f32, y: f32, z: f32) -> bool {
        if !(95.0..=APEX_Z + 10.0).contains(&z) {
            return false;
        }
        let half_w = 26.0 + 8.0 * ((z - 95.0) / 60.0).clamp(0.0, 1.0).min(1.0);
        (x / half_w).powi(2) + ((y + 8.0) / 62.0).powi(2) < 1.0
    }

    /// Whether (x, y, z) is aerated lung parenchyma (before opacities are painted).
    pub fn in_lung(&self, p: V3) -> bool {
        for side in [-1.0f32, 1.0] {
            if let Some((cx, cy, a, b)) = self.lung_ellipse(side, p.z) {
                if ((p.x - cx) / a).powi(2) + ((p.y - cy) / b).powi(2) < 1.0 {
                    return p.z > self.lung_floor(side, p.x, p.y)
                        && !self.in_heart(p, 4.0)
                        && !self.in_mediastinum(p.x, p.y, p.z)
                        && !in_spine_zone(p.x, p.y, self.body_cy, self.body_b);
                }
            }
        }
        false
    }

    /// Centre of a slice (mm) by 0-based index from the most cranial slice.
    pub fn slice_z(&self, index: u32) -> f32 {
        self.z_first - index as f32 * self.slice_thickness
    }
}

/// The vertebral column and paravertebral muscle, kept out of the lungs.
pub fn in_spine_zone(x: f32, y: f32, body_cy: f32, body_b: f32) -> bool {
    let sy = spine_y(body_cy, body_b);
    (x / 30.0).powi(2) + ((y - sy - 8.0) / 34.0).powi(2) < 1.0
}

pub fn spine_y(body_cy: f32, body_b: f32) -> f32 {
    body_cy + body_b - 48.0
}

/// Builds the scene of one series. `positive` decides whether emboli are placed.
pub fn build(rng: &Rng, slices: u32, positive: bool) -> Scene {
    let mut r = rng.fork(1);
    let thickness = [1.0f32, 1.25, 1.5, 2.0][r.below(4) as usize];
    let body_a = r.range(142.0, 168.0);
    let body_b = r.range(98.0, 116.0);
    let fat_mm = r.range(8.0, 20.0);
    let pa_hu = r.range(270.0, 440.0);
    let mut scene = Scene {
        pixel_spacing: r.range(0.6, 0.8),
        slice_thickness: thickness,
        noise_sigma: r.range(10.0, 25.0),
        body_a,
        body_b,
        body_cy: r.range(0.0, 8.0),
        fat_mm,
        muscle_mm: r.range(8.0, 12.0),
        lung_hu: r.range(-870.0, -830.0),
        pa_hu,
        aorta_hu: pa_hu * r.range(0.6, 0.9),
        arteries: Vec::new(),
        veins: Vec::new(),
        aorta: Vec::new(),
        svc: Capsule::new(V3::new(0.0, 0.0, 0.0), V3::new(0.0, 0.0, 0.0), 0.0),
        svc_hu: 0.0,
        airways: Vec::new(),
        ribs: Vec::new(),
        sternum: Capsule::new(V3::new(0.0, 0.0, 0.0), V3::new(0.0, 0.0, 0.0), 0.0),
        heart_center: V3::new(r.range(14.0, 24.0), r.range(-32.0, -20.0), r.range(68.0, 80.0)),
        heart_semi: V3::new(r.range(50.0, 60.0), r.range(40.0, 48.0), r.range(45.0, 55.0)),
        emboli: Vec::new(),
        opacities: Vec::new(),
        mixing: Vec::new(),
        streaks: false,
        z_first: 0.0,
        slices,
    };
    great_vessels(&mut scene, &mut rng.fork(2));
    arterial_tree(&mut scene, &mut rng.fork(3));
    skeleton(&mut scene, &mut rng.fork(4));
    confounders(&mut scene, &mut rng.fork(5));
    if positive {
        place_emboli(&mut scene, &mut rng.fork(6));
    }
    choose_scan_range(&mut scene, &mut rng.fork(7));
    scene
}

fn great_vessels(s: &mut Scene, r: &mut Rng) {
    let j = |r: &mut Rng| r.range(-3.0, 3.0);
    // Ascending aorta, arch and descending aorta (left of the spine).
    let sy = spine_y(s.body_cy, s.body_b);
    let asc0 = V3::new(-12.0 + j(r), -22.0 + j(r), 100.0);
    let asc1 = V3::new(-12.0 + j(r), -18.0 + j(r), 168.0);
    let arch = V3::new(4.0 + j(r), 2.0 + j(r), 182.0);
    let desc0 = V3::new(24.0 + j(r), sy - 16.0, 172.0);
    let desc1 = V3::new(22.0 + j(r), sy - 12.0, 10.0);
    let ra = r.range(13.0, 16.0);
    s.aorta = vec![
        Capsule::new(asc0, asc1, ra),
        Capsule::new(asc1, arch, ra * 0.9),
        Capsule::new(arch, desc0, ra * 0.85),
        Capsule::new(desc0, desc1, ra * 0.8),
    ];
    // Superior vena cava: in some series dense undiluted contrast (streak source).
    s.streaks = r.chance(0.5);
    s.svc_hu = if s.streaks { r.range(900.0, 1600.0) } else { s.aorta_hu * r.range(0.7, 1.0) };
    s.svc = Capsule::new(V3::new(-32.0, -14.0, 240.0), V3::new(-29.0, -12.0, 122.0), r.range(8.5, 11.0));
    // Trachea and main bronchi.
    let carina = V3::new(0.0, 16.0 + j(r), 160.0);
    s.airways = vec![
        Capsule::new(V3::new(0.0, 12.0, 290.0), carina, 9.0),
        Capsule::new(carina, V3::new(-0.26 * s.cavity_a(), 20.0, 146.0), 6.5),
        Capsule::new(carina, V3::new(0.26 * s.cavity_a(), 22.0, 140.0), 6.0),
    ];
}

fn arterial_tree(s: &mut Scene, r: &mut Rng) {
    let ca = s.cavity_a();
    let hu = s.pa_hu;
    let trunk0 = V3::new(14.0 + r.range(-3.0, 3.0), -42.0, 104.0);
    let bif = V3::new(8.0 + r.range(-3.0, 3.0), -12.0 + r.range(-3.0, 3.0), 138.0);
    let rt = r.range(12.5, 15.0);
    s.arteries.push(Vessel { seg: Capsule::new(trunk0, bif, rt), level: Level::Trunk, hu });
    let rpa_end = V3::new(-0.34 * ca, 6.0 + r.range(-3.0, 3.0), 135.0 + r.range(-3.0, 3.0));
    let lpa_end = V3::new(0.34 * ca, 12.0 + r.range(-3.0, 3.0), 146.0 + r.range(-3.0, 3.0));
    let rm = rt * r.range(0.75, 0.85);
    s.arteries.push(Vessel { seg: Capsule::new(bif, rpa_end, rm), level: Level::Main, hu });
    s.arteries.push(Vessel { seg: Capsule::new(bif, lpa_end, rm * 0.95), level: Level::Main, hu });
    for (side, start, rpar) in [(-1.0f32, rpa_end, rm), (1.0, lpa_end, rm * 0.95)] {
        // Lobar arteries: upper, middle (lingula on the left), lower.
        let lobes =
            [V3::new(side * 0.5, -0.2, 0.85), V3::new(side * 0.8, -0.55, -0.25), V3::new(side * 0.45, 0.35, -0.8)];
        for (k, dir) in lobes.iter().enumerate() {
            let len = if k == 2 { r.range(38.0, 50.0) } else { r.range(28.0, 40.0) };
            let d = jitter(r, *dir, 0.15);
            let radius = rpar * r.range(0.45, 0.55);
            grow(s, r, start, d, len, radius, Level::Lobar, hu);
        }
    }
    // Small peripheral vessels (arteries and veins below subsegmental size) give the lungs the
    // dotted texture of a real CTPA; they carry no emboli.
    for _ in 0..20_000 {
        if s.veins.len() >= 2600 {
            break;
        }
        let p =
            V3::new(r.range(-0.95, 0.95) * ca, s.body_cy + r.range(-0.95, 0.95) * s.cavity_b(), r.range(35.0, 250.0));
        if !s.in_lung(p) {
            continue;
        }
        let d = V3::new(r.range(-1.0, 1.0), r.range(-1.0, 1.0), r.range(-1.0, 1.0)).norm();
        let q = p.plus(d.scale(r.range(8.0, 24.0)));
        if s.in_lung(q) {
            s.veins.push(Capsule::new(p, q, r.range(0.7, 1.5)));
        }
    }
    // Pulmonary veins: enhanced less than the arteries, draining toward the left atrium.
    let la = s.heart_center.plus(V3::new(0.0, s.heart_semi.y * 0.55, s.heart_semi.z * 0.35));
    for side in [-1.0f32, 1.0] {
        for dz in [-18.0f32, 14.0] {
            let end = V3::new(side * 0.45 * ca, 20.0 + r.range(-8.0, 8.0), la.z + dz + r.range(-6.0, 6.0));
            s.veins.push(Capsule::new(la, end, r.range(5.0, 7.0)));
            for _ in 0..2 {
                let d = jitter(r, end.minus(la).norm(), 0.6);
                let tip = end.plus(d.scale(r.range(20.0, 35.0)));
                if s.in_lung(tip) {
                    s.veins.push(Capsule::new(end, tip, r.range(2.5, 3.5)));
                }
            }
        }
    }
}

/// Grows one branch and its descendants, keeping tips inside the lungs.
#[allow(clippy::too_many_arguments)]
fn grow(s: &mut Scene, r: &mut Rng, start: V3, dir: V3, len: f32, radius: f32, level: Level, hu: f32) {
    let mut l = len;
    let mut end = start.plus(dir.scale(l));
    let mut tries = 0;
    while !s.in_lung(end) && tries < 4 {
        l *= 0.6;
        end = start.plus(dir.scale(l));
        tries += 1;
    }
    if !s.in_lung(end) || radius < 0.9 {
        return;
    }
    s.arteries.push(Vessel { seg: Capsule::new(start, end, radius), level, hu });
    let (next, children, spread) = match level {
        Level::Lobar => (Level::Segmental, 3, 0.55),
        Level::Segmental => (Level::Subsegmental, 3, 0.6),
        Level::Subsegmental if radius > 1.1 => (Level::Subsegmental, 2, 0.7),
        _ => return,
    };
    for _ in 0..children {
        let d = jitter(r, dir, spread);
        let k = if next == Level::Segmental { r.range(0.45, 0.55) } else { r.range(0.6, 0.72) };
        let child_r = (radius * k).max(if next == Level::Segmental { 1.5 } else { 0.8 });
        let child_len = len * r.range(0.6, 0.8);
        grow(s, r, end, d, child_len, child_r, next, hu);
    }
}

fn jitter(r: &mut Rng, dir: V3, amount: f32) -> V3 {
    let (u, v) = perpendiculars(dir);
    dir.norm().plus(u.scale(r.range(-amount, amount))).plus(v.scale(r.range(-amount, amount))).norm()
}

fn skeleton(s: &mut Scene, r: &mut Rng) {
    let (ra, rb) = (s.cavity_a() + 5.0, s.cavity_b() + 5.0);
    for k in 0..11 {
        let z0 = 242.0 - 19.0 * k as f32 + r.range(-2.0, 2.0);
        for side in [-1.0f32, 1.0] {
            let mut prev: Option<V3> = None;
            let steps = 8;
            for i in 0..=steps {
                let u = i as f32 / steps as f32;
                let theta = (100.0 - 160.0 * u).to_radians();
                let p = V3::new(side * ra * theta.cos(), s.body_cy + rb * theta.sin(), z0 - 48.0 * u);
                if let Some(q) = prev {
                    s.ribs.push(Capsule::new(q, p, 4.2));
                }
                prev = Some(p);
            }
        }
    }
    let y = s.body_cy - s.cavity_b() - 3.0;
    s.sternum = Capsule::new(V3::new(0.0, y, 100.0), V3::new(0.0, y + 4.0, 222.0), 7.0);
}

fn confounders(s: &mut Scene, r: &mut Rng) {
    // COVID-19 pneumonia: peripheral ground-glass opacities, sometimes consolidation.
    if r.chance(0.4) {
        let n = 3 + r.below(6);
        let mut placed = 0;
        for _ in 0..200 {
            if placed == n {
                break;
            }
            let side = if r.chance(0.5) { -1.0 } else { 1.0 };
            let z = r.range(50.0, 230.0);
            let Some((cx, cy, a, b)) = s.lung_ellipse(side, z) else {
                continue;
            };
            let ang = r.range(0.0, std::f32::consts::TAU);
            let rad = r.range(0.55, 0.9);
            let c = V3::new(cx + a * rad * ang.cos(), cy + b * rad * ang.sin(), z);
            if !s.in_lung(c) {
                continue;
            }
            let consolidation = r.chance(0.25);
            let hu = if consolidation { r.range(-250.0, -100.0) } else { r.range(-650.0, -350.0) };
            let semi = V3::new(r.range(8.0, 30.0), r.range(8.0, 30.0), r.range(8.0, 25.0));
            s.opacities.push(Blob { center: c, semi, hu });
            placed += 1;
        }
    }
    // Mixing artefact: unopacified inflow swirling in the trunk or a main artery.
    if r.chance(0.35) {
        let host = r.below(3) as usize;
        let v = s.arteries[host].seg;
        let t = r.range(0.2, 0.7);
        let d = v.b.minus(v.a).norm();
        let half = r.range(8.0, 15.0);
        let c = v.at(t);
        let shape = Capsule::new(c.minus(d.scale(half)), c.plus(d.scale(half)), v.r * r.range(0.5, 0.75));
        s.mixing.push(Mixing { shape, host, hu: s.pa_hu * r.range(0.45, 0.65) });
    }
}

fn place_emboli(s: &mut Scene, r: &mut Rng) {
    let want = 1 + r.below(4) as usize;
    for _ in 0..200 {
        if s.emboli.len() >= want {
            break;
        }
        let pick = r.below(10);
        let candidates: Vec<usize> = s
            .arteries
            .iter()
            .enumerate()
            .filter(|(_, v)| match pick {
                0 => v.level == Level::Trunk,
                1..=2 => v.level == Level::Main,
                3..=5 => v.level == Level::Lobar,
                _ => v.level == Level::Segmental && v.seg.r >= 1.6,
            })
            .filter(|(_, v)| {
                let (lo, hi) = v.seg.z_extent();
                lo > 50.0 && hi < 230.0
            })
            .map(|(i, _)| i)
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let host = candidates[r.below(candidates.len() as u32) as usize];
        let v = s.arteries[host].clone();
        let hu = r.range(20.0, 90.0);
        let e = if v.level == Level::Trunk && r.chance(0.6) {
            // Saddle: across the bifurcation into both main arteries.
            let a = s.arteries[1].seg.at(0.3);
            let b = s.arteries[2].seg.at(0.3);
            let re = s.arteries[1].seg.r * r.range(0.55, 0.7);
            Embolus {
                kind: EmbolusKind::Saddle,
                shape: Capsule::new(a, b, re),
                hosts: vec![0, 1, 2],
                hu,
                level: Level::Trunk,
            }
        } else {
            let len_mm = match v.level {
                Level::Trunk | Level::Main => r.range(18.0, 35.0),
                Level::Lobar => r.range(12.0, 24.0),
                _ => r.range(8.0, 15.0),
            };
            let frac = (len_mm / v.seg.length()).min(0.8);
            let t0 = r.range(0.1, 1.0 - frac - 0.05).max(0.05);
            let (a, b) = (v.seg.at(t0), v.seg.at(t0 + frac));
            let kind = match v.level {
                Level::Trunk | Level::Main => {
                    if r.chance(0.5) {
                        EmbolusKind::Central
                    } else {
                        EmbolusKind::Eccentric
                    }
                }
                Level::Lobar => {
                    [EmbolusKind::Central, EmbolusKind::Eccentric, EmbolusKind::Occlusive][r.below(3) as usize]
                }
                _ => {
                    if r.chance(0.6) {
                        EmbolusKind::Occlusive
                    } else {
                        EmbolusKind::Eccentric
                    }
                }
            };
            let rv = v.seg.r;
            let (re, offset) = match kind {
                EmbolusKind::Central => (rv * r.range(0.5, 0.7), 0.0),
                EmbolusKind::Eccentric => {
                    let re = rv * r.range(0.5, 0.65);
                    (re, (rv - re) * 0.95)
                }
                _ => (rv * 1.05, 0.0),
            };
            let (u, w) = perpendiculars(b.minus(a));
            let ang = r.range(0.0, std::f32::consts::TAU);
            let shift = u.scale(ang.cos() * offset).plus(w.scale(ang.sin() * offset));
            Embolus {
                kind,
                shape: Capsule::new(a.plus(shift), b.plus(shift), re),
                hosts: vec![host],
                hu,
                level: v.level,
            }
        };
        // Emboli must span several slices.
        let (lo, hi) = e.shape.z_extent();
        if hi - lo < 3.0 * s.slice_thickness + 1.0 {
            continue;
        }
        if s.emboli.iter().any(|o| o.hosts == e.hosts) {
            continue;
        }
        s.emboli.push(e);
    }
}

fn choose_scan_range(s: &mut Scene, r: &mut Rng) {
    let range = s.slices as f32 * s.slice_thickness;
    let centre = match s.emboli.first() {
        Some(e) => {
            let (lo, hi) = e.shape.z_extent();
            let c = 0.5 * (lo + hi);
            // Keep the first embolus inside the scan even for short series.
            let slack = ((range - (hi - lo)) * 0.5).clamp(0.0, 20.0);
            c + r.range(-slack, slack)
        }
        None => 140.0 + r.range(-15.0, 15.0),
    };
    s.z_first = centre + 0.5 * range - 0.5 * s.slice_thickness;
}
