//! What `watch` and `watch-latency` share: watch streams with their watchers created one at
//! a time (as etcd's clientv3 creates them), the send time of every put, and the loop that
//! matches each received event to its put by the number the put's value starts with.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Streaming;

use crate::cli::Global;
use crate::client::{drive_one, status_text};
use crate::progress::Progress;
use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::watch_client::WatchClient;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::PutRequest;
use crate::proto::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use crate::report::{Recorder, Report};

use super::keys::value_number;

/// When each put was sent, by put number (lock-free: watchers on many streams read it).
pub(crate) struct SendTimes {
    started: Instant,
    /// Nanoseconds since `started` plus one; 0 = not sent yet.
    sent_ns: Vec<AtomicU64>,
}

impl SendTimes {
    pub(crate) fn new(started: Instant, puts: u64) -> Self {
        let puts = usize::try_from(puts).expect("the put count fits in memory");
        SendTimes {
            started,
            sent_ns: (0..puts).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Records that put `number` is being sent now.
    pub(crate) fn mark(&self, number: u64) {
        let ns = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        let slot = usize::try_from(number)
            .ok()
            .and_then(|i| self.sent_ns.get(i))
            .expect("put numbers are below the put count");
        slot.store(ns + 1, Ordering::Release);
    }

    /// When put `number` was sent (None: unknown number, or not sent).
    pub(crate) fn sent_at(&self, number: u64) -> Option<Instant> {
        let slot = self.sent_ns.get(usize::try_from(number).ok()?)?;
        match slot.load(Ordering::Acquire) {
            0 => None,
            ns => Some(self.started + Duration::from_nanos(ns - 1)),
        }
    }
}

/// A watch stream whose watchers are all created.
/// The watch workloads' writer: `total` puts over `channels` by `global.clients` clients,
/// paced at `rate` per second (0: not paced); put `n` is `request(n)`, marked in `sent` as it
/// leaves. It draws no progress bar: the run's events bar is the only one (two bars on one
/// stderr would overwrite each other).
pub(crate) async fn marked_puts<F>(
    global: Global,
    channels: &[Channel],
    total: u64,
    rate: u64,
    sent: Arc<SendTimes>,
    request: F,
) -> Report
where
    F: Fn(u64) -> PutRequest + Send + Sync + 'static,
{
    // `json` only decides whether `drive` draws its bar.
    let global = Global {
        json: true,
        ..global
    };
    drive_one(&global, channels, total, rate, "put", move |call| {
        let put = request(call.number);
        sent.mark(call.number);
        async move { KvClient::new(call.conn).put(put).await.map(|_| ()) }
    })
    .await
}

pub(crate) struct WatchStream {
    /// Kept open: dropping it would end the stream.
    requests: mpsc::Sender<WatchRequest>,
    responses: Streaming<WatchResponse>,
}

fn create_request(key: &Bytes, prev_kv: bool) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: key.clone(),
            prev_kv,
            ..Default::default()
        })),
    }
}

/// Opens a watch stream on `channel` and creates one watcher per key of `keys`, each after
/// the previous one's created response; records each creation's latency (create request
/// sent to created response received) in `recorder`.
pub(crate) async fn open_stream(
    channel: Channel,
    keys: &[Bytes],
    prev_kv: bool,
    recorder: &mut Recorder,
    progress: &Progress,
) -> anyhow::Result<WatchStream> {
    let (first, rest) = keys.split_first().context("a stream with no watcher")?;
    let (requests, rx) = mpsc::channel(1);
    // grpc-go (etcd) sends a stream's response headers only with its first message: queue
    // the first create before awaiting the call.
    let mut begin = Instant::now();
    requests
        .send(create_request(first, prev_kv))
        .await
        .context("watch request channel closed")?;
    let mut responses = WatchClient::new(channel)
        .watch(ReceiverStream::new(rx))
        .await
        .context("opening a watch stream")?
        .into_inner();
    for next in rest.iter().map(Some).chain([None]) {
        wait_created(&mut responses).await?;
        recorder.ok(begin.elapsed());
        progress.inc(1);
        if let Some(key) = next {
            begin = Instant::now();
            requests
                .send(create_request(key, prev_kv))
                .await
                .context("watch request channel closed")?;
        }
    }
    Ok(WatchStream {
        requests,
        responses,
    })
}

async fn wait_created(responses: &mut Streaming<WatchResponse>) -> anyhow::Result<()> {
    // Bounded: no puts run while watchers are created, so the next message is the answer.
    let response = responses
        .message()
        .await
        .context("watch stream failed")?
        .context("watch stream closed")?;
    anyhow::ensure!(
        response.created && !response.canceled,
        "watch create answered with {response:?}"
    );
    Ok(())
}

/// Tells the receivers that the wait for events is over.
pub(crate) type Cancel = tokio::sync::watch::Receiver<bool>;

/// Receives `events_expected` events on `stream`, recording for each the time from its put's
/// send to its arrival; stops early when `cancel` turns true (missing events become errors)
/// or the stream fails.
pub(crate) async fn receive_events(
    mut stream: WatchStream,
    events_expected: u64,
    sent: Arc<SendTimes>,
    mut recorder: Recorder,
    progress: Progress,
    mut cancel: Cancel,
) -> Recorder {
    let _keep_open = stream.requests;
    let mut received = 0u64;
    // Bounded by events_expected and by the cancel signal.
    while received < events_expected {
        let message = tokio::select! {
            message = stream.responses.message() => message,
            _ = cancel.wait_for(|stop| *stop) => {
                recorder.error_n(
                    "watch event not received before the deadline".into(),
                    events_expected - received,
                );
                return recorder;
            }
        };
        let response = match message {
            Ok(Some(response)) => response,
            Ok(None) => {
                recorder.error_n("watch stream closed".into(), events_expected - received);
                return recorder;
            }
            Err(status) => {
                recorder.error_n(status_text(&status), events_expected - received);
                return recorder;
            }
        };
        if response.canceled {
            let reason = format!("watch canceled: {}", response.cancel_reason);
            recorder.error_n(reason, events_expected - received);
            return recorder;
        }
        let now = Instant::now();
        for event in &response.events {
            let number = event.kv.as_ref().and_then(|kv| value_number(&kv.value));
            match number.and_then(|n| sent.sent_at(n)) {
                Some(at) => recorder.ok_at(now.saturating_duration_since(at), now),
                None => recorder.error("event for an unknown put".into()),
            }
        }
        received += response.events.len() as u64;
        progress.inc(response.events.len() as u64);
    }
    recorder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_times_are_unknown_until_marked() {
        let started = Instant::now();
        let sent = SendTimes::new(started, 3);
        assert_eq!(sent.sent_at(1), None);
        sent.mark(1);
        let at = sent.sent_at(1).expect("marked");
        assert!(at >= started && at <= Instant::now());
        assert_eq!(sent.sent_at(0), None);
        assert_eq!(sent.sent_at(3), None, "out of range");
    }
}
