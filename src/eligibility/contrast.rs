//! The contrast image test, for slices whose header says nothing about contrast: does the slice
//! show a blood pool (aorta, pulmonary trunk, heart chamber, great veins) filled with contrast?
//! Unenhanced blood is 30-60 HU; in CT pulmonary angiography the pulmonary trunk is 250-500 HU
//! and the aorta 150-400 HU. The test looks for a compact, homogeneous region in the contrast
//! band (`min_hu` to 700 HU) the size of a great vessel, not touching bone:
//!
//! 1. pixels with `min_hu <= HU <= 700` (cortical bone and metal, above 700, are left out);
//! 2. 4-connected regions of them; a region counts as a blood pool when its area is 150 to
//!    4000 mm² (a vessel 14 to 70 mm across), it fills at least half its bounding box, its
//!    bounding box is at most 2.5 times longer than wide, its HU spread (standard deviation) is at
//!    most `MAX_STD_HU` (blood is smooth; trabecular bone is not), and under a tenth of its
//!    border touches bone (> 700 HU);
//! 3. the slice passes when any region counts. The measure (best region's mean HU, area, spread)
//!    is kept for the record.
//!
//! Measured on real and phantom slices in `tests/eligibility.rs` (figures in docs/intended-use.md).
//! Pure: touches nothing; allocates its scratch per call (it runs only on header-silent slices).

/// Default threshold (`[eligibility] contrast_min_hu`): mean HU of a blood pool.
pub const DEFAULT_MIN_HU: f32 = 150.0;
/// Pixels above this are bone or metal, not blood.
pub const BONE_HU: f32 = 700.0;
/// The largest HU spread of a blood pool.
pub const MAX_STD_HU: f32 = 60.0;
const MIN_AREA_MM2: f64 = 150.0;
const MAX_AREA_MM2: f64 = 4000.0;

/// The best blood-pool candidate found in a slice.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BloodPool {
    /// A region met every condition.
    pub found: bool,
    /// The region's mean HU (of the best region: found ones first, then the largest).
    pub mean_hu: f32,
    pub std_hu: f32,
    pub area_mm2: f32,
    /// Regions in the contrast band that were looked at.
    pub regions: u32,
}

impl std::fmt::Display for BloodPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.regions == 0 {
            write!(f, "no region in the contrast band")
        } else {
            write!(
                f,
                "best region: mean {:.0} HU, spread {:.0} HU, {:.0} mm²; {} region(s) looked at",
                self.mean_hu, self.std_hu, self.area_mm2, self.regions
            )
        }
    }
}

/// Looks for a contrast-filled blood pool in a slice of HU values, `width` x `height` pixels of
/// `pixel_mm` (row and column spacing, mm).
pub fn blood_pool(hu: &[f32], width: usize, height: usize, pixel_mm: [f64; 2], min_hu: f32) -> BloodPool {
    let n = width * height;
    if hu.len() < n || n == 0 {
        return BloodPool::default();
    }
    let px_area = pixel_mm[0] * pixel_mm[1];
    let in_band = |v: f32| (min_hu..=BONE_HU).contains(&v);
    let mut seen = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut best = BloodPool::default();
    let mut best_key = (false, 0.0f32);
    for start in 0..n {
        if seen[start] || !in_band(hu[start]) {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (mut count, mut sum, mut sum2) = (0usize, 0f64, 0f64);
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0usize, 0usize);
        let (mut border, mut bone_border) = (0usize, 0usize);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % width, i / width);
            let v = f64::from(hu[i]);
            count += 1;
            sum += v;
            sum2 += v * v;
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
            let mut edge = false;
            let mut bone = false;
            let neighbours = [
                (x > 0).then(|| i - 1),
                (x + 1 < width).then(|| i + 1),
                (y > 0).then(|| i - width),
                (y + 1 < height).then(|| i + width),
            ];
            for j in neighbours {
                let Some(j) = j else {
                    edge = true;
                    continue;
                };
                if in_band(hu[j]) {
                    if !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                } else {
                    edge = true;
                    bone |= hu[j] > BONE_HU;
                }
            }
            border += usize::from(edge);
            bone_border += usize::from(bone);
        }
        let area = count as f64 * px_area;
        if area < MIN_AREA_MM2 / 4.0 {
            continue;
        }
        best.regions += 1;
        let mean = sum / count as f64;
        let std = (sum2 / count as f64 - mean * mean).max(0.0).sqrt();
        let (bw, bh) = ((x1 - x0 + 1) as f64 * pixel_mm[1], (y1 - y0 + 1) as f64 * pixel_mm[0]);
        let fill = area / (bw * bh);
        let aspect = bw.max(bh) / bw.min(bh);
        let found = (MIN_AREA_MM2..=MAX_AREA_MM2).contains(&area)
            && fill >= 0.5
            && aspect <= 2.5
            && std <= f64::from(MAX_STD_HU)
            && (bone_border as f64) < 0.1 * border.max(1) as f64
            && mean >= f64::from(min_hu);
        let key = (found, area as f32);
        if key > best_key || best.regions == 1 {
            best_key = key;
            best = BloodPool {
                found,
                mean_hu: mean as f32,
                std_hu: std as f32,
                area_mm2: area as f32,
                regions: best.regions,
            };
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 200x200 slice of soft tissue (40 HU) with a disc of `disc_hu` and radius `r` pixels.
    fn slice_with_disc(disc_hu: f32, r: f32, noise: f32) -> Vec<f32> {
        let (w, h) = (200usize, 200usize);
        (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32 - 100.0, (i / w) as f32 - 100.0);
                let wobble = noise * (((i * 2654435761) % 1000) as f32 / 500.0 - 1.0);
                if x * x + y * y <= r * r {
                    disc_hu + wobble
                } else {
                    40.0 + wobble
                }
            })
            .collect()
    }

    #[test]
    fn an_enhanced_vessel_passes_and_unenhanced_blood_does_not() {
        // 30 px at 0.7 mm: a 42 mm pulmonary trunk.
        let p = blood_pool(&slice_with_disc(320.0, 30.0, 20.0), 200, 200, [0.7, 0.7], DEFAULT_MIN_HU);
        assert!(p.found, "{p}");
        assert!((p.mean_hu - 320.0).abs() < 5.0, "{p}");
        let p = blood_pool(&slice_with_disc(45.0, 30.0, 20.0), 200, 200, [0.7, 0.7], DEFAULT_MIN_HU);
        assert!(!p.found && p.regions == 0, "{p}");
    }

    #[test]
    fn a_vessel_just_below_the_threshold_fails_and_just_above_passes() {
        let at = |hu| blood_pool(&slice_with_disc(hu, 25.0, 0.0), 200, 200, [0.7, 0.7], DEFAULT_MIN_HU).found;
        assert!(!at(DEFAULT_MIN_HU - 1.0));
        assert!(at(DEFAULT_MIN_HU + 1.0));
    }

    #[test]
    fn a_rough_region_like_trabecular_bone_and_a_thin_streak_do_not_count() {
        let p = blood_pool(&slice_with_disc(300.0, 30.0, 150.0), 200, 200, [0.7, 0.7], DEFAULT_MIN_HU);
        assert!(!p.found, "rough: {p}");
        let (w, h) = (200usize, 200usize);
        let streak: Vec<f32> =
            (0..w * h).map(|i| if (i / w) == 100 || (i / w) == 101 { 300.0 } else { 40.0 }).collect();
        let p = blood_pool(&streak, w, h, [0.7, 0.7], DEFAULT_MIN_HU);
        assert!(!p.found, "streak: {p}");
    }

    #[test]
    fn a_region_ringed_by_bone_does_not_count() {
        let (w, h) = (200usize, 200usize);
        let ringed: Vec<f32> = (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32 - 100.0, (i / w) as f32 - 100.0);
                let d2 = x * x + y * y;
                if d2 <= 900.0 {
                    250.0
                } else if d2 <= 1100.0 {
                    1000.0
                } else {
                    40.0
                }
            })
            .collect();
        assert!(!blood_pool(&ringed, w, h, [0.7, 0.7], DEFAULT_MIN_HU).found);
    }

    #[test]
    fn short_or_empty_input_finds_nothing() {
        assert!(!blood_pool(&[], 0, 0, [0.7, 0.7], DEFAULT_MIN_HU).found);
        assert!(!blood_pool(&[300.0; 10], 20, 20, [0.7, 0.7], DEFAULT_MIN_HU).found);
    }
}
