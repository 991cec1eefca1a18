//! State the core publishes for the edge: the latest read view and the Raft
//! status numbers, readable without a hop to the core and without locks
//! against the writer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use keel_btree::ReadView;

/// One published state of the store.
pub(crate) struct Published {
    /// Snapshot of the store after `applied_index`.
    pub(crate) view: ReadView,
    /// Last Raft index applied into `view`.
    pub(crate) applied_index: u64,
}

/// Shared between the core (writer) and the edge (readers).
pub(crate) struct Shared {
    pub(crate) cluster_id: u64,
    pub(crate) member_id: u64,
    published: ArcSwap<Published>,
    members: ArcSwap<Vec<crate::proto::keelpb::Member>>,
    removed_members: ArcSwap<Vec<u64>>,
    term: AtomicU64,
    leader_id: AtomicU64,
    commit_index: AtomicU64,
    stopped: AtomicBool,
    storage: ArcSwap<StorageStatus>,
    /// Set once when the member stops serving: open response streams end.
    closing: tokio::sync::watch::Sender<bool>,
}

/// The store's sizes and the cluster's alarms, for Status and Alarm.
#[derive(Debug, Clone, Default)]
pub(crate) struct StorageStatus {
    /// The page file's size on disk.
    pub(crate) size_bytes: u64,
    /// The bytes of it live data occupies.
    pub(crate) in_use_bytes: u64,
    /// Active alarms.
    pub(crate) alarms: Vec<crate::proto::etcdserverpb::AlarmMember>,
}

/// Raft numbers for Status and response headers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RaftNumbers {
    pub(crate) term: u64,
    pub(crate) leader_id: u64,
    pub(crate) commit_index: u64,
    pub(crate) applied_index: u64,
}

impl Shared {
    pub(crate) fn new(cluster_id: u64, member_id: u64, initial: Published) -> Arc<Self> {
        Arc::new(Shared {
            cluster_id,
            member_id,
            published: ArcSwap::from_pointee(initial),
            members: ArcSwap::from_pointee(Vec::new()),
            removed_members: ArcSwap::from_pointee(Vec::new()),
            term: AtomicU64::new(0),
            leader_id: AtomicU64::new(0),
            commit_index: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            storage: ArcSwap::from_pointee(StorageStatus::default()),
            closing: tokio::sync::watch::Sender::new(false),
        })
    }

    pub(crate) fn published(&self) -> Arc<Published> {
        self.published.load_full()
    }

    pub(crate) fn publish(&self, published: Published) {
        self.published.store(Arc::new(published));
    }

    /// The applied members registry, as last published by the core.
    pub(crate) fn members(&self) -> Arc<Vec<crate::proto::keelpb::Member>> {
        self.members.load_full()
    }

    pub(crate) fn set_members(
        &self,
        members: Vec<crate::proto::keelpb::Member>,
        removed: Vec<u64>,
    ) {
        self.members.store(Arc::new(members));
        self.removed_members.store(Arc::new(removed));
    }

    /// Whether `id` was removed from the cluster (its messages are refused).
    pub(crate) fn is_removed_member(&self, id: u64) -> bool {
        self.removed_members.load().contains(&id)
    }

    pub(crate) fn set_raft(&self, term: u64, leader_id: u64, commit_index: u64) {
        self.term.store(term, Ordering::Release);
        self.leader_id.store(leader_id, Ordering::Release);
        self.commit_index.store(commit_index, Ordering::Release);
    }

    pub(crate) fn term(&self) -> u64 {
        self.term.load(Ordering::Acquire)
    }

    pub(crate) fn raft(&self) -> RaftNumbers {
        RaftNumbers {
            term: self.term(),
            leader_id: self.leader_id.load(Ordering::Acquire),
            commit_index: self.commit_index.load(Ordering::Acquire),
            applied_index: self.published().applied_index,
        }
    }

    pub(crate) fn set_storage(
        &self,
        size_bytes: u64,
        in_use_bytes: u64,
        alarms: Vec<crate::proto::etcdserverpb::AlarmMember>,
    ) {
        let current = self.storage.load();
        if current.size_bytes == size_bytes
            && current.in_use_bytes == in_use_bytes
            && current.alarms == alarms
        {
            return;
        }
        self.storage.store(Arc::new(StorageStatus {
            size_bytes,
            in_use_bytes,
            alarms,
        }));
    }

    /// Sizes and alarms as last published by the core.
    pub(crate) fn storage(&self) -> Arc<StorageStatus> {
        self.storage.load_full()
    }

    pub(crate) fn mark_stopped(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Ends every open response stream (watch, lease keep-alive, election
    /// observe): the member stops serving, and a stream never ends by itself.
    pub(crate) fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    /// Completes once [`Shared::close_streams`] was called.
    pub(crate) fn streams_closing(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut closing = self.closing.subscribe();
        async move {
            // Err: the sender is gone with the member; nothing is served then.
            let _ = closing.wait_for(|closing| *closing).await;
        }
    }
}
