//! Ordered iteration over a `BTree` between two bounds, forward and backward. Copy-on-write nodes
//! cannot point to their siblings (a sibling pointer would make every copy ripple sideways), so a
//! cursor keeps the path from the root and climbs it to reach the next or previous leaf.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::iter::FusedIterator;
use std::ops::Bound;

use crate::node::{Branch, Leaf, Node};

/// A position between entries, named by the entry right after it.
///
/// Invariant: `leaf` is `None` (after the last entry) or `Some((leaf, i))` with `i < leaf.len`,
/// so every position has exactly one representation and two cursors over the same tree are at
/// the same place exactly when they compare equal.
struct Cursor<'a, K, V, const F: usize> {
    root: Option<&'a Node<K, V, F>>,
    /// Branches from the root down to the leaf's parent, each with the index of the child taken.
    path: Vec<(&'a Branch<K, V, F>, usize)>,
    leaf: Option<(&'a Leaf<K, V, F>, usize)>,
}

impl<'a, K, V, const F: usize> Cursor<'a, K, V, F> {
    fn at_end(root: Option<&'a Node<K, V, F>>) -> Self {
        Cursor {
            root,
            path: Vec::new(),
            leaf: None,
        }
    }

    fn at_first(root: Option<&'a Node<K, V, F>>) -> Self {
        let mut cursor = Self::at_end(root);
        if let Some(node) = root {
            cursor.descend_leftmost(node);
        }
        cursor
    }

    /// Before the first entry whose key is `>= key` (`inclusive`) or `> key`.
    fn at_key<Q>(root: Option<&'a Node<K, V, F>>, key: &Q, inclusive: bool) -> Self
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let mut cursor = Self::at_end(root);
        let Some(mut node) = root else { return cursor };
        loop {
            match node {
                Node::Branch(branch) => {
                    let i = branch.child_index(key);
                    cursor.path.push((branch, i));
                    node = &branch.children[i];
                }
                Node::Leaf(leaf) => {
                    let i = leaf.lower_bound(key, inclusive);
                    if i < leaf.keys.len() {
                        cursor.leaf = Some((leaf, i));
                    } else {
                        // Every entry of this leaf is below the bound: the answer is the first
                        // entry of the next leaf, if any.
                        cursor.next_leaf();
                    }
                    return cursor;
                }
            }
        }
    }

    fn same_position(&self, other: &Self) -> bool {
        match (self.leaf, other.leaf) {
            (None, None) => true,
            (Some((a, i)), Some((b, j))) => std::ptr::eq(a, b) && i == j,
            _ => false,
        }
    }

    fn entry(&self) -> Option<(&'a K, &'a V)> {
        let (leaf, i) = self.leaf?;
        Some((&leaf.keys[i], &leaf.values[i]))
    }

    fn descend_leftmost(&mut self, mut node: &'a Node<K, V, F>) {
        loop {
            match node {
                Node::Branch(branch) => {
                    self.path.push((branch, 0));
                    node = &branch.children[0];
                }
                Node::Leaf(leaf) => {
                    assert!(
                        !leaf.keys.is_empty(),
                        "only an empty tree has an empty leaf"
                    );
                    self.leaf = Some((leaf, 0));
                    return;
                }
            }
        }
    }

    fn descend_rightmost(&mut self, mut node: &'a Node<K, V, F>) {
        loop {
            match node {
                Node::Branch(branch) => {
                    let i = branch.children.len() - 1;
                    self.path.push((branch, i));
                    node = &branch.children[i];
                }
                Node::Leaf(leaf) => {
                    assert!(
                        !leaf.keys.is_empty(),
                        "only an empty tree has an empty leaf"
                    );
                    self.leaf = Some((leaf, leaf.keys.len() - 1));
                    return;
                }
            }
        }
    }

    /// Moves to the first entry of the next leaf, or to the end.
    fn next_leaf(&mut self) {
        self.leaf = None;
        while let Some((branch, i)) = self.path.pop() {
            if i + 1 < branch.children.len() {
                self.path.push((branch, i + 1));
                self.descend_leftmost(&branch.children[i + 1]);
                return;
            }
        }
    }

    /// Moves past the current entry. At the end, stays there.
    fn advance(&mut self) {
        let Some((leaf, i)) = self.leaf else { return };
        if i + 1 < leaf.keys.len() {
            self.leaf = Some((leaf, i + 1));
        } else {
            self.next_leaf();
        }
    }

    /// Moves to the previous entry; from the end, to the last entry. The caller guarantees there
    /// is one (another cursor lies before this one).
    fn retreat(&mut self) {
        match self.leaf {
            None => {
                self.path.clear();
                let root = self
                    .root
                    .expect("a cursor retreats only over a non-empty tree");
                self.descend_rightmost(root);
            }
            Some((leaf, i)) if i > 0 => self.leaf = Some((leaf, i - 1)),
            Some(_) => {
                while let Some((branch, i)) = self.path.pop() {
                    if i > 0 {
                        self.path.push((branch, i - 1));
                        self.descend_rightmost(&branch.children[i - 1]);
                        return;
                    }
                }
                unreachable!("a cursor retreats only when an entry lies before it");
            }
        }
    }
}

/// Iterator over the entries of a `BTree` between two bounds, created by
/// [`crate::BTree::range`] and [`crate::BTree::iter`]. Double-ended: `.rev()` walks backward.
pub struct Range<'a, K, V, const F: usize> {
    /// Before the next entry `next` yields.
    front: Cursor<'a, K, V, F>,
    /// After the next entry `next_back` yields; never before `front`.
    back: Cursor<'a, K, V, F>,
}

impl<'a, K, V, const F: usize> Range<'a, K, V, F> {
    /// Every entry.
    pub(crate) fn all(root: Option<&'a Node<K, V, F>>) -> Self {
        Range {
            front: Cursor::at_first(root),
            back: Cursor::at_end(root),
        }
    }

    pub(crate) fn new<Q>(root: Option<&'a Node<K, V, F>>, start: Bound<&Q>, end: Bound<&Q>) -> Self
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        if bounds_empty(start, end) {
            return Range {
                front: Cursor::at_end(root),
                back: Cursor::at_end(root),
            };
        }
        let front = match start {
            Bound::Included(key) => Cursor::at_key(root, key, true),
            Bound::Excluded(key) => Cursor::at_key(root, key, false),
            Bound::Unbounded => Cursor::at_first(root),
        };
        let back = match end {
            Bound::Included(key) => Cursor::at_key(root, key, false),
            Bound::Excluded(key) => Cursor::at_key(root, key, true),
            Bound::Unbounded => Cursor::at_end(root),
        };
        Range { front, back }
    }
}

/// Whether no key can satisfy both bounds. When this is false, the front cursor of a range is
/// never after its back cursor, which the iteration relies on.
fn bounds_empty<Q: Ord + ?Sized>(start: Bound<&Q>, end: Bound<&Q>) -> bool {
    let (start_key, start_inclusive) = match start {
        Bound::Included(key) => (key, true),
        Bound::Excluded(key) => (key, false),
        Bound::Unbounded => return false,
    };
    let (end_key, end_inclusive) = match end {
        Bound::Included(key) => (key, true),
        Bound::Excluded(key) => (key, false),
        Bound::Unbounded => return false,
    };
    match start_key.cmp(end_key) {
        Ordering::Less => false,
        Ordering::Equal => !(start_inclusive && end_inclusive),
        Ordering::Greater => true,
    }
}

impl<'a, K, V, const F: usize> Iterator for Range<'a, K, V, F> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        if self.front.same_position(&self.back) {
            return None;
        }
        let entry = self.front.entry();
        self.front.advance();
        entry
    }
}

impl<K, V, const F: usize> DoubleEndedIterator for Range<'_, K, V, F> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front.same_position(&self.back) {
            return None;
        }
        self.back.retreat();
        self.back.entry()
    }
}

impl<K, V, const F: usize> FusedIterator for Range<'_, K, V, F> {}
