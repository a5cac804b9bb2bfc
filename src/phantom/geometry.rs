//! 3D primitives the phantom's anatomy is built from: points in patient millimetres (DICOM LPS:
//! +x to the patient's left, +y posterior, +z toward the head) and capsules (tubes with round
//! ends) whose cross-section with any axial plane is exact, so structures continue across
//! neighbouring slices. Pure arithmetic; touches nothing.

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct V3 {
    pub x: f32,
    pub y: f32,
    pub z: f32,
}

impl V3 {
    pub const fn new(x: f32, y: f32, z: f32) -> Self {
        Self { x, y, z }
    }
    pub fn plus(self, o: V3) -> V3 {
        V3::new(self.x + o.x, self.y + o.y, self.z + o.z)
    }
    pub fn minus(self, o: V3) -> V3 {
        V3::new(self.x - o.x, self.y - o.y, self.z - o.z)
    }
    pub fn scale(self, k: f32) -> V3 {
        V3::new(self.x * k, self.y * k, self.z * k)
    }
    pub fn dot(self, o: V3) -> f32 {
        self.x * o.x + self.y * o.y + self.z * o.z
    }
    pub fn cross(self, o: V3) -> V3 {
        V3::new(self.y * o.z - self.z * o.y, self.z * o.x - self.x * o.z, self.x * o.y - self.y * o.x)
    }
    pub fn len(self) -> f32 {
        self.dot(self).sqrt()
    }
    pub fn norm(self) -> V3 {
        let l = self.len();
        if l > 0.0 {
            self.scale(1.0 / l)
        } else {
            V3::new(0.0, 0.0, 1.0)
        }
    }
    pub fn lerp(self, o: V3, t: f32) -> V3 {
        self.plus(o.minus(self).scale(t))
    }
}

/// A segment from `a` to `b` swept by a sphere of radius `r` (mm).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capsule {
    pub a: V3,
    pub b: V3,
    pub r: f32,
}

/// An axis-aligned rectangle in patient x/y millimetres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RectMm {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

impl Capsule {
    pub fn new(a: V3, b: V3, r: f32) -> Self {
        Self { a, b, r }
    }

    pub fn length(&self) -> f32 {
        self.b.minus(self.a).len()
    }

    /// Point on the axis at parameter t in [0, 1].
    pub fn at(&self, t: f32) -> V3 {
        self.a.lerp(self.b, t)
    }

    /// Distance from `p` to the capsule's axis segment.
    pub fn axis_distance(&self, p: V3) -> f32 {
        let ab = self.b.minus(self.a);
        let denom = ab.dot(ab);
        let t = if denom > 0.0 { (p.minus(self.a).dot(ab) / denom).clamp(0.0, 1.0) } else { 0.0 };
        p.minus(self.a.plus(ab.scale(t))).len()
    }

    pub fn contains(&self, p: V3) -> bool {
        self.axis_distance(p) < self.r
    }

    /// Lowest and highest z the capsule reaches.
    pub fn z_extent(&self) -> (f32, f32) {
        (self.a.z.min(self.b.z) - self.r, self.a.z.max(self.b.z) + self.r)
    }

    /// The x/y rectangle that holds the capsule's intersection with the slab `z0..=z1`, or None
    /// when the capsule does not reach the slab.
    pub fn slab_bounds(&self, z0: f32, z1: f32) -> Option<RectMm> {
        let (lo, hi) = self.z_extent();
        if hi < z0 || lo > z1 {
            return None;
        }
        // Clip the axis to the slab widened by the radius.
        let (za, zb) = (self.a.z, self.b.z);
        let (mut t0, mut t1) = (0.0f32, 1.0f32);
        let dz = zb - za;
        if dz.abs() > 1e-6 {
            let ta = (z0 - self.r - za) / dz;
            let tb = (z1 + self.r - za) / dz;
            t0 = ta.min(tb).max(0.0);
            t1 = ta.max(tb).min(1.0);
            if t0 > t1 {
                return None;
            }
        }
        let p = self.at(t0);
        let q = self.at(t1);
        Some(RectMm {
            x0: p.x.min(q.x) - self.r,
            y0: p.y.min(q.y) - self.r,
            x1: p.x.max(q.x) + self.r,
            y1: p.y.max(q.y) + self.r,
        })
    }
}

/// Two unit vectors perpendicular to `d` and to each other.
pub fn perpendiculars(d: V3) -> (V3, V3) {
    let d = d.norm();
    let helper = if d.z.abs() < 0.9 { V3::new(0.0, 0.0, 1.0) } else { V3::new(1.0, 0.0, 0.0) };
    let u = d.cross(helper).norm();
    let v = d.cross(u).norm();
    (u, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_distance_matches_the_definition() {
        let c = Capsule::new(V3::new(0.0, 0.0, 0.0), V3::new(0.0, 0.0, 10.0), 2.0);
        assert!((c.axis_distance(V3::new(3.0, 4.0, 5.0)) - 5.0).abs() < 1e-5);
        assert!((c.axis_distance(V3::new(0.0, 0.0, 13.0)) - 3.0).abs() < 1e-5);
        assert!(c.contains(V3::new(1.0, 1.0, 11.0)));
        assert!(!c.contains(V3::new(0.0, 0.0, 12.5)));
    }

    #[test]
    fn slab_bounds_hold_every_point_of_the_cross_section() {
        let c = Capsule::new(V3::new(-20.0, 5.0, 0.0), V3::new(30.0, -10.0, 40.0), 3.0);
        let (z0, z1) = (17.0, 18.5);
        let r = c.slab_bounds(z0, z1).expect("capsule crosses the slab");
        let mut inside = 0;
        for i in 0..400 {
            for j in 0..400 {
                for z in [z0, z1] {
                    let p = V3::new(-40.0 + i as f32 * 0.2, -40.0 + j as f32 * 0.2, z);
                    if c.contains(p) {
                        inside += 1;
                        assert!(p.x >= r.x0 && p.x <= r.x1 && p.y >= r.y0 && p.y <= r.y1, "{p:?} {r:?}");
                    }
                }
            }
        }
        assert!(inside > 100);
        assert!(c.slab_bounds(50.0, 60.0).is_none());
    }

    #[test]
    fn perpendiculars_are_orthonormal() {
        for d in [V3::new(0.0, 0.0, 1.0), V3::new(1.0, 2.0, -0.5), V3::new(-1.0, 0.0, 0.0)] {
            let (u, v) = perpendiculars(d);
            assert!(u.dot(d.norm()).abs() < 1e-5 && v.dot(d.norm()).abs() < 1e-5 && u.dot(v).abs() < 1e-5);
            assert!((u.len() - 1.0).abs() < 1e-5 && (v.len() - 1.0).abs() < 1e-5);
        }
    }
}
