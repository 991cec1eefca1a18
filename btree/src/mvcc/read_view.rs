//! `ReadView`: an immutable snapshot of the committed store, for readers on any thread.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::compact::CompactionJob;
use super::event::Event;
use super::export::{self, ExportStats};
use super::key_range::KeyRange;
use super::range::{RangeOptions, RangeResult};
use super::state::StoreState;
use crate::bucket::{self, Bucket};
use crate::error::{BtreeError, MvccError, Result};
use crate::io::{PageIo, StdPageIo};
use crate::pager::{PageSource, ReaderGuard};

/// An immutable snapshot of the store as of one committed version. Cloning is O(1); taking one
/// from the store is O(1) (memoized per version). It never blocks the writer and stays
/// unchanged by later commits, compactions, checkpoints and defragmentation: the pages it can
/// reach are not reused while it lives (crate invariant 6), and the file it maps stays mapped.
#[derive(Clone)]
pub struct ReadView {
    inner: Arc<ViewInner>,
}

struct ViewInner {
    state: StoreState,
    src: Arc<PageSource>,
    /// The compaction running at this version (its revision and cursor), for an export.
    compaction: Option<CompactionJob>,
    /// Registers the view's version with the file's reader table.
    _guard: ReaderGuard,
}

fn storage_failure(error: BtreeError) -> ! {
    panic!(
        "keel-btree: storage error where the API cannot return it (use the try_ method): {error}"
    )
}

impl ReadView {
    pub(crate) fn new(
        state: StoreState,
        src: Arc<PageSource>,
        guard: ReaderGuard,
        compaction: Option<CompactionJob>,
    ) -> Self {
        ReadView {
            inner: Arc::new(ViewInner {
                state,
                src,
                compaction,
                _guard: guard,
            }),
        }
    }

    pub(crate) fn compaction(&self) -> Option<&CompactionJob> {
        self.inner.compaction.as_ref()
    }

    pub(crate) fn state(&self) -> &StoreState {
        &self.inner.state
    }

    pub(crate) fn src(&self) -> &Arc<PageSource> {
        &self.inner.src
    }

    /// The store's revision when the view was taken.
    pub fn revision(&self) -> i64 {
        self.inner.state.revision
    }

    /// The store's compacted revision when the view was taken (0 if never compacted).
    pub fn compacted_revision(&self) -> i64 {
        self.inner.state.compacted_revision()
    }

    /// Keys in `range` at revision `opts.revision` (`<= 0`: the view's revision). MVCC errors
    /// (wrapped in [`BtreeError::Mvcc`]): above the view's revision, `FutureRevision`; below
    /// its compacted revision, `Compacted` (a read at exactly the compacted revision is
    /// allowed). Storage errors: a corrupt page, with file and page.
    pub fn try_range(&self, range: &KeyRange, opts: &RangeOptions) -> Result<RangeResult> {
        let state = &self.inner.state;
        state.range(&self.inner.src, range, opts, state.revision)
    }

    /// [`ReadView::try_range`] for callers that handle only MVCC errors. Panics on a storage
    /// error (a corrupt page).
    pub fn range(&self, range: &KeyRange, opts: &RangeOptions) -> Result<RangeResult, MvccError> {
        self.try_range(range, opts).map_err(|error| match error {
            BtreeError::Mvcc(error) => error,
            other => storage_failure(other),
        })
    }

    /// Watch history: changes with `start_revision <= main revision < end_revision` to keys in
    /// `range`, in revision order, at most `max_events` (0 = no limit). `end_revision` beyond
    /// the view is cut to `revision() + 1`; a start above it gives no events (not an error: a
    /// watch may start in the future). `start_revision` below the compacted revision is
    /// `Compacted`. With `with_prev_kv`, each event carries the version it replaced when that
    /// is still stored (compaction at `c` keeps it for every event above `c`).
    pub fn try_events(
        &self,
        range: &KeyRange,
        start_revision: i64,
        end_revision: i64,
        max_events: usize,
        with_prev_kv: bool,
    ) -> Result<Vec<Event>> {
        self.inner.state.events(
            &self.inner.src,
            range,
            start_revision,
            end_revision,
            max_events,
            with_prev_kv,
        )
    }

    /// [`ReadView::try_events`] for callers that handle only MVCC errors. Panics on a storage
    /// error (a corrupt page).
    pub fn events(
        &self,
        range: &KeyRange,
        start_revision: i64,
        end_revision: i64,
        max_events: usize,
        with_prev_kv: bool,
    ) -> Result<Vec<Event>, MvccError> {
        self.try_events(
            range,
            start_revision,
            end_revision,
            max_events,
            with_prev_kv,
        )
        .map_err(|error| match error {
            BtreeError::Mvcc(error) => error,
            other => storage_failure(other),
        })
    }

    /// etcd's `HashKV`: a CRC-32 (IEEE) of every MVCC record at or below `revision` (`<= 0`:
    /// the view's revision) that reads at or above the compacted revision can observe, and the
    /// compacted revision (0 if never compacted). Same data, same hash on every member,
    /// however far a running compaction got. What is hashed, in revision order: the bytes
    /// `b"key"`, then per record its 16-byte revision and its fields (kind, create revision,
    /// version, lease, key, value; see docs/design/mvcc.md, "HashKV"). Errors as etcd:
    /// `revision` at or below the compacted revision is `Compacted`, above the view's
    /// `FutureRevision`.
    pub fn hash_kv(&self, revision: i64) -> Result<(u32, i64)> {
        self.inner.state.hash_kv(&self.inner.src, revision)
    }

    /// The value under `key` in `bucket` as of this view.
    pub fn bucket_get(&self, bucket: Bucket, key: &[u8]) -> Result<Option<Bytes>> {
        bucket::get(self.inner.state.tree(bucket.tree()), &self.inner.src, key)
    }

    /// Entries of `bucket` in `range` as of this view, ascending, at most `limit` (0 = no
    /// limit).
    pub fn bucket_range(
        &self,
        bucket: Bucket,
        range: &KeyRange,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>> {
        bucket::range(
            self.inner.state.tree(bucket.tree()),
            &self.inner.src,
            range,
            limit,
        )
    }
}

impl ReadView {
    /// Writes this view as a complete, self-contained, compact page file at `out`, for a Raft
    /// snapshot: every MVCC tree and bucket, the revision and compaction point, a compaction
    /// running at the view (the file's store resumes it), stamped with `applied_index` and
    /// `metadata` as its checkpoint. [`crate::MvccStore::open`]`(out)` then yields exactly
    /// this view's state and [`crate::Opened`] with that `applied_index` and metadata (and
    /// `checkpoint_txn` 1). The file has the source's page size, no free space to speak of
    /// and no preallocated tail.
    ///
    /// Crash safety: the file is built as `<out>.export.tmp`, fsynced, renamed over `out`
    /// (replacing any file there) and the directory fsynced; a crash leaves either no `out` or
    /// a complete one. A failed export removes its file (best effort): the temporary one, or
    /// `out` if the failure came after the rename (a failed directory fsync).
    ///
    /// Runs on any thread while the writer goes on applying (the view pins its pages);
    /// memory stays bounded (about 1024 pages of copied entries plus one tree path per tree), the
    /// time is linear in the view's size. `out` must not be the source store's own file
    /// (an `InvalidInput` I/O error).
    pub fn export(&self, out: &Path, applied_index: u64, metadata: &[u8]) -> Result<ExportStats> {
        let (dir, name) = super::store::split_file_path(out)?;
        self.export_with(Arc::new(StdPageIo::new(dir)), name, applied_index, metadata)
    }

    /// [`ReadView::export`] to file `name` through `io` (a [`crate::MemPageIo`] for tests).
    pub fn export_with(
        &self,
        io: Arc<dyn PageIo>,
        name: &str,
        applied_index: u64,
        metadata: &[u8],
    ) -> Result<ExportStats> {
        export::export(self, io, name, applied_index, metadata)
    }
}

impl std::fmt::Debug for ReadView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadView")
            .field("revision", &self.inner.state.revision)
            .field("compacted_revision", &self.inner.state.compacted_revision())
            .finish_non_exhaustive()
    }
}
