//! `watch-latency`: time from sending a put to each watcher receiving its
//! event (etcd benchmark's watch-latency). --watchers watchers on one key,
//! spread over --streams watch streams; --put-total puts at --put-rate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::client::connect;
use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::watch_client::WatchClient;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest};
use crate::report::{Recorder, Report};
use crate::Global;

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct WatchLatencyArgs {
    /// Total number of watchers.
    #[arg(long, default_value_t = 10_000)]
    watchers: usize,
    /// Number of watch streams the watchers share.
    #[arg(long, default_value_t = 10)]
    streams: usize,
    /// Number of puts.
    #[arg(long, default_value_t = 10_000)]
    put_total: u64,
    /// Puts per second.
    #[arg(long, default_value_t = 100)]
    put_rate: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 8)]
    val_size: usize,
}

const KEY: &[u8] = b"keel-bench-watch-latency";

pub(crate) async fn run(global: &Global, args: WatchLatencyArgs) -> anyhow::Result<Report> {
    let channels = connect(global).await?;
    let started = Instant::now();
    // put number -> when it was sent; the number travels in the value's
    // first 8 bytes, so a watcher can match an event that arrives before the
    // put's own response does.
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let streams = args.streams.max(1);
    let per_stream = args.watchers.div_ceil(streams);
    let expected_events = args.put_total * args.watchers as u64;
    let (done_tx, mut done_rx) = mpsc::channel::<Recorder>(streams);
    let mut created_total = 0usize;
    for s in 0..streams {
        let watchers = per_stream.min(args.watchers.saturating_sub(s * per_stream));
        if watchers == 0 {
            break;
        }
        created_total += watchers;
        let (req_tx, req_rx) = mpsc::channel(watchers + 1);
        for _ in 0..watchers {
            let create = WatchCreateRequest {
                key: KEY.into(),
                ..Default::default()
            };
            req_tx
                .send(WatchRequest {
                    request_union: Some(RequestUnion::CreateRequest(create)),
                })
                .await?;
        }
        let mut client = WatchClient::new(channels[s % channels.len()].clone());
        let mut responses = client
            .watch(ReceiverStream::new(req_rx))
            .await?
            .into_inner();
        // Wait for every created response before any put.
        let mut created = 0;
        while created < watchers {
            let resp = responses
                .message()
                .await?
                .ok_or_else(|| anyhow::anyhow!("watch stream closed"))?;
            created += usize::from(resp.created);
        }
        let sent = sent.clone();
        let done_tx = done_tx.clone();
        let events_wanted = args.put_total * watchers as u64;
        tokio::spawn(async move {
            let _keep_open = req_tx;
            let mut recorder = Recorder::new(started);
            let mut received = 0u64;
            while received < events_wanted {
                let Ok(Some(resp)) = responses.message().await else {
                    break;
                };
                let now = Instant::now();
                for event in resp.events {
                    let number = event.kv.as_ref().and_then(|kv| kv.value.get(..8)).map(|b| {
                        let mut bytes = [0u8; 8];
                        bytes.copy_from_slice(b);
                        u64::from_be_bytes(bytes)
                    });
                    let at = number.and_then(|n| sent.lock().expect("lock").get(&n).copied());
                    match at {
                        Some(at) => recorder.ok(now - at),
                        None => recorder.error("event for an unknown put".into()),
                    }
                    received += 1;
                }
            }
            let _ = done_tx.send(recorder).await;
        });
    }
    drop(done_tx);
    let mut kv = KvClient::new(channels[0].clone());
    let interval = Duration::from_secs_f64(1.0 / args.put_rate.max(1) as f64);
    let mut next = Instant::now();
    for number in 0..args.put_total {
        tokio::time::sleep_until(next.into()).await;
        next += interval;
        let mut value = vec![0u8; args.val_size.max(8)];
        value[..8].copy_from_slice(&number.to_be_bytes());
        sent.lock().expect("lock").insert(number, Instant::now());
        kv.put(PutRequest {
            key: KEY.into(),
            value: value.into(),
            ..Default::default()
        })
        .await?;
    }
    let mut recorders = Vec::new();
    let wait = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(r) = done_rx.recv().await {
            recorders.push(r);
        }
    });
    if wait.await.is_err() {
        anyhow::bail!("watchers did not receive all {expected_events} events within 60 s");
    }
    anyhow::ensure!(
        created_total == args.watchers,
        "created {created_total} watchers"
    );
    Ok(Report::merge(started.elapsed(), recorders))
}
