//! Order statistics of latency samples (microseconds in, milliseconds out). Pure arithmetic.

use serde::{Deserialize, Serialize};

/// Figures of one stage over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Nearest-rank percentile of sorted values (`q` in 0..=1), always one of the values (the median
/// of an even count is the lower middle one); zero for no values.
pub fn percentile<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Summarizes microsecond samples.
pub fn summarize(samples_us: &[u32]) -> Summary {
    if samples_us.is_empty() {
        return Summary::default();
    }
    let mut v = samples_us.to_vec();
    v.sort_unstable();
    let ms = |us: u32| f64::from(us) / 1000.0;
    Summary {
        n: v.len(),
        mean_ms: v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64 / 1000.0,
        p50_ms: ms(percentile(&v, 0.50)),
        p90_ms: ms(percentile(&v, 0.90)),
        p99_ms: ms(percentile(&v, 0.99)),
        max_ms: ms(v[v.len() - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        let s = summarize(&v);
        assert_eq!((s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms), (50.0, 90.0, 99.0, 100.0));
        assert!((s.mean_ms - 50.5).abs() < 1e-9);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.0);
        assert_eq!(percentile::<f64>(&[], 0.5), 0.0);
        assert_eq!(summarize(&[]).n, 0);
        // Unsorted input is sorted first.
        assert_eq!(summarize(&[3000, 1000, 2000]).p50_ms, 2.0);
    }
}
