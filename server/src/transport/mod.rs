//! Peer transport: Raft messages between members over tonic streams.
//!
//! Each remote member has one link: a tokio task with a bounded queue that
//! keeps a client-streaming `Peer.Messages` call open and sends whatever
//! queued up meanwhile as one batch. A full queue or a broken connection
//! drops messages — Raft retransmits — and reports the peer unreachable so
//! Raft probes it instead of pipelining into the void. The core hands
//! messages over without waiting (try_send), from its own thread.

mod codec;
mod link;
mod service;
mod snapshot;

pub(crate) use codec::{from_wire, to_wire};

/// A channel to one peer URL (for requests forwarded to the leader).
pub(crate) async fn connect_peer(url: &str) -> Result<tonic::transport::Channel, String> {
    link::connect(&[url.to_string()]).await
}
pub(crate) use service::PeerService;
pub(crate) use snapshot::OutgoingSnapshot;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::node::CoreRequest;
use crate::proto::keelpb::RaftMessage;

/// Messages queued per peer before new ones are dropped.
pub(crate) const LINK_QUEUE_MESSAGES: usize = 4096;
/// Most messages in one batch.
pub(crate) const BATCH_MESSAGES_MAX: usize = 512;
/// What a member answers a removed member (etcd's rafthttp says the same).
pub(crate) const MEMBER_REMOVED: &str = "the member has been permanently removed from the cluster";

struct Link {
    urls: Vec<String>,
    queue: mpsc::Sender<RaftMessage>,
    task: tokio::task::AbortHandle,
}

struct Inner {
    runtime: tokio::runtime::Handle,
    cluster_id: u64,
    member_id: u64,
    core: flume::Sender<CoreRequest>,
    links: Mutex<HashMap<u64, Link>>,
    /// Where store snapshots are exported and received.
    snap_dir: std::path::PathBuf,
}

/// Cloneable handle on the transport.
#[derive(Clone)]
pub(crate) struct Transport {
    inner: Arc<Inner>,
}

impl Transport {
    pub(crate) fn new(
        runtime: tokio::runtime::Handle,
        cluster_id: u64,
        member_id: u64,
        core: flume::Sender<CoreRequest>,
        snap_dir: std::path::PathBuf,
    ) -> Self {
        Transport {
            inner: Arc::new(Inner {
                runtime,
                cluster_id,
                member_id,
                core,
                links: Mutex::new(HashMap::new()),
                snap_dir,
            }),
        }
    }

    /// Queues `messages` for their peers without waiting.
    pub(crate) fn send(&self, messages: &[keel_raft::Message]) {
        if messages.is_empty() {
            return;
        }
        let links = self.inner.links.lock().expect("transport links lock");
        for m in messages {
            let Some(link) = links.get(&m.to.0) else {
                tracing::debug!(
                    to = format!("{:x}", m.to.0),
                    "no link to peer: message dropped"
                );
                continue;
            };
            if link.queue.try_send(to_wire(m)).is_err() {
                tracing::debug!(
                    to = format!("{:x}", m.to.0),
                    "peer queue full: message dropped"
                );
            }
        }
    }

    /// Exports and streams a store snapshot to its peer in the background;
    /// the outcome comes back to the core as `CoreRequest::SnapshotSent`.
    pub(crate) fn send_snapshot(&self, snapshot: OutgoingSnapshot) {
        let to = snapshot.message.to.0;
        let urls = self
            .inner
            .links
            .lock()
            .expect("transport links lock")
            .get(&to)
            .map(|l| l.urls.clone());
        let core = self.inner.core.clone();
        let Some(urls) = urls else {
            tracing::debug!(to = format!("{to:x}"), "no link to peer: snapshot not sent");
            let _ = core.try_send(CoreRequest::SnapshotSent { to, ok: false });
            return;
        };
        self.inner.runtime.spawn(snapshot::send(
            snapshot,
            urls,
            self.inner.cluster_id,
            self.inner.member_id,
            self.inner.snap_dir.clone(),
            core,
        ));
    }

    pub(crate) fn snap_dir(&self) -> &std::path::Path {
        &self.inner.snap_dir
    }

    /// Makes the links match the membership: one per other member, at its
    /// current peer URLs.
    pub(crate) fn set_peers(&self, peers: &[(u64, Vec<String>)]) {
        let mut links = self.inner.links.lock().expect("transport links lock");
        links.retain(|id, link| {
            let keep = peers.iter().any(|(p, urls)| p == id && *urls == link.urls);
            if !keep {
                link.task.abort();
            }
            keep
        });
        for (id, urls) in peers {
            if *id == self.inner.member_id || links.contains_key(id) || urls.is_empty() {
                continue;
            }
            let (queue, receiver) = mpsc::channel(LINK_QUEUE_MESSAGES);
            let task = self.inner.runtime.spawn(link::run(link::LinkSettings {
                peer_id: *id,
                urls: urls.clone(),
                cluster_id: self.inner.cluster_id,
                member_id: self.inner.member_id,
                core: self.inner.core.clone(),
                queue: receiver,
            }));
            links.insert(
                *id,
                Link {
                    urls: urls.clone(),
                    queue,
                    task: task.abort_handle(),
                },
            );
        }
    }

    /// A peer's first URL (to forward requests to the leader).
    pub(crate) fn peer_url(&self, id: u64) -> Option<String> {
        self.inner
            .links
            .lock()
            .expect("transport links lock")
            .get(&id)
            .and_then(|l| l.urls.first().cloned())
    }

    pub(crate) fn cluster_id(&self) -> u64 {
        self.inner.cluster_id
    }

    /// Stops every link.
    pub(crate) fn shutdown(&self) {
        for (_, link) in self
            .inner
            .links
            .lock()
            .expect("transport links lock")
            .drain()
        {
            link.task.abort();
        }
    }
}
