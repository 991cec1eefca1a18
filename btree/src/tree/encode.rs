//! Checkpoint encoding: `Encoder` turns the in-memory nodes of a tree into pages (children
//! first, so a branch knows its children's pages), and `adopt_written` swaps written nodes for
//! their pages once the checkpoint is durable, so memory holds only what changed since.

use std::sync::Arc;

use crate::freelist::Allocator;
use crate::node::{self, Body, Layout, NodeRef, PageWrite};
use crate::page::{blob_pages, PageId, TxnId};

/// Encodes nodes for checkpoint `txn`, allocating their pages.
pub(crate) struct Encoder<'a> {
    pub(crate) layout: Layout,
    pub(crate) txn: TxnId,
    pub(crate) allocator: &'a mut Allocator,
    pub(crate) writes: Vec<PageWrite>,
    /// Node pages encoded.
    pub(crate) node_count: u64,
    /// Blob pages written.
    pub(crate) blob_page_count: u64,
}

impl<'a> Encoder<'a> {
    pub(crate) fn new(layout: Layout, txn: TxnId, allocator: &'a mut Allocator) -> Self {
        Encoder {
            layout,
            txn,
            allocator,
            writes: Vec::new(),
            node_count: 0,
            blob_page_count: 0,
        }
    }

    /// The page of `node`: its own if on a page or written before, else a new one.
    pub(crate) fn encode(&mut self, node: &NodeRef) -> PageId {
        let mem = match node {
            NodeRef::Page(id) => return *id,
            NodeRef::Mem(mem) => mem,
        };
        if let Some(written) = mem.written() {
            return written.page();
        }
        let children: Vec<PageId> = match &mem.body {
            Body::Branch(branch) => branch.children.iter().map(|c| self.encode(c)).collect(),
            Body::Leaf(_) => Vec::new(),
        };
        let page = self.allocator.allocate(1);
        let page_size_bytes = self.layout.page_size_bytes;
        let txn = self.txn;
        let allocator = &mut *self.allocator;
        let writes = &mut self.writes;
        let blob_page_count = &mut self.blob_page_count;
        let bytes = node::encode(self.layout, mem, page, &children, txn, |data| {
            let pages = blob_pages(data.len() as u64, page_size_bytes);
            let first = allocator.allocate(pages);
            let bytes = node::blob_encode(page_size_bytes, first, txn, data);
            writes.push(PageWrite { first, bytes });
            *blob_page_count += pages;
            first
        });
        self.writes.push(PageWrite { first: page, bytes });
        self.node_count += 1;
        page
    }
}

/// Replaces written in-memory nodes under `node` by their pages (copying unwritten branches a
/// reader shares, to change their child references). Call once the checkpoint that wrote them
/// is durable.
pub(crate) fn adopt_written(node: &mut NodeRef) {
    let NodeRef::Mem(mem) = node else {
        return;
    };
    if let Some(written) = mem.written() {
        *node = NodeRef::Page(written.page());
        return;
    }
    let Body::Branch(branch) = &mem.body else {
        return;
    };
    let has_memory_children = branch
        .children
        .iter()
        .any(|child| matches!(child, NodeRef::Mem(_)));
    if !has_memory_children {
        return;
    }
    if Arc::get_mut(mem).is_none() {
        *mem = Arc::new(mem.copy_for_write());
    }
    let mem = Arc::get_mut(mem).expect("made exclusive above");
    let Body::Branch(branch) = &mut mem.body else {
        unreachable!("checked above")
    };
    for child in &mut branch.children {
        adopt_written(child);
    }
}
