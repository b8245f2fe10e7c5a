//! Latency histograms (HdrHistogram, microseconds) and their summaries. Percentiles of several
//! runs or threads always come from merged histograms, never from averaged percentiles.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Significant figures kept: 0.1 % value error.
const SIGFIG: u8 = 3;

/// An auto-resizing histogram of microseconds.
pub fn new_hist() -> Histogram<u64> {
    // `new` auto-resizes: memory follows the largest value seen, not a fixed bound.
    Histogram::new(SIGFIG).unwrap_or_else(|_| Histogram::new(2).expect("2 sigfig is valid"))
}

/// Records `us` (clamped to at least 1 µs so sub-microsecond values are kept).
pub fn record(h: &mut Histogram<u64>, us: u64) {
    let _ = h.record(us.max(1));
}

/// p50..p99.99 and max, microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
}

impl Summary {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            p9999: h.value_at_quantile(0.9999),
            max: h.max(),
        }
    }

    /// p50 <= p90 <= ... <= max.
    pub fn is_monotonic(&self) -> bool {
        let v = [
            self.min, self.p50, self.p90, self.p99, self.p999, self.p9999, self.max,
        ];
        v.windows(2).all(|w| w[0] <= w[1])
    }
}

/// The recorded buckets of a histogram as `[value_us, count]` pairs: enough to merge runs
/// later (bench-compare) without a binary encoding.
pub fn to_buckets(h: &Histogram<u64>) -> Vec<[u64; 2]> {
    h.iter_recorded()
        .map(|v| [v.value_iterated_to(), v.count_at_value()])
        .collect()
}

pub fn from_buckets(b: &[[u64; 2]]) -> Histogram<u64> {
    let mut h = new_hist();
    for [v, c] in b {
        let _ = h.record_n((*v).max(1), *c);
    }
    h
}

/// (percentile, µs) points for a percentile-curve plot, up to the last "nine" the data supports.
pub fn percentile_curve(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    let mut out = Vec::new();
    if h.is_empty() {
        return out;
    }
    let n = h.len() as f64;
    let mut nines = 0.0f64;
    while nines <= 6.0 {
        let p = 1.0 - 10f64.powf(-nines);
        if nines > 0.0 && (1.0 - p) * n < 1.0 {
            break;
        }
        out.push([p * 100.0, h.value_at_quantile(p) as f64]);
        nines += 0.1;
    }
    out.push([100.0, h.max() as f64]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_uniform_values() {
        let mut h = new_hist();
        for v in 1..=10_000 {
            record(&mut h, v);
        }
        let s = Summary::of(&h);
        assert_eq!(s.count, 10_000);
        assert!((s.p50 as i64 - 5000).abs() <= 5, "{s:?}");
        assert!((s.p99 as i64 - 9900).abs() <= 10, "{s:?}");
        assert!(s.is_monotonic());
        assert!(s.max >= 9990);
    }

    #[test]
    fn merged_buckets_equal_the_original() {
        let mut h = new_hist();
        for v in [3, 3, 70, 1_000_000] {
            record(&mut h, v);
        }
        let back = from_buckets(&to_buckets(&h));
        assert_eq!(Summary::of(&h), Summary::of(&back));
    }

    #[test]
    fn curve_stops_where_data_ends() {
        let mut h = new_hist();
        for v in 1..=1000 {
            record(&mut h, v);
        }
        let c = percentile_curve(&h);
        assert!(c.len() > 10);
        assert!(c.windows(2).all(|w| w[0][1] <= w[1][1]));
        assert!(c.iter().all(|p| p[0] <= 100.0));
    }
}
