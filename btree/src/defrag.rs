//! Online defragmentation: `DefragJob` copies a snapshot of every tree, in key order, into a
//! new file (`<name>.defrag`) whose nodes are filled by appends; the writer notes every key it
//! changes meanwhile (`touched`), and catch-up steps copy those keys' current values. Once
//! caught up, the swap replaces the store's file and state in one step, between two calls of
//! the caller; the next checkpoint writes the rest, syncs and renames the new file over the
//! old one. Readers of older views keep the old file mapped until they drop.

use std::ops::Bound;

use bytes::Bytes;

use crate::db::Db;
use crate::error::Result;
use crate::meta::{TreeId, TREE_COUNT};
use crate::mvcc::state::{StoreState, Touched};
use crate::mvcc::{MvccStore, ReadView};
use crate::pager::aligned_copy;
use crate::tree::{adopt_written, Freed, Tree, WriteCx};

/// Bytes copied between two writes of the new file's finished nodes: bounds the memory a
/// defragmentation holds, and the pages each flush rewrites (the right edge of each tree) are
/// a small fraction of it.
const FLUSH_BYTES_MIN: u64 = 4 << 20;

/// Where a defragmentation stands, after a [`MvccStore::defrag_step`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefragProgress {
    /// No defragmentation runs.
    Idle,
    /// Copying the snapshot; entries copied so far.
    Copying {
        /// Entries copied so far.
        entries_copied: u64,
    },
    /// Copying keys changed since the snapshot; how many are left.
    CatchingUp {
        /// Keys still to copy.
        keys_left: usize,
    },
    /// Caught up; the swap waits for the checkpoint in flight to finish.
    WaitingForCheckpoint,
    /// The store now runs on the new file; the next checkpoint makes it durable and renames it
    /// into place.
    Swapped {
        /// Size of the old file.
        size_bytes_before: u64,
        /// Size of the new file.
        size_bytes_after: u64,
    },
}

/// A running defragmentation.
pub(crate) struct DefragJob {
    /// The snapshot being copied.
    source: ReadView,
    target: Db,
    trees: [Tree; TREE_COUNT],
    /// Copy position: the tree being copied (`TREE_COUNT` = copying done) and its last key
    /// copied.
    copy_tree: usize,
    copy_after: Option<Bytes>,
    /// Keys the writer changed since the snapshot, not yet caught up.
    touched: Touched,
    bytes_since_flush: u64,
    entries_copied: u64,
}

impl DefragJob {
    /// The new file's name while it is built.
    pub(crate) fn temp_name(name: &str) -> String {
        format!("{name}.defrag")
    }

    pub(crate) fn start(db: &Db, source: ReadView) -> Result<Self> {
        let target = Db::create_for_rename(
            std::sync::Arc::clone(db.io()),
            &Self::temp_name(db.name()),
            db.name(),
            db.layout().page_size_bytes,
            db.growth_bytes_min(),
            db.fsync(),
            db.next_txn(),
        )?;
        Ok(DefragJob {
            source,
            target,
            trees: Default::default(),
            copy_tree: 0,
            copy_after: None,
            touched: Touched::new(),
            bytes_since_flush: 0,
            entries_copied: 0,
        })
    }

    pub(crate) fn touched_mut(&mut self) -> &mut Touched {
        &mut self.touched
    }

    /// Removes the new file.
    pub(crate) fn cancel(self) -> Result<()> {
        let name = self.target.name().to_string();
        let path = self.target.path().to_path_buf();
        let io = std::sync::Arc::clone(self.target.io());
        drop(self.target);
        io.remove_file(&name)
            .map_err(|source| crate::BtreeError::Io { path, source })
    }

    fn write(&mut self, tree: TreeId, key: Bytes, value: Option<&[u8]>) -> Result<()> {
        let mut freed: Freed = Vec::new();
        let mut cx = WriteCx {
            src: self.target.src(),
            layout: self.target.layout(),
            freed: &mut freed,
        };
        let target = &mut self.trees[tree.index()];
        match value {
            Some(value) => {
                self.bytes_since_flush += (key.len() + value.len()) as u64;
                target.insert(&mut cx, key, aligned_copy(value))?;
            }
            None => {
                target.remove(&mut cx, &key)?;
            }
        }
        // No reader sees the new file before the swap.
        self.target.release(freed, 0);
        Ok(())
    }

    /// Copies up to `entries_max` entries of the snapshot; returns how many.
    fn copy(&mut self, entries_max: usize) -> Result<usize> {
        let mut copied = 0;
        while copied < entries_max && self.copy_tree < TREE_COUNT {
            let tree = TreeId::ALL[self.copy_tree];
            let start = match &self.copy_after {
                Some(key) => Bound::Excluded(&key[..]),
                None => Bound::Unbounded,
            };
            let src = self.source.src();
            let mut batch: Vec<(Bytes, Bytes)> = Vec::new();
            for entry in self
                .source
                .state()
                .tree(tree)
                .range(src, start, Bound::Unbounded)
                .take(entries_max - copied)
            {
                let (key, value) = entry?;
                batch.push((Bytes::copy_from_slice(key), aligned_copy(value.bytes)));
            }
            let exhausted = batch.len() < entries_max - copied;
            self.copy_after = batch.last().map(|(key, _)| key.clone());
            copied += batch.len();
            for (key, value) in batch {
                self.write(tree, key, Some(&value))?;
            }
            if exhausted {
                self.copy_tree += 1;
                self.copy_after = None;
            }
        }
        self.entries_copied += copied as u64;
        if self.bytes_since_flush >= FLUSH_BYTES_MIN {
            self.flush()?;
        }
        Ok(copied)
    }

    /// Writes the finished nodes of the new trees (unsynced) and drops them from memory.
    fn flush(&mut self) -> Result<()> {
        let writes = self.target.encode_unsynced(&self.trees);
        self.target.write_unsynced(writes)?;
        for tree in &mut self.trees {
            if let Some(root) = tree.root.as_mut() {
                adopt_written(root);
            }
        }
        self.bytes_since_flush = 0;
        Ok(())
    }

    /// Copies the current value (or absence) of up to `keys_max` changed keys from `state`.
    fn catch_up(
        &mut self,
        state: &StoreState,
        live: &crate::pager::PageSource,
        keys_max: usize,
    ) -> Result<()> {
        for _ in 0..keys_max {
            let Some((tree, key)) = self.touched.pop_first() else {
                break;
            };
            let value = state
                .tree(tree)
                .get(live, &key)?
                .map(|value| value.bytes.to_vec());
            if let Err(error) = self.write(tree, key.clone(), value.as_deref()) {
                self.touched.insert((tree, key));
                return Err(error);
            }
        }
        Ok(())
    }
}

/// One step of the store's defragmentation; see [`MvccStore::defrag_step`].
pub(crate) fn step(store: &mut MvccStore, entries_max: usize) -> Result<DefragProgress> {
    assert!(entries_max > 0, "a defragmentation step makes progress");
    let Some(job) = store.defrag.as_mut() else {
        return Ok(DefragProgress::Idle);
    };
    let _span = tracing::debug_span!("btree.defrag_step").entered();
    let outcome = if job.copy_tree < TREE_COUNT {
        job.copy(entries_max).map(|_| DefragProgress::Copying {
            entries_copied: job.entries_copied,
        })
    } else {
        job.catch_up(&store.state, store.db.src(), entries_max)
            .map(|()| DefragProgress::CatchingUp {
                keys_left: job.touched.len(),
            })
    };
    let progress = match outcome {
        Ok(progress) => progress,
        Err(error) => {
            if let Some(job) = store.defrag.take() {
                if let Err(cancel) = job.cancel() {
                    tracing::warn!(%cancel, "removing the defragmentation file failed");
                }
            }
            return Err(error);
        }
    };
    let caught_up = job.copy_tree == TREE_COUNT && job.touched.is_empty();
    if !caught_up || matches!(progress, DefragProgress::Copying { .. }) {
        return Ok(progress);
    }
    if store.db.in_flight().is_some() {
        return Ok(DefragProgress::WaitingForCheckpoint);
    }
    Ok(swap(store))
}

/// Puts the new file and trees in place of the old ones.
fn swap(store: &mut MvccStore) -> DefragProgress {
    let job = store.defrag.take().expect("a caught-up defragmentation");
    let size_bytes_before = store.db.file_len_bytes();
    let state = StoreState {
        trees: job.trees,
        revision: store.state.revision,
        compacted: store.state.compacted,
    };
    let mut target = job.target;
    target.continue_txns_from(&store.db);
    store.db = target;
    store.state = state;
    store.publish(Vec::new());
    let size_bytes_after = store.db.file_len_bytes();
    tracing::info!(
        size_bytes_before,
        size_bytes_after,
        "defragmentation swapped files"
    );
    DefragProgress::Swapped {
        size_bytes_before,
        size_bytes_after,
    }
}
