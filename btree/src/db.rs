//! `Db`: one page file as the writer owns it: the file, its current mapping, page accounting,
//! the readers of each published version, and checkpoints. A checkpoint is split in three: the
//! CPU part ([`Db::begin_checkpoint`]: encode dirty nodes, allocate pages, build the free list
//! and the meta page), the I/O part ([`CheckpointJob::run`], any thread), and
//! [`Db::finish_checkpoint`] (map the grown file, publish pages instead of memory nodes).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{BtreeError, Corruption, Result};
use crate::freelist::{self, Allocator};
use crate::io::{PageFile, PageIo};
use crate::meta::{Meta, TreeId, TREE_COUNT};
use crate::node::{Layout, PageWrite};
use crate::page::{self, PageId, PageKind, TxnId};
use crate::pager::{PageSource, ReaderTable};
use crate::tree::{Encoder, Freed, Tree};

/// Largest write a checkpoint issues: contiguous pages are coalesced up to this.
const WRITE_BYTES_MAX: usize = 1 << 20;

/// How the file grows: by at least this fraction of its size (1/8), so that growth, and the
/// remapping it forces, stays rare.
const GROWTH_DIVISOR: u64 = 8;

/// The page file as the writer owns it.
pub(crate) struct Db {
    io: Arc<dyn PageIo>,
    /// File name within the directory of `io`.
    name: String,
    path: Arc<Path>,
    file: Arc<dyn PageFile>,
    layout: Layout,
    src: Arc<PageSource>,
    allocator: Allocator,
    readers: Arc<ReaderTable>,
    /// Id the next checkpoint gets.
    next_txn: TxnId,
    /// Length of the file (pages are preallocated beyond `page_count`).
    file_len_bytes: u64,
    /// Grow the file by at least this much at once.
    growth_bytes_min: u64,
    /// Free-list pages of the last durable checkpoint; the next checkpoint releases them.
    free_list_pages: Vec<PageId>,
    /// Why checkpoints are refused (a failed checkpoint I/O).
    poisoned: Option<String>,
    /// A checkpoint begun and not yet finished.
    in_flight: Option<TxnId>,
    fsync: bool,
    /// A defragmented file not yet in place: the next checkpoint renames it to this name.
    rename_to: Option<String>,
    /// Grow the file to exactly the pages in use, never ahead (an exported snapshot: a file
    /// that is sent, not written to).
    grow_exact: bool,
}

/// What opening found.
pub(crate) struct OpenedDb {
    pub(crate) db: Db,
    pub(crate) meta: Meta,
    pub(crate) created: bool,
}

/// Options the `Db` needs (a subset of `StoreOptions`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct DbOptions {
    pub(crate) page_size_bytes: usize,
    pub(crate) growth_bytes_min: u64,
    pub(crate) fsync: bool,
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> BtreeError + '_ {
    move |source| BtreeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Db {
    /// Opens `name` in `io`, creating an empty page file if it does not exist or is empty.
    pub(crate) fn open(io: Arc<dyn PageIo>, name: &str, options: DbOptions) -> Result<OpenedDb> {
        let path: Arc<Path> = Arc::from(io.dir_path().join(name));
        let exists = io.exists(name).map_err(io_error(&path))?;
        let file = if exists {
            io.open_file(name).map_err(io_error(&path))?
        } else {
            io.create_file(name).map_err(io_error(&path))?
        };
        let len = file.len_bytes().map_err(io_error(&path))?;
        let created = len == 0;
        let meta = if created {
            Self::write_empty(&*io, &*file, &path, options)?
        } else {
            read_newest_meta(&*file, &path, len, options.page_size_bytes)?
        };
        let file_len_bytes = file.len_bytes().map_err(io_error(&path))?;
        let page_size = meta.page_size_bytes;
        if meta
            .page_count
            .checked_mul(page_size as u64)
            .is_none_or(|end| end > file_len_bytes)
        {
            return Err(BtreeError::Corrupt {
                path: path.to_path_buf(),
                page_id: meta.slot(),
                reason: Corruption::OutOfFile {
                    page_count: file_len_bytes / page_size as u64,
                },
            });
        }
        let map = file.map().map_err(io_error(&path))?;
        let src = Arc::new(PageSource::new(
            Arc::clone(&path),
            page_size,
            meta.page_count,
            map,
            None,
        ));
        let (runs, free_list_pages) = read_free_list(&src, meta.free_list)?;
        let db = Db {
            io,
            name: name.to_string(),
            path,
            file,
            layout: Layout::new(page_size),
            src,
            allocator: Allocator::new(meta.page_count, runs),
            readers: Arc::new(ReaderTable::default()),
            next_txn: TxnId(meta.txn.0 + 1),
            file_len_bytes,
            growth_bytes_min: options.growth_bytes_min,
            free_list_pages,
            poisoned: None,
            in_flight: None,
            fsync: options.fsync,
            rename_to: None,
            grow_exact: false,
        };
        Ok(OpenedDb { db, meta, created })
    }

    /// A new, empty page file `name` (replacing any) that the next checkpoint renames to
    /// `rename_to`: the target of a defragmentation. It has no valid meta until then.
    pub(crate) fn create_for_rename(
        io: Arc<dyn PageIo>,
        name: &str,
        rename_to: &str,
        page_size_bytes: usize,
        growth_bytes_min: u64,
        fsync: bool,
        next_txn: TxnId,
    ) -> Result<Db> {
        let path: Arc<Path> = Arc::from(io.dir_path().join(name));
        let file = io.create_file(name).map_err(io_error(&path))?;
        let file_len_bytes = 2 * page_size_bytes as u64;
        file.set_len(file_len_bytes).map_err(io_error(&path))?;
        let map = file.map().map_err(io_error(&path))?;
        let src = Arc::new(PageSource::new(
            Arc::clone(&path),
            page_size_bytes,
            2,
            map,
            None,
        ));
        Ok(Db {
            io,
            name: name.to_string(),
            path,
            file,
            layout: Layout::new(page_size_bytes),
            src,
            allocator: Allocator::new(2, []),
            readers: Arc::new(ReaderTable::default()),
            next_txn,
            file_len_bytes,
            growth_bytes_min,
            free_list_pages: Vec::new(),
            poisoned: None,
            in_flight: None,
            fsync,
            rename_to: Some(rename_to.to_string()),
            grow_exact: false,
        })
    }

    fn write_empty(
        io: &dyn PageIo,
        file: &dyn PageFile,
        path: &Path,
        options: DbOptions,
    ) -> Result<Meta> {
        let meta = Meta::empty(options.page_size_bytes);
        let page_size = options.page_size_bytes as u64;
        file.set_len(2 * page_size).map_err(io_error(path))?;
        file.write_at(0, &meta.encode()).map_err(io_error(path))?;
        if options.fsync {
            file.sync().map_err(io_error(path))?;
            io.sync_dir().map_err(io_error(path))?;
        }
        Ok(meta)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn io(&self) -> &Arc<dyn PageIo> {
        &self.io
    }

    pub(crate) fn layout(&self) -> Layout {
        self.layout
    }

    pub(crate) fn src(&self) -> &Arc<PageSource> {
        &self.src
    }

    pub(crate) fn readers(&self) -> &Arc<ReaderTable> {
        &self.readers
    }

    pub(crate) fn next_txn(&self) -> TxnId {
        self.next_txn
    }

    /// Continues the checkpoint ids of `previous` (a defragmented file replacing it).
    pub(crate) fn continue_txns_from(&mut self, previous: &Db) {
        self.next_txn = self.next_txn.max(previous.next_txn);
    }

    /// Whether this file still waits for its first checkpoint to be renamed into place.
    pub(crate) fn awaiting_rename(&self) -> bool {
        self.rename_to.is_some()
    }

    pub(crate) fn fsync(&self) -> bool {
        self.fsync
    }

    pub(crate) fn growth_bytes_min(&self) -> u64 {
        self.growth_bytes_min
    }

    pub(crate) fn file_len_bytes(&self) -> u64 {
        self.file_len_bytes
    }

    pub(crate) fn page_count(&self) -> u64 {
        self.allocator.page_count()
    }

    /// Pages free or pending (not part of the newest state).
    pub(crate) fn unused_page_count(&self) -> u64 {
        self.allocator.unused_page_count()
    }

    pub(crate) fn in_flight(&self) -> Option<TxnId> {
        self.in_flight
    }

    pub(crate) fn poisoned_error(&self) -> Option<BtreeError> {
        self.poisoned.as_ref().map(|reason| BtreeError::Poisoned {
            path: self.path.to_path_buf(),
            reason: reason.clone(),
        })
    }

    fn poison(&mut self, reason: String) {
        if self.poisoned.is_none() {
            tracing::error!(path = %self.path.display(), %reason, "page file poisoned");
            self.poisoned = Some(reason);
        }
    }

    /// Makes the file grow to exactly the pages in use, never ahead.
    pub(crate) fn set_grow_exact(&mut self) {
        self.grow_exact = true;
    }

    /// The length the file must grow to in order to hold `page_count` pages, if it is
    /// shorter: at least by the growth step (1/8 of its size, at least `growth_bytes_min`),
    /// or exactly when `grow_exact`.
    fn grown_len_bytes(&self, page_count: u64) -> Option<u64> {
        let needed_bytes = page_count * self.layout.page_size_bytes as u64;
        if needed_bytes <= self.file_len_bytes {
            return None;
        }
        if self.grow_exact {
            return Some(needed_bytes);
        }
        let step = (self.file_len_bytes / GROWTH_DIVISOR).max(self.growth_bytes_min);
        let page = self.layout.page_size_bytes as u64;
        Some(needed_bytes.max(self.file_len_bytes + step).div_ceil(page) * page)
    }

    /// Releases pages a committed change stopped referencing; readers of versions up to
    /// `seq` may still reach them.
    pub(crate) fn release(&mut self, freed: Freed, seq: u64) {
        for (first, count) in freed {
            self.allocator
                .release(first, count, self.next_txn, Some(seq));
        }
    }

    /// The CPU part of a checkpoint of `trees` and `meta_fields` (whose txn, page fields and
    /// roots it fills in): encodes every node in memory, allocates pages, builds the free list
    /// and the meta page. The trees' in-memory nodes are marked written; they stay readable
    /// in memory until [`Db::finish_checkpoint`].
    pub(crate) fn begin_checkpoint(
        &mut self,
        trees: &[Tree; TREE_COUNT],
        mut meta: Meta,
    ) -> Result<CheckpointJob> {
        if let Some(error) = self.poisoned_error() {
            return Err(error);
        }
        assert!(
            self.in_flight.is_none(),
            "checkpoint {} begun while {:?} is in flight",
            self.next_txn,
            self.in_flight
        );
        let txn = self.next_txn;
        self.allocator.reclaim(txn, self.readers.oldest());
        let mut encoder = Encoder::new(self.layout, txn, &mut self.allocator);
        for tree in TreeId::ALL {
            let root = trees[tree.index()].root.as_ref();
            meta.roots[tree.index()] = root.map_or(PageId(0), |root| encoder.encode(root));
            meta.counts[tree.index()] = trees[tree.index()].len;
        }
        let (node_count, blob_page_count) = (encoder.node_count, encoder.blob_page_count);
        let mut writes = encoder.writes;
        for page in std::mem::take(&mut self.free_list_pages) {
            self.allocator.release(page, 1, txn, None);
        }
        let (free_list, free_list_pages) = self.free_list_encode(txn, &mut writes);
        meta.txn = txn;
        meta.page_size_bytes = self.layout.page_size_bytes;
        meta.page_count = self.allocator.page_count();
        meta.free_list = free_list;
        let grow_to_bytes = self.grown_len_bytes(meta.page_count);
        let rename = self
            .rename_to
            .as_ref()
            .map(|target| (self.name.clone(), target.clone()));
        self.in_flight = Some(txn);
        self.next_txn = TxnId(txn.0 + 1);
        Ok(CheckpointJob {
            io: Arc::clone(&self.io),
            file: Arc::clone(&self.file),
            path: self.path.to_path_buf(),
            txn,
            // Sorted and merged by run(), on the checkpoint's own thread: the writer's
            // thread only encodes.
            writes,
            page_size_bytes: self.layout.page_size_bytes,
            grow_to_bytes,
            meta_bytes: meta.encode(),
            meta_offset_bytes: meta.slot().offset_bytes(self.layout.page_size_bytes),
            rename,
            renamed: false,
            fsync: self.fsync,
            stats: CheckpointStats {
                txn,
                node_pages: node_count,
                blob_pages: blob_page_count,
                free_list_pages: free_list_pages.len() as u64,
                bytes_written: 0,
            },
            free_list_pages,
            outcome: None,
            meta,
        })
    }

    /// Allocates and encodes the free-list pages; returns the head and the pages used.
    fn free_list_encode(
        &mut self,
        txn: TxnId,
        writes: &mut Vec<PageWrite>,
    ) -> (PageId, Vec<PageId>) {
        let per_page = freelist::runs_per_page(self.layout.page_size_bytes);
        let runs_before = self.allocator.unused_runs().len();
        // Taking a page can split one run in two (a free run coalesced with a pending one
        // before it), so each page taken may add a run: size for that.
        let mut needed = 0;
        while needed * per_page < runs_before + needed {
            needed += 1;
        }
        let pages: Vec<PageId> = (0..needed).map(|_| self.allocator.allocate(1)).collect();
        let runs = self.allocator.unused_runs();
        assert!(runs.len() <= needed * per_page, "free list fits its pages");
        for (i, &page) in pages.iter().enumerate() {
            let chunk = runs.chunks(per_page).nth(i).unwrap_or(&[]);
            let next = pages.get(i + 1).copied().unwrap_or(PageId(0));
            let bytes = freelist::page_encode(self.layout.page_size_bytes, page, txn, chunk, next);
            writes.push(PageWrite { first: page, bytes });
        }
        (pages.first().copied().unwrap_or(PageId(0)), pages)
    }

    /// Completes checkpoint `job` once its I/O ran: on success the file is mapped again (it
    /// may have grown) and `Ok(meta)` returned; on failure the file is poisoned.
    pub(crate) fn finish_checkpoint(&mut self, job: CheckpointJob) -> Result<Meta> {
        assert_eq!(
            self.in_flight,
            Some(job.txn),
            "finish of checkpoint {} that is not in flight",
            job.txn
        );
        self.in_flight = None;
        match job.outcome {
            Some(Ok(())) => {}
            Some(Err(reason)) => {
                self.poison(format!("checkpoint {} failed: {reason}", job.txn));
                return Err(self.poisoned_error().expect("just poisoned"));
            }
            None => {
                self.poison(format!("checkpoint {} finished without running", job.txn));
                return Err(self.poisoned_error().expect("just poisoned"));
            }
        }
        self.free_list_pages = job.free_list_pages;
        if let Some(len) = job.grow_to_bytes {
            self.file_len_bytes = len;
        }
        if let Some((_, target)) = job.rename {
            self.name = target;
            self.path = Arc::from(self.io.dir_path().join(&self.name));
            self.rename_to = None;
        }
        let map = match self.file.map() {
            Ok(map) => map,
            Err(error) => {
                self.poison(format!("mapping after checkpoint {}: {error}", job.txn));
                return Err(io_error(&self.path)(error));
            }
        };
        self.src = Arc::new(PageSource::new(
            Arc::clone(&self.path),
            self.layout.page_size_bytes,
            self.allocator.page_count(),
            map,
            Some(&self.src),
        ));
        Ok(job.meta)
    }

    /// Writes `writes` now, without sync or meta (a defragmentation flushing what it copied),
    /// and maps the file again. The pages become readable; they are durable only with the
    /// next checkpoint.
    pub(crate) fn write_unsynced(&mut self, writes: Vec<PageWrite>) -> Result<()> {
        if let Some(len) = self.grown_len_bytes(self.allocator.page_count()) {
            self.file.set_len(len).map_err(io_error(&self.path))?;
            self.file_len_bytes = len;
        }
        for (offset, bytes) in coalesce(writes, self.layout.page_size_bytes) {
            self.file
                .write_at(offset, &bytes)
                .map_err(io_error(&self.path))?;
            // Defragmentation and export write whole files this way before one sync:
            // trickled to the device as they go, that sync does not flush it all at once (the
            // WAL's syncs on the same device would queue behind it). Only a hint: a refusal
            // changes nothing.
            if let Err(error) = self.file.start_writeback(offset, bytes.len() as u64) {
                tracing::debug!(path = %self.path.display(), %error, "starting writeback failed");
            }
        }
        let map = self.file.map().map_err(io_error(&self.path))?;
        self.src = Arc::new(PageSource::new(
            Arc::clone(&self.path),
            self.layout.page_size_bytes,
            self.allocator.page_count(),
            map,
            Some(&self.src),
        ));
        Ok(())
    }

    /// Encodes the in-memory nodes of `trees` as pages of the next checkpoint's txn, for
    /// [`Db::write_unsynced`].
    pub(crate) fn encode_unsynced(&mut self, trees: &[Tree; TREE_COUNT]) -> Vec<PageWrite> {
        let mut encoder = Encoder::new(self.layout, self.next_txn, &mut self.allocator);
        for tree in trees {
            if let Some(root) = &tree.root {
                encoder.encode(root);
            }
        }
        encoder.writes
    }

    /// Every page of the durable file: pages reachable from `roots` (reported through
    /// `check_tree`), free-list pages and free runs; for the page accounting check.
    pub(crate) fn free_list_page_ids(&self) -> &[PageId] {
        &self.free_list_pages
    }

    pub(crate) fn unused_runs(&self) -> Vec<(u64, u64)> {
        self.allocator.unused_runs()
    }
}

/// Sorts page writes and merges contiguous ones into writes of up to [`WRITE_BYTES_MAX`].
/// Each merged write is allocated once, at its final size (growing it page by page made
/// the allocator fault in fresh memory for every doubling).
fn coalesce(mut writes: Vec<PageWrite>, page_size_bytes: usize) -> Vec<(u64, Vec<u8>)> {
    writes.sort_unstable_by_key(|w| w.first);
    let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut first = 0;
    while first < writes.len() {
        let offset = writes[first].first.offset_bytes(page_size_bytes);
        let mut len = writes[first].bytes.len();
        let mut end = first + 1;
        while let Some(next) = writes.get(end) {
            let contiguous = next.first.offset_bytes(page_size_bytes) == offset + len as u64;
            if !contiguous || len + next.bytes.len() > WRITE_BYTES_MAX {
                break;
            }
            len += next.bytes.len();
            end += 1;
        }
        let bytes = if end == first + 1 {
            std::mem::take(&mut writes[first].bytes)
        } else {
            let mut bytes = Vec::with_capacity(len);
            for write in &writes[first..end] {
                bytes.extend_from_slice(&write.bytes);
            }
            bytes
        };
        out.push((offset, bytes));
        first = end;
    }
    out
}

/// Reads the meta pages and returns the valid one with the highest txn id. The page size is
/// not known before a meta is read: the one meta 0 claims is tried first, then every size.
fn read_newest_meta(
    file: &dyn PageFile,
    path: &Path,
    len_bytes: u64,
    page_size_hint: usize,
) -> Result<Meta> {
    let mut head = [0u8; 64];
    let claimed = if len_bytes >= head.len() as u64 {
        file.read_at(0, &mut head).map_err(io_error(path))?;
        u32::from_le_bytes([head[40], head[41], head[42], head[43]]) as usize
    } else {
        0
    };
    let mut candidates = vec![claimed, page_size_hint];
    let mut size = page::PAGE_SIZE_BYTES_MIN;
    while size <= page::PAGE_SIZE_BYTES_MAX {
        candidates.push(size);
        size *= 2;
    }
    for page_size in candidates {
        if !page::page_size_valid(page_size) {
            continue;
        }
        let mut newest: Option<Meta> = None;
        for slot in [PageId(0), PageId(1)] {
            let offset = slot.offset_bytes(page_size);
            if offset + page_size as u64 > len_bytes {
                continue;
            }
            let mut bytes = vec![0u8; page_size];
            file.read_at(offset, &mut bytes).map_err(io_error(path))?;
            if let Ok(meta) = Meta::decode(&bytes, slot) {
                if newest.as_ref().is_none_or(|n| meta.txn > n.txn) {
                    newest = Some(meta);
                }
            }
        }
        if let Some(meta) = newest {
            return Ok(meta);
        }
    }
    Err(BtreeError::Corrupt {
        path: path.to_path_buf(),
        page_id: PageId(0),
        reason: Corruption::NoValidMeta,
    })
}

/// Free runs (first page, page count) and the pages of the free list holding them.
type FreeList = (Vec<(u64, u64)>, Vec<PageId>);

/// Reads the free-list chain from `head`: the free runs and the pages holding them.
fn read_free_list(src: &PageSource, head: PageId) -> Result<FreeList> {
    let mut runs = Vec::new();
    let mut pages = Vec::new();
    let mut next = head;
    while next.0 != 0 {
        if pages.len() as u64 >= src.page_count() {
            return Err(src.corrupt(next, Corruption::Layout("free-list chain loops")));
        }
        let bytes = src.page(next, &[PageKind::FreeList])?;
        let (page_runs, following) = freelist::page_decode(bytes, src.page_count())
            .map_err(|reason| src.corrupt(next, reason))?;
        runs.extend(page_runs);
        pages.push(next);
        next = following;
    }
    // Free runs must not overlap each other, the free-list pages or the meta pages.
    let mut all: Vec<(u64, u64)> = runs.clone();
    all.extend(pages.iter().map(|p| (p.0, 1)));
    all.sort_unstable();
    for pair in all.windows(2) {
        if pair[0].0 + pair[0].1 > pair[1].0 {
            let reason = Corruption::Layout("free runs overlap");
            return Err(src.corrupt(head, reason));
        }
    }
    Ok((runs, pages))
}

/// What one checkpoint wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// The checkpoint's txn id.
    pub txn: TxnId,
    /// Node pages written.
    pub node_pages: u64,
    /// Blob pages written.
    pub blob_pages: u64,
    /// Free-list pages written.
    pub free_list_pages: u64,
    /// Bytes written, the meta page included (set once the job ran).
    pub bytes_written: u64,
}

/// The I/O of one checkpoint: write the pages, fsync, write the meta page, fsync (and, for the
/// first checkpoint after a defragmentation, rename the new file into place and fsync the
/// directory). `Send`: run it on any thread, then hand it to `MvccStore::finish_checkpoint`.
pub struct CheckpointJob {
    io: Arc<dyn PageIo>,
    file: Arc<dyn PageFile>,
    path: PathBuf,
    txn: TxnId,
    /// The encoded pages, in no order; run() sorts and coalesces them.
    writes: Vec<PageWrite>,
    page_size_bytes: usize,
    grow_to_bytes: Option<u64>,
    meta_bytes: Vec<u8>,
    meta_offset_bytes: u64,
    /// (current name, final name).
    rename: Option<(String, String)>,
    /// The rename was done (its directory sync may still have failed).
    renamed: bool,
    fsync: bool,
    free_list_pages: Vec<PageId>,
    stats: CheckpointStats,
    /// `None` until run; the error's text if it failed.
    outcome: Option<Result<(), String>>,
    meta: Meta,
}

impl std::fmt::Debug for CheckpointJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointJob")
            .field("path", &self.path)
            .field("txn", &self.txn)
            .field("writes", &self.writes.len())
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

impl CheckpointJob {
    /// The checkpoint's txn id.
    pub fn txn(&self) -> TxnId {
        self.txn
    }

    /// The applied index this checkpoint records.
    pub fn applied_index(&self) -> u64 {
        self.meta.applied_index
    }

    /// Pages of the file as of this checkpoint.
    pub(crate) fn page_count(&self) -> u64 {
        self.meta.page_count
    }

    /// Whether the run renamed the file into place (even if it failed afterwards).
    pub(crate) fn renamed(&self) -> bool {
        self.renamed
    }

    /// What it writes.
    pub fn stats(&self) -> CheckpointStats {
        self.stats
    }

    /// Runs the I/O (blocking). After `Ok`, the checkpoint is durable: a crash from here on
    /// reopens at this checkpoint or a later one. Running twice is a no-op returning the
    /// first outcome.
    pub fn run(&mut self) -> Result<CheckpointStats> {
        if self.outcome.is_none() {
            let outcome = self.run_io();
            self.outcome = Some(outcome.as_ref().map(|_| ()).map_err(|e| e.to_string()));
            outcome?;
        }
        match &self.outcome {
            Some(Ok(())) => Ok(self.stats),
            Some(Err(reason)) => Err(BtreeError::Poisoned {
                path: self.path.clone(),
                reason: reason.clone(),
            }),
            None => unreachable!("set above"),
        }
    }

    fn run_io(&mut self) -> Result<()> {
        let _span = tracing::debug_span!("btree.checkpoint", txn = self.txn.0).entered();
        let fail = io_error(&self.path);
        if let Some(len) = self.grow_to_bytes {
            self.file.set_len(len).map_err(&fail)?;
        }
        let mut bytes_written = 0u64;
        let writes = coalesce(std::mem::take(&mut self.writes), self.page_size_bytes);
        for (offset, bytes) in &writes {
            self.file.write_at(*offset, bytes).map_err(&fail)?;
            bytes_written += bytes.len() as u64;
        }
        if self.fsync {
            self.file.sync().map_err(&fail)?;
        }
        self.file
            .write_at(self.meta_offset_bytes, &self.meta_bytes)
            .map_err(&fail)?;
        bytes_written += self.meta_bytes.len() as u64;
        if self.fsync {
            self.file.sync().map_err(&fail)?;
        }
        if let Some((source, target)) = &self.rename {
            self.io.rename(source, target).map_err(&fail)?;
            self.renamed = true;
            if self.fsync {
                self.io.sync_dir().map_err(&fail)?;
            }
        }
        self.stats.bytes_written = bytes_written;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(id: u64, pages: usize, fill: u8) -> PageWrite {
        PageWrite {
            first: PageId(id),
            bytes: vec![fill; pages * 4096],
        }
    }

    #[test]
    fn coalesce_merges_contiguous_pages_in_order_and_splits_at_gaps_and_the_size_cap() {
        let cap_pages = WRITE_BYTES_MAX / 4096;
        // Out of order: 7 (2 pages) follows 5..7; 10 stands alone after a gap; then a run
        // of cap_pages + 1 single pages from 20, which must split after cap_pages.
        let mut writes = vec![page(10, 1, 10), page(7, 2, 7), page(5, 1, 5), page(6, 1, 6)];
        writes.extend((0..=cap_pages as u64).map(|i| page(20 + i, 1, (i % 251) as u8)));
        let out = coalesce(writes, 4096);
        assert_eq!(out.len(), 4, "5..9, 10, 20..20+cap, the page after the cap");
        assert_eq!(out[0].0, 5 * 4096);
        let expected: Vec<u8> = [5u8, 6, 7, 7]
            .iter()
            .flat_map(|&fill| vec![fill; 4096])
            .collect();
        assert_eq!(out[0].1, expected);
        assert_eq!((out[1].0, out[1].1.len()), (10 * 4096, 4096));
        assert_eq!((out[2].0, out[2].1.len()), (20 * 4096, WRITE_BYTES_MAX));
        assert_eq!(out[2].1.capacity(), WRITE_BYTES_MAX, "allocated once");
        assert_eq!(out[2].1[4096 * 3], 3);
        assert_eq!(out[3].0, (20 + cap_pages as u64) * 4096);
        assert_eq!(out[3].1, vec![(cap_pages % 251) as u8; 4096]);
    }
}
