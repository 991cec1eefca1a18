//! `watch`: etcd's `benchmark watch`. First `--streams` streams of `--watch-per-stream`
//! watchers each are created (watcher `g` watches key `g % --watched-key-total`); then
//! `--put-total` puts (put `i` to watched key `i % --watched-key-total`) at `--put-rate`, and
//! every watcher of a key counts each put's event. The headline is event throughput: events
//! received per second, with each event's latency from its put's send.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::cli::Global;
use crate::client::connect;
use crate::progress::Progress;
use crate::proto::etcdserverpb::PutRequest;
use crate::report::{Outcome, Part, Recorder, Report};

use super::keys::{encode_key, numbered_value, varint_size_bytes};
use super::watch_streams::{marked_puts, open_stream, receive_events, SendTimes};
use rand::Rng as _;

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct WatchArgs {
    /// Total watch streams.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) streams: u64,
    /// Total watchers per stream.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) watch_per_stream: u64,
    /// Total number of keys to be watched.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) watched_key_total: u64,
    /// Number of keys to put per second (0 is no limit).
    #[arg(long, default_value_t = 0)]
    pub(crate) put_rate: u64,
    /// Number of put requests.
    #[arg(long, default_value_t = 1000)]
    pub(crate) put_total: u64,
    /// Key size of watch request (bytes).
    #[arg(long, default_value_t = 32)]
    pub(crate) key_size: usize,
    /// Maximum possible keys.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) key_space_size: u64,
    /// Use sequential keys.
    #[arg(long)]
    pub(crate) sequential_keys: bool,
}

impl WatchArgs {
    /// The watched keys, as etcd's tool picks them.
    fn watched_keys(&self) -> anyhow::Result<Vec<Bytes>> {
        let needed_bytes = varint_size_bytes(self.key_space_size - 1);
        anyhow::ensure!(
            self.key_size >= needed_bytes,
            "--key-size {} cannot hold key numbers below --key-space-size {}",
            self.key_size,
            self.key_space_size
        );
        let mut rng = rand::rng();
        Ok((0..self.watched_key_total)
            .map(|i| {
                let n = if self.sequential_keys {
                    i % self.key_space_size
                } else {
                    rng.random_range(0..self.key_space_size)
                };
                encode_key(n, self.key_size)
            })
            .collect())
    }
}

/// Events each watcher of `key` receives: the puts to that key (keys may repeat when the key
/// space is smaller than the watched key total, as in etcd's tool).
pub(crate) fn puts_per_key(watched: &[Bytes], put_total: u64) -> HashMap<Bytes, u64> {
    let mut puts: HashMap<Bytes, u64> = HashMap::new();
    let keys = watched.len() as u64;
    for (index, key) in watched.iter().enumerate() {
        let index = index as u64;
        // Puts i with i % keys == index.
        let count = put_total / keys + u64::from(index < put_total % keys);
        *puts.entry(key.clone()).or_default() += count;
    }
    puts
}

pub(crate) async fn run(global: &Global, args: WatchArgs) -> anyhow::Result<Outcome> {
    let watched = args.watched_keys()?;
    let channels = connect(global).await?;
    let visible = Progress::visible(global.json);
    let per_stream = args.watch_per_stream;
    let watcher_total = args.streams * per_stream;

    // Phase 1: create the watchers, streams in parallel.
    let creation_started = Instant::now();
    let progress = Progress::new(watcher_total, "watch create", visible);
    let mut creations = Vec::new();
    for s in 0..args.streams {
        let keys: Vec<Bytes> = (s * per_stream..(s + 1) * per_stream)
            .map(|g| watched[(g % watched.len() as u64) as usize].clone())
            .collect();
        let channel = channels[(s % channels.len() as u64) as usize].clone();
        let progress = progress.clone();
        creations.push(tokio::spawn(async move {
            let mut recorder = Recorder::new(creation_started);
            let stream = open_stream(channel, &keys, false, &mut recorder, &progress).await;
            stream.map(|stream| (stream, keys, recorder))
        }));
    }
    let mut streams = Vec::new();
    let mut creation_recorders = Vec::new();
    for creation in creations {
        let (stream, keys, recorder) = creation.await??;
        streams.push((stream, keys));
        creation_recorders.push(recorder);
    }
    progress.finish();
    let creation = Report::merge(creation_started.elapsed(), creation_recorders);

    // Phase 2: receive while putting.
    let puts = puts_per_key(&watched, args.put_total);
    let events_total: u64 = streams
        .iter()
        .flat_map(|(_, keys)| keys.iter().map(|k| puts[k]))
        .sum();
    let put_started = Instant::now();
    let sent = Arc::new(SendTimes::new(put_started, args.put_total));
    let progress = Progress::new(events_total, "watch events", visible);
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    let mut receivers = Vec::new();
    for (stream, keys) in streams {
        let expected = keys.iter().map(|k| puts[k]).sum();
        receivers.push(tokio::spawn(receive_events(
            stream,
            expected,
            sent.clone(),
            Recorder::new(put_started),
            progress.clone(),
            cancel_rx.clone(),
        )));
    }
    let put = marked_puts(
        global.clone(),
        &channels,
        args.put_total,
        args.put_rate,
        sent.clone(),
        move |number| PutRequest {
            key: watched[(number % watched.len() as u64) as usize].clone(),
            value: numbered_value(number, 8),
            ..Default::default()
        },
    )
    .await;
    let events = collect(receivers, cancel_tx, global.request_timeout, put_started).await?;
    progress.finish();
    let parts = vec![
        Part {
            name: "creation",
            title: "Watch creation summary".into(),
            report: creation,
        },
        Part {
            name: "put",
            title: "Put summary".into(),
            report: put,
        },
        Part {
            name: "events",
            title: "Watch events received summary".into(),
            report: events,
        },
    ];
    Ok(Outcome {
        command: "watch",
        parts,
        headline: 2,
    })
}

/// Waits up to `grace` after the last put for the receivers, then tells the rest to stop.
pub(crate) async fn collect(
    receivers: Vec<tokio::task::JoinHandle<Recorder>>,
    cancel: tokio::sync::watch::Sender<bool>,
    grace: Duration,
    started: Instant,
) -> anyhow::Result<Report> {
    let deadline = tokio::time::Instant::now() + grace;
    let canceller = tokio::spawn(async move {
        tokio::time::sleep_until(deadline).await;
        let _ = cancel.send(true);
        // Keep the sender alive until the receivers saw the signal.
        cancel.closed().await;
    });
    let mut recorders = Vec::new();
    for receiver in receivers {
        recorders.push(receiver.await?);
    }
    let total = started.elapsed();
    canceller.abort();
    Ok(Report::merge(total, recorders))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puts_are_spread_round_robin_over_the_watched_keys() {
        let watched: Vec<Bytes> = (0..3).map(|n| encode_key(n, 4)).collect();
        let puts = puts_per_key(&watched, 10);
        assert_eq!(puts[&watched[0]], 4);
        assert_eq!(puts[&watched[1]], 3);
        assert_eq!(puts[&watched[2]], 3);
    }

    // With fewer distinct keys than watched keys, a key's watchers see the puts made to every
    // watched-key slot holding that key (etcd counts events by key, the same way).
    #[test]
    fn repeated_watched_keys_add_their_puts() {
        let watched = vec![encode_key(0, 4), encode_key(0, 4), encode_key(1, 4)];
        let puts = puts_per_key(&watched, 9);
        assert_eq!(puts[&watched[0]], 6);
        assert_eq!(puts[&watched[2]], 3);
    }

    #[test]
    fn sequential_watched_keys_cycle_through_the_key_space() {
        let args = WatchArgs {
            streams: 1,
            watch_per_stream: 1,
            watched_key_total: 5,
            put_rate: 0,
            put_total: 1,
            key_size: 8,
            key_space_size: 2,
            sequential_keys: true,
        };
        let keys = args.watched_keys().expect("fits");
        let expected: Vec<Bytes> = [0, 1, 0, 1, 0].iter().map(|n| encode_key(*n, 8)).collect();
        assert_eq!(keys, expected);
    }
}
