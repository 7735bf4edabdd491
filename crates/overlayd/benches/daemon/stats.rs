//! Nearest-rank percentiles of duration samples.

use std::time::Duration;

/// Percentiles of a sample (nearest rank).
pub(crate) struct Summary {
    /// Sample count.
    pub(crate) n: usize,
    /// Median.
    pub(crate) p50: Duration,
    /// 95th percentile.
    pub(crate) p95: Duration,
    /// 99th percentile.
    pub(crate) p99: Duration,
    /// Largest sample.
    pub(crate) max: Duration,
}

impl Summary {
    /// Summarise `samples` (in any order).
    pub(crate) fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        Summary {
            n: samples.len(),
            p50: percentile(&samples, 0.50),
            p95: percentile(&samples, 0.95),
            p99: percentile(&samples, 0.99),
            max: samples.last().copied().unwrap_or_default(),
        }
    }
}

/// Nearest-rank percentile `p` (0..=1) of `sorted`; zero when empty.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Median of `samples` (in any order).
pub(crate) fn median(samples: &[Duration]) -> Duration {
    let mut v = samples.to_vec();
    v.sort();
    percentile(&v, 0.5)
}
