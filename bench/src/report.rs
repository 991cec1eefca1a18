//! Latency and throughput reports: etcd benchmark's text layout (Summary, Response time
//! histogram, Latency distribution, Error distribution) and a JSON form, from hdrhistogram
//! (microsecond resolution, 3 significant digits), plus the completions over time that
//! `--plot` draws.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// etcd's percentiles (pkg/report `pctls`).
pub(crate) const PERCENTILES: [f64; 8] = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];
/// Largest latency recorded exactly (µs); slower requests are recorded as this value.
const LATENCY_US_MAX: u64 = 60_000_000;
/// Equal-width buckets in the text histogram, as etcd prints it (plus one for the slowest).
pub(crate) const HISTOGRAM_BUCKETS: usize = 10;
/// Width of one slot of the completions timeline (ms). Ten slots make a second.
pub(crate) const SLOT_MS: u64 = 100;
/// Slots per second of the timeline.
const SLOTS_PER_SEC: u64 = 1000 / SLOT_MS;
const _: () = assert!(
    1000 % SLOT_MS == 0,
    "a second must hold a whole number of slots"
);

fn histogram_new() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds")
}

/// One client's measurements (one per client task, merged at the end: no shared state on
/// the request path).
pub(crate) struct Recorder {
    /// The start of the run, the origin of the timeline.
    started: Instant,
    latencies_us: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    /// Successful completions per `SLOT_MS` slot since `started`.
    completed_per_slot: Vec<u64>,
}

impl Recorder {
    pub(crate) fn new(started: Instant) -> Self {
        Recorder {
            started,
            latencies_us: histogram_new(),
            errors: BTreeMap::new(),
            completed_per_slot: Vec::new(),
        }
    }

    /// A request that succeeded after `latency`, completing now.
    pub(crate) fn ok(&mut self, latency: Duration) {
        self.ok_at(latency, Instant::now());
    }

    /// A request that succeeded after `latency` and completed at `completed_at`.
    pub(crate) fn ok_at(&mut self, latency: Duration, completed_at: Instant) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, LATENCY_US_MAX);
        self.latencies_us.saturating_record(us);
        let since_start = completed_at.saturating_duration_since(self.started);
        let slot = usize::try_from(since_start.as_millis() / u128::from(SLOT_MS))
            .expect("a run lasts less than usize::MAX slots");
        if self.completed_per_slot.len() <= slot {
            self.completed_per_slot.resize(slot + 1, 0);
        }
        self.completed_per_slot[slot] += 1;
    }

    /// A request that failed; `what` is the error as the distribution prints it.
    pub(crate) fn error(&mut self, what: String) {
        self.error_n(what, 1);
    }

    /// `count` requests (or events) that failed the same way.
    pub(crate) fn error_n(&mut self, what: String, count: u64) {
        *self.errors.entry(what).or_default() += count;
    }
}

/// A finished run (or one part of it, such as the reads of `txn-mixed`).
#[derive(Clone)]
pub(crate) struct Report {
    /// Wall time of the run.
    total: Duration,
    latencies_us: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    /// Successful completions per `SLOT_MS` slot since the start of the run.
    completed_per_slot: Vec<u64>,
}

/// One line of the text histogram: requests with a latency above the previous bound and at
/// most `upper_us`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bucket {
    /// Inclusive upper bound (µs).
    pub(crate) upper_us: f64,
    pub(crate) count: u64,
}

impl Report {
    /// Merges client recorders into one report of a run that took `total`.
    pub(crate) fn merge(total: Duration, recorders: impl IntoIterator<Item = Recorder>) -> Self {
        let mut report = Report {
            total,
            latencies_us: histogram_new(),
            errors: BTreeMap::new(),
            completed_per_slot: Vec::new(),
        };
        for r in recorders {
            report
                .latencies_us
                .add(&r.latencies_us)
                .expect("recorders share the histogram bounds");
            for (e, n) in r.errors {
                *report.errors.entry(e).or_default() += n;
            }
            add_slots(&mut report.completed_per_slot, &r.completed_per_slot);
        }
        report
    }

    /// Merges whole reports (e.g. reads and writes into all txns); the total is the longest.
    pub(crate) fn combine<'a>(reports: impl IntoIterator<Item = &'a Report>) -> Self {
        let mut combined = Report::merge(Duration::ZERO, []);
        for r in reports {
            combined.total = combined.total.max(r.total);
            combined
                .latencies_us
                .add(&r.latencies_us)
                .expect("reports share the histogram bounds");
            for (e, n) in &r.errors {
                *combined.errors.entry(e.clone()).or_default() += n;
            }
            add_slots(&mut combined.completed_per_slot, &r.completed_per_slot);
        }
        combined
    }

    /// Successful requests.
    pub(crate) fn requests(&self) -> u64 {
        self.latencies_us.len()
    }

    /// Failed requests.
    pub(crate) fn errors(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Wall time of the run.
    pub(crate) fn total(&self) -> Duration {
        self.total
    }

    /// Successful requests per second of wall time.
    pub(crate) fn requests_per_sec(&self) -> f64 {
        self.requests() as f64 / self.total.as_secs_f64().max(1e-9)
    }

    /// The latency (µs) at percentile `p` (0 < p <= 100): the smallest recorded value that at
    /// least `p`% of the requests do not exceed (nearest rank: rank `ceil(p / 100 * n)`).
    /// 0 for an empty report.
    pub(crate) fn percentile_us(&self, p: f64) -> u64 {
        let h = &self.latencies_us;
        if h.is_empty() {
            return 0;
        }
        let n = h.len();
        // p / 100 * n is computed in floating point (99.9 / 100 * 1000 = 999.0000000000001):
        // shave a relative 1e-12 before rounding up so that exact ranks stay exact.
        let exact = p / 100.0 * n as f64;
        let rank = (exact * (1.0 - 1e-12)).ceil().clamp(1.0, n as f64) as u64;
        let mut seen = 0;
        for v in h.iter_recorded() {
            seen += v.count_at_value();
            if seen >= rank {
                return h.highest_equivalent(v.value_iterated_to());
            }
        }
        h.max()
    }

    /// The latency histogram itself, for plots.
    pub(crate) fn latencies_us(&self) -> &Histogram<u64> {
        &self.latencies_us
    }

    /// Successful completions per `SLOT_MS` slot since the start.
    pub(crate) fn completed_per_slot(&self) -> &[u64] {
        &self.completed_per_slot
    }

    /// Successful completions per whole second since the start (the last may be partial).
    pub(crate) fn completed_per_second(&self) -> Vec<u64> {
        self.completed_per_slot
            .chunks(SLOTS_PER_SEC as usize)
            .map(|c| c.iter().sum())
            .collect()
    }

    /// etcd's text histogram: `HISTOGRAM_BUCKETS` equal buckets from the fastest to the
    /// slowest latency, then one ending at the slowest. Each request counts in the first
    /// bucket whose bound is at least its latency, so every request is counted once.
    pub(crate) fn histogram_buckets(&self) -> Vec<Bucket> {
        let h = &self.latencies_us;
        if h.is_empty() {
            return Vec::new();
        }
        // Samples are compared as their bucket's highest equivalent; so are the bounds.
        let fastest = h.highest_equivalent(h.min()) as f64;
        let slowest = h.highest_equivalent(h.max()) as f64;
        let width = (slowest - fastest) / HISTOGRAM_BUCKETS as f64;
        let mut buckets: Vec<Bucket> = (0..=HISTOGRAM_BUCKETS)
            .map(|i| Bucket {
                upper_us: if i == HISTOGRAM_BUCKETS {
                    slowest
                } else {
                    fastest + width * i as f64
                },
                count: 0,
            })
            .collect();
        for v in h.iter_recorded() {
            let value = h.highest_equivalent(v.value_iterated_to()) as f64;
            let index = buckets
                .iter()
                .position(|b| value <= b.upper_us)
                .unwrap_or(HISTOGRAM_BUCKETS);
            buckets[index].count += v.count_at_value();
        }
        buckets
    }

    /// etcd benchmark's report text; `precise` prints full precision (etcd's `--precise`).
    pub(crate) fn to_text(&self, precise: bool) -> String {
        let secs = |us: f64| {
            if precise {
                format!("{} secs", us / 1e6)
            } else {
                format!("{:4.4} secs", us / 1e6)
            }
        };
        let h = &self.latencies_us;
        let mut s = String::new();
        if !h.is_empty() {
            s += "\nSummary:\n";
            let _ = writeln!(s, "  Total:\t{}.", secs(self.total.as_secs_f64() * 1e6));
            let _ = writeln!(s, "  Slowest:\t{}.", secs(h.max() as f64));
            let _ = writeln!(s, "  Fastest:\t{}.", secs(h.min() as f64));
            let _ = writeln!(s, "  Average:\t{}.", secs(h.mean()));
            let _ = writeln!(s, "  Stddev:\t{}.", secs(h.stdev()));
            if precise {
                let _ = writeln!(s, "  Requests/sec:\t{}", self.requests_per_sec());
            } else {
                let _ = writeln!(s, "  Requests/sec:\t{:4.4}", self.requests_per_sec());
            }
            s += "\nResponse time histogram:\n";
            let buckets = self.histogram_buckets();
            let max = buckets.iter().map(|b| b.count).max().unwrap_or(0).max(1);
            for b in &buckets {
                let bar = "∎".repeat(usize::try_from(b.count * 40 / max).unwrap_or(40));
                let bound = if precise {
                    format!("{}", b.upper_us / 1e6)
                } else {
                    format!("{:4.4}", b.upper_us / 1e6)
                };
                let _ = writeln!(s, "  {bound} [{}]\t|{bar}", b.count);
            }
            s += "\nLatency distribution:\n";
            for p in PERCENTILES {
                let _ = writeln!(s, "  {p}% in {}.", secs(self.percentile_us(p) as f64));
            }
        }
        if !self.errors.is_empty() {
            s += "\nError distribution:\n";
            for (e, n) in &self.errors {
                let _ = writeln!(s, "  [{n}]\t{e}");
            }
        }
        s
    }

    /// The report as JSON; times in seconds.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let h = &self.latencies_us;
        let percentiles: serde_json::Map<String, serde_json::Value> = PERCENTILES
            .iter()
            .map(|p| {
                (
                    format!("p{p}"),
                    serde_json::json!(self.percentile_us(*p) as f64 / 1e6),
                )
            })
            .collect();
        let histogram: Vec<serde_json::Value> = self
            .histogram_buckets()
            .iter()
            .map(|b| serde_json::json!({"upper_secs": b.upper_us / 1e6, "count": b.count}))
            .collect();
        let (slowest, fastest, average, stddev) = if h.is_empty() {
            (0.0, 0.0, 0.0, 0.0)
        } else {
            (h.max() as f64, h.min() as f64, h.mean(), h.stdev())
        };
        serde_json::json!({
            "total_secs": self.total.as_secs_f64(),
            "requests": self.requests(),
            "errors": self.errors(),
            "error_distribution": self.errors,
            "requests_per_sec": self.requests_per_sec(),
            "slowest_secs": slowest / 1e6,
            "fastest_secs": fastest / 1e6,
            "average_secs": average / 1e6,
            "stddev_secs": stddev / 1e6,
            "percentiles_secs": percentiles,
            "histogram": histogram,
            "completed_per_second": self.completed_per_second(),
            "slot_ms": SLOT_MS,
            "completed_per_slot": self.completed_per_slot,
        })
    }
}

fn add_slots(target: &mut Vec<u64>, source: &[u64]) {
    if target.len() < source.len() {
        target.resize(source.len(), 0);
    }
    for (t, s) in target.iter_mut().zip(source) {
        *t += s;
    }
}

/// One named report of a run.
pub(crate) struct Part {
    /// JSON key (`snake_case`).
    pub(crate) name: &'static str,
    /// Text heading, as etcd prints it before the report (empty: none).
    pub(crate) title: String,
    pub(crate) report: Report,
}

/// Everything a subcommand measured: one or more parts, one of which is the headline (what
/// `--json` puts at the top level and what comparisons read).
pub(crate) struct Outcome {
    /// The subcommand's name.
    pub(crate) command: &'static str,
    /// In print order.
    pub(crate) parts: Vec<Part>,
    /// Index into `parts`.
    pub(crate) headline: usize,
}

impl Outcome {
    /// A run measured as one report.
    pub(crate) fn single(command: &'static str, report: Report) -> Self {
        Outcome {
            command,
            parts: vec![Part {
                name: "requests",
                title: String::new(),
                report,
            }],
            headline: 0,
        }
    }

    /// The headline report.
    pub(crate) fn headline(&self) -> &Report {
        &self.parts[self.headline].report
    }

    /// Every part, titled, in order.
    pub(crate) fn to_text(&self, precise: bool) -> String {
        let mut s = String::new();
        for part in &self.parts {
            if !part.title.is_empty() {
                let _ = write!(s, "\n{}:", part.title);
            }
            s += &part.report.to_text(precise);
        }
        s
    }

    /// The headline's fields at the top level (so a script reads `requests_per_sec` the same
    /// way for every subcommand), plus `command` and every part under `parts`.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let mut top = self.headline().to_json();
        let parts: serde_json::Map<String, serde_json::Value> = self
            .parts
            .iter()
            .map(|p| (p.name.to_string(), p.report.to_json()))
            .collect();
        if let serde_json::Value::Object(map) = &mut top {
            map.insert("command".into(), self.command.into());
            map.insert("headline".into(), self.parts[self.headline].name.into());
            map.insert("parts".into(), parts.into());
        }
        top
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_of(latencies_us: impl IntoIterator<Item = u64>) -> Report {
        let started = Instant::now();
        let mut r = Recorder::new(started);
        for us in latencies_us {
            r.ok_at(Duration::from_micros(us), started);
        }
        Report::merge(Duration::from_secs(1), [r])
    }

    // Guards the percentile definition the docs give (nearest rank: the smallest value that at
    // least p% of the samples do not exceed) on values hdrhistogram holds exactly.
    #[test]
    fn percentiles_are_nearest_rank_of_the_samples() {
        let report = report_of(1..=1000);
        assert_eq!(report.percentile_us(10.0), 100);
        assert_eq!(report.percentile_us(50.0), 500);
        assert_eq!(report.percentile_us(99.0), 990);
        assert_eq!(report.percentile_us(99.9), 999);
        assert_eq!(report.percentile_us(100.0), 1000);
    }

    proptest::proptest! {
        // Oracle: nearest rank over the sorted samples. Values below 2048 µs are held exactly
        // at 3 significant digits, so the answers must be equal.
        #[test]
        fn percentiles_match_nearest_rank_over_sorted_samples(
            mut samples in proptest::collection::vec(1u64..2048, 1..400),
            p in proptest::sample::select(vec![0.1, 1.0, 10.0, 25.0, 33.3, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 100.0]),
        ) {
            let report = report_of(samples.iter().copied());
            samples.sort_unstable();
            let n = samples.len();
            let rank = ((p * n as f64 / 100.0) * (1.0 - 1e-12)).ceil().max(1.0) as usize;
            proptest::prop_assert_eq!(report.percentile_us(p), samples[rank.min(n) - 1]);
        }

        // Every sample lands in exactly one bucket of etcd's text histogram.
        #[test]
        fn histogram_buckets_hold_every_sample(
            samples in proptest::collection::vec(1u64..10_000_000, 1..300),
        ) {
            let report = report_of(samples.iter().copied());
            let buckets = report.histogram_buckets();
            proptest::prop_assert_eq!(buckets.len(), HISTOGRAM_BUCKETS + 1);
            proptest::prop_assert_eq!(buckets.iter().map(|b| b.count).sum::<u64>(), samples.len() as u64);
            proptest::prop_assert!(buckets.windows(2).all(|w| w[0].upper_us <= w[1].upper_us));
        }
    }

    // Large values are bucketed (3 significant digits): the answer is within 0.1% above.
    #[test]
    fn percentiles_of_slow_requests_are_within_a_tenth_of_a_percent() {
        let report = report_of((1..=100).map(|i| i * 10_000));
        let p90 = report.percentile_us(90.0);
        assert!((900_000..=900_900).contains(&p90), "p90 = {p90}");
    }

    #[test]
    fn an_empty_report_has_zero_percentiles_and_no_histogram() {
        let report = report_of([]);
        assert_eq!(report.percentile_us(50.0), 0);
        assert!(report.histogram_buckets().is_empty());
        assert_eq!(report.requests_per_sec(), 0.0);
        assert!(report.to_text(false).is_empty());
    }

    // etcd's layout: 10 equal buckets from fastest, the 11th ending at slowest; each request in
    // the first bucket whose bound is >= its latency.
    #[test]
    fn histogram_has_eleven_equal_buckets_from_fastest_to_slowest() {
        let report = report_of((0..=10).map(|i| 100 + i * 10));
        let buckets = report.histogram_buckets();
        assert_eq!(buckets.len(), HISTOGRAM_BUCKETS + 1);
        let bounds: Vec<f64> = buckets.iter().map(|b| b.upper_us).collect();
        let expected: Vec<f64> = (0..=10).map(|i| 100.0 + f64::from(i) * 10.0).collect();
        assert_eq!(bounds, expected);
        assert!(buckets.iter().all(|b| b.count == 1), "{buckets:?}");
    }

    #[test]
    fn histogram_counts_every_request_once() {
        let report = report_of([5, 5, 5, 7, 50, 51, 99, 1000, 1000, 1000, 20_000]);
        let buckets = report.histogram_buckets();
        assert_eq!(buckets.iter().map(|b| b.count).sum::<u64>(), 11);
        // As etcd's report: the first bound is the fastest itself, the next fastest + width.
        assert_eq!(buckets[0].count, 3, "only the fastest (5, 5, 5)");
        assert_eq!(buckets[1].count, 7, "7 to 1000 are at most fastest + width");
        assert_eq!(buckets[HISTOGRAM_BUCKETS].count, 1, "only the slowest");
    }

    #[test]
    fn histogram_of_equal_latencies_puts_all_in_the_first_bucket() {
        let report = report_of([42; 7]);
        let buckets = report.histogram_buckets();
        assert_eq!(buckets[0].count, 7);
        assert_eq!(buckets.iter().map(|b| b.count).sum::<u64>(), 7);
    }

    #[test]
    fn merge_adds_latencies_errors_and_timeline_slots() {
        let started = Instant::now();
        let mut a = Recorder::new(started);
        let mut b = Recorder::new(started);
        a.ok_at(Duration::from_micros(10), started);
        a.ok_at(
            Duration::from_micros(10),
            started + Duration::from_millis(250),
        );
        b.ok_at(
            Duration::from_micros(30),
            started + Duration::from_millis(1050),
        );
        b.error("Unavailable: no leader".into());
        b.error("Unavailable: no leader".into());
        let report = Report::merge(Duration::from_secs(2), [a, b]);
        assert_eq!(report.requests(), 3);
        assert_eq!(report.errors(), 2);
        assert_eq!(
            report.completed_per_slot(),
            &[1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(report.completed_per_second(), vec![2, 1]);
        assert!((report.requests_per_sec() - 1.5).abs() < 1e-9);
        assert!(report
            .to_text(false)
            .contains("\nError distribution:\n  [2]\tUnavailable: no leader\n"));
    }

    #[test]
    fn combine_keeps_the_longest_total_and_all_samples() {
        let mut read = report_of([10, 20]);
        read.total = Duration::from_secs(3);
        let write = report_of([1000]);
        let all = Report::combine([&read, &write]);
        assert_eq!(all.total(), Duration::from_secs(3));
        assert_eq!(all.requests(), 3);
        assert_eq!(all.percentile_us(100.0), 1000);
    }

    #[test]
    fn text_report_has_etcds_sections_and_line_format() {
        let text = report_of(1..=100).to_text(false);
        for line in [
            "\nSummary:\n",
            "  Total:\t1.0000 secs.\n",
            "  Slowest:\t0.0001 secs.\n",
            "  Requests/sec:\t100.0000\n",
            "\nResponse time histogram:\n",
            "\nLatency distribution:\n",
            "  99.9% in 0.0001 secs.\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn json_puts_the_headline_at_the_top_and_every_part_below() {
        let outcome = Outcome {
            command: "txn-mixed",
            parts: vec![
                Part {
                    name: "read",
                    title: "Read".into(),
                    report: report_of([10]),
                },
                Part {
                    name: "write",
                    title: "Write".into(),
                    report: report_of([20, 30]),
                },
            ],
            headline: 1,
        };
        let json = outcome.to_json();
        assert_eq!(json["requests"], 2);
        assert_eq!(json["command"], "txn-mixed");
        assert_eq!(json["parts"]["read"]["requests"], 1);
        assert_eq!(json["percentiles_secs"]["p50"], 20e-6);
        assert!(outcome.to_text(false).starts_with("\nRead:\nSummary:"));
    }
}
