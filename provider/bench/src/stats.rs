//! Latency samples and their summary.

/// Round-trip samples in nanoseconds.
#[derive(Debug, Default)]
pub struct Samples(pub Vec<u64>);

/// One-way latency (half the round trip, as perftest reports it).
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// Median, µs.
    pub median_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
}

impl Samples {
    /// With room for `n` samples.
    pub fn with_capacity(n: usize) -> Self {
        Samples(Vec::with_capacity(n))
    }

    /// Median and p99 of half the round trips.
    pub fn one_way(mut self) -> Latency {
        if self.0.is_empty() {
            return Latency {
                median_us: f64::NAN,
                p99_us: f64::NAN,
            };
        }
        self.0.sort_unstable();
        let at = |q: f64| {
            let i = ((self.0.len() - 1) as f64 * q).round() as usize;
            self.0[i] as f64 / 2.0 / 1000.0
        };
        Latency {
            median_us: at(0.5),
            p99_us: at(0.99),
        }
    }
}
