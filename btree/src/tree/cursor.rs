//! `Cursor`: ascending iteration over a tree's entries between two bounds. Copy-on-write nodes
//! cannot point to their siblings (a sibling pointer would make every copy ripple sideways), so
//! the cursor keeps the path from the root and climbs it to reach the next leaf.

use std::ops::Bound;

use bytes::Bytes;

use super::{too_deep, NodeView, Value, DEPTH_MAX};
use crate::error::Result;
use crate::node::NodeRef;
use crate::pager::PageSource;

/// Iterator over `(key, value)` of a tree, ascending, from a start bound to an end bound. A
/// corrupt page ends the iteration with one `Err`.
pub(crate) struct Cursor<'a> {
    src: &'a PageSource,
    /// Branches from the root down to the leaf's parent, each with the index of the child taken.
    path: Vec<(NodeView<'a>, usize)>,
    /// The leaf and the index of the next entry; `None` at the end.
    leaf: Option<(NodeView<'a>, usize)>,
    end: Bound<Bytes>,
    /// An error to yield before ending (the seek failed).
    pending_error: Option<crate::BtreeError>,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(
        src: &'a PageSource,
        root: Option<&'a NodeRef>,
        start: Bound<&[u8]>,
        end: Bound<Bytes>,
    ) -> Self {
        let mut cursor = Cursor {
            src,
            path: Vec::new(),
            leaf: None,
            end,
            pending_error: None,
        };
        if let Some(root) = root {
            if let Err(error) = cursor.seek(root, start) {
                cursor.leaf = None;
                cursor.pending_error = Some(error);
            }
        }
        cursor
    }

    fn seek(&mut self, root: &'a NodeRef, start: Bound<&[u8]>) -> Result<()> {
        let mut node = NodeView::load(self.src, root)?;
        while !node.is_leaf() {
            if self.path.len() + 1 >= DEPTH_MAX {
                return Err(too_deep(self.src, &node));
            }
            let i = match start {
                Bound::Unbounded => 0,
                Bound::Included(key) | Bound::Excluded(key) => node.child_index(self.src, key)?,
            };
            self.path.push((node, i));
            node = node.child(self.src, i)?;
        }
        let i = match start {
            Bound::Unbounded => 0,
            Bound::Included(key) => node.lower_bound(self.src, key, true)?,
            Bound::Excluded(key) => node.lower_bound(self.src, key, false)?,
        };
        if i < node.count() {
            self.leaf = Some((node, i));
            Ok(())
        } else {
            // Every entry of this leaf is below the start: the answer is in the next leaf.
            self.next_leaf()
        }
    }

    fn descend_leftmost(&mut self, mut node: NodeView<'a>) -> Result<()> {
        while !node.is_leaf() {
            if self.path.len() + 1 >= DEPTH_MAX {
                return Err(too_deep(self.src, &node));
            }
            self.path.push((node, 0));
            node = node.child(self.src, 0)?;
        }
        self.leaf = Some((node, 0));
        Ok(())
    }

    /// Moves to the first entry of the next leaf, or to the end.
    fn next_leaf(&mut self) -> Result<()> {
        self.leaf = None;
        while let Some((branch, i)) = self.path.pop() {
            if i < branch.count() {
                self.path.push((branch, i + 1));
                let child = branch.child(self.src, i + 1)?;
                return self.descend_leftmost(child);
            }
        }
        Ok(())
    }

    fn step(&mut self) -> Result<Option<(&'a [u8], Value<'a>)>> {
        let Some((leaf, i)) = self.leaf else {
            return Ok(None);
        };
        let key = leaf.key(self.src, i)?;
        let past_end = match &self.end {
            Bound::Unbounded => false,
            Bound::Included(end) => key > &end[..],
            Bound::Excluded(end) => key >= &end[..],
        };
        if past_end {
            self.leaf = None;
            return Ok(None);
        }
        let value = leaf.value(self.src, i)?;
        if i + 1 < leaf.count() {
            self.leaf = Some((leaf, i + 1));
        } else {
            self.next_leaf()?;
        }
        Ok(Some((key, value)))
    }
}

impl<'a> Iterator for Cursor<'a> {
    type Item = Result<(&'a [u8], Value<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(error) = self.pending_error.take() {
            return Some(Err(error));
        }
        match self.step() {
            Ok(entry) => entry.map(Ok),
            Err(error) => {
                self.leaf = None;
                self.path.clear();
                Some(Err(error))
            }
        }
    }
}
