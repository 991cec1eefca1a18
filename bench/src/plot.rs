//! `--plot FILE`: a PNG of a run's latency distribution (histogram on a log axis and the
//! CDF, one line per part of the run) and its completed requests per second over time.
//!
//! Text is drawn by plotters' `ab_glyph` backend from a TTF read at run time (Debian's
//! fonts-dejavu-core, or the file `KEEL_BENCH_FONT` names), so no system font library is
//! needed; a missing font is a clear error before the run starts.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::report::{Outcome, Report, SLOT_MS};

/// The font used when `KEEL_BENCH_FONT` is not set.
pub(crate) const FONT_PATH_DEFAULT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/// Image size (pixels).
const WIDTH_PX: u32 = 1400;
const HEIGHT_PX: u32 = 1000;
/// Bars of the latency histogram.
const LATENCY_BINS: usize = 60;
/// Points of each CDF line.
const CDF_POINTS: usize = 200;
/// The family name the font is registered under.
const FAMILY: &str = "sans-serif";

/// The font file to use: `KEEL_BENCH_FONT` or the Debian default.
fn font_path() -> PathBuf {
    std::env::var_os("KEEL_BENCH_FONT")
        .map_or_else(|| PathBuf::from(FONT_PATH_DEFAULT), PathBuf::from)
}

/// The font file's bytes, or an error that says how to install one.
fn read_font(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| {
        format!(
            "--plot needs a TTF font to draw text: cannot read {}; install Debian's \
             fonts-dejavu-core (apt-get install fonts-dejavu-core) or set KEEL_BENCH_FONT to a \
             .ttf file",
            path.display()
        )
    })
}

/// Reads and registers the font at `path` for plotters, once per process (the font bytes
/// live as long as the process, as plotters requires).
fn register_font_from(path: &Path) -> anyhow::Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    let registered = REGISTERED.get_or_init(|| {
        let bytes = read_font(path).map_err(|e| format!("{e:#}"))?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font(FAMILY, FontStyle::Normal, bytes)
            .map_err(|_| format!("--plot: {} is not a TrueType/OpenType font", path.display()))
    });
    registered.clone().map_err(anyhow::Error::msg)
}

/// Checks that the plot's font can be loaded (called before the run).
pub(crate) fn font_check() -> anyhow::Result<()> {
    register_font_from(&font_path())
}

/// Checks that `path` can be created, so that a bad `--plot` fails before the run.
pub(crate) fn check_writable(path: &Path) -> anyhow::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    anyhow::ensure!(
        parent.is_dir(),
        "--plot {}: directory {} does not exist",
        path.display(),
        parent.display()
    );
    Ok(())
}

/// One bar of the latency histogram: requests with latency in (`low_ms`, `high_ms`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bin {
    pub(crate) low_ms: f64,
    pub(crate) high_ms: f64,
    pub(crate) count: u64,
}

/// `bins` log-spaced bins from just below the fastest to the slowest latency; every request
/// is counted in exactly one bin. Empty for an empty histogram.
pub(crate) fn latency_bins(h: &Histogram<u64>, bins: usize) -> Vec<Bin> {
    assert!(bins > 0, "at least one bin");
    if h.is_empty() {
        return Vec::new();
    }
    // hdrhistogram reports values as the bucket's highest equivalent; bound by those.
    let low_us = (h.min() as f64 * 0.999).max(0.5);
    let high_us = (h.highest_equivalent(h.max()) as f64).max(low_us * 1.001);
    let ratio = (high_us / low_us).powf(1.0 / bins as f64);
    let mut out: Vec<Bin> = (0..bins)
        .map(|i| Bin {
            low_ms: low_us * ratio.powi(i as i32) / 1e3,
            high_ms: if i + 1 == bins {
                high_us / 1e3
            } else {
                low_us * ratio.powi(i as i32 + 1) / 1e3
            },
            count: 0,
        })
        .collect();
    for v in h.iter_recorded() {
        let value_ms = h.highest_equivalent(v.value_iterated_to()) as f64 / 1e3;
        let index = out
            .iter()
            .position(|b| value_ms <= b.high_ms)
            .unwrap_or(bins - 1);
        out[index].count += v.count_at_value();
    }
    out
}

/// The CDF as (latency ms, percentile) points at `points` evenly spaced percentiles up to
/// 100, plus the fastest at 0.
pub(crate) fn cdf_points(h: &Histogram<u64>, points: usize) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut out = vec![(h.min() as f64 / 1e3, 0.0)];
    for i in 1..=points {
        let percentile = 100.0 * i as f64 / points as f64;
        let us = h.value_at_quantile(percentile / 100.0);
        out.push((us as f64 / 1e3, percentile));
    }
    out
}

/// Completed requests per second over time, one point per `SLOT_MS` slot: (slot end in
/// seconds since the start, completions in the slot scaled to a per-second rate).
pub(crate) fn throughput_points(completed_per_slot: &[u64]) -> Vec<(f64, f64)> {
    let slot_secs = SLOT_MS as f64 / 1e3;
    completed_per_slot
        .iter()
        .enumerate()
        .map(|(i, n)| ((i + 1) as f64 * slot_secs, *n as f64 / slot_secs))
        .collect()
}

/// Line colours, one per part of the run.
const COLORS: [RGBColor; 5] = [BLUE, RED, GREEN, MAGENTA, BLACK];

fn color(i: usize) -> RGBAColor {
    COLORS[i % COLORS.len()].to_rgba()
}

/// A compact axis label for a latency in milliseconds.
fn ms_label(ms: &f64) -> String {
    let ms = *ms;
    if ms >= 10.0 {
        format!("{ms:.0}")
    } else if ms >= 1.0 {
        format!("{ms:.1}")
    } else if ms >= 0.1 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.3}")
    }
}

fn chart_error<E: std::error::Error + Send + Sync + 'static>(
    e: DrawingAreaErrorKind<E>,
) -> anyhow::Error {
    anyhow::anyhow!("drawing the plot: {e}")
}

/// Draws `outcome` into the PNG at `path`.
pub(crate) fn draw(outcome: &Outcome, path: &Path) -> anyhow::Result<()> {
    font_check()?;
    let root = BitMapBackend::new(path, (WIDTH_PX, HEIGHT_PX)).into_drawing_area();
    root.fill(&WHITE).map_err(chart_error)?;
    let headline = outcome.headline();
    let title = format!(
        "keel-bench {}: {} requests, {} errors, {:.0} req/s over {:.2} s",
        outcome.command,
        headline.requests(),
        headline.errors(),
        headline.requests_per_sec(),
        headline.total().as_secs_f64()
    );
    let root = root.titled(&title, (FAMILY, 26)).map_err(chart_error)?;
    let (top, bottom) = root.split_vertically(HEIGHT_PX / 2);
    let (histogram_area, cdf_area) = top.split_horizontally(WIDTH_PX / 2);
    draw_histogram(&histogram_area, headline)?;
    draw_cdf(&cdf_area, outcome)?;
    draw_throughput(&bottom, outcome)?;
    root.present()
        .with_context(|| format!("writing the plot to {}", path.display()))?;
    Ok(())
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn no_data(area: &Area<'_>, caption: &str) -> anyhow::Result<()> {
    area.draw(&Text::new(
        format!("{caption}: no successful requests"),
        (40, 60),
        (FAMILY, 20),
    ))
    .map_err(chart_error)
}

fn draw_histogram(area: &Area<'_>, report: &Report) -> anyhow::Result<()> {
    let caption = "Latency histogram (headline)";
    let bins = latency_bins(report.latencies_us(), LATENCY_BINS);
    let (Some(first), Some(last)) = (bins.first(), bins.last()) else {
        return no_data(area, caption);
    };
    let count_max = bins.iter().map(|b| b.count).max().unwrap_or(1).max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FAMILY, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (first.low_ms..last.high_ms).log_scale().base(2.0),
            0u64..count_max + count_max / 10 + 1,
        )
        .map_err(chart_error)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms, log scale)")
        .x_label_formatter(&ms_label)
        .x_labels(8)
        .y_desc("requests")
        .label_style((FAMILY, 14))
        .draw()
        .map_err(chart_error)?;
    chart
        .draw_series(bins.iter().map(|b| {
            Rectangle::new(
                [(b.low_ms, 0), (b.high_ms, b.count)],
                BLUE.mix(0.6).filled(),
            )
        }))
        .map_err(chart_error)?;
    Ok(())
}

fn draw_cdf(area: &Area<'_>, outcome: &Outcome) -> anyhow::Result<()> {
    let caption = "Latency CDF";
    let lines: Vec<(&str, Vec<(f64, f64)>)> = outcome
        .parts
        .iter()
        .map(|p| (p.name, cdf_points(p.report.latencies_us(), CDF_POINTS)))
        .filter(|(_, points)| !points.is_empty())
        .collect();
    let all = lines
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.0));
    let (low_ms, high_ms) = all.fold((f64::MAX, 0.0f64), |(lo, hi), ms| (lo.min(ms), hi.max(ms)));
    if lines.is_empty() {
        return no_data(area, caption);
    }
    let low_ms = (low_ms * 0.9).max(1e-3);
    let high_ms = (high_ms * 1.1).max(low_ms * 1.01);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FAMILY, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((low_ms..high_ms).log_scale().base(2.0), 0.0..100.0)
        .map_err(chart_error)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms, log scale)")
        .x_label_formatter(&ms_label)
        .x_labels(8)
        .y_desc("percentile")
        .label_style((FAMILY, 14))
        .draw()
        .map_err(chart_error)?;
    draw_lines(&mut chart, lines, SeriesLabelPosition::LowerRight)
}

fn draw_throughput(area: &Area<'_>, outcome: &Outcome) -> anyhow::Result<()> {
    let caption = format!("Completed per second over time ({SLOT_MS} ms slots)");
    let lines: Vec<(&str, Vec<(f64, f64)>)> = outcome
        .parts
        .iter()
        .map(|p| (p.name, throughput_points(p.report.completed_per_slot())))
        .filter(|(_, points)| !points.is_empty())
        .collect();
    if lines.is_empty() {
        return no_data(area, &caption);
    }
    let secs_max = lines
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.0))
        .fold(0.0f64, f64::max);
    let rate_max = lines
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.1))
        .fold(1.0f64, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FAMILY, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..secs_max.max(0.1), 0.0..rate_max * 1.1)
        .map_err(chart_error)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the start")
        .y_desc("completed / s")
        .label_style((FAMILY, 14))
        .draw()
        .map_err(chart_error)?;
    draw_lines(&mut chart, lines, SeriesLabelPosition::UpperRight)
}

/// Draws one coloured line per part with a legend at `legend`: the tail both line panels share.
fn draw_lines<'a, X, Y>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>,
    lines: Vec<(&str, Vec<(f64, f64)>)>,
    legend: SeriesLabelPosition,
) -> anyhow::Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, (name, points)) in lines.into_iter().enumerate() {
        let color = color(i);
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(chart_error)?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(legend)
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(chart_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::report::{Part, Recorder};

    fn histogram_of(latencies_us: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let started = Instant::now();
        let mut r = Recorder::new(started);
        for us in latencies_us {
            r.ok_at(Duration::from_micros(us), started);
        }
        Report::merge(Duration::from_secs(1), [r])
            .latencies_us()
            .clone()
    }

    // Guards the histogram panel: bins must tile the range with no gap and count each sample
    // once (a sample on a bound goes to the lower bin, as in the text histogram).
    #[test]
    fn latency_bins_count_every_request_once_and_are_contiguous() {
        let h = histogram_of([100, 100, 150, 900, 1_000, 5_000, 80_000, 80_000, 1_000_000]);
        let bins = latency_bins(&h, 20);
        assert_eq!(bins.len(), 20);
        assert_eq!(bins.iter().map(|b| b.count).sum::<u64>(), 9);
        for pair in bins.windows(2) {
            assert!((pair[0].high_ms - pair[1].low_ms).abs() < 1e-9, "{pair:?}");
        }
        assert!(
            bins[0].low_ms < 0.1 && bins[19].high_ms >= 1000.0,
            "{bins:?}"
        );
        // 20 bins over 0.1 ms to 1 s: each spans a factor of about 1.58.
        assert_eq!(bins[0].count, 3, "100, 100 and 150 us are in the first bin");
        assert_eq!(bins[19].count, 1, "only the slowest is in the last bin");
    }

    // A run where every request took the same time must not divide by a zero-width range.
    #[test]
    fn latency_bins_of_equal_latencies_are_one_full_bin() {
        let bins = latency_bins(&histogram_of([250; 5]), 10);
        assert_eq!(bins.iter().map(|b| b.count).sum::<u64>(), 5);
        assert_eq!(bins.iter().filter(|b| b.count > 0).count(), 1);
        assert!(latency_bins(&histogram_of([]), 10).is_empty());
    }

    // The CDF uses the report's nearest-rank percentiles, so it agrees with the text report.
    #[test]
    fn cdf_rises_from_the_fastest_to_the_slowest() {
        let points = cdf_points(&histogram_of(1..=1000), 100);
        assert_eq!(points.len(), 101);
        assert_eq!(points[0], (0.001, 0.0));
        assert_eq!(points[50], (0.5, 50.0));
        assert_eq!(points[100], (1.0, 100.0));
        assert!(points
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1));
    }

    // 100 ms slots are scaled to a per-second rate, plotted at the end of their slot.
    #[test]
    fn throughput_points_scale_slots_to_per_second() {
        let points = throughput_points(&[10, 0, 25]);
        let slot_secs = SLOT_MS as f64 / 1e3;
        assert_eq!(points.len(), 3);
        assert!((points[0].0 - slot_secs).abs() < 1e-12);
        assert!((points[0].1 - 10.0 / slot_secs).abs() < 1e-9);
        assert_eq!(points[1].1, 0.0);
        assert!((points[2].0 - 3.0 * slot_secs).abs() < 1e-12);
    }

    // The brief's rule: a missing font fails with a message that says what to install.
    #[test]
    fn a_missing_font_names_the_package_to_install() {
        let message = format!(
            "{:#}",
            read_font(Path::new("/nonexistent/DejaVuSans.ttf")).expect_err("no such font")
        );
        assert!(message.contains("fonts-dejavu-core"), "{message}");
        assert!(message.contains("KEEL_BENCH_FONT"), "{message}");
    }

    // A typo in --plot must fail before a long run, not after it.
    #[test]
    fn a_missing_plot_directory_is_rejected_before_the_run() {
        let message = check_writable(Path::new("/nonexistent-keel-bench-dir/x.png"))
            .expect_err("missing directory")
            .to_string();
        assert!(message.contains("does not exist"), "{message}");
        check_writable(Path::new("relative.png")).expect("the current directory exists");
    }

    // Needs Debian's fonts-dejavu-core (or KEEL_BENCH_FONT), as --plot itself does; the error
    // says so when it is missing.
    #[test]
    fn draw_writes_a_png_with_every_part() {
        let started = Instant::now();
        let mut read = Recorder::new(started);
        let mut write = Recorder::new(started);
        for i in 0..500u64 {
            let at = started + Duration::from_millis(i * 3);
            read.ok_at(Duration::from_micros(200 + i), at);
            write.ok_at(Duration::from_micros(2_000 + 7 * i), at);
        }
        write.error("Unavailable: no leader".into());
        let read = Report::merge(Duration::from_millis(1500), [read]);
        let write = Report::merge(Duration::from_millis(1500), [write]);
        let all = Report::combine([&read, &write]);
        let outcome = Outcome {
            command: "txn-mixed",
            parts: vec![
                Part {
                    name: "read",
                    title: String::new(),
                    report: read,
                },
                Part {
                    name: "write",
                    title: String::new(),
                    report: write,
                },
                Part {
                    name: "all",
                    title: String::new(),
                    report: all,
                },
            ],
            headline: 2,
        };
        let dir = std::env::temp_dir().join(format!("keel-bench-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("txn-mixed.png");
        draw(&outcome, &path).expect("plot drawn");
        let bytes = std::fs::read(&path).expect("plot written");
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
        assert!(
            bytes.len() > 10_000,
            "suspiciously small PNG: {} bytes",
            bytes.len()
        );
        std::fs::remove_dir_all(&dir).expect("temp dir removed");
    }

    // A run where every request failed still produces a (labelled, empty) plot.
    #[test]
    fn an_empty_run_still_draws() {
        let outcome = Outcome::single("put", Report::merge(Duration::from_secs(1), []));
        let dir = std::env::temp_dir().join(format!("keel-bench-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("empty.png");
        draw(&outcome, &path).expect("plot drawn");
        assert!(std::fs::read(&path)
            .expect("written")
            .starts_with(b"\x89PNG"));
        std::fs::remove_dir_all(&dir).expect("temp dir removed");
    }
}
