//! The watch hub: etcd's watchable store, on the edge.
//!
//! The core hands every applied batch's events to the hub over a bounded
//! channel and never waits for watchers: when the channel is full the batch
//! is dropped and the hub notices the gap in revisions. Every watcher keeps
//! the next revision it needs (`next_rev`):
//! 1. **synced** watchers (`next_rev > hub_rev`) get live batches as they come;
//! 2. **unsynced** watchers (new watchers with an old start revision, slow
//!    watchers whose stream buffer was full, everyone after a gap) are caught
//!    up from the MVCC history of the published read view, in bounded chunks
//!    that end on revision boundaries, until they are synced again: every
//!    10 ms while any watcher is unsynced (etcd's victim retry; a watcher
//!    whose buffer is still full is skipped without a history read);
//! 3. a watcher whose `next_rev` is below the compacted revision is cancelled
//!    with `compact_revision` set, as etcd does.
//!
//! Events therefore reach each watcher in revision order, each exactly once,
//! and memory stays bounded: a slow watcher costs one `next_rev`, not a queue.

mod filter;
mod hub;
mod stream;

pub(crate) use filter::Selection;
pub(crate) use hub::{EventBatch, HubInbox, Registration, WatchHub, WatchHubHandle};
pub(crate) use stream::serve_stream;

use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_STREAM_ID: AtomicU64 = AtomicU64::new(1);

/// A hub-wide unique id for a watch stream (a gRPC stream or an internal
/// watch of the concurrency recipes).
pub(crate) fn next_stream_id() -> u64 {
    NEXT_STREAM_ID.fetch_add(1, Ordering::Relaxed)
}

/// Responses buffered per stream before its watchers fall back to catching
/// up from history (etcd's chanBufLen).
pub(crate) const STREAM_BUFFER_RESPONSES: usize = 128;
/// Event batches buffered between the core and the hub.
pub(crate) const HUB_INBOX_BATCHES: usize = 1024;
/// Most events read from history for one watcher in one catch-up step.
pub(crate) const CATCH_UP_EVENTS_MAX: usize = 1000;
