//! `BTree`: an ordered map stored as a copy-on-write B+tree. Cloning a tree is O(1) and gives an
//! immutable snapshot; a write copies only the nodes on its path that a snapshot still shares.

mod check;

use std::borrow::Borrow;
use std::fmt;
use std::ops::RangeBounds;
use std::sync::Arc;

use crate::cursor::Range;
use crate::node::{fill_min, Branch, Insert, Leaf, Node};

pub use check::TreeCheckError;

/// Default maximum entries per leaf and children per branch. 64 keeps a 1M-entry tree at depth
/// 4 while a path copy (one node per level) stays a few hundred pointer copies.
pub const FANOUT_MAX_DEFAULT: usize = 64;

/// An ordered map from `K` to `V` held in a copy-on-write B+tree whose nodes have at most
/// `FANOUT_MAX` entries (leaves) or children (branches).
///
/// - `clone()` is O(1): both trees share every node, and each stays unchanged by writes to the
///   other. A write copies a node only when another tree still shares it (`Arc::make_mut`), so a
///   batch of writes after one snapshot copies each path once and then works in place.
/// - Every node except the root holds at least `FANOUT_MAX / 2` entries or children; all leaves
///   are at the same depth. [`BTree::check`] verifies both.
///
/// Keys and values are cloned when a shared node is copied; keep them cheap to clone (`Arc`,
/// `bytes::Bytes`, small `Copy` types).
pub struct BTree<K, V, const FANOUT_MAX: usize = FANOUT_MAX_DEFAULT> {
    /// `None` when empty; never an empty leaf, never a branch with one child.
    root: Option<Arc<Node<K, V, FANOUT_MAX>>>,
    /// Number of entries.
    len: usize,
}

impl<K, V> BTree<K, V> {
    /// An empty tree with the default fanout.
    pub fn new() -> Self {
        Self::with_fanout()
    }
}

impl<K, V, const FANOUT_MAX: usize> BTree<K, V, FANOUT_MAX> {
    /// Why 4: with fewer, a half-full branch would have a single child.
    const FANOUT_MAX_VALID: () = assert!(FANOUT_MAX >= 4, "FANOUT_MAX must be at least 4");

    /// An empty tree with the fanout of its type (`BTree::<K, V, 8>::with_fanout()`).
    pub fn with_fanout() -> Self {
        let () = Self::FANOUT_MAX_VALID;
        BTree { root: None, len: 0 }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree has no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes every entry (snapshots keep theirs).
    pub fn clear(&mut self) {
        self.root = None;
        self.len = 0;
    }

    /// The value stored under `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.root.as_deref()?.get(key)
    }

    /// Whether `key` is present.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.get(key).is_some()
    }

    /// The entry with the smallest key.
    pub fn first_key_value(&self) -> Option<(&K, &V)> {
        self.root.as_deref()?.first()
    }

    /// The entry with the largest key.
    pub fn last_key_value(&self) -> Option<(&K, &V)> {
        self.root.as_deref()?.last()
    }

    /// Entries whose keys lie in `range`, in ascending key order (`.rev()` for descending).
    /// An inverted or empty range (start after end, or equal bounds not both inclusive) yields
    /// nothing; unlike `std::collections::BTreeMap::range` it does not panic.
    pub fn range<Q, R>(&self, range: R) -> Range<'_, K, V, FANOUT_MAX>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        R: RangeBounds<Q>,
    {
        Range::new(self.root.as_deref(), range.start_bound(), range.end_bound())
    }

    /// Every entry in ascending key order.
    pub fn iter(&self) -> Range<'_, K, V, FANOUT_MAX> {
        Range::all(self.root.as_deref())
    }

    /// Depth of the leaves (0 for an empty tree, 1 for a single leaf).
    pub fn depth(&self) -> usize {
        let mut depth = 0;
        let mut node = self.root.as_deref();
        while let Some(current) = node {
            depth += 1;
            node = match current {
                Node::Branch(branch) => branch.children.first().map(|child| &**child),
                Node::Leaf(_) => None,
            };
        }
        depth
    }

    /// Whether `self` and `other` are the same version: they share their root node, so every
    /// entry. O(1); `false` does not mean the contents differ.
    pub fn ptr_eq(&self, other: &Self) -> bool {
        match (&self.root, &other.root) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl<K: Ord + Clone, V: Clone, const FANOUT_MAX: usize> BTree<K, V, FANOUT_MAX> {
    /// Inserts `value` under `key`; returns the value it replaced. An existing key keeps its
    /// original key object (as `std::collections::BTreeMap` does).
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let Some(root) = self.root.as_mut() else {
            self.root = Some(Arc::new(Node::Leaf(Leaf::with_entry(key, value))));
            self.len = 1;
            return None;
        };
        match Arc::make_mut(root).insert(key, value) {
            Insert::Replaced(old) => Some(old),
            Insert::Inserted => {
                self.len += 1;
                None
            }
            Insert::Split { separator, right } => {
                let left = self
                    .root
                    .take()
                    .expect("the root that split is still there");
                let root = Branch::new_root(left, separator, right);
                self.root = Some(Arc::new(Node::Branch(root)));
                self.len += 1;
                None
            }
        }
    }

    /// A mutable reference to the value under `key`. Copies the path to it where a snapshot
    /// shares it; a missing key copies nothing.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        get_mut_at(self.root.as_mut()?, key, false)
    }

    /// Removes `key`; returns its value. A missing key copies nothing.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.remove_entry(key).map(|(_, value)| value)
    }

    /// Removes `key`; returns the stored key and its value.
    pub fn remove_entry<Q>(&mut self, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let root = self.root.as_mut()?;
        let removed = remove_at(root, key, false)?;
        self.len -= 1;
        // The root is exempt from the fill minimum but never an empty leaf or a branch with a
        // single child: shrink the tree by one level instead.
        let new_root = match Arc::make_mut(root) {
            Node::Leaf(leaf) if leaf.keys.is_empty() => Some(None),
            Node::Branch(branch) if branch.children.len() == 1 => Some(branch.children.pop()),
            _ => None,
        };
        if let Some(new_root) = new_root {
            self.root = new_root;
        }
        Some(removed)
    }
}

/// Descends to `key`, making each node exclusive on the way. A shared node is copied only after
/// checking (once per path) that the key is below it, so a miss copies nothing.
fn get_mut_at<'a, K, V, Q, const F: usize>(
    node: &'a mut Arc<Node<K, V, F>>,
    key: &Q,
    known_present: bool,
) -> Option<&'a mut V>
where
    K: Ord + Clone + Borrow<Q>,
    V: Clone,
    Q: Ord + ?Sized,
{
    let mut known_present = known_present;
    if !known_present && Arc::get_mut(node).is_none() {
        node.get(key)?;
        known_present = true;
    }
    match Arc::make_mut(node) {
        Node::Leaf(leaf) => {
            let i = leaf.search(key).ok()?;
            Some(&mut leaf.values[i])
        }
        Node::Branch(branch) => {
            let i = branch.child_index(key);
            get_mut_at(&mut branch.children[i], key, known_present)
        }
    }
}

/// Removes `key` below `node` and repairs any child left under the fill minimum. `node` itself
/// may be left under the minimum: its parent (or the root rule) repairs it.
fn remove_at<K, V, Q, const F: usize>(
    node: &mut Arc<Node<K, V, F>>,
    key: &Q,
    known_present: bool,
) -> Option<(K, V)>
where
    K: Ord + Clone + Borrow<Q>,
    V: Clone,
    Q: Ord + ?Sized,
{
    let mut known_present = known_present;
    if !known_present && Arc::get_mut(node).is_none() {
        node.get(key)?;
        known_present = true;
    }
    match Arc::make_mut(node) {
        Node::Leaf(leaf) => {
            let i = leaf.search(key).ok()?;
            Some((leaf.keys.remove(i), leaf.values.remove(i)))
        }
        Node::Branch(branch) => {
            let i = branch.child_index(key);
            let removed = remove_at(&mut branch.children[i], key, known_present)?;
            if branch.children[i].fill() < fill_min(F) {
                branch.rebalance_child(i);
            }
            Some(removed)
        }
    }
}

impl<K, V, const FANOUT_MAX: usize> Clone for BTree<K, V, FANOUT_MAX> {
    /// O(1): shares every node.
    fn clone(&self) -> Self {
        BTree {
            root: self.root.clone(),
            len: self.len,
        }
    }
}

impl<K, V> Default for BTree<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: fmt::Debug, V: fmt::Debug, const FANOUT_MAX: usize> fmt::Debug for BTree<K, V, FANOUT_MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: PartialEq, V: PartialEq, const FANOUT_MAX: usize> PartialEq for BTree<K, V, FANOUT_MAX> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<K: Eq, V: Eq, const FANOUT_MAX: usize> Eq for BTree<K, V, FANOUT_MAX> {}

impl<'a, K, V, const FANOUT_MAX: usize> IntoIterator for &'a BTree<K, V, FANOUT_MAX> {
    type Item = (&'a K, &'a V);
    type IntoIter = Range<'a, K, V, FANOUT_MAX>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<K: Ord + Clone, V: Clone, const FANOUT_MAX: usize> Extend<(K, V)> for BTree<K, V, FANOUT_MAX> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, entries: I) {
        for (key, value) in entries {
            self.insert(key, value);
        }
    }
}

impl<K: Ord + Clone, V: Clone> FromIterator<(K, V)> for BTree<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut tree = BTree::new();
        tree.extend(entries);
        tree
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    type Small = BTree<u32, u32, 4>;

    fn small_tree(key_count: u32) -> Small {
        let mut tree = Small::with_fanout();
        for k in 0..key_count {
            tree.insert(k, k);
        }
        tree.check().expect("well formed");
        tree
    }

    /// Addresses of every node of `tree`.
    fn nodes<K, V, const F: usize>(tree: &BTree<K, V, F>) -> HashSet<usize> {
        fn walk<K, V, const F: usize>(node: &Arc<Node<K, V, F>>, out: &mut HashSet<usize>) {
            out.insert(Arc::as_ptr(node) as usize);
            if let Node::Branch(branch) = &**node {
                for child in &branch.children {
                    walk(child, out);
                }
            }
        }
        let mut out = HashSet::new();
        if let Some(root) = &tree.root {
            walk(root, &mut out);
        }
        out
    }

    // Guards O(1) snapshots: a clone shares the root until one side writes.
    #[test]
    fn clone_shares_every_node_until_a_write() {
        let mut tree = small_tree(100);
        let snapshot = tree.clone();
        assert!(tree.ptr_eq(&snapshot));
        tree.insert(1000, 1);
        assert!(!tree.ptr_eq(&snapshot));
        assert_eq!(snapshot.len(), 100);
        assert_eq!(snapshot.get(&1000), None);
    }

    // Guards the copy-on-write cost model: the first write after a snapshot copies exactly the
    // nodes on its path; further writes on that path copy nothing more.
    #[test]
    fn writes_after_a_snapshot_copy_each_path_once() {
        let mut tree = small_tree(300);
        let depth = tree.depth();
        assert!(depth >= 4, "a deep tree exercises every level");
        let snapshot = tree.clone();
        let shared_before = nodes(&snapshot);

        *tree.get_mut(&150).expect("present") = 1;
        let after_first = nodes(&tree);
        assert_eq!(
            after_first.difference(&shared_before).count(),
            depth,
            "one copy per level"
        );

        *tree.get_mut(&150).expect("present") = 2;
        *tree.get_mut(&151).expect("present") = 3;
        let after_more = nodes(&tree);
        let copied = after_more.difference(&shared_before).count();
        assert!(
            copied <= depth + 1,
            "same path copies nothing more; a neighbour leaf at most one"
        );
        assert_eq!(
            snapshot.get(&150),
            Some(&150),
            "the snapshot kept its value"
        );
    }

    #[test]
    fn writes_without_a_snapshot_copy_nothing() {
        let mut tree = small_tree(300);
        let before = nodes(&tree);
        *tree.get_mut(&7).expect("present") = 70;
        assert_eq!(nodes(&tree), before);
    }

    // A miss must not pay for (or keep) copies of nodes a reader shares.
    #[test]
    fn get_mut_and_remove_of_a_missing_key_copy_nothing() {
        let mut tree = small_tree(300);
        let snapshot = tree.clone();
        assert_eq!(tree.get_mut(&5000), None);
        assert_eq!(tree.remove(&5000), None);
        assert!(tree.ptr_eq(&snapshot));
    }

    #[test]
    fn removing_every_key_collapses_the_root_to_empty() {
        let mut tree = small_tree(300);
        let snapshot = tree.clone();
        for k in (0..300).rev() {
            assert_eq!(tree.remove(&k), Some(k));
            tree.check().expect("well formed after each removal");
        }
        assert!(tree.is_empty());
        assert_eq!(tree.depth(), 0);
        assert_eq!(snapshot.len(), 300);
        snapshot.check().expect("snapshot untouched");
    }

    #[test]
    fn check_reports_keys_out_of_order() {
        let mut tree = small_tree(3);
        if let Some(Node::Leaf(leaf)) = tree.root.as_mut().map(Arc::make_mut) {
            leaf.keys.swap(0, 1);
        }
        assert_eq!(
            tree.check(),
            Err(TreeCheckError::Unordered { depth: 1, index: 1 })
        );
    }

    #[test]
    fn check_reports_a_wrong_len() {
        let mut tree = small_tree(30);
        tree.len += 1;
        assert_eq!(
            tree.check(),
            Err(TreeCheckError::Len {
                recorded: 31,
                counted: 30
            })
        );
    }

    #[test]
    fn check_reports_an_underfull_node() {
        let mut tree = small_tree(30);
        if let Some(Node::Branch(root)) = tree.root.as_mut().map(Arc::make_mut) {
            let child = Arc::make_mut(&mut root.children[0]);
            if let Node::Branch(branch) = child {
                branch.children.truncate(1);
                branch.keys.clear();
            }
        }
        let error = tree.check().expect_err("underfull branch");
        assert!(
            matches!(
                error,
                TreeCheckError::Fill {
                    depth: 2,
                    fill: 1,
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn check_reports_a_key_outside_its_separators() {
        let mut tree = small_tree(30);
        if let Some(Node::Branch(root)) = tree.root.as_mut().map(Arc::make_mut) {
            root.keys[0] = 0;
        }
        let error = tree
            .check()
            .expect_err("separator no longer bounds the left child");
        assert!(
            matches!(error, TreeCheckError::OutOfBounds { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn tree_is_send_and_sync_when_its_keys_and_values_are() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<BTree<bytes::Bytes, Arc<Vec<u8>>>>();
    }
}
