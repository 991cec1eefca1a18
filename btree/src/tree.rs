//! `Tree`: one copy-on-write B+tree of byte keys and byte values whose nodes are pages of the
//! file or nodes in memory. Reads descend through either; a write copies the nodes on its path
//! into memory (a page is decoded, its page released; a node a reader or checkpoint shares is
//! copied) and changes the copies. Nodes fit one page by bytes; entries are at most a quarter
//! page (longer items are blobs), so splits and rebalances always find halves that fit.
//!
//! Errors (a corrupt page met on the way) can leave the nodes a write already changed in any
//! state: every caller that writes saves the roots first and restores them on error.

mod check;
mod cursor;
mod encode;

use std::cmp::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::Result;
use crate::node::{
    item_bytes, key_cmp, Body, Branch, Item, Layout, Leaf, MemNode, NodeRef, PageNode, RawItem,
};
use crate::page::{blob_pages, PageId};
use crate::pager::PageSource;

pub(crate) use check::check_tree;
pub(crate) use cursor::Cursor;
pub(crate) use encode::{adopt_written, Encoder};

/// Deepest a tree can be: every branch has two children, so a tree this deep would hold 2^48
/// leaves. A walk going deeper follows a reference cycle in a damaged file.
pub(crate) const DEPTH_MAX: usize = 48;

/// The error for a walk deeper than [`DEPTH_MAX`].
pub(crate) fn too_deep(src: &PageSource, node: &NodeView<'_>) -> crate::BtreeError {
    let page = match node {
        NodeView::Page(page) => page.id(),
        NodeView::Mem(_) => PageId(0),
    };
    let reason = crate::Corruption::Layout("tree deeper than 48 levels (a reference cycle)");
    src.corrupt(page, reason)
}

/// A tree: its root (`None` when empty) and its entry count.
#[derive(Clone, Default)]
pub(crate) struct Tree {
    pub(crate) root: Option<NodeRef>,
    pub(crate) len: u64,
}

/// Pages (first, count) a write stopped referencing.
pub(crate) type Freed = Vec<(PageId, u64)>;

/// What a write needs: where to read pages, the size rules, and where to note released pages.
pub(crate) struct WriteCx<'a> {
    pub(crate) src: &'a PageSource,
    pub(crate) layout: Layout,
    pub(crate) freed: &'a mut Freed,
}

impl WriteCx<'_> {
    fn free_item(&mut self, item: &Item) {
        if let Some((first, len_bytes)) = item.blob() {
            let pages = blob_pages(len_bytes, self.layout.page_size_bytes);
            self.freed.push((first, pages));
        }
    }
}

/// A value found in a tree, with where it lives (for error reports).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Value<'a> {
    pub(crate) bytes: &'a [u8],
    /// The leaf page or blob holding the bytes; `PageId(0)` for a value in memory.
    pub(crate) page: PageId,
}

/// A node as a reader sees it.
#[derive(Clone, Copy)]
pub(crate) enum NodeView<'a> {
    Page(PageNode<'a>),
    Mem(&'a Body),
}

impl<'a> NodeView<'a> {
    pub(crate) fn load(src: &'a PageSource, node: &'a NodeRef) -> Result<NodeView<'a>> {
        match node {
            NodeRef::Page(id) => Ok(NodeView::Page(PageNode::read(src, *id)?)),
            NodeRef::Mem(mem) => Ok(NodeView::Mem(&mem.body)),
        }
    }

    pub(crate) fn is_leaf(&self) -> bool {
        match self {
            NodeView::Page(page) => page.is_leaf(),
            NodeView::Mem(body) => matches!(body, Body::Leaf(_)),
        }
    }

    /// Entries (leaf) or separators (branch).
    pub(crate) fn count(&self) -> usize {
        match self {
            NodeView::Page(page) => page.count(),
            NodeView::Mem(Body::Leaf(leaf)) => leaf.keys.len(),
            NodeView::Mem(Body::Branch(branch)) => branch.keys.len(),
        }
    }

    pub(crate) fn key(&self, src: &'a PageSource, i: usize) -> Result<&'a [u8]> {
        match self {
            NodeView::Page(page) => page.key_bytes(src, i),
            NodeView::Mem(Body::Leaf(leaf)) => item_bytes(src, &leaf.keys[i]),
            NodeView::Mem(Body::Branch(branch)) => item_bytes(src, &branch.keys[i]),
        }
    }

    pub(crate) fn value(&self, src: &'a PageSource, i: usize) -> Result<Value<'a>> {
        match self {
            NodeView::Page(page) => {
                let raw = page
                    .value(i)
                    .map_err(|reason| src.corrupt(page.id(), reason))?;
                let at = match raw {
                    RawItem::Blob { first, .. } => first,
                    RawItem::Inline { .. } => page.id(),
                };
                Ok(Value {
                    bytes: page.bytes_of(src, raw)?,
                    page: at,
                })
            }
            NodeView::Mem(Body::Leaf(leaf)) => {
                let item = &leaf.values[i];
                let page = item.blob().map_or(PageId(0), |(first, _)| first);
                Ok(Value {
                    bytes: item_bytes(src, item)?,
                    page,
                })
            }
            NodeView::Mem(Body::Branch(_)) => unreachable!("values are read from leaves"),
        }
    }

    pub(crate) fn child(&self, src: &'a PageSource, i: usize) -> Result<NodeView<'a>> {
        match self {
            NodeView::Page(page) => {
                let id = page
                    .child(i)
                    .map_err(|reason| src.corrupt(page.id(), reason))?;
                Ok(NodeView::Page(PageNode::read(src, id)?))
            }
            NodeView::Mem(Body::Branch(branch)) => NodeView::load(src, &branch.children[i]),
            NodeView::Mem(Body::Leaf(_)) => unreachable!("children are read from branches"),
        }
    }

    /// Index of the child whose interval holds `key`: the number of separators `<= key`.
    pub(crate) fn child_index(&self, src: &'a PageSource, key: &[u8]) -> Result<usize> {
        partition_point(self.count(), |i| {
            Ok(key_cmp(self.key(src, i)?, key) != Ordering::Greater)
        })
    }

    /// Index of the first entry `>= key` (`inclusive`) or `> key`; may be `count()`.
    pub(crate) fn lower_bound(
        &self,
        src: &'a PageSource,
        key: &[u8],
        inclusive: bool,
    ) -> Result<usize> {
        partition_point(self.count(), |i| {
            Ok(match key_cmp(self.key(src, i)?, key) {
                Ordering::Less => true,
                Ordering::Equal => !inclusive,
                Ordering::Greater => false,
            })
        })
    }
}

/// The first index in `0..len` for which `below` is false (`below` is true then false).
fn partition_point(len: usize, mut below: impl FnMut(usize) -> Result<bool>) -> Result<usize> {
    let (mut low, mut high) = (0, len);
    while low < high {
        let mid = low + (high - low) / 2;
        if below(mid)? {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    Ok(low)
}

/// `Ok(i)` if `items[i]` is `key`, else `Err(i)` where it would go.
fn search_items(src: &PageSource, items: &[Item], key: &[u8]) -> Result<Result<usize, usize>> {
    let i = partition_point(items.len(), |i| {
        Ok(key_cmp(item_bytes(src, &items[i])?, key) == Ordering::Less)
    })?;
    if i < items.len() && item_bytes(src, &items[i])? == key {
        return Ok(Ok(i));
    }
    Ok(Err(i))
}

fn child_index_items(src: &PageSource, keys: &[Item], key: &[u8]) -> Result<usize> {
    partition_point(keys.len(), |i| {
        Ok(key_cmp(item_bytes(src, &keys[i])?, key) != Ordering::Greater)
    })
}

/// Makes the node behind `node` changeable: a page is decoded (and released), a node a reader
/// or a checkpoint shares is copied. Returns its body.
fn node_mut<'n>(node: &'n mut NodeRef, cx: &mut WriteCx<'_>) -> Result<&'n mut Body> {
    match node {
        NodeRef::Page(id) => {
            let id = *id;
            let decoded = PageNode::read(cx.src, id)?
                .to_mem()
                .map_err(|reason| cx.src.corrupt(id, reason))?;
            cx.freed.push((id, 1));
            *node = NodeRef::Mem(Arc::new(decoded));
        }
        NodeRef::Mem(mem) => {
            if let Some(written) = mem.written() {
                cx.freed.push((written.page(), 1));
                *mem = Arc::new(mem.copy_for_write());
            } else if Arc::get_mut(mem).is_none() {
                *mem = Arc::new(mem.copy_for_write());
            }
        }
    }
    match node {
        NodeRef::Mem(mem) => Ok(&mut Arc::get_mut(mem).expect("made exclusive above").body),
        NodeRef::Page(_) => unreachable!("replaced by a memory node above"),
    }
}

/// The body of a node `node_mut` already made exclusive.
fn body_of(node: &NodeRef) -> &Body {
    match node {
        NodeRef::Mem(mem) => &mem.body,
        NodeRef::Page(_) => unreachable!("a node just changed is in memory"),
    }
}

/// The separator for a right node starting with `first`: its bytes, owned (a separator never
/// shares a blob with the leaf entry it came from).
fn separator_of(src: &PageSource, first: &Item) -> Result<Bytes> {
    match first {
        Item::Mem(bytes) | Item::Stored { bytes, .. } => Ok(bytes.clone()),
        Item::Blob { first, len_bytes } => {
            Ok(Bytes::copy_from_slice(src.blob(*first, *len_bytes)?))
        }
    }
}

enum Insert {
    Done {
        replaced: bool,
    },
    /// The node split; the parent adopts `right`, whose keys are all `>= separator`.
    Split {
        separator: Item,
        right: NodeRef,
        replaced: bool,
    },
}

impl Tree {
    /// The value under `key`.
    pub(crate) fn get<'a>(&'a self, src: &'a PageSource, key: &[u8]) -> Result<Option<Value<'a>>> {
        let Some(root) = &self.root else {
            return Ok(None);
        };
        let mut node = NodeView::load(src, root)?;
        let mut depth = 1;
        while !node.is_leaf() {
            if depth == DEPTH_MAX {
                return Err(too_deep(src, &node));
            }
            let i = node.child_index(src, key)?;
            node = node.child(src, i)?;
            depth += 1;
        }
        let i = node.lower_bound(src, key, true)?;
        if i < node.count() && node.key(src, i)? == key {
            return Ok(Some(node.value(src, i)?));
        }
        Ok(None)
    }

    /// Entries with keys from `start` to `end`, ascending.
    pub(crate) fn range<'a>(
        &'a self,
        src: &'a PageSource,
        start: std::ops::Bound<&[u8]>,
        end: std::ops::Bound<Bytes>,
    ) -> Cursor<'a> {
        Cursor::new(src, self.root.as_ref(), start, end)
    }

    /// Stores `value` under `key`; returns whether it replaced a value.
    pub(crate) fn insert(
        &mut self,
        cx: &mut WriteCx<'_>,
        key: Bytes,
        value: Bytes,
    ) -> Result<bool> {
        let Some(root) = self.root.as_mut() else {
            let leaf = Leaf {
                keys: Arc::new(vec![Item::Mem(key)]),
                values: vec![Item::Mem(value)],
            };
            self.root = Some(NodeRef::Mem(Arc::new(MemNode::new(Body::Leaf(leaf)))));
            self.len = 1;
            return Ok(false);
        };
        match insert_at(root, cx, key, value, true, 1)? {
            Insert::Done { replaced } => {
                self.len += u64::from(!replaced);
                Ok(replaced)
            }
            Insert::Split {
                separator,
                right,
                replaced,
            } => {
                let left = self.root.take().expect("the root that split");
                let branch = Branch {
                    keys: Arc::new(vec![separator]),
                    children: vec![left, right],
                };
                self.root = Some(NodeRef::Mem(Arc::new(MemNode::new(Body::Branch(branch)))));
                self.len += u64::from(!replaced);
                Ok(replaced)
            }
        }
    }

    /// Removes `key`; returns whether it was there. A missing key copies nothing.
    pub(crate) fn remove(&mut self, cx: &mut WriteCx<'_>, key: &[u8]) -> Result<bool> {
        if self.get(cx.src, key)?.is_none() {
            return Ok(false);
        }
        let root = self.root.as_mut().expect("a tree holding the key");
        if let Some((separator, right)) = remove_at(root, cx, key, 1)? {
            let left = self.root.take().expect("the root that split");
            let branch = Branch {
                keys: Arc::new(vec![separator]),
                children: vec![left, right],
            };
            self.root = Some(NodeRef::Mem(Arc::new(MemNode::new(Body::Branch(branch)))));
        }
        let root = self.root.as_mut().expect("a tree holding the key");
        self.len -= 1;
        // The root is exempt from the fill minimum, but is never an empty leaf or a branch with
        // one child: the tree shrinks instead.
        let replacement = match body_of(root) {
            Body::Leaf(leaf) if leaf.keys.is_empty() => Some(None),
            Body::Branch(branch) if branch.children.len() == 1 => {
                Some(Some(branch.children[0].clone()))
            }
            _ => None,
        };
        if let Some(replacement) = replacement {
            self.root = replacement;
        }
        Ok(true)
    }
}

fn insert_at(
    node: &mut NodeRef,
    cx: &mut WriteCx<'_>,
    key: Bytes,
    value: Bytes,
    rightmost: bool,
    depth: usize,
) -> Result<Insert> {
    let layout = cx.layout;
    if depth > DEPTH_MAX {
        let view = NodeView::load(cx.src, node)?;
        return Err(too_deep(cx.src, &view));
    }
    match node_mut(node, cx)? {
        Body::Leaf(leaf) => {
            let (replaced, append) = match search_items(cx.src, &leaf.keys, &key)? {
                Ok(i) => {
                    let old_bytes = layout.leaf_entry_bytes(leaf, i);
                    let old = std::mem::replace(&mut leaf.values[i], Item::Mem(value));
                    cx.free_item(&old);
                    // The node fitted before: an entry that did not grow keeps it fitting
                    // (the common overwrite; no need to size the whole node).
                    if layout.leaf_entry_bytes(leaf, i) <= old_bytes {
                        return Ok(Insert::Done { replaced: true });
                    }
                    (true, false)
                }
                Err(i) => {
                    Arc::make_mut(&mut leaf.keys).insert(i, Item::Mem(key));
                    leaf.values.insert(i, Item::Mem(value));
                    // Appending at the right edge (revisions, bulk loads) keeps the left full.
                    (false, rightmost && i + 1 == leaf.keys.len())
                }
            };
            if layout.leaf_body_bytes(leaf) <= layout.capacity_bytes() {
                return Ok(Insert::Done { replaced });
            }
            // A new entry, or a longer value, overflowed the node.
            let at = if append {
                leaf.keys.len() - 1
            } else {
                leaf_split_point(layout, leaf)
            };
            let right = Leaf {
                keys: Arc::new(Arc::make_mut(&mut leaf.keys).split_off(at)),
                values: leaf.values.split_off(at),
            };
            let separator = Item::Mem(separator_of(cx.src, &right.keys[0])?);
            let right = NodeRef::Mem(Arc::new(MemNode::new(Body::Leaf(right))));
            Ok(Insert::Split {
                separator,
                right,
                replaced,
            })
        }
        Body::Branch(branch) => {
            let i = child_index_items(cx.src, &branch.keys, &key)?;
            let last = i + 1 == branch.children.len();
            let child = &mut branch.children[i];
            let outcome = insert_at(child, cx, key, value, rightmost && last, depth + 1)?;
            let Insert::Split {
                separator,
                right,
                replaced,
            } = outcome
            else {
                return Ok(outcome);
            };
            Arc::make_mut(&mut branch.keys).insert(i, separator);
            branch.children.insert(i + 1, right);
            if layout.branch_body_bytes(branch) <= layout.capacity_bytes() {
                return Ok(Insert::Done { replaced });
            }
            let append = rightmost && last;
            let middle = if append {
                branch.keys.len() - 2
            } else {
                branch_split_point(layout, branch)
            };
            let (separator, right) = branch_split(branch, middle);
            let right = NodeRef::Mem(Arc::new(MemNode::new(Body::Branch(right))));
            Ok(Insert::Split {
                separator,
                right,
                replaced,
            })
        }
    }
}

/// Where to split an overfull leaf by bytes: the first entry at or past half the bytes, so
/// both halves hold at least one entry.
fn leaf_split_point(layout: Layout, leaf: &Leaf) -> usize {
    let sizes: Vec<usize> = (0..leaf.keys.len())
        .map(|i| layout.leaf_entry_bytes(leaf, i))
        .collect();
    split_point(&sizes)
}

fn branch_split_point(layout: Layout, branch: &Branch) -> usize {
    let sizes: Vec<usize> = branch
        .keys
        .iter()
        .map(|key| layout.branch_entry_bytes(key))
        .collect();
    // The key at the split point moves up: keep at least one key on each side.
    split_point(&sizes).clamp(1, sizes.len() - 2)
}

fn split_point(sizes: &[usize]) -> usize {
    assert!(
        sizes.len() >= 2,
        "only a node of two or more entries splits"
    );
    let total: usize = sizes.iter().sum();
    let mut left = 0;
    for (i, size) in sizes.iter().enumerate() {
        if left + size > total / 2 && i > 0 {
            return i;
        }
        left += size;
    }
    sizes.len() - 1
}

/// Splits `branch` at separator `middle`, which moves up (keeping its item, and blob if any);
/// returns it and the right half.
fn branch_split(branch: &mut Branch, middle: usize) -> (Item, Branch) {
    assert!(
        middle >= 1 && middle + 1 < branch.keys.len(),
        "both halves keep a separator"
    );
    let keys = Arc::make_mut(&mut branch.keys);
    let right = Branch {
        keys: Arc::new(keys.split_off(middle + 1)),
        children: branch.children.split_off(middle + 1),
    };
    let up = keys.pop().expect("the middle separator");
    (up, right)
}

/// Removes `key` below `node` and repairs any child left underfull. `node` itself may be left
/// underfull (its parent repairs that in turn) or overfull: a rebalance below can replace a
/// separator by a longer one, so a branch may split on the way up, as in an insert.
fn remove_at(
    node: &mut NodeRef,
    cx: &mut WriteCx<'_>,
    key: &[u8],
    depth: usize,
) -> Result<Option<(Item, NodeRef)>> {
    let layout = cx.layout;
    if depth > DEPTH_MAX {
        let view = NodeView::load(cx.src, node)?;
        return Err(too_deep(cx.src, &view));
    }
    match node_mut(node, cx)? {
        Body::Leaf(leaf) => {
            let i = search_items(cx.src, &leaf.keys, key)?
                .expect("remove descends only to a present key");
            let key = Arc::make_mut(&mut leaf.keys).remove(i);
            let value = leaf.values.remove(i);
            cx.free_item(&key);
            cx.free_item(&value);
            Ok(None)
        }
        Body::Branch(branch) => {
            let i = child_index_items(cx.src, &branch.keys, key)?;
            match remove_at(&mut branch.children[i], cx, key, depth + 1)? {
                Some((separator, right)) => {
                    Arc::make_mut(&mut branch.keys).insert(i, separator);
                    branch.children.insert(i + 1, right);
                }
                None if underfull(layout, body_of(&branch.children[i])) => {
                    rebalance(branch, cx, i)?;
                }
                None => {}
            }
            if layout.branch_body_bytes(branch) <= layout.capacity_bytes() {
                return Ok(None);
            }
            let middle = branch_split_point(layout, branch);
            let (separator, right) = branch_split(branch, middle);
            let right = NodeRef::Mem(Arc::new(MemNode::new(Body::Branch(right))));
            Ok(Some((separator, right)))
        }
    }
}

fn underfull(layout: Layout, body: &Body) -> bool {
    match body {
        Body::Leaf(leaf) if leaf.keys.is_empty() => true,
        Body::Branch(branch) if branch.children.len() < 2 => true,
        _ => layout.body_bytes(body) < layout.fill_bytes_min(),
    }
}

/// Restores the fill of `children[i]`, left underfull by a removal: merges it with a sibling
/// when both fit one node, else moves entries over until both hold about half. `branch` may
/// be left underfull itself; its parent repairs that in turn.
fn rebalance(branch: &mut Branch, cx: &mut WriteCx<'_>, i: usize) -> Result<()> {
    if branch.children.len() < 2 {
        return Ok(()); // A root with one child; the tree collapses it.
    }
    let left = if i > 0 { i - 1 } else { i };
    let layout = cx.layout;
    let (head, tail) = branch.children.split_at_mut(left + 1);
    let left_body = node_mut(&mut head[left], cx)?;
    let right_body = node_mut(&mut tail[0], cx)?;
    match (left_body, right_body) {
        (Body::Leaf(l), Body::Leaf(r)) => {
            if layout.leaf_body_bytes(l) + layout.leaf_body_bytes(r) <= layout.capacity_bytes() {
                Arc::make_mut(&mut l.keys).append(Arc::make_mut(&mut r.keys));
                l.values.append(&mut r.values);
                let separator = Arc::make_mut(&mut branch.keys).remove(left);
                cx.free_item(&separator);
                branch.children.remove(left + 1);
                return Ok(());
            }
            let mut keys = std::mem::take(Arc::make_mut(&mut l.keys));
            keys.append(Arc::make_mut(&mut r.keys));
            let mut all = Leaf {
                keys: Arc::new(keys),
                values: std::mem::take(&mut l.values),
            };
            all.values.append(&mut r.values);
            let at = leaf_split_point(layout, &all);
            r.keys = Arc::new(Arc::make_mut(&mut all.keys).split_off(at));
            r.values = all.values.split_off(at);
            *l = all;
            let separator = Item::Mem(separator_of(cx.src, &r.keys[0])?);
            let old = std::mem::replace(&mut Arc::make_mut(&mut branch.keys)[left], separator);
            cx.free_item(&old);
            Ok(())
        }
        (Body::Branch(l), Body::Branch(r)) => {
            let down_bytes = layout.branch_entry_bytes(&branch.keys[left]);
            let merged_bytes =
                layout.branch_body_bytes(l) + down_bytes + layout.branch_body_bytes(r);
            let branch_keys = Arc::make_mut(&mut branch.keys);
            if merged_bytes <= layout.capacity_bytes() {
                let down = branch_keys.remove(left);
                let l_keys = Arc::make_mut(&mut l.keys);
                l_keys.push(down);
                l_keys.append(Arc::make_mut(&mut r.keys));
                l.children.append(&mut r.children);
                branch.children.remove(left + 1);
                return Ok(());
            }
            let down = std::mem::replace(&mut branch_keys[left], Item::Mem(Bytes::new()));
            let mut keys = std::mem::take(Arc::make_mut(&mut l.keys));
            keys.push(down);
            keys.append(Arc::make_mut(&mut r.keys));
            let mut all = Branch {
                keys: Arc::new(keys),
                children: std::mem::take(&mut l.children),
            };
            all.children.append(&mut r.children);
            let middle = branch_split_point(layout, &all);
            let (up, right) = branch_split(&mut all, middle);
            *l = all;
            *r = right;
            branch_keys[left] = up;
            Ok(())
        }
        _ => unreachable!("siblings are at the same depth"),
    }
}
