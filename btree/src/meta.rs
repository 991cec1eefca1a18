//! The two meta pages (pages 0 and 1): what a checkpoint commits. A checkpoint with txn id `t`
//! writes slot `t % 2`; opening picks the valid meta with the highest txn id, so a torn meta
//! write leaves the previous checkpoint. Layout: docs/design/btree-format.md, "Meta page".

use crate::error::Corruption;
use crate::page::{self, Header, PageId, PageKind, TxnId, HEADER_BYTES};

/// The trees of a page file, in the order of their roots in the meta page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TreeId {
    /// revision (16 bytes) -> record: etcd's `key` bucket.
    Records = 0,
    /// user key -> generations of its revisions: etcd's in-memory treeIndex, persisted.
    Index = 1,
    /// keel-btree's own small state: checkpoint metadata, compaction cursor.
    System = 2,
    /// The generic buckets, see [`crate::Bucket`].
    Meta = 3,
    Lease = 4,
    AuthUsers = 5,
    AuthRoles = 6,
    Members = 7,
    Alarm = 8,
}

/// Number of trees.
pub(crate) const TREE_COUNT: usize = 9;

impl TreeId {
    pub(crate) const ALL: [TreeId; TREE_COUNT] = [
        TreeId::Records,
        TreeId::Index,
        TreeId::System,
        TreeId::Meta,
        TreeId::Lease,
        TreeId::AuthUsers,
        TreeId::AuthRoles,
        TreeId::Members,
        TreeId::Alarm,
    ];

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            TreeId::Records => "records",
            TreeId::Index => "index",
            TreeId::System => "system",
            TreeId::Meta => "meta",
            TreeId::Lease => "lease",
            TreeId::AuthUsers => "auth_users",
            TreeId::AuthRoles => "auth_roles",
            TreeId::Members => "members",
            TreeId::Alarm => "alarm",
        }
    }
}

/// Identifies a keel page file (meta bytes 32..40).
const MAGIC: [u8; 8] = *b"keelbtpf";

/// Byte offsets of the meta fields after the page header.
const MAGIC_AT: usize = HEADER_BYTES;
const PAGE_SIZE_AT: usize = 40;
const TREE_COUNT_AT: usize = 44;
const PAGE_COUNT_AT: usize = 48;
const FREE_LIST_AT: usize = 56;
const APPLIED_INDEX_AT: usize = 64;
const REVISION_AT: usize = 72;
const COMPACTED_AT: usize = 80;
const COMPACTION_TARGET_AT: usize = 88;
const ROOTS_AT: usize = 96;
const COUNTS_AT: usize = ROOTS_AT + 8 * TREE_COUNT;
/// Bytes of the meta fields, header included.
pub(crate) const META_BYTES: usize = COUNTS_AT + 8 * TREE_COUNT;

const _: () = assert!(META_BYTES <= crate::page::PAGE_SIZE_BYTES_MIN);

/// What a checkpoint commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) txn: TxnId,
    pub(crate) page_size_bytes: usize,
    /// Pages `[0, page_count)` exist.
    pub(crate) page_count: u64,
    /// First free-list page; `PageId(0)` = no free pages.
    pub(crate) free_list: PageId,
    /// The caller's applied index at the checkpoint.
    pub(crate) applied_index: u64,
    /// MVCC revision of the last committed write transaction (>= 1).
    pub(crate) revision: i64,
    /// Revision of the last compaction; -1 = never.
    pub(crate) compacted: i64,
    /// Revision of a compaction still in progress; -1 = none.
    pub(crate) compaction_target: i64,
    /// Root page of each tree; `PageId(0)` = empty.
    pub(crate) roots: [PageId; TREE_COUNT],
    /// Entries in each tree.
    pub(crate) counts: [u64; TREE_COUNT],
}

impl Meta {
    /// The meta of a new, empty file.
    pub(crate) fn empty(page_size_bytes: usize) -> Self {
        Meta {
            txn: TxnId(0),
            page_size_bytes,
            page_count: 2,
            free_list: PageId(0),
            applied_index: 0,
            revision: 1,
            compacted: -1,
            compaction_target: -1,
            roots: [PageId(0); TREE_COUNT],
            counts: [0; TREE_COUNT],
        }
    }

    /// Slot (page id) this meta is written to.
    pub(crate) fn slot(&self) -> PageId {
        PageId(self.txn.0 % 2)
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut bytes = vec![0u8; self.page_size_bytes];
        let header = Header {
            kind: PageKind::Meta,
            count: 0,
            page: self.slot(),
            txn: self.txn,
            aux: 0,
        };
        page::header_encode(&mut bytes, &header);
        bytes[MAGIC_AT..MAGIC_AT + 8].copy_from_slice(&MAGIC);
        let page_size = u32::try_from(self.page_size_bytes).expect("page sizes fit u32");
        bytes[PAGE_SIZE_AT..PAGE_SIZE_AT + 4].copy_from_slice(&page_size.to_le_bytes());
        let tree_count = TREE_COUNT as u32;
        bytes[TREE_COUNT_AT..TREE_COUNT_AT + 4].copy_from_slice(&tree_count.to_le_bytes());
        page::write_u64(&mut bytes, PAGE_COUNT_AT, self.page_count);
        page::write_u64(&mut bytes, FREE_LIST_AT, self.free_list.0);
        page::write_u64(&mut bytes, APPLIED_INDEX_AT, self.applied_index);
        bytes[REVISION_AT..REVISION_AT + 8].copy_from_slice(&self.revision.to_le_bytes());
        bytes[COMPACTED_AT..COMPACTED_AT + 8].copy_from_slice(&self.compacted.to_le_bytes());
        let target = self.compaction_target.to_le_bytes();
        bytes[COMPACTION_TARGET_AT..COMPACTION_TARGET_AT + 8].copy_from_slice(&target);
        for (i, root) in self.roots.iter().enumerate() {
            page::write_u64(&mut bytes, ROOTS_AT + 8 * i, root.0);
            page::write_u64(&mut bytes, COUNTS_AT + 8 * i, self.counts[i]);
        }
        page::seal(&mut bytes);
        bytes
    }

    /// Decodes meta slot `slot` from a page of `bytes.len()` bytes; verifies everything that
    /// can be checked without reading other pages.
    pub(crate) fn decode(bytes: &[u8], slot: PageId) -> Result<Meta, Corruption> {
        let header = page::verify(bytes, PageKind::Meta, slot)?;
        if bytes[MAGIC_AT..MAGIC_AT + 8] != MAGIC {
            return Err(Corruption::Layout("not a keel page file (magic)"));
        }
        let page_size_bytes = page::read_u32(bytes, PAGE_SIZE_AT)? as usize;
        if page_size_bytes != bytes.len() || !page::page_size_valid(page_size_bytes) {
            return Err(Corruption::Layout("page size differs from the meta page's"));
        }
        if page::read_u32(bytes, TREE_COUNT_AT)? as usize != TREE_COUNT {
            return Err(Corruption::Layout("tree count"));
        }
        let read_i64 = |at| page::read_u64(bytes, at).map(|v| v as i64);
        let page_count = page::read_u64(bytes, PAGE_COUNT_AT)?;
        let mut meta = Meta {
            txn: header.txn,
            page_size_bytes,
            page_count,
            free_list: PageId(page::read_u64(bytes, FREE_LIST_AT)?),
            applied_index: page::read_u64(bytes, APPLIED_INDEX_AT)?,
            revision: read_i64(REVISION_AT)?,
            compacted: read_i64(COMPACTED_AT)?,
            compaction_target: read_i64(COMPACTION_TARGET_AT)?,
            roots: [PageId(0); TREE_COUNT],
            counts: [0; TREE_COUNT],
        };
        for i in 0..TREE_COUNT {
            meta.roots[i] = PageId(page::read_u64(bytes, ROOTS_AT + 8 * i)?);
            meta.counts[i] = page::read_u64(bytes, COUNTS_AT + 8 * i)?;
        }
        meta.validate()?;
        Ok(meta)
    }

    fn validate(&self) -> Result<(), Corruption> {
        if self.page_count < 2 {
            return Err(Corruption::Layout("page count below the two meta pages"));
        }
        let page_ok =
            |id: PageId| id.0 == 0 || (id >= PageId::FIRST_DATA && id.0 < self.page_count);
        if !page_ok(self.free_list) || !self.roots.iter().all(|&root| page_ok(root)) {
            return Err(Corruption::OutOfFile {
                page_count: self.page_count,
            });
        }
        if self.revision < 1 || self.compacted < -1 || self.compacted > self.revision {
            return Err(Corruption::Layout("revision or compacted revision"));
        }
        let target_ok = self.compaction_target == -1
            || (self.compaction_target >= self.compacted.max(0)
                && self.compaction_target <= self.revision);
        if !target_ok {
            return Err(Corruption::Layout("compaction target"));
        }
        for (root, count) in self.roots.iter().zip(self.counts) {
            if (root.0 == 0) != (count == 0) {
                return Err(Corruption::Layout("tree root and entry count disagree"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Meta {
        let mut meta = Meta::empty(4096);
        meta.txn = TxnId(7);
        meta.page_count = 40;
        meta.free_list = PageId(39);
        meta.applied_index = 1234;
        meta.revision = 99;
        meta.compacted = 50;
        meta.compaction_target = 60;
        meta.roots[TreeId::Records.index()] = PageId(12);
        meta.counts[TreeId::Records.index()] = 500;
        meta
    }

    #[test]
    fn meta_round_trips_in_its_slot() {
        let meta = sample();
        let bytes = meta.encode();
        assert_eq!(meta.slot(), PageId(1));
        assert_eq!(Meta::decode(&bytes, PageId(1)), Ok(meta));
        assert!(Meta::decode(&bytes, PageId(0)).is_err(), "slot recorded");
    }

    // Guards against trusting a checksum-valid meta whose fields cannot be right.
    #[test]
    fn meta_with_references_beyond_its_pages_is_rejected() {
        let mut meta = sample();
        meta.roots[TreeId::Index.index()] = PageId(40);
        meta.counts[TreeId::Index.index()] = 1;
        assert_eq!(
            Meta::decode(&meta.encode(), PageId(1)),
            Err(Corruption::OutOfFile { page_count: 40 })
        );
    }
}
