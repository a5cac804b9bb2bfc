//! A slice's place in its series ([`crate::slice::Slice::order`]), computed once at decode so
//! that the daemon, `bench`, `eval` and `infer` all feed the series rule the same numbers. Pure
//! computation on header values handed in; touches nothing.
//!
//! - A single-frame file: its InstanceNumber; without one, its position along the patient axis
//!   ([`order_from_position`]); without either, 1.
//! - A multi-frame file (Enhanced CT, some exports: a whole series in one file under ONE
//!   InstanceNumber): each frame's own position from the Per-frame Functional Groups Sequence,
//!   divided by the slice spacing (SpacingBetweenSlices, else the smallest gap between the frames'
//!   positions); when positions are missing or do not give every frame its own place, the frame's
//!   index within the file's InstanceNumber: `(InstanceNumber - 1) * MAX_FRAMES + frame + 1`.
//!   Frames never share a place, so the k-of-n window sees every one of them (issue 20: every
//!   frame once took the file's InstanceNumber and a positive multi-frame series closed NEGATIVE).
//!
//! Raster files (PNG/JPEG) take the number in their name (`raster::instance_from_name`), else 1.

use super::MAX_FRAMES;
use crate::verdict::series::order_from_position;

/// The place of a single-frame file's slice.
pub fn single_frame(instance: Option<i32>, position_z: Option<f64>, spacing_mm: Option<f64>) -> i32 {
    instance.or_else(|| order_from_position(position_z?, spacing_mm?)).unwrap_or(1)
}

/// The place of each of a multi-frame file's `frame_z.len()` frames. `frame_z`: each frame's
/// position along the patient axis (mm) from its functional groups, `None` where absent;
/// `spacing_mm`: SpacingBetweenSlices when the file gives it.
pub fn multi_frame(instance: Option<i32>, frame_z: &[Option<f64>], spacing_mm: Option<f64>) -> Vec<i32> {
    if let Some(orders) = from_positions(frame_z, spacing_mm) {
        return orders;
    }
    let base = i64::from(instance.unwrap_or(1)).saturating_sub(1).saturating_mul(MAX_FRAMES as i64);
    (0..frame_z.len()).map(|f| i32::try_from(base + f as i64 + 1).unwrap_or(f as i32 + 1)).collect()
}

/// Orders from the frames' positions, when every frame has one and each lands on its own place.
fn from_positions(frame_z: &[Option<f64>], spacing_mm: Option<f64>) -> Option<Vec<i32>> {
    let z: Vec<f64> = frame_z.iter().copied().collect::<Option<Vec<f64>>>()?;
    if z.len() < 2 {
        return None;
    }
    let spacing = spacing_mm.filter(|s| s.is_finite() && *s > 0.0).or_else(|| smallest_gap(&z))?;
    let orders: Vec<i32> = z.iter().map(|&v| order_from_position(v, spacing)).collect::<Option<Vec<i32>>>()?;
    let mut sorted = orders.clone();
    sorted.sort_unstable();
    sorted.windows(2).all(|w| w[0] != w[1]).then_some(orders)
}

/// The smallest positive distance between two of the positions (0.001 mm counts as equal).
fn smallest_gap(z: &[f64]) -> Option<f64> {
    let mut s: Vec<f64> = z.iter().copied().filter(|v| v.is_finite()).collect();
    s.sort_by(f64::total_cmp);
    s.windows(2).map(|w| w[1] - w[0]).filter(|d| *d > 1e-3).min_by(f64::total_cmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_frame_takes_the_instance_number_else_the_position_else_one() {
        assert_eq!(single_frame(Some(17), Some(-40.0), Some(1.0)), 17);
        assert_eq!(single_frame(None, Some(-40.0), Some(1.25)), -32);
        assert_eq!(single_frame(None, Some(-40.0), None), 1);
        assert_eq!(single_frame(None, None, None), 1);
    }

    #[test]
    fn frames_get_distinct_places_from_their_positions() {
        // A series cut cranial to caudal at 1 mm: z falls as the frame index rises.
        let z: Vec<Option<f64>> = (0..40).map(|k| Some(-100.0 - f64::from(k))).collect();
        let o = multi_frame(Some(1), &z, None);
        assert_eq!(o.len(), 40);
        assert_eq!((o[0], o[39]), (-100, -139));
        // SpacingBetweenSlices given: the same places.
        assert_eq!(multi_frame(Some(1), &z, Some(1.0)), o);
        // A spacing that would put two frames on one place is not used: frame index instead.
        assert_eq!(multi_frame(Some(1), &z, Some(5.0)), (1..=40).collect::<Vec<i32>>());
    }

    #[test]
    fn without_positions_frames_count_within_the_files_instance_number() {
        let none = vec![None; 3];
        assert_eq!(multi_frame(Some(1), &none, None), vec![1, 2, 3]);
        assert_eq!(multi_frame(None, &none, None), vec![1, 2, 3]);
        let base = MAX_FRAMES as i32;
        assert_eq!(multi_frame(Some(2), &none, None), vec![base + 1, base + 2, base + 3]);
        // One frame without a position: none are used.
        assert_eq!(multi_frame(Some(1), &[Some(0.0), None, Some(2.0)], None), vec![1, 2, 3]);
        // Absurd instance numbers do not overflow.
        let big = multi_frame(Some(i32::MAX), &none, None);
        assert_eq!(big, vec![1, 2, 3]);
        let all_distinct = |v: &[i32]| v.iter().collect::<std::collections::HashSet<_>>().len() == v.len();
        assert!(all_distinct(&multi_frame(Some(-5), &vec![None; 100], None)));
    }
}
