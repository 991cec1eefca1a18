//! The progress bar on stderr (indicatif), shown only when stderr is a terminal and `--json`
//! is off. Clients bump a shared atomic counter; a ticker task copies it into the bar ten
//! times a second, so the request path never takes the bar's lock.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the bar is redrawn.
const REDRAW_INTERVAL_MS: u64 = 100;

/// A bar for one phase of a run (`len` steps). Cloning shares the counter.
#[derive(Clone)]
pub(crate) struct Progress {
    /// Steps done so far (requests, events, watchers created).
    done: Arc<AtomicU64>,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar of `len` steps labelled `label`, drawn if `visible` (see [`Progress::visible`]).
    /// Must be called inside the tokio runtime (it spawns the ticker).
    pub(crate) fn new(len: u64, label: &str, visible: bool) -> Self {
        let done = Arc::new(AtomicU64::new(0));
        if !visible {
            return Progress { done, bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} {bar:40} {pos}/{len} [{elapsed_precise}, {per_sec}, eta {eta}]",
            )
            .expect("valid template"),
        );
        bar.set_prefix(label.to_string());
        let ticker_bar = bar.downgrade();
        let ticker_done = done.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(REDRAW_INTERVAL_MS));
            // Endless loop by design: it ends when the bar is dropped or finished.
            loop {
                interval.tick().await;
                let Some(bar) = ticker_bar.upgrade() else {
                    break;
                };
                if bar.is_finished() {
                    break;
                }
                bar.set_position(ticker_done.load(Ordering::Relaxed));
            }
        });
        Progress {
            done,
            bar: Some(bar),
        }
    }

    /// Whether bars should be drawn: stderr is a terminal and the output is not JSON.
    pub(crate) fn visible(json: bool) -> bool {
        !json && std::io::stderr().is_terminal()
    }

    /// Counts `n` more steps done.
    pub(crate) fn inc(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// Steps counted so far.
    pub(crate) fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Draws the final position and clears the bar, so the report starts on a clean screen.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.set_position(self.done());
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hidden_bar_still_counts() {
        let progress = Progress::new(10, "put", false);
        let clone = progress.clone();
        progress.inc(3);
        clone.inc(4);
        assert_eq!(progress.done(), 7);
        progress.finish();
    }

    #[test]
    fn json_output_hides_the_bar() {
        assert!(!Progress::visible(true));
    }
}
