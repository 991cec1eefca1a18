//! Latency and throughput reports: etcd benchmark's text layout (Summary,
//! Response time histogram, Latency distribution) and a JSON form, from
//! hdrhistogram (microsecond resolution, 3 significant digits).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// etcd's percentiles.
const PERCENTILES: [f64; 8] = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];
/// Largest latency recorded exactly (µs); slower requests saturate.
const LATENCY_US_MAX: u64 = 60_000_000;

/// One client's measurements.
pub(crate) struct Recorder {
    started: Instant,
    latencies_us: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    /// Completed requests per whole second since the start of the run.
    per_second: Vec<u64>,
}

impl Recorder {
    pub(crate) fn new(started: Instant) -> Self {
        Recorder {
            started,
            latencies_us: Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
                .expect("valid histogram bounds"),
            errors: BTreeMap::new(),
            per_second: Vec::new(),
        }
    }

    pub(crate) fn ok(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, LATENCY_US_MAX);
        self.latencies_us.saturating_record(us);
        let second = self.started.elapsed().as_secs() as usize;
        if self.per_second.len() <= second {
            self.per_second.resize(second + 1, 0);
        }
        self.per_second[second] += 1;
    }

    pub(crate) fn error(&mut self, what: String) {
        *self.errors.entry(what).or_default() += 1;
    }
}

/// A finished run.
pub(crate) struct Report {
    total: Duration,
    latencies_us: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    per_second: Vec<u64>,
}

fn secs(us: f64) -> String {
    format!("{:4.4} secs", us / 1e6)
}

impl Report {
    pub(crate) fn merge(total: Duration, recorders: Vec<Recorder>) -> Self {
        let mut latencies_us =
            Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds");
        let mut errors = BTreeMap::new();
        let mut per_second: Vec<u64> = Vec::new();
        for r in recorders {
            latencies_us.add(&r.latencies_us).expect("same bounds");
            for (e, n) in r.errors {
                *errors.entry(e).or_default() += n;
            }
            if per_second.len() < r.per_second.len() {
                per_second.resize(r.per_second.len(), 0);
            }
            for (i, n) in r.per_second.iter().enumerate() {
                per_second[i] += n;
            }
        }
        Report {
            total,
            latencies_us,
            errors,
            per_second,
        }
    }

    fn requests_per_sec(&self) -> f64 {
        self.latencies_us.len() as f64 / self.total.as_secs_f64().max(1e-9)
    }

    /// etcd benchmark's report text.
    pub(crate) fn to_text(&self) -> String {
        let h = &self.latencies_us;
        let mut s = String::new();
        if !h.is_empty() {
            s += "\nSummary:\n";
            s += &format!("  Total:\t{}.\n", secs(self.total.as_secs_f64() * 1e6));
            s += &format!("  Slowest:\t{}.\n", secs(h.max() as f64));
            s += &format!("  Fastest:\t{}.\n", secs(h.min() as f64));
            s += &format!("  Average:\t{}.\n", secs(h.mean()));
            s += &format!("  Stddev:\t{}.\n", secs(h.stdev()));
            s += &format!("  Requests/sec:\t{:4.4}\n", self.requests_per_sec());
            s += &self.histogram_text();
            s += "\nLatency distribution:\n";
            for p in PERCENTILES {
                s += &format!(
                    "  {p}% in {}.\n",
                    secs(h.value_at_quantile(p / 100.0) as f64)
                );
            }
        }
        if !self.errors.is_empty() {
            s += "\nError distribution:\n";
            for (e, n) in &self.errors {
                s += &format!("  [{n}]\t{e}\n");
            }
        }
        s
    }

    /// Ten equal buckets between fastest and slowest, as etcd prints them.
    fn histogram_text(&self) -> String {
        let h = &self.latencies_us;
        let (fastest, slowest) = (h.min() as f64, h.max() as f64);
        let width = (slowest - fastest) / 10.0;
        let bounds: Vec<f64> = (0..=10)
            .map(|i| {
                if i == 10 {
                    slowest
                } else {
                    fastest + width * i as f64
                }
            })
            .collect();
        let mut counts = [0u64; 11];
        for v in h.iter_recorded() {
            let value = h.highest_equivalent(v.value_iterated_to()) as f64;
            let bucket = bounds.iter().position(|b| value <= *b).unwrap_or(10);
            counts[bucket] += v.count_at_value();
        }
        let max = counts.iter().copied().max().unwrap_or(0).max(1);
        let mut s = String::from("\nResponse time histogram:\n");
        for (bound, count) in bounds.iter().zip(counts) {
            let bar = "∎".repeat((count * 40 / max) as usize);
            s += &format!("  {:4.4} [{count}]\t|{bar}\n", bound / 1e6);
        }
        s
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        let h = &self.latencies_us;
        let percentiles: serde_json::Map<String, serde_json::Value> = PERCENTILES
            .iter()
            .map(|p| {
                (
                    format!("p{p}"),
                    serde_json::json!(h.value_at_quantile(p / 100.0) as f64 / 1e6),
                )
            })
            .collect();
        serde_json::json!({
            "total_secs": self.total.as_secs_f64(),
            "requests": h.len(),
            "errors": self.errors.values().sum::<u64>(),
            "error_distribution": self.errors,
            "requests_per_sec": self.requests_per_sec(),
            "slowest_secs": h.max() as f64 / 1e6,
            "fastest_secs": h.min() as f64 / 1e6,
            "average_secs": h.mean() / 1e6,
            "stddev_secs": h.stdev() / 1e6,
            "percentiles_secs": percentiles,
            "completed_per_second": self.per_second,
        })
    }
}
