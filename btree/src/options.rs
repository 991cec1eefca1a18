//! `StoreOptions` (how to open or create a store) and `Opened` (what the last checkpoint
//! recorded).

use bytes::Bytes;

use crate::page::TxnId;

/// How to open or create a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// Page size of a new file: a power of two from 512 to 65536. An existing file keeps the
    /// page size it was created with. Entries whose key plus value exceed about a quarter page
    /// move the longer item to blob pages (whole pages of its own), so large values waste
    /// less space with larger pages.
    pub page_size_bytes: usize,
    /// The file grows by at least this much (and by at least 1/8 of its size) at once, so that
    /// growth and the remapping it forces stay rare.
    pub growth_bytes_min: u64,
    /// `false` skips every fsync (etcd's `--unsafe-no-fsync`): a power loss can then lose or
    /// corrupt checkpoints. For benchmarks only.
    pub fsync: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            page_size_bytes: 4096,
            growth_bytes_min: 1 << 20,
            fsync: true,
        }
    }
}

/// What [`crate::MvccStore::open`] found: the state of the last durable checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The applied index the last checkpoint recorded (0 for a new file): replay the log
    /// after it.
    pub applied_index: u64,
    /// The caller's bytes the last checkpoint recorded (empty for a new file).
    pub checkpoint_metadata: Bytes,
    /// Id of the last checkpoint (0 for a new file).
    pub checkpoint_txn: TxnId,
    /// Whether the file was created by this open.
    pub created: bool,
    /// A compaction that was running at the checkpoint: its revision. The store resumes it;
    /// drive it with [`crate::MvccStore::compact_step`].
    pub compaction_pending: Option<i64>,
}

#[cfg(test)]
mod tests {
    // Guards the threading contract in the crate docs: the store moves to the core thread,
    // views go to reader threads, a checkpoint's I/O runs on another thread.
    #[test]
    fn store_views_and_checkpoint_jobs_cross_threads() {
        fn send<T: Send>() {}
        fn send_sync_static<T: Send + Sync + 'static>() {}
        send::<crate::MvccStore>();
        send::<crate::CheckpointJob>();
        send_sync_static::<crate::ReadView>();
        send_sync_static::<crate::BtreeError>();
    }
}
