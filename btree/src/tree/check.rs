//! `check_tree`: an O(n) walk that verifies a tree's structural invariants (key order across
//! nodes, separator bounds, node sizes, non-empty nodes, equal leaf depth, entry count) and
//! reports the pages it reaches, for the page accounting check.

use crate::error::{Result, TreeCheckError};
use crate::node::{Body, Item, Layout, MemNode, NodeRef, PageNode, RawItem};
use crate::page::{blob_pages, PageId, HEADER_BYTES};
use crate::pager::PageSource;

use super::{too_deep, NodeView, Tree, DEPTH_MAX};

/// What the walk found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TreeStats {
    pub(crate) entries: u64,
    /// Depth of the leaves (0 for an empty tree).
    pub(crate) depth: usize,
    pub(crate) page_nodes: u64,
    pub(crate) mem_nodes: u64,
}

struct Walk<'a, 'v> {
    src: &'a PageSource,
    layout: Layout,
    stats: TreeStats,
    leaf_depth: Option<usize>,
    last_key: Option<&'a [u8]>,
    visit: &'v mut dyn FnMut(PageId, u64),
}

/// Walks `tree`; `Ok(Err(..))` is a broken invariant, `Err(..)` a page that cannot be read.
/// `visit` gets every page run the tree references (node pages and blobs; nodes in memory
/// have no page).
pub(crate) fn check_tree(
    tree: &Tree,
    src: &PageSource,
    layout: Layout,
    visit: &mut dyn FnMut(PageId, u64),
) -> Result<Result<TreeStats, TreeCheckError>> {
    let mut walk = Walk {
        src,
        layout,
        stats: TreeStats::default(),
        leaf_depth: None,
        last_key: None,
        visit,
    };
    if let Some(root) = &tree.root {
        if let Err(error) = walk.node(Handle::of(root), 1, None, None)? {
            return Ok(Err(error));
        }
    }
    if walk.stats.entries != tree.len {
        return Ok(Err(TreeCheckError::Len {
            recorded: tree.len,
            counted: walk.stats.entries,
        }));
    }
    walk.stats.depth = walk.leaf_depth.unwrap_or(0);
    Ok(Ok(walk.stats))
}

type Checked = Result<Result<(), TreeCheckError>>;

/// A node to walk: in memory (borrowed from the tree) or a page.
#[derive(Clone, Copy)]
enum Handle<'a> {
    Mem(&'a MemNode),
    Page(PageId),
}

impl<'a> Handle<'a> {
    fn of(node: &'a NodeRef) -> Self {
        match node {
            NodeRef::Mem(mem) => Handle::Mem(mem),
            NodeRef::Page(id) => Handle::Page(*id),
        }
    }
}

impl<'a> Walk<'a, '_> {
    fn visit_item(&mut self, item: &Item) {
        if let Some((first, len_bytes)) = item.blob() {
            (self.visit)(first, blob_pages(len_bytes, self.layout.page_size_bytes));
        }
    }

    fn visit_raw(&mut self, raw: RawItem) {
        if let RawItem::Blob { first, len_bytes } = raw {
            (self.visit)(first, blob_pages(len_bytes, self.layout.page_size_bytes));
        }
    }

    /// Shape rules: fits a page; a non-root leaf holds an entry, a branch two children. Also
    /// reports the node's page and blobs.
    fn shape(&mut self, node: Handle<'a>, view: &NodeView<'a>, depth: usize) -> Checked {
        let entries = if view.is_leaf() {
            view.count()
        } else {
            view.count() + 1
        };
        let size_bytes = match (node, view) {
            (Handle::Page(id), NodeView::Page(page)) => {
                self.stats.page_nodes += 1;
                (self.visit)(id, 1);
                for i in 0..page.count() {
                    let key = page.key(i).map_err(|r| self.src.corrupt(id, r))?;
                    self.visit_raw(key);
                    if page.is_leaf() {
                        let value = page.value(i).map_err(|r| self.src.corrupt(id, r))?;
                        self.visit_raw(value);
                    }
                }
                self.layout.page_size_bytes
            }
            (Handle::Mem(mem), _) => {
                self.stats.mem_nodes += 1;
                match &mem.body {
                    Body::Leaf(leaf) => {
                        for item in leaf.keys.iter().chain(&leaf.values) {
                            self.visit_item(item);
                        }
                    }
                    Body::Branch(branch) => {
                        for item in branch.keys.iter() {
                            self.visit_item(item);
                        }
                    }
                }
                HEADER_BYTES + self.layout.body_bytes(&mem.body)
            }
            (Handle::Page(_), NodeView::Mem(_)) => unreachable!("a page loads as a page view"),
        };
        let reason = if size_bytes > self.layout.page_size_bytes {
            Some("larger than a page")
        } else if view.is_leaf() && entries == 0 {
            Some("empty leaf")
        } else if !view.is_leaf() && entries < 2 {
            Some("branch with fewer than two children")
        } else {
            None
        };
        Ok(match reason {
            Some(reason) => Err(TreeCheckError::Shape {
                depth,
                entries,
                size_bytes,
                reason,
            }),
            None => Ok(()),
        })
    }

    fn leaf_done(&mut self, view: &NodeView<'a>, keys: &[&'a [u8]], depth: usize) -> Checked {
        if let (Some(last), Some(first)) = (self.last_key, keys.first()) {
            if last >= *first {
                return Ok(Err(TreeCheckError::Unordered { depth }));
            }
        }
        self.last_key = keys.last().copied().or(self.last_key);
        self.stats.entries += keys.len() as u64;
        for i in 0..view.count() {
            view.value(self.src, i)?;
        }
        Ok(match self.leaf_depth {
            None => {
                self.leaf_depth = Some(depth);
                Ok(())
            }
            Some(expected) if expected != depth => Err(TreeCheckError::UnevenDepth {
                expected,
                actual: depth,
            }),
            Some(_) => Ok(()),
        })
    }

    fn node(
        &mut self,
        node: Handle<'a>,
        depth: usize,
        lower: Option<&'a [u8]>,
        upper: Option<&'a [u8]>,
    ) -> Checked {
        let view = match node {
            Handle::Mem(mem) => NodeView::Mem(&mem.body),
            Handle::Page(id) => NodeView::Page(PageNode::read(self.src, id)?),
        };
        if depth > DEPTH_MAX {
            return Err(too_deep(self.src, &view));
        }
        if let Err(error) = self.shape(node, &view, depth)? {
            return Ok(Err(error));
        }
        let mut keys = Vec::with_capacity(view.count());
        for i in 0..view.count() {
            let key = view.key(self.src, i)?;
            let below = lower.is_some_and(|lower| key < lower);
            let above = upper.is_some_and(|upper| key >= upper);
            if below || above {
                return Ok(Err(TreeCheckError::OutOfBounds { depth }));
            }
            if keys.last().is_some_and(|&last: &&[u8]| last >= key) {
                return Ok(Err(TreeCheckError::Unordered { depth }));
            }
            keys.push(key);
        }
        if view.is_leaf() {
            return self.leaf_done(&view, &keys, depth);
        }
        for i in 0..=view.count() {
            let child_lower = if i == 0 { lower } else { Some(keys[i - 1]) };
            let child_upper = keys.get(i).copied().or(upper);
            let child = match (node, view) {
                (Handle::Mem(mem), _) => match &mem.body {
                    Body::Branch(branch) => Handle::of(&branch.children[i]),
                    Body::Leaf(_) => unreachable!("a branch"),
                },
                (Handle::Page(id), NodeView::Page(page)) => {
                    Handle::Page(page.child(i).map_err(|r| self.src.corrupt(id, r))?)
                }
                (Handle::Page(_), NodeView::Mem(_)) => unreachable!("a page loads as a page view"),
            };
            if let Err(error) = self.node(child, depth + 1, child_lower, child_upper)? {
                return Ok(Err(error));
            }
        }
        Ok(Ok(()))
    }
}
