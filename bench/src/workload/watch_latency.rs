//! `watch-latency`: the time from a put to each watcher receiving its event (etcd's
//! `benchmark watch-latency`). `--streams` streams of `--watchers-per-stream` watchers (or
//! keel's `--watchers` in total) watch one key; one client puts `--put-total` values at
//! `--put-rate`. Latency runs from sending the put to receiving its event, so it includes the
//! put's commit; the put's own latency is reported apart.

use std::sync::Arc;
use std::time::Instant;

use crate::cli::Global;
use crate::client::connect;
use crate::progress::Progress;
use crate::proto::etcdserverpb::PutRequest;
use crate::report::{Outcome, Part, Recorder};

use super::keys::{numbered_value, random_value};
use super::watch::collect;
use super::watch_streams::{marked_puts, open_stream, receive_events, SendTimes};

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct WatchLatencyArgs {
    /// Total watch streams.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) streams: u64,
    /// Total watchers per stream.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) watchers_per_stream: u64,
    /// keel: total watchers, spread evenly over the streams (instead of
    /// --watchers-per-stream).
    #[arg(long, conflicts_with = "watchers_per_stream", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) watchers: Option<u64>,
    /// PrevKV enabled on watch requests.
    #[arg(long)]
    pub(crate) prevkv: bool,
    /// Total number of put requests (etcd 3.4 named it --total).
    #[arg(long, alias = "total", default_value_t = 1000)]
    pub(crate) put_total: u64,
    /// Number of keys to put per second.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) put_rate: u64,
    /// Key size of watch response (bytes).
    #[arg(long, default_value_t = 32)]
    pub(crate) key_size: usize,
    /// Value size of watch response (bytes; at least 8, which carry the put number).
    #[arg(long, default_value_t = 32)]
    pub(crate) val_size: usize,
}

impl WatchLatencyArgs {
    /// Watchers in total.
    pub(crate) fn watcher_total(&self) -> u64 {
        self.watchers
            .unwrap_or(self.streams * self.watchers_per_stream)
    }

    /// Watchers on stream `s`: the total spread as evenly as possible, earlier streams first.
    pub(crate) fn watchers_on_stream(&self, s: u64) -> u64 {
        let total = self.watcher_total();
        total / self.streams + u64::from(s < total % self.streams)
    }
}

pub(crate) async fn run(global: &Global, args: WatchLatencyArgs) -> anyhow::Result<Outcome> {
    let channels = connect(global).await?;
    let visible = Progress::visible(global.json);
    let key = random_value(args.key_size.max(1));

    let creating = Progress::new(args.watcher_total(), "watch create", visible);
    let mut creations = Vec::new();
    for s in 0..args.streams {
        let watchers = args.watchers_on_stream(s);
        if watchers == 0 {
            continue;
        }
        let keys = vec![key.clone(); usize::try_from(watchers)?];
        let channel = channels[(s % channels.len() as u64) as usize].clone();
        let (progress, prev_kv) = (creating.clone(), args.prevkv);
        creations.push(tokio::spawn(async move {
            let mut unused = Recorder::new(Instant::now());
            let stream = open_stream(channel, &keys, prev_kv, &mut unused, &progress).await;
            stream.map(|stream| (stream, watchers))
        }));
    }
    let mut streams = Vec::new();
    for creation in creations {
        streams.push(creation.await??);
    }
    creating.finish();

    let started = Instant::now();
    let sent = Arc::new(SendTimes::new(started, args.put_total));
    let events_total = args.put_total * args.watcher_total();
    let progress = Progress::new(events_total, "watch events", visible);
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    let mut receivers = Vec::new();
    for (stream, watchers) in streams {
        receivers.push(tokio::spawn(receive_events(
            stream,
            args.put_total * watchers,
            sent.clone(),
            Recorder::new(started),
            progress.clone(),
            cancel_rx.clone(),
        )));
    }
    // One putting client, as etcd's tool has.
    let put_global = Global {
        clients: 1,
        ..global.clone()
    };
    let val_size = args.val_size;
    let put = marked_puts(
        put_global,
        &channels[..1],
        args.put_total,
        args.put_rate,
        sent.clone(),
        move |number| PutRequest {
            key: key.clone(),
            value: numbered_value(number, val_size),
            ..Default::default()
        },
    )
    .await;
    let events = collect(receivers, cancel_tx, global.request_timeout, started).await?;
    progress.finish();
    let parts = vec![
        Part {
            name: "put",
            title: "Put summary".into(),
            report: put,
        },
        Part {
            name: "events",
            title: "Watch events summary".into(),
            report: events,
        },
    ];
    Ok(Outcome {
        command: "watch-latency",
        parts,
        headline: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(streams: u64, watchers: Option<u64>) -> WatchLatencyArgs {
        WatchLatencyArgs {
            streams,
            watchers_per_stream: 10,
            watchers,
            prevkv: false,
            put_total: 1,
            put_rate: 1,
            key_size: 8,
            val_size: 8,
        }
    }

    #[test]
    fn watchers_spread_evenly_over_streams() {
        let a = args(3, Some(10));
        let spread: Vec<u64> = (0..3).map(|s| a.watchers_on_stream(s)).collect();
        assert_eq!(spread, vec![4, 3, 3]);
        let a = args(10, Some(1));
        assert_eq!((0..10).map(|s| a.watchers_on_stream(s)).sum::<u64>(), 1);
        let a = args(4, None);
        assert_eq!(a.watcher_total(), 40);
        assert!((0..4).all(|s| a.watchers_on_stream(s) == 10));
    }
}
