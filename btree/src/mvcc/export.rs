//! Snapshot export ([`ReadView::export`]): writes one read view as a new, self-contained,
//! compact page file, for a Raft snapshot sent to a lagging or new member.
//!
//! The view's trees are copied entry by entry, in key order, into new trees whose nodes fill
//! by appends (as a defragmentation does); every [`FLUSH_PAGES`] pages' worth of bytes copied, the finished
//! nodes are written to the file (unsynced) and dropped from memory, so memory stays bounded
//! whatever the size of the store. The file is built under a temporary name
//! (`<name>.export.tmp`) and made durable by one checkpoint (pages, fsync, meta, fsync) that
//! renames it to `<name>` and fsyncs the directory: a crash at any point leaves either no
//! `<name>` or a complete one (and perhaps the temporary file, which the next export to the
//! same name replaces).
//!
//! What the file holds: every tree of the view, the view's revision and compaction point, a
//! compaction still running at the view (its revision and cursor, so opening the file resumes
//! it), and as its checkpoint the caller's `applied_index` and `metadata` (replacing the
//! source's own). The export only reads the view (its pages stay pinned while it lives), so
//! it runs on any thread while the writer goes on applying.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use super::read_view::ReadView;
use super::store::{COMPACTION_CURSOR_KEY, METADATA_KEY};
use crate::db::Db;
use crate::error::{BtreeError, Result};
use crate::io::PageIo;
use crate::meta::{Meta, TreeId, TREE_COUNT};
use crate::page::TxnId;
use crate::tree::{adopt_written, Freed, Tree, WriteCx};

/// Pages' worth of bytes copied between two writes of the finished nodes (4 MiB at 4 KiB
/// pages): bounds the memory an export holds.
const FLUSH_PAGES: u64 = 1024;

/// What an export wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// The applied index the file records as its checkpoint.
    pub applied_index: u64,
    /// The MVCC revision of the exported view.
    pub revision: i64,
    /// Its compacted revision (0 if never compacted).
    pub compacted_revision: i64,
    /// Entries copied, all trees together (MVCC records and key indexes, bucket entries, the
    /// checkpoint metadata and a compaction cursor).
    pub entries: u64,
    /// Pages of the file (meta pages and free-list pages included).
    pub page_count: u64,
    /// Length of the file in bytes: exactly `page_count` pages.
    pub size_bytes: u64,
}

/// The temporary name an export to `name` is built under.
pub(crate) fn temp_name(name: &str) -> String {
    format!("{name}.export.tmp")
}

/// Exports `view` to `name` in `io`; see [`ReadView::export_with`].
pub(crate) fn export(
    view: &ReadView,
    io: Arc<dyn PageIo>,
    name: &str,
    applied_index: u64,
    metadata: &[u8],
) -> Result<ExportStats> {
    let target_path = io.dir_path().join(name);
    if target_path == view.src().path() {
        return Err(BtreeError::Io {
            path: target_path,
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "an export cannot replace the file of the store it copies",
            ),
        });
    }
    let _span = tracing::debug_span!("btree.export", revision = view.revision()).entered();
    let temp = temp_name(name);
    let mut db = Db::create_for_rename(
        Arc::clone(&io),
        &temp,
        name,
        view.src().page_size_bytes(),
        0,
        true,
        TxnId(1),
    )?;
    db.set_grow_exact();
    let mut renamed = false;
    match write(view, &mut db, applied_index, metadata, &mut renamed) {
        Ok(stats) => {
            tracing::info!(
                path = %target_path.display(),
                revision = stats.revision,
                applied_index,
                size_bytes = stats.size_bytes,
                "exported snapshot"
            );
            Ok(stats)
        }
        Err(error) => {
            drop(db);
            // Best effort: a failed export leaves no file (an older one at `name` stays unless
            // the rename replaced it). A leftover is replaced by the next export to the name.
            let leftover = if renamed { name } else { temp.as_str() };
            if let Err(remove) = io.remove_file(leftover) {
                tracing::warn!(%remove, file = leftover, "removing a failed export's file failed");
            }
            Err(error)
        }
    }
}

/// The new file's trees being built, and what has not been written yet.
struct Builder<'a> {
    db: &'a mut Db,
    trees: [Tree; TREE_COUNT],
    bytes_since_flush: u64,
    entries: u64,
}

impl Builder<'_> {
    fn insert(&mut self, tree: TreeId, key: Bytes, value: Bytes) -> Result<()> {
        self.bytes_since_flush += (key.len() + value.len()) as u64;
        let mut freed: Freed = Vec::new();
        let mut cx = WriteCx {
            src: self.db.src(),
            layout: self.db.layout(),
            freed: &mut freed,
        };
        let replaced = self.trees[tree.index()].insert(&mut cx, key, value)?;
        assert!(!replaced, "an export copies each key once");
        // No reader ever sees this file before it is complete.
        self.db.release(freed, 0);
        self.entries += 1;
        let flush_bytes = FLUSH_PAGES * self.db.layout().page_size_bytes as u64;
        if self.bytes_since_flush >= flush_bytes {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the finished nodes (unsynced; the final checkpoint syncs them) and drops them
    /// from memory.
    fn flush(&mut self) -> Result<()> {
        let writes = self.db.encode_unsynced(&self.trees);
        self.db.write_unsynced(writes)?;
        for tree in &mut self.trees {
            if let Some(root) = tree.root.as_mut() {
                adopt_written(root);
            }
        }
        self.bytes_since_flush = 0;
        Ok(())
    }
}

fn write(
    view: &ReadView,
    db: &mut Db,
    applied_index: u64,
    metadata: &[u8],
    renamed: &mut bool,
) -> Result<ExportStats> {
    let state = view.state();
    let src = view.src();
    let mut builder = Builder {
        db,
        trees: Default::default(),
        bytes_since_flush: 0,
        entries: 0,
    };
    for tree in TreeId::ALL {
        let entries = state
            .tree(tree)
            .range(src, Bound::Unbounded, Bound::Unbounded);
        for entry in entries {
            let (key, value) = entry?;
            // The checkpoint fields of the source are replaced by the export's own.
            let replaced_here =
                tree == TreeId::System && (key == METADATA_KEY || key == COMPACTION_CURSOR_KEY);
            if replaced_here {
                continue;
            }
            builder.insert(
                tree,
                Bytes::copy_from_slice(key),
                Bytes::copy_from_slice(value.bytes),
            )?;
        }
    }
    builder.insert(
        TreeId::System,
        Bytes::from_static(METADATA_KEY),
        Bytes::copy_from_slice(metadata),
    )?;
    if let Some(job) = view.compaction() {
        let cursor = job.cursor().encode();
        builder.insert(
            TreeId::System,
            Bytes::from_static(COMPACTION_CURSOR_KEY),
            cursor,
        )?;
    }
    let entries = builder.entries;
    let meta = Meta {
        applied_index,
        revision: state.revision,
        compacted: state.compacted.unwrap_or(-1),
        compaction_target: view.compaction().map_or(-1, |job| job.target()),
        ..Meta::empty(src.page_size_bytes())
    };
    let trees = std::mem::take(&mut builder.trees);
    let mut job = builder.db.begin_checkpoint(&trees, meta)?;
    let ran = job.run();
    *renamed = job.renamed();
    ran?;
    let page_count = job.page_count();
    Ok(ExportStats {
        applied_index,
        revision: state.revision,
        compacted_revision: state.compacted_revision(),
        entries,
        page_count,
        size_bytes: page_count * src.page_size_bytes() as u64,
    })
}
