//! One peer link: connect, stream batches, reconnect with backoff.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use super::BATCH_MESSAGES_MAX;
use crate::node::CoreRequest;
use crate::proto::keelpb::peer_client::PeerClient;
use crate::proto::keelpb::{MessageBatch, RaftMessage};

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Batches in flight to the gRPC stream before the link waits.
const STREAM_BUFFER_BATCHES: usize = 8;
/// Raft messages carry up to 1 MiB of entries; snapshots more.
pub(crate) const PEER_MESSAGE_BYTES_MAX: usize = 256 << 20;

pub(crate) struct LinkSettings {
    pub(crate) peer_id: u64,
    pub(crate) urls: Vec<String>,
    pub(crate) cluster_id: u64,
    pub(crate) member_id: u64,
    pub(crate) core: flume::Sender<CoreRequest>,
    pub(crate) queue: mpsc::Receiver<RaftMessage>,
}

pub(crate) async fn connect(urls: &[String]) -> Result<Channel, String> {
    let mut last = String::from("no peer URLs");
    for url in urls {
        let endpoint = match Endpoint::from_shared(url.clone()) {
            Ok(e) => e.connect_timeout(CONNECT_TIMEOUT).tcp_nodelay(true),
            Err(e) => {
                last = format!("{url}: {e}");
                continue;
            }
        };
        match endpoint.connect().await {
            Ok(channel) => return Ok(channel),
            Err(e) => last = format!("{url}: {e}"),
        }
    }
    Err(last)
}

/// Runs until the link is aborted (membership change, shutdown).
pub(crate) async fn run(mut s: LinkSettings) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let channel = match connect(&s.urls).await {
            Ok(channel) => channel,
            Err(error) => {
                tracing::debug!(peer = format!("{:x}", s.peer_id), error, "peer unreachable");
                report_unreachable(&s);
                discard_queued(&mut s.queue);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        backoff = BACKOFF_MIN;
        let (batches, receiver) = mpsc::channel(STREAM_BUFFER_BATCHES);
        let mut client = PeerClient::new(channel)
            .max_encoding_message_size(PEER_MESSAGE_BYTES_MAX)
            .max_decoding_message_size(PEER_MESSAGE_BYTES_MAX);
        let call =
            tokio::spawn(async move { client.messages(ReceiverStream::new(receiver)).await });
        loop {
            let Some(first) = s.queue.recv().await else {
                return;
            };
            let mut messages = vec![first];
            while messages.len() < BATCH_MESSAGES_MAX {
                match s.queue.try_recv() {
                    Ok(m) => messages.push(m),
                    Err(_) => break,
                }
            }
            let batch = MessageBatch {
                cluster_id: s.cluster_id,
                from: s.member_id,
                messages,
            };
            if call.is_finished() || batches.send(batch).await.is_err() {
                break;
            }
        }
        // Why did the stream end? A peer refusing a removed member says so.
        if let Ok(Ok(Err(status))) = tokio::time::timeout(Duration::from_millis(100), call).await {
            if status.code() == tonic::Code::FailedPrecondition
                && status.message() == super::MEMBER_REMOVED
            {
                let _ = s.core.try_send(CoreRequest::RemovedFromCluster);
                return;
            }
            tracing::warn!(peer = format!("{:x}", s.peer_id), error = %status, "peer stream ended");
        }
        report_unreachable(&s);
    }
}

fn report_unreachable(s: &LinkSettings) {
    let _ = s.core.try_send(CoreRequest::Unreachable { id: s.peer_id });
}

fn discard_queued(queue: &mut mpsc::Receiver<RaftMessage>) {
    while queue.try_recv().is_ok() {}
}
