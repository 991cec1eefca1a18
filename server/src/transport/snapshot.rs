//! Store snapshots between members (etcd's rafthttp snapshot sender and
//! receiver): a leader whose log no longer holds the entries a follower
//! needs exports its current read view to a compact page file and streams
//! it with the Raft snapshot message; the follower writes it next to its
//! store, checks size and CRC, syncs it, and hands the message to its core,
//! which swaps the file in when Raft installs the snapshot.

use std::path::{Path, PathBuf};

use keel_btree::ReadView;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::StreamExt;
use tonic::{Status, Streaming};

use super::{from_wire, link, to_wire};
use crate::node::CoreRequest;
use crate::proto::keelpb::peer_client::PeerClient;
use crate::proto::keelpb::SnapshotChunk;

/// Bytes of page file per chunk.
const CHUNK_BYTES: usize = 1 << 20;

/// What the core hands the transport for one snapshot message.
pub(crate) struct OutgoingSnapshot {
    /// The Raft snapshot message; its metadata is the view's applied state.
    pub(crate) message: keel_raft::Message,
    /// The state to send, at `message.snapshot.meta.index`.
    pub(crate) view: ReadView,
    /// The checkpoint metadata the receiver's store will carry.
    pub(crate) metadata: Vec<u8>,
}

/// Where an outgoing export for `to` is written.
fn outgoing_path(snap_dir: &Path, to: u64) -> PathBuf {
    snap_dir.join(format!("keel.db.outgoing-{to:016x}"))
}

/// Where an incoming snapshot at `index` is received.
fn incoming_path(snap_dir: &Path, index: u64) -> PathBuf {
    snap_dir.join(format!("keel.db.incoming-{index:016x}"))
}

/// Exports, streams and reports the outcome to the core (Raft's
/// ReportSnapshot). Runs as a task on the edge runtime.
pub(crate) async fn send(
    snapshot: OutgoingSnapshot,
    urls: Vec<String>,
    cluster_id: u64,
    member_id: u64,
    snap_dir: PathBuf,
    core: flume::Sender<CoreRequest>,
) {
    let to = snapshot.message.to.0;
    let index = snapshot
        .message
        .snapshot
        .as_ref()
        .map_or(0, |s| s.meta.index.0);
    let path = outgoing_path(&snap_dir, to);
    let started = std::time::Instant::now();
    let outcome = export_and_stream(snapshot, &urls, cluster_id, member_id, &path).await;
    let _ = tokio::fs::remove_file(&path).await;
    let ok = match outcome {
        Ok(size_bytes) => {
            tracing::info!(
                to = format!("{to:x}"),
                index,
                size_bytes,
                took_ms = started.elapsed().as_millis() as u64,
                "sent a store snapshot"
            );
            true
        }
        Err(e) => {
            tracing::warn!(
                to = format!("{to:x}"),
                index,
                error = e,
                "sending a store snapshot failed"
            );
            false
        }
    };
    let _ = core.send_async(CoreRequest::SnapshotSent { to, ok }).await;
}

async fn export_and_stream(
    snapshot: OutgoingSnapshot,
    urls: &[String],
    cluster_id: u64,
    member_id: u64,
    path: &Path,
) -> Result<u64, String> {
    let OutgoingSnapshot {
        message,
        view,
        metadata,
    } = snapshot;
    let index = message
        .snapshot
        .as_ref()
        .map(|s| s.meta.index.0)
        .ok_or("a snapshot message without a snapshot")?;
    let export_path = path.to_path_buf();
    tokio::task::spawn_blocking(move || view.export(&export_path, index, &metadata))
        .await
        .map_err(|e| format!("export task: {e}"))?
        .map_err(|e| format!("exporting the store: {e}"))?;
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let channel = link::connect(urls).await?;
    let mut client = PeerClient::new(channel)
        .max_encoding_message_size(link::PEER_MESSAGE_BYTES_MAX)
        .max_decoding_message_size(link::PEER_MESSAGE_BYTES_MAX);
    let (chunks, receiver) = tokio::sync::mpsc::channel::<SnapshotChunk>(4);
    let call = tokio::spawn(async move {
        client
            .snapshot(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .await
    });
    let first = SnapshotChunk {
        cluster_id,
        from: member_id,
        message: Some(to_wire(&message)),
        ..Default::default()
    };
    let fed = feed(&chunks, first, &mut file, path).await;
    drop(chunks);
    let answer = call.await.map_err(|e| format!("snapshot call task: {e}"))?;
    answer.map_err(|status| format!("the peer refused the snapshot: {}", status.message()))?;
    fed
}

/// Sends the first chunk, the file in chunks, and the closing chunk; the
/// file's size.
async fn feed(
    chunks: &tokio::sync::mpsc::Sender<SnapshotChunk>,
    first: SnapshotChunk,
    file: &mut tokio::fs::File,
    path: &Path,
) -> Result<u64, String> {
    let closed = |_| "the peer closed the snapshot stream".to_string();
    chunks.send(first).await.map_err(closed)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut size_bytes = 0u64;
    let mut buffer = vec![0u8; CHUNK_BYTES];
    loop {
        let n = read_full(file, &mut buffer)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size_bytes += n as u64;
        let chunk = SnapshotChunk {
            data: bytes::Bytes::copy_from_slice(&buffer[..n]),
            ..Default::default()
        };
        chunks.send(chunk).await.map_err(closed)?;
    }
    let last = SnapshotChunk {
        last: true,
        size_bytes,
        crc32: hasher.finalize(),
        ..Default::default()
    };
    chunks.send(last).await.map_err(closed)?;
    Ok(size_bytes)
}

async fn read_full(file: &mut tokio::fs::File, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        let n = file.read(&mut buffer[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// A received snapshot, ready for the core.
pub(crate) struct Received {
    pub(crate) from: u64,
    pub(crate) message: keel_raft::Message,
    pub(crate) path: PathBuf,
}

/// Receives one snapshot stream into `snap_dir`. Refuses another cluster's
/// and a removed member's snapshots; a short or damaged file is an error
/// (and removed), never handed on.
pub(crate) async fn receive(
    mut chunks: Streaming<SnapshotChunk>,
    cluster_id: u64,
    is_removed: impl Fn(u64) -> bool,
    snap_dir: &Path,
) -> Result<Received, Status> {
    let first = chunks
        .next()
        .await
        .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))??;
    if first.cluster_id != cluster_id {
        return Err(Status::failed_precondition(format!(
            "cluster ID mismatch: local {cluster_id:x}, remote {:x}",
            first.cluster_id
        )));
    }
    if is_removed(first.from) {
        return Err(Status::failed_precondition(super::MEMBER_REMOVED));
    }
    let message = first
        .message
        .ok_or_else(|| Status::invalid_argument("snapshot stream without its raft message"))
        .and_then(|wire| from_wire(wire).map_err(Status::invalid_argument))?;
    let index = match &message.snapshot {
        Some(s) if message.kind == keel_raft::MessageKind::Snapshot => s.meta.index.0,
        _ => return Err(Status::invalid_argument("not a raft snapshot message")),
    };
    let path = incoming_path(snap_dir, index);
    let result = write_file(&mut chunks, &path).await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&path).await;
    }
    let size_bytes = result?;
    tracing::info!(
        from = format!("{:x}", first.from),
        index,
        size_bytes,
        "received a store snapshot"
    );
    Ok(Received {
        from: first.from,
        message,
        path,
    })
}

async fn write_file(chunks: &mut Streaming<SnapshotChunk>, path: &Path) -> Result<u64, Status> {
    let io = |e: std::io::Error| Status::internal(format!("{}: {e}", path.display()));
    let mut file = tokio::fs::File::create(path).await.map_err(io)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut size_bytes = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        if chunk.last {
            if chunk.size_bytes != size_bytes || chunk.crc32 != hasher.finalize() {
                return Err(Status::data_loss(format!(
                    "snapshot damaged in transit: {size_bytes} bytes received, {} sent; \
                     CRC mismatch or short file",
                    chunk.size_bytes
                )));
            }
            file.flush().await.map_err(io)?;
            file.sync_all().await.map_err(io)?;
            return Ok(size_bytes);
        }
        hasher.update(&chunk.data);
        size_bytes += chunk.data.len() as u64;
        file.write_all(&chunk.data).await.map_err(io)?;
    }
    Err(Status::aborted(
        "the snapshot stream ended before its last chunk",
    ))
}
