//! Tree nodes in their two forms: on a page (`PageNode`, read in place) and in memory
//! (`MemNode`, written since the last checkpoint), the sizes that decide splits, and the
//! encoding of a node into a page. Layout: docs/design/btree-format.md, "Node pages".
//!
//! An item (key or value) is inline in its node's page or, when the entry would not fit a
//! quarter of a page, a blob: a run of contiguous pages the node references by first page and
//! length. Each blob has exactly one referencing item, so it is released when that item goes.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::error::{Corruption, Result};
use crate::page::{self, Header, PageId, PageKind, TxnId, HEADER_BYTES};
use crate::pager::{aligned_copy, PageSource};

/// Bytes of a leaf slot: key offset u16, key length u16, value offset u16, value length u16.
const LEAF_SLOT_BYTES: usize = 8;
/// Bytes of a branch slot: key offset u16, key length u16, child page u64.
const BRANCH_SLOT_BYTES: usize = 12;
/// Bytes of a blob reference in a node's heap: first page u64, length u64.
const BLOB_REF_BYTES: usize = 16;
/// Set in a slot's length: the item is a blob reference.
const BLOB_FLAG: u16 = 0x8000;

/// Where a child lives.
#[derive(Clone)]
pub(crate) enum NodeRef {
    /// On a page of the file (durable).
    Page(PageId),
    /// In memory, written since the last checkpoint (or by one still being finished).
    Mem(Arc<MemNode>),
}

/// A key or a value of a node in memory.
#[derive(Clone, Debug)]
pub(crate) enum Item {
    /// Bytes in memory; a checkpoint stores them inline or as a new blob.
    Mem(Bytes),
    /// Bytes in memory that a checkpoint (possibly still running) also wrote as the blob at
    /// `first`: read from memory, stored as a reference to that blob.
    Stored { bytes: Bytes, first: PageId },
    /// A blob in the file.
    Blob { first: PageId, len_bytes: u64 },
}

impl Item {
    /// The blob this item owns in the file: first page and length.
    pub(crate) fn blob(&self) -> Option<(PageId, u64)> {
        match self {
            Item::Mem(_) => None,
            Item::Stored { bytes, first } => Some((*first, bytes.len() as u64)),
            Item::Blob { first, len_bytes } => Some((*first, *len_bytes)),
        }
    }

    /// The length, when the bytes are in memory (only such items may be inline).
    fn inline_len(&self) -> Option<usize> {
        match self {
            Item::Mem(bytes) => Some(bytes.len()),
            Item::Stored { .. } | Item::Blob { .. } => None,
        }
    }
}

/// A node in memory. A checkpoint that encodes it sets `written`; from then on the node never
/// changes (a writer copies it first), so its page stays a faithful copy.
pub(crate) struct MemNode {
    written: OnceLock<Written>,
    pub(crate) body: Body,
}

/// Where a checkpoint put a node, and the blobs it made for the node's long `Mem` items.
pub(crate) struct Written {
    pub(crate) page: PageId,
    /// (item number, first page): leaf key `i` is item `2i`, value `i` is `2i + 1`; branch key
    /// `i` is item `i`.
    blobs: Vec<(u32, PageId)>,
}

#[derive(Clone)]
pub(crate) enum Body {
    Leaf(Leaf),
    Branch(Branch),
}

/// The keys of a node in memory, shared between a node and its copies until one of them
/// changes its keys (`Arc::make_mut`): a write that copies a shared node (a read view or a
/// checkpoint holds it) usually changes one value or one child, so the copy, and later the
/// drop of the original, cost one reference count instead of one per key.
pub(crate) type Keys = Arc<Vec<Item>>;

/// Entries in ascending key order; `keys.len() == values.len() >= 1` except transiently.
#[derive(Clone, Default)]
pub(crate) struct Leaf {
    pub(crate) keys: Keys,
    pub(crate) values: Vec<Item>,
}

/// `keys[i]` separates `children[i]` (keys `< keys[i]`) from `children[i + 1]` (keys
/// `>= keys[i]`); `keys.len() + 1 == children.len()`.
#[derive(Clone, Default)]
pub(crate) struct Branch {
    pub(crate) keys: Keys,
    pub(crate) children: Vec<NodeRef>,
}

impl MemNode {
    pub(crate) fn new(body: Body) -> Self {
        MemNode {
            written: OnceLock::new(),
            body,
        }
    }

    pub(crate) fn written(&self) -> Option<&Written> {
        self.written.get()
    }

    /// A changeable copy: items a checkpoint made blobs of remember their blob, so the copy's
    /// next checkpoint references it instead of writing it again (and removing the item
    /// releases it). Their bytes stay in memory: the checkpoint may not be durable yet.
    pub(crate) fn copy_for_write(&self) -> MemNode {
        let mut body = self.body.clone();
        if let Some(written) = self.written.get() {
            for &(item, first) in &written.blobs {
                let slot = body.item_mut(item);
                let Item::Mem(bytes) = slot else {
                    unreachable!("a checkpoint makes blobs only of Mem items")
                };
                let bytes = bytes.clone();
                *slot = Item::Stored { bytes, first };
            }
        }
        MemNode::new(body)
    }
}

impl Written {
    pub(crate) fn page(&self) -> PageId {
        self.page
    }
}

impl Body {
    fn item_mut(&mut self, item: u32) -> &mut Item {
        let item = item as usize;
        match self {
            Body::Leaf(leaf) => {
                if item.is_multiple_of(2) {
                    &mut Arc::make_mut(&mut leaf.keys)[item / 2]
                } else {
                    &mut leaf.values[item / 2]
                }
            }
            Body::Branch(branch) => &mut Arc::make_mut(&mut branch.keys)[item],
        }
    }
}

/// Byte order of keys (`<[u8]>::cmp`), without a `memcmp` call for short keys: searches
/// compare many keys of a few bytes (16-byte revisions, short user keys), where the call costs
/// more than the comparison.
#[inline]
pub(crate) fn key_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let common = a.len().min(b.len());
    if common > 32 {
        return a.cmp(b);
    }
    let (mut a_rest, mut b_rest) = (&a[..common], &b[..common]);
    while a_rest.len() >= 8 {
        let (a_head, a_tail) = a_rest.split_at(8);
        let (b_head, b_tail) = b_rest.split_at(8);
        let x = u64::from_be_bytes(a_head.try_into().expect("8 bytes"));
        let y = u64::from_be_bytes(b_head.try_into().expect("8 bytes"));
        if x != y {
            return x.cmp(&y);
        }
        (a_rest, b_rest) = (a_tail, b_tail);
    }
    for (x, y) in a_rest.iter().zip(b_rest) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

fn round8(len: usize) -> usize {
    len.div_ceil(8) * 8
}

/// Size rules for one page size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) page_size_bytes: usize,
}

/// How one entry is stored: which items are inline, and its bytes in the node (slot + heap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EntryForm {
    key_inline: bool,
    value_inline: bool,
    size_bytes: usize,
}

impl Layout {
    pub(crate) fn new(page_size_bytes: usize) -> Self {
        assert!(
            page::page_size_valid(page_size_bytes),
            "page size {page_size_bytes}"
        );
        Layout { page_size_bytes }
    }

    /// Bytes for slots and heap in one node.
    pub(crate) fn capacity_bytes(self) -> usize {
        self.page_size_bytes - HEADER_BYTES
    }

    /// Largest entry: a quarter of the capacity, so a node holds at least 4 entries and a
    /// split or rebalance always finds two non-empty halves that fit.
    pub(crate) fn entry_bytes_max(self) -> usize {
        self.capacity_bytes() / 4
    }

    /// Below this a non-root node is rebalanced with a sibling.
    pub(crate) fn fill_bytes_min(self) -> usize {
        self.capacity_bytes() / 4
    }

    fn leaf_entry(self, key: &Item, value: &Item) -> EntryForm {
        let key_len = key.inline_len();
        let value_len = value.inline_len();
        for (key_inline, value_inline) in [(true, true), (true, false), (false, true)] {
            let key_stored = match (key_inline, key_len) {
                (true, Some(len)) => len,
                (true, None) => continue,
                (false, _) => BLOB_REF_BYTES,
            };
            let value_stored = match (value_inline, value_len) {
                (true, Some(len)) => len,
                (true, None) => continue,
                (false, _) => BLOB_REF_BYTES,
            };
            let size_bytes = LEAF_SLOT_BYTES + key_stored + round8(value_stored);
            if size_bytes <= self.entry_bytes_max() {
                return EntryForm {
                    key_inline,
                    value_inline,
                    size_bytes,
                };
            }
        }
        EntryForm {
            key_inline: false,
            value_inline: false,
            size_bytes: LEAF_SLOT_BYTES + 2 * BLOB_REF_BYTES,
        }
    }

    fn branch_entry(self, key: &Item) -> EntryForm {
        let inline = key
            .inline_len()
            .is_some_and(|len| BRANCH_SLOT_BYTES + len <= self.entry_bytes_max());
        let key_stored = match key.inline_len() {
            Some(len) if inline => len,
            _ => BLOB_REF_BYTES,
        };
        EntryForm {
            key_inline: inline,
            value_inline: true,
            size_bytes: BRANCH_SLOT_BYTES + key_stored,
        }
    }

    /// Bytes entry `i` of `leaf` takes.
    pub(crate) fn leaf_entry_bytes(self, leaf: &Leaf, i: usize) -> usize {
        self.leaf_entry(&leaf.keys[i], &leaf.values[i]).size_bytes
    }

    /// Bytes separator `key` takes in a branch.
    pub(crate) fn branch_entry_bytes(self, key: &Item) -> usize {
        self.branch_entry(key).size_bytes
    }

    /// Slot and heap bytes of a leaf (the header not counted).
    pub(crate) fn leaf_body_bytes(self, leaf: &Leaf) -> usize {
        (0..leaf.keys.len())
            .map(|i| self.leaf_entry_bytes(leaf, i))
            .sum()
    }

    /// Slot and heap bytes of a branch (the header, which holds the leftmost child, not
    /// counted).
    pub(crate) fn branch_body_bytes(self, branch: &Branch) -> usize {
        branch
            .keys
            .iter()
            .map(|key| self.branch_entry_bytes(key))
            .sum()
    }

    pub(crate) fn body_bytes(self, body: &Body) -> usize {
        match body {
            Body::Leaf(leaf) => self.leaf_body_bytes(leaf),
            Body::Branch(branch) => self.branch_body_bytes(branch),
        }
    }
}

/// An item as a page stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RawItem {
    /// `len` bytes at `offset` in the page.
    Inline {
        offset: usize,
        len: usize,
    },
    Blob {
        first: PageId,
        len_bytes: u64,
    },
}

/// A verified node page, read in place.
#[derive(Clone, Copy)]
pub(crate) struct PageNode<'a> {
    bytes: &'a [u8],
    id: PageId,
    leaf: bool,
    /// Entries (leaf) or separators (branch); >= 1.
    count: usize,
    /// Branch: the child left of every separator.
    leftmost: PageId,
    /// Pages of the file: blob references must lie inside.
    file_page_count: u64,
}

impl<'a> PageNode<'a> {
    /// Reads node page `id` through `src`.
    pub(crate) fn read(src: &'a PageSource, id: PageId) -> Result<PageNode<'a>> {
        let bytes = src.page(id, &[PageKind::Leaf, PageKind::Branch])?;
        Self::parse(bytes, id, src.page_count()).map_err(|reason| src.corrupt(id, reason))
    }

    fn parse(
        bytes: &'a [u8],
        id: PageId,
        file_page_count: u64,
    ) -> Result<PageNode<'a>, Corruption> {
        let header = page::header_decode(bytes)?;
        let leaf = match header.kind {
            PageKind::Leaf => true,
            PageKind::Branch => false,
            _ => return Err(Corruption::Layout("node page of another kind")),
        };
        let count = usize::from(header.count);
        let slot = if leaf {
            LEAF_SLOT_BYTES
        } else {
            BRANCH_SLOT_BYTES
        };
        if count == 0 || HEADER_BYTES + count * slot > bytes.len() {
            return Err(Corruption::Layout("node entry count"));
        }
        Ok(PageNode {
            bytes,
            id,
            leaf,
            count,
            leftmost: PageId(header.aux),
            file_page_count,
        })
    }

    pub(crate) fn id(&self) -> PageId {
        self.id
    }

    pub(crate) fn is_leaf(&self) -> bool {
        self.leaf
    }

    /// Entries (leaf) or separators (branch).
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    fn heap_start(&self) -> usize {
        let slot = if self.leaf {
            LEAF_SLOT_BYTES
        } else {
            BRANCH_SLOT_BYTES
        };
        HEADER_BYTES + self.count * slot
    }

    fn raw(&self, offset: u16, len: u16) -> Result<RawItem, Corruption> {
        let offset = usize::from(offset);
        let blob = len & BLOB_FLAG != 0;
        let len = usize::from(len & !BLOB_FLAG);
        let stored = if blob { BLOB_REF_BYTES } else { len };
        if offset < self.heap_start() || offset + stored > self.bytes.len() {
            return Err(Corruption::Layout("item outside the node's heap"));
        }
        if !blob {
            return Ok(RawItem::Inline { offset, len });
        }
        if len != BLOB_REF_BYTES {
            return Err(Corruption::Layout("blob reference length"));
        }
        let first = PageId(page::read_u64(self.bytes, offset)?);
        let len_bytes = page::read_u64(self.bytes, offset + 8)?;
        let pages = page::blob_pages(len_bytes, self.bytes.len());
        let inside = first >= PageId::FIRST_DATA
            && first
                .0
                .checked_add(pages)
                .is_some_and(|end| end <= self.file_page_count);
        if !inside {
            return Err(Corruption::Layout(
                "blob reference outside the file's data pages",
            ));
        }
        Ok(RawItem::Blob { first, len_bytes })
    }

    /// The bytes of key `i` (`i < count`): an inline key straight from its slot (the hot path
    /// of every search), a blob through `src`. Offsets are bounds-checked as in [`Self::key`].
    #[inline]
    pub(crate) fn key_bytes(&self, src: &'a PageSource, i: usize) -> Result<&'a [u8]> {
        let slot_bytes = if self.leaf {
            LEAF_SLOT_BYTES
        } else {
            BRANCH_SLOT_BYTES
        };
        // `parse` checked that `count` slots fit the page.
        let slot = HEADER_BYTES + i * slot_bytes;
        let bytes: &'a [u8] = self.bytes;
        let offset = usize::from(u16::from_le_bytes([bytes[slot], bytes[slot + 1]]));
        let len = u16::from_le_bytes([bytes[slot + 2], bytes[slot + 3]]);
        if len & BLOB_FLAG == 0 {
            let end = offset + usize::from(len);
            if offset >= HEADER_BYTES + self.count * slot_bytes && end <= bytes.len() {
                return Ok(&bytes[offset..end]);
            }
        }
        let raw = self.key(i).map_err(|reason| src.corrupt(self.id, reason))?;
        self.bytes_of(src, raw)
    }

    /// Key `i` (leaf entry or branch separator).
    pub(crate) fn key(&self, i: usize) -> Result<RawItem, Corruption> {
        let slot = if self.leaf {
            HEADER_BYTES + i * LEAF_SLOT_BYTES
        } else {
            HEADER_BYTES + i * BRANCH_SLOT_BYTES
        };
        self.raw(
            page::read_u16(self.bytes, slot)?,
            page::read_u16(self.bytes, slot + 2)?,
        )
    }

    /// Value `i` of a leaf.
    pub(crate) fn value(&self, i: usize) -> Result<RawItem, Corruption> {
        assert!(self.leaf, "values are read from leaves");
        let slot = HEADER_BYTES + i * LEAF_SLOT_BYTES;
        self.raw(
            page::read_u16(self.bytes, slot + 4)?,
            page::read_u16(self.bytes, slot + 6)?,
        )
    }

    /// Child `i` of a branch, `0..=count`.
    pub(crate) fn child(&self, i: usize) -> Result<PageId, Corruption> {
        assert!(!self.leaf, "children are read from branches");
        if i == 0 {
            return Ok(self.leftmost);
        }
        let slot = HEADER_BYTES + (i - 1) * BRANCH_SLOT_BYTES;
        Ok(PageId(page::read_u64(self.bytes, slot + 4)?))
    }

    /// The bytes of an inline item, or the blob's payload.
    pub(crate) fn bytes_of(&self, src: &'a PageSource, item: RawItem) -> Result<&'a [u8]> {
        match item {
            RawItem::Inline { offset, len } => Ok(&self.bytes[offset..offset + len]),
            RawItem::Blob { first, len_bytes } => src.blob(first, len_bytes),
        }
    }

    /// Decodes the page into a changeable node whose inline items share one aligned copy of
    /// the page.
    pub(crate) fn to_mem(self) -> Result<MemNode, Corruption> {
        let copy = aligned_copy(self.bytes);
        let item = |raw: RawItem| match raw {
            RawItem::Inline { offset, len } => Item::Mem(copy.slice(offset..offset + len)),
            RawItem::Blob { first, len_bytes } => Item::Blob { first, len_bytes },
        };
        let body = if self.leaf {
            let mut keys = Vec::with_capacity(self.count + 1);
            let mut values = Vec::with_capacity(self.count + 1);
            for i in 0..self.count {
                keys.push(item(self.key(i)?));
                values.push(item(self.value(i)?));
            }
            Body::Leaf(Leaf {
                keys: Arc::new(keys),
                values,
            })
        } else {
            let mut keys = Vec::with_capacity(self.count + 1);
            let mut children = Vec::with_capacity(self.count + 2);
            for i in 0..=self.count {
                children.push(NodeRef::Page(self.child(i)?));
            }
            for i in 0..self.count {
                keys.push(item(self.key(i)?));
            }
            Body::Branch(Branch {
                keys: Arc::new(keys),
                children,
            })
        };
        Ok(MemNode::new(body))
    }
}

/// The bytes of a node item in memory.
pub(crate) fn item_bytes<'a>(src: &'a PageSource, item: &'a Item) -> Result<&'a [u8]> {
    match item {
        Item::Mem(bytes) | Item::Stored { bytes, .. } => Ok(bytes),
        Item::Blob { first, len_bytes } => src.blob(*first, *len_bytes),
    }
}

/// A page (or run of pages) a checkpoint writes.
pub(crate) struct PageWrite {
    pub(crate) first: PageId,
    pub(crate) bytes: Vec<u8>,
}

/// Encodes `node` into page `page`; long `Mem` items become new blobs through `blob`
/// (which allocates and writes the run and returns its first page). Sets `node.written`.
pub(crate) fn encode(
    layout: Layout,
    node: &MemNode,
    page: PageId,
    child_pages: &[PageId],
    txn: TxnId,
    mut blob: impl FnMut(&Bytes) -> PageId,
) -> Vec<u8> {
    assert!(node.written.get().is_none(), "a node is encoded once");
    let size = HEADER_BYTES + layout.body_bytes(&node.body);
    assert!(
        size <= layout.page_size_bytes,
        "node of {size} bytes does not fit a page"
    );
    let mut bytes = vec![0u8; layout.page_size_bytes];
    let mut blobs = Vec::new();
    let mut top = layout.page_size_bytes;
    let mut place = |bytes: &mut Vec<u8>, item: &Item, inline: bool, number: u32, align: bool| {
        let (stored, flag) = match item {
            Item::Mem(data) if inline => (data.len(), 0),
            _ => (BLOB_REF_BYTES, BLOB_FLAG),
        };
        top -= if align { round8(stored) } else { stored };
        match item {
            Item::Mem(data) if inline => bytes[top..top + stored].copy_from_slice(data),
            Item::Mem(data) => {
                let first = blob(data);
                blobs.push((number, first));
                page::write_u64(bytes, top, first.0);
                page::write_u64(bytes, top + 8, data.len() as u64);
            }
            Item::Stored { .. } | Item::Blob { .. } => {
                let (first, len_bytes) = item.blob().expect("a stored or blob item");
                page::write_u64(bytes, top, first.0);
                page::write_u64(bytes, top + 8, len_bytes);
            }
        }
        let len = u16::try_from(stored).expect("inline items are under a quarter page") | flag;
        (u16::try_from(top).expect("offsets fit u16"), len)
    };
    let (kind, count, aux) = match &node.body {
        Body::Leaf(leaf) => {
            // Values first, from the end of the page down, each rounded to 8 bytes, so every
            // value starts 8-aligned (rkyv needs it); keys below them, unaligned.
            let forms: Vec<EntryForm> = (0..leaf.keys.len())
                .map(|i| layout.leaf_entry(&leaf.keys[i], &leaf.values[i]))
                .collect();
            for (i, form) in forms.iter().enumerate() {
                let number = u32::try_from(2 * i + 1).expect("few entries");
                let (value_at, value_len) =
                    place(&mut bytes, &leaf.values[i], form.value_inline, number, true);
                let slot = HEADER_BYTES + i * LEAF_SLOT_BYTES;
                page::write_u16(&mut bytes, slot + 4, value_at);
                page::write_u16(&mut bytes, slot + 6, value_len);
            }
            for (i, form) in forms.iter().enumerate() {
                let number = u32::try_from(2 * i).expect("few entries");
                let (key_at, key_len) =
                    place(&mut bytes, &leaf.keys[i], form.key_inline, number, false);
                let slot = HEADER_BYTES + i * LEAF_SLOT_BYTES;
                page::write_u16(&mut bytes, slot, key_at);
                page::write_u16(&mut bytes, slot + 2, key_len);
            }
            (PageKind::Leaf, leaf.keys.len(), 0)
        }
        Body::Branch(branch) => {
            assert_eq!(child_pages.len(), branch.children.len(), "a page per child");
            for (i, key) in branch.keys.iter().enumerate() {
                let form = layout.branch_entry(key);
                let number = u32::try_from(i).expect("few entries");
                let (key_at, key_len) = place(&mut bytes, key, form.key_inline, number, false);
                let slot = HEADER_BYTES + i * BRANCH_SLOT_BYTES;
                page::write_u16(&mut bytes, slot, key_at);
                page::write_u16(&mut bytes, slot + 2, key_len);
                page::write_u64(&mut bytes, slot + 4, child_pages[i + 1].0);
            }
            (PageKind::Branch, branch.keys.len(), child_pages[0].0)
        }
    };
    assert!(count > 0, "an encoded node has entries");
    let header = Header {
        kind,
        count: u16::try_from(count).expect("entries per page fit u16"),
        page,
        txn,
        aux,
    };
    page::header_encode(&mut bytes, &header);
    page::seal(&mut bytes);
    let written = Written { page, blobs };
    assert!(node.written.set(written).is_ok(), "encoded once");
    bytes
}

/// The pages of a blob holding `data`, starting at `first`.
pub(crate) fn blob_encode(
    page_size_bytes: usize,
    first: PageId,
    txn: TxnId,
    data: &[u8],
) -> Vec<u8> {
    let pages = page::blob_pages(data.len() as u64, page_size_bytes);
    let mut bytes = vec![0u8; usize::try_from(pages).expect("fits") * page_size_bytes];
    let header = Header {
        kind: PageKind::Blob,
        count: 0,
        page: first,
        txn,
        aux: data.len() as u64,
    };
    page::header_encode(&mut bytes, &header);
    bytes[HEADER_BYTES..HEADER_BYTES + data.len()].copy_from_slice(data);
    page::seal(&mut bytes[..HEADER_BYTES + data.len()]);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(len: usize, fill: u8) -> Item {
        Item::Mem(Bytes::from(vec![fill; len]))
    }

    // Guards the split arithmetic: every entry fits a quarter of a node, whatever its item
    // sizes, so halves of an overfull node always fit.
    #[test]
    fn every_leaf_entry_fits_a_quarter_of_the_node() {
        for page_size in [512, 4096, 65536] {
            let layout = Layout::new(page_size);
            for key_len in [0, 1, 50, 200, 5000, 100_000] {
                for value_len in [0, 7, 100, 300, 5000, 2_000_000] {
                    let form = layout.leaf_entry(&mem(key_len, 1), &mem(value_len, 2));
                    assert!(form.size_bytes <= layout.entry_bytes_max(), "{form:?}");
                }
            }
        }
    }

    #[test]
    fn small_items_are_inline_and_long_ones_blobs() {
        let layout = Layout::new(4096);
        let form = layout.leaf_entry(&mem(16, 0), &mem(256, 0));
        assert!(form.key_inline && form.value_inline);
        assert_eq!(form.size_bytes, 8 + 16 + 256);
        let form = layout.leaf_entry(&mem(16, 0), &mem(2000, 0));
        assert!(form.key_inline && !form.value_inline);
        let form = layout.leaf_entry(&mem(2000, 0), &mem(8, 0));
        assert!(!form.key_inline && form.value_inline);
    }

    // Guards the page format: what `encode` writes, `PageNode` reads back, every value
    // 8-aligned whatever the key lengths before it.
    #[test]
    fn encoded_leaf_reads_back_with_aligned_values_and_blob_references() {
        let layout = Layout::new(512);
        let node = MemNode::new(Body::Leaf(Leaf {
            keys: Arc::new(vec![mem(3, b'a'), mem(300, b'b')]),
            values: vec![mem(5, 1), mem(9, 2)],
        }));
        let bytes = encode(layout, &node, PageId(5), &[], TxnId(1), |_| PageId(77));
        page::verify(&bytes, PageKind::Leaf, PageId(5)).expect("sealed");
        let read = PageNode::parse(&bytes, PageId(5), 1000).expect("parses");
        assert_eq!(read.count(), 2);
        for (i, (fill, len)) in [(1u8, 5usize), (2, 9)].into_iter().enumerate() {
            let RawItem::Inline {
                offset,
                len: read_len,
            } = read.value(i).expect("value")
            else {
                panic!("inline value expected");
            };
            assert_eq!((offset % 8, read_len), (0, len), "value {i} is 8-aligned");
            assert_eq!(&bytes[offset..offset + len], &vec![fill; len][..]);
        }
        assert_eq!(
            read.key(1).expect("key"),
            RawItem::Blob {
                first: PageId(77),
                len_bytes: 300
            }
        );
        let copy = node.copy_for_write();
        let Body::Leaf(leaf) = &copy.body else {
            panic!("leaf")
        };
        assert!(
            matches!(&leaf.keys[1], Item::Stored { bytes, first: PageId(77) } if bytes.len() == 300)
        );
    }

    // Guards the search order: `key_cmp` is exactly byte order, for every length around its
    // 8-byte chunks and its 32-byte fallback, and for differences at every position.
    #[test]
    fn key_cmp_orders_exactly_like_byte_slices() {
        let mut checked = 0;
        for len_a in 0..42usize {
            for len_b in [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 40, len_a] {
                let a: Vec<u8> = (0..len_a).map(|i| (i * 37 % 251) as u8).collect();
                let mut b: Vec<u8> = (0..len_b).map(|i| (i * 37 % 251) as u8).collect();
                assert_eq!(key_cmp(&a, &b), a.cmp(&b), "{a:?} {b:?}");
                for at in 0..len_b {
                    for delta in [1u8, 128, 255] {
                        let saved = b[at];
                        b[at] = saved.wrapping_add(delta);
                        assert_eq!(key_cmp(&a, &b), a.cmp(&b), "{a:?} {b:?}");
                        assert_eq!(key_cmp(&b, &a), b.cmp(&a), "{b:?} {a:?}");
                        b[at] = saved;
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 10_000);
    }

    // Bytes from disk: slot offsets pointing outside the heap are errors, never panics.
    #[test]
    fn slots_pointing_outside_the_page_are_corrupt() {
        let layout = Layout::new(512);
        let node = MemNode::new(Body::Leaf(Leaf {
            keys: Arc::new(vec![mem(3, b'a')]),
            values: vec![mem(5, 1)],
        }));
        let mut bytes = encode(layout, &node, PageId(5), &[], TxnId(1), |_| PageId(0));
        page::write_u16(&mut bytes, HEADER_BYTES, 510);
        assert!(PageNode::parse(&bytes, PageId(5), 1000)
            .expect("header")
            .key(0)
            .is_err());
        page::write_u16(&mut bytes, HEADER_BYTES, 4);
        let read = PageNode::parse(&bytes, PageId(5), 1000).expect("header fine");
        assert!(read.key(0).is_err(), "offset inside the slots");
    }
}
