//! Percentiles by the nearest-rank method: every reported figure is a latency that was
//! actually observed, never an interpolation between two.

use serde::Serialize;

/// The `p`th percentile (0 < p ≤ 100) of `sorted` (ascending): the smallest value with at least
/// `p` percent of the values at or below it. `None` for no values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

pub fn summarize(values: &[f64]) -> Summary {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let at = |p| percentile(&sorted, p).unwrap_or(0.0);
    Summary {
        n: sorted.len(),
        min: sorted.first().copied().unwrap_or(0.0),
        p50: at(50.0),
        p90: at(90.0),
        p99: at(99.0),
        max: sorted.last().copied().unwrap_or(0.0),
        mean: if sorted.is_empty() {
            0.0
        } else {
            sorted.iter().sum::<f64>() / sorted.len() as f64
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_picks_observed_values() {
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(5.0));
        assert_eq!(percentile(&values, 90.0), Some(9.0));
        assert_eq!(percentile(&values, 99.0), Some(10.0));
        assert_eq!(percentile(&values, 100.0), Some(10.0));
        assert_eq!(percentile(&values, 1.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 50.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&values, 0.0), None);
    }

    #[test]
    fn p99_of_a_thousand_is_the_tenth_largest() {
        let values: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(percentile(&values, 99.0), Some(990.0));
        assert_eq!(percentile(&values, 50.0), Some(500.0));
    }

    #[test]
    fn summary_sorts_and_skips_non_finite_values() {
        let s = summarize(&[3.0, 1.0, f64::NAN, 2.0, 4.0]);
        assert_eq!((s.n, s.min, s.p50, s.max, s.mean), (4, 1.0, 2.0, 4.0, 2.5));
        assert_eq!(summarize(&[]), Summary::default());
    }
}
