//! `MvccStore`: the single writer's handle on the store: opens the page file, begins write
//! transactions, hands out read views, checkpoints, compacts and defragments in steps.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use super::compact::{CompactOutcome, CompactProgress, CompactionJob, Cursor};
use super::read_view::ReadView;
use super::state::{StoreState, TreeWriter};
use super::write_txn::WriteTxn;
use crate::db::{CheckpointJob, CheckpointStats, Db, DbOptions};
use crate::defrag::{DefragJob, DefragProgress};
use crate::error::{BtreeError, MvccError, Result, StoreCheckError};
use crate::io::{MemPageIo, PageIo, StdPageIo};
use crate::meta::{Meta, TreeId};
use crate::node::NodeRef;
use crate::options::{Opened, StoreOptions};
use crate::page::PageId;
use crate::tree::{adopt_written, Freed, Tree};

/// System tree key of the caller's checkpoint metadata.
pub(super) const METADATA_KEY: &[u8] = b"checkpoint/metadata";
/// System tree key of a running compaction's cursor (see `compact::Cursor::encode`).
pub(super) const COMPACTION_CURSOR_KEY: &[u8] = b"compaction/cursor";

/// File name of the page file in memory mode.
const MEMORY_FILE_NAME: &str = "keel.db";

/// The MVCC store; see the crate docs for the model and the contract.
pub struct MvccStore {
    pub(crate) db: Db,
    pub(crate) state: StoreState,
    /// Version published to readers; +1 on every publish.
    pub(crate) seq: u64,
    /// The view of the current version, once one was taken.
    current_view: Mutex<Option<ReadView>>,
    compaction: Option<CompactionJob>,
    pub(crate) defrag: Option<DefragJob>,
    /// Applied index of the last durable checkpoint.
    applied_index: u64,
    /// Why writes are refused: the undo of a transaction failed, so the writer's trees may
    /// hold half a transaction.
    writes_poisoned: Option<String>,
}

/// The writer of `state`, built from disjoint fields so that other fields stay usable.
pub(crate) fn tree_writer<'a>(
    state: &'a mut StoreState,
    db: &'a Db,
    defrag: &'a mut Option<DefragJob>,
    freed: &'a mut Freed,
) -> TreeWriter<'a> {
    TreeWriter {
        state,
        src: db.src(),
        layout: db.layout(),
        freed,
        touched: defrag.as_mut().map(DefragJob::touched_mut),
    }
}

/// The directory and the (UTF-8) file name of `path`; a path without a file name is an
/// `InvalidInput` I/O error.
pub(crate) fn split_file_path(path: &Path) -> Result<(&Path, &str)> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| BtreeError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a file path with a UTF-8 name",
            ),
        })?;
    Ok((dir, name))
}

impl MvccStore {
    /// An empty store at revision 1 (as etcd starts) in memory mode: a page file in memory,
    /// checkpoints included. For tests and tools.
    pub fn new() -> Self {
        Self::with_options(StoreOptions::default())
    }

    /// [`MvccStore::new`] with `options` (page size, ...). Panics on invalid options.
    pub fn with_options(options: StoreOptions) -> Self {
        let io: Arc<dyn PageIo> = Arc::new(MemPageIo::new("/memory"));
        match Self::open_with(io, MEMORY_FILE_NAME, &options) {
            Ok((store, _)) => store,
            Err(error) => panic!("in-memory store: {error}"),
        }
    }

    /// Opens the page file at `path`, creating it if missing. O(1) in the size of the store:
    /// reads the meta pages, the free list and the checkpoint metadata; no tree is scanned.
    pub fn open(path: impl AsRef<Path>, options: &StoreOptions) -> Result<(MvccStore, Opened)> {
        let (dir, name) = split_file_path(path.as_ref())?;
        Self::open_with(Arc::new(StdPageIo::new(dir)), name, options)
    }

    /// [`MvccStore::open`] through `io` (a [`MemPageIo`] for tests), file `name`.
    pub fn open_with(
        io: Arc<dyn PageIo>,
        name: &str,
        options: &StoreOptions,
    ) -> Result<(MvccStore, Opened)> {
        if !crate::page::page_size_valid(options.page_size_bytes) {
            return Err(BtreeError::InvalidOptions {
                reason: format!(
                    "page size {} is not a power of two in 512..=65536",
                    options.page_size_bytes
                ),
            });
        }
        let leftover = DefragJob::temp_name(name);
        let dir_error = |source| BtreeError::Io {
            path: io.dir_path().join(&leftover),
            source,
        };
        if io.exists(&leftover).map_err(dir_error)? {
            // A defragmentation that never reached its first checkpoint: the file in place is
            // the durable one.
            io.remove_file(&leftover).map_err(dir_error)?;
            io.sync_dir().map_err(dir_error)?;
        }
        let db_options = DbOptions {
            page_size_bytes: options.page_size_bytes,
            growth_bytes_min: options.growth_bytes_min,
            fsync: options.fsync,
        };
        let opened = Db::open(io, name, db_options)?;
        let meta = opened.meta;
        let mut state = StoreState::new();
        for tree in TreeId::ALL {
            let root = meta.roots[tree.index()];
            state.trees[tree.index()] = Tree {
                root: (root.0 != 0).then_some(NodeRef::Page(root)),
                len: meta.counts[tree.index()],
            };
        }
        state.revision = meta.revision;
        state.compacted = (meta.compacted >= 0).then_some(meta.compacted);
        let src = opened.db.src();
        let system = state.tree(TreeId::System);
        let metadata = system
            .get(src, METADATA_KEY)?
            .map(|value| Bytes::copy_from_slice(value.bytes))
            .unwrap_or_default();
        let compaction = if meta.compaction_target >= 0 {
            let stored = system.get(src, COMPACTION_CURSOR_KEY)?;
            let cursor = match stored {
                None => Cursor::Keys(None),
                Some(value) => Cursor::decode(value.bytes).ok_or_else(|| {
                    let reason = crate::Corruption::Value("compaction cursor".to_string());
                    src.corrupt(value.page, reason)
                })?,
            };
            Some(CompactionJob::resumed(meta.compaction_target, cursor))
        } else {
            None
        };
        let opened_info = Opened {
            applied_index: meta.applied_index,
            checkpoint_metadata: metadata,
            checkpoint_txn: meta.txn,
            created: opened.created,
            compaction_pending: compaction.as_ref().map(CompactionJob::target),
        };
        tracing::info!(
            path = %opened.db.path().display(),
            checkpoint_txn = meta.txn.0,
            applied_index = meta.applied_index,
            revision = meta.revision,
            "opened page file"
        );
        let store = MvccStore {
            db: opened.db,
            state,
            seq: 0,
            current_view: Mutex::new(None),
            compaction,
            defrag: None,
            applied_index: meta.applied_index,
            writes_poisoned: None,
        };
        Ok((store, opened_info))
    }

    fn current_view(&self) -> MutexGuard<'_, Option<ReadView>> {
        self.current_view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn writer<'a>(&'a mut self, freed: &'a mut Freed) -> TreeWriter<'a> {
        tree_writer(&mut self.state, &self.db, &mut self.defrag, freed)
    }

    /// Gives the allocator pages released without publishing a new version (an undone
    /// transaction): readers of the current version may still reach them.
    pub(crate) fn release_unpublished(&mut self, freed: Freed) {
        self.db.release(freed, self.seq);
    }

    /// Refuses writes and checkpoints from now on: the writer's trees are not trustworthy.
    pub(crate) fn poison_writes(&mut self, reason: String) {
        tracing::error!(%reason, "store refuses writes until reopened");
        self.writes_poisoned.get_or_insert(reason);
    }

    /// The error for a write on a store whose writes are poisoned.
    pub(crate) fn writes_poisoned_error(&self) -> Option<BtreeError> {
        self.writes_poisoned
            .as_ref()
            .map(|reason| BtreeError::Poisoned {
                path: self.db.path().to_path_buf(),
                reason: reason.clone(),
            })
    }

    /// Makes the writer's state the version new readers get; `freed` are pages the change
    /// released, which readers of older versions may still reach.
    pub(crate) fn publish(&mut self, freed: Freed) {
        self.db.release(freed, self.seq);
        self.seq += 1;
        *self.current_view() = None;
    }

    /// Revision of the last committed write transaction.
    pub fn revision(&self) -> i64 {
        self.state.revision
    }

    /// Revision of the last compaction (or of the running one); 0 if never compacted.
    pub fn compacted_revision(&self) -> i64 {
        self.state.compacted_revision()
    }

    /// Keys in the revision index: live keys, and deleted keys whose history compaction has not
    /// yet removed.
    pub fn key_count(&self) -> usize {
        usize::try_from(self.state.tree(TreeId::Index).len).unwrap_or(usize::MAX)
    }

    /// Stored revisions (records), puts and deletes.
    pub fn record_count(&self) -> usize {
        usize::try_from(self.state.tree(TreeId::Records).len).unwrap_or(usize::MAX)
    }

    /// An O(1) snapshot of the committed state, readable on any thread.
    pub fn read_view(&self) -> ReadView {
        let mut current = self.current_view();
        if let Some(view) = &*current {
            return view.clone();
        }
        let guard = self.db.readers().register(self.seq);
        let view = ReadView::new(
            self.state.clone(),
            Arc::clone(self.db.src()),
            guard,
            self.compaction.clone(),
        );
        *current = Some(view.clone());
        view
    }

    /// Begins the (only) write transaction.
    pub fn write_txn(&mut self) -> WriteTxn<'_> {
        WriteTxn::new(self)
    }

    /// etcd's Compact, run to completion now: [`MvccStore::start_compaction`], then
    /// [`MvccStore::compact_step`] until done. Panics on a storage error (a corrupt page); use
    /// the two steps to handle it.
    pub fn compact(&mut self, revision: i64) -> Result<CompactOutcome, MvccError> {
        self.start_compaction(revision)?;
        loop {
            match self.compact_step(CompactionJob::BATCH_KEYS_MAX) {
                Ok(progress) if progress.done => return Ok(progress.outcome),
                Ok(_) => {}
                Err(error) => panic!("keel-btree: storage error during compaction: {error}"),
            }
        }
    }

    /// Starts etcd's Compact at `revision`: from now on reads below it fail with `Compacted`
    /// (new read views; older views keep their data). `revision <= compacted` ->
    /// `Compacted`; `revision > current` -> `FutureRevision`; before the first compaction, as
    /// etcd (whose initial compacted revision is -1), 0 is accepted and a negative revision is
    /// `Compacted`. The removal itself runs in [`MvccStore::compact_step`]s; a compaction still
    /// running is replaced (the new one covers it) and starts over from the first key.
    pub fn start_compaction(&mut self, revision: i64) -> Result<(), MvccError> {
        let compacted = self.state.compacted.unwrap_or(-1);
        if revision <= compacted {
            let compacted_revision = self.state.compacted_revision();
            return Err(MvccError::Compacted { compacted_revision });
        }
        if revision > self.state.revision {
            let current = self.state.revision;
            return Err(MvccError::FutureRevision {
                requested: revision,
                current,
            });
        }
        tracing::info!(compact_revision = revision, "started compaction");
        self.state.compacted = Some(revision);
        self.compaction = Some(CompactionJob::new(revision, self.compaction.as_ref()));
        self.publish(Vec::new());
        Ok(())
    }

    /// Advances the running compaction by at most `entries_max` keys (first pass) or records
    /// (second pass), at least 1, and publishes the result; a no-op reporting `done` when none
    /// runs. Deterministic: the same calls give the same store. On a storage error the step
    /// changes nothing.
    pub fn compact_step(&mut self, entries_max: usize) -> Result<CompactProgress> {
        if let Some(error) = self.writes_poisoned_error() {
            return Err(error);
        }
        let Some(job) = self.compaction.as_mut() else {
            return Ok(CompactProgress {
                outcome: CompactOutcome::default(),
                entries_visited: 0,
                done: true,
            });
        };
        let _span = tracing::debug_span!("mvcc.compact_step", target = job.target()).entered();
        let saved = self.state.clone();
        let mut freed = Vec::new();
        let mut writer = tree_writer(&mut self.state, &self.db, &mut self.defrag, &mut freed);
        let stepped = job.step(&mut writer, entries_max);
        let (entries_visited, done) = match stepped {
            Ok(stepped) => stepped,
            Err(error) => {
                self.state = saved;
                return Err(error);
            }
        };
        let outcome = job.outcome();
        if done {
            self.compaction = None;
            tracing::info!(
                revisions_removed = outcome.revisions_removed_count,
                keys_removed = outcome.keys_removed_count,
                "finished compaction"
            );
        }
        self.publish(freed);
        Ok(CompactProgress {
            outcome,
            entries_visited,
            done,
        })
    }

    /// The revision of the compaction still running, if one is.
    pub fn compaction_running(&self) -> Option<i64> {
        self.compaction.as_ref().map(CompactionJob::target)
    }

    /// The CPU part of a durable checkpoint recording `applied_index` and the caller's
    /// `metadata` (both returned by the next [`MvccStore::open`]): encodes every change since
    /// the last checkpoint into pages. Run the returned job's I/O ([`CheckpointJob::run`], on
    /// any thread), then hand it to [`MvccStore::finish_checkpoint`]. Writes and reads go on
    /// meanwhile; changes after this call belong to the next checkpoint. One checkpoint at a
    /// time; `applied_index` never decreases.
    pub fn begin_checkpoint(
        &mut self,
        applied_index: u64,
        metadata: &[u8],
    ) -> Result<CheckpointJob> {
        if let Some(error) = self.db.poisoned_error() {
            return Err(error);
        }
        assert!(
            applied_index >= self.applied_index,
            "checkpoint at applied index {applied_index} below the last one, {}",
            self.applied_index
        );
        let saved = self.state.clone();
        let mut freed = Vec::new();
        let cursor = self.compaction.as_ref().map(|job| job.cursor().encode());
        let mut writer = self.writer(&mut freed);
        let written = writer
            .insert(
                TreeId::System,
                Bytes::from_static(METADATA_KEY),
                Bytes::copy_from_slice(metadata),
            )
            .and_then(|_| match cursor {
                Some(cursor) => writer
                    .insert(
                        TreeId::System,
                        Bytes::from_static(COMPACTION_CURSOR_KEY),
                        cursor,
                    )
                    .map(|_| ()),
                None => writer
                    .remove(TreeId::System, COMPACTION_CURSOR_KEY)
                    .map(|_| ()),
            });
        if let Err(error) = written {
            self.state = saved;
            return Err(error);
        }
        self.publish(freed);
        let meta = Meta {
            applied_index,
            revision: self.state.revision,
            compacted: self.state.compacted.unwrap_or(-1),
            compaction_target: self.compaction.as_ref().map_or(-1, CompactionJob::target),
            ..Meta::empty(self.db.layout().page_size_bytes)
        };
        self.db.begin_checkpoint(&self.state.trees, meta)
    }

    /// Completes a checkpoint whose job ran: on success, memory held for the changes it wrote
    /// is released (new views read them from the file) and its stats returned. If the job
    /// failed (or never ran), the store is poisoned: no further checkpoint is taken, and the
    /// caller must reopen (the log replays from the last durable checkpoint).
    pub fn finish_checkpoint(&mut self, job: CheckpointJob) -> Result<CheckpointStats> {
        let stats = job.stats();
        let meta = self.db.finish_checkpoint(job)?;
        self.applied_index = meta.applied_index;
        for tree in &mut self.state.trees {
            if let Some(root) = tree.root.as_mut() {
                adopt_written(root);
            }
        }
        self.publish(Vec::new());
        Ok(stats)
    }

    /// A whole checkpoint on this thread: begin, run, finish.
    pub fn checkpoint(&mut self, applied_index: u64, metadata: &[u8]) -> Result<CheckpointStats> {
        let mut job = self.begin_checkpoint(applied_index, metadata)?;
        let ran = job.run();
        let finished = self.finish_checkpoint(job);
        ran?;
        finished
    }

    /// Whether a checkpoint is begun and not finished.
    pub fn checkpoint_in_flight(&self) -> bool {
        self.db.in_flight().is_some()
    }

    /// Applied index of the last durable checkpoint.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// Size of the page file in bytes, as the file system reports it (quota, `etcdctl endpoint
    /// status` DbSize). Preallocated growth included; after a defragmentation swap, the new
    /// file's size.
    pub fn size_bytes(&self) -> u64 {
        self.db.file_len_bytes()
    }

    /// Bytes of the pages in use (etcd's DbSizeInUse): the file's pages minus free and pending
    /// ones, as of the last checkpoint's accounting.
    pub fn size_in_use_bytes(&self) -> u64 {
        let pages = self.db.page_count() - self.db.unused_page_count();
        pages * self.db.layout().page_size_bytes as u64
    }

    /// Page size of the file.
    pub fn page_size_bytes(&self) -> usize {
        self.db.layout().page_size_bytes
    }

    /// Starts an online defragmentation: a new file `<name>.defrag` receives a compact copy of
    /// the current state, driven by [`MvccStore::defrag_step`]. `Ok(false)` (nothing started)
    /// if one runs, or if the last one swapped and its file awaits the checkpoint that puts it
    /// in place.
    pub fn start_defrag(&mut self) -> Result<bool> {
        if self.defrag.is_some() || self.db.awaiting_rename() {
            return Ok(false);
        }
        if let Some(error) = self.db.poisoned_error().or(self.writes_poisoned_error()) {
            return Err(error);
        }
        let source = self.read_view();
        let job = DefragJob::start(&self.db, source)?;
        tracing::info!(path = %self.db.path().display(), "started defragmentation");
        self.defrag = Some(job);
        Ok(true)
    }

    /// Advances the running defragmentation by at most `entries_max` entries copied or caught
    /// up (at least 1). Once caught up (and no checkpoint in flight) it swaps: the store
    /// continues on the new file (readers of older views keep the old one), and the next
    /// checkpoint makes it durable and renames it over the old file. On error the
    /// defragmentation is cancelled and its file removed; the store is unaffected.
    pub fn defrag_step(&mut self, entries_max: usize) -> Result<DefragProgress> {
        crate::defrag::step(self, entries_max)
    }

    /// Stops a running defragmentation and removes its file.
    pub fn cancel_defrag(&mut self) -> Result<()> {
        match self.defrag.take() {
            Some(job) => job.cancel(),
            None => Ok(()),
        }
    }

    /// Whether a defragmentation runs.
    pub fn defrag_running(&self) -> bool {
        self.defrag.is_some()
    }

    /// Verifies every invariant of the store: trees, key indexes, index <-> records, versions,
    /// compaction; and, when the state is exactly the last checkpoint (nothing changed since,
    /// nothing in flight), the page accounting of the file: every page is used once or free.
    /// O(n), for tests and debugging. [`BtreeError::Check`] is a bug in this crate.
    pub fn check(&self) -> Result<()> {
        let src = self.db.src();
        let durable = self.db.in_flight().is_none()
            && self
                .state
                .trees
                .iter()
                .all(|tree| matches!(tree.root, None | Some(NodeRef::Page(_))));
        let page_count = self.db.page_count();
        let mut marks = vec![false; usize::try_from(page_count).expect("page count fits")];
        let mut conflict: Option<(PageId, &'static str)> = None;
        let mut mark = |first: PageId, count: u64, reason: &'static str| {
            for page in first.0..first.0.saturating_add(count) {
                match marks.get_mut(page as usize) {
                    Some(seen) if !*seen && page >= PageId::FIRST_DATA.0 => *seen = true,
                    Some(_) | None => {
                        conflict.get_or_insert((PageId(page), reason));
                    }
                }
            }
        };
        self.state.check(
            src,
            self.db.layout(),
            self.compaction.is_some(),
            &mut |first, count| mark(first, count, "used twice or beyond the file"),
        )?;
        if !durable {
            if let Some((page_id, reason)) = conflict {
                return Err(StoreCheckError::Pages { page_id, reason }.into());
            }
            return Ok(());
        }
        for page in self.db.free_list_page_ids() {
            mark(*page, 1, "free-list page also used");
        }
        for (first, count) in self.db.unused_runs() {
            mark(PageId(first), count, "free page also used");
        }
        if let Some((page_id, reason)) = conflict {
            return Err(StoreCheckError::Pages { page_id, reason }.into());
        }
        if let Some(leaked) = marks.iter().skip(2).position(|seen| !seen) {
            let page_id = PageId(leaked as u64 + 2);
            let reason = "neither used nor free (leaked)";
            return Err(StoreCheckError::Pages { page_id, reason }.into());
        }
        Ok(())
    }
}

impl Default for MvccStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MvccStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MvccStore")
            .field("path", &self.db.path())
            .field("revision", &self.state.revision)
            .field("compacted_revision", &self.state.compacted_revision())
            .field("keys", &self.key_count())
            .field("records", &self.record_count())
            .finish_non_exhaustive()
    }
}
