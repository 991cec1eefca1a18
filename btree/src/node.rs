//! Branch and leaf nodes of the copy-on-write B+tree: search, insert with split, and the
//! borrow/merge steps that keep every non-root node at least half full. Nodes are shared between
//! tree versions through `Arc`; a writer reaches a node mutably only through `Arc::make_mut`,
//! which copies it first when another version still holds it.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::mem;
use std::sync::Arc;

/// A node of a tree whose nodes hold at most `F` entries (leaf) or `F` children (branch).
pub(crate) enum Node<K, V, const F: usize> {
    /// Holds the entries.
    Leaf(Leaf<K, V, F>),
    /// Routes a search to one of its children.
    Branch(Branch<K, V, F>),
}

/// Entries in ascending key order; `keys.len() == values.len()`.
pub(crate) struct Leaf<K, V, const F: usize> {
    pub(crate) keys: Vec<K>,
    pub(crate) values: Vec<V>,
}

/// Separators and children. `keys[i]` separates `children[i]`, whose keys are all `< keys[i]`,
/// from `children[i + 1]`, whose keys are all `>= keys[i]`; `keys.len() + 1 == children.len()`.
pub(crate) struct Branch<K, V, const F: usize> {
    pub(crate) keys: Vec<K>,
    pub(crate) children: Vec<Arc<Node<K, V, F>>>,
}

/// What an insert did to the node it was applied to.
pub(crate) enum Insert<K, V, const F: usize> {
    /// The key was present; its value was replaced and this is the old one.
    Replaced(V),
    /// A new entry was added and the node still fits.
    Inserted,
    /// A new entry was added and the node overflowed: it kept the lower half and `right` holds
    /// the upper half, whose keys are all `>= separator`. The parent must adopt `right`.
    Split {
        separator: K,
        right: Arc<Node<K, V, F>>,
    },
}

/// Vectors are allocated once with room for one entry over the maximum, the transient state
/// between an insert and the split it causes, so an owned node never reallocates.
const fn capacity(fanout_max: usize) -> usize {
    fanout_max + 1
}

/// Fewest entries (leaf) or children (branch) a non-root node may have.
pub(crate) const fn fill_min(fanout_max: usize) -> usize {
    fanout_max / 2
}

/// How many of `fanout_max + 1` entries the left node keeps when a node splits; the right node
/// gets the rest. Both halves are at least `fill_min`.
const fn split_left_len(fanout_max: usize) -> usize {
    capacity(fanout_max) - capacity(fanout_max) / 2
}

fn clone_with_capacity<T: Clone>(items: &[T], fanout_max: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(capacity(fanout_max));
    out.extend_from_slice(items);
    out
}

impl<K: Clone, V: Clone, const F: usize> Clone for Node<K, V, F> {
    fn clone(&self) -> Self {
        match self {
            Node::Leaf(leaf) => Node::Leaf(leaf.clone()),
            Node::Branch(branch) => Node::Branch(branch.clone()),
        }
    }
}

impl<K: Clone, V: Clone, const F: usize> Clone for Leaf<K, V, F> {
    fn clone(&self) -> Self {
        Leaf {
            keys: clone_with_capacity(&self.keys, F),
            values: clone_with_capacity(&self.values, F),
        }
    }
}

impl<K: Clone, V, const F: usize> Clone for Branch<K, V, F> {
    fn clone(&self) -> Self {
        Branch {
            keys: clone_with_capacity(&self.keys, F),
            children: clone_with_capacity(&self.children, F),
        }
    }
}

impl<K, V, const F: usize> Node<K, V, F> {
    /// Entries of a leaf, children of a branch: the quantity the fill rules bound.
    pub(crate) fn fill(&self) -> usize {
        match self {
            Node::Leaf(leaf) => leaf.keys.len(),
            Node::Branch(branch) => branch.children.len(),
        }
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let mut node = self;
        loop {
            match node {
                Node::Branch(branch) => node = &branch.children[branch.child_index(key)],
                Node::Leaf(leaf) => return leaf.search(key).ok().map(|i| &leaf.values[i]),
            }
        }
    }

    pub(crate) fn first(&self) -> Option<(&K, &V)> {
        let mut node = self;
        loop {
            match node {
                Node::Branch(branch) => node = branch.children.first()?,
                Node::Leaf(leaf) => return Some((leaf.keys.first()?, leaf.values.first()?)),
            }
        }
    }

    pub(crate) fn last(&self) -> Option<(&K, &V)> {
        let mut node = self;
        loop {
            match node {
                Node::Branch(branch) => node = branch.children.last()?,
                Node::Leaf(leaf) => return Some((leaf.keys.last()?, leaf.values.last()?)),
            }
        }
    }
}

impl<K: Ord + Clone, V: Clone, const F: usize> Node<K, V, F> {
    pub(crate) fn insert(&mut self, key: K, value: V) -> Insert<K, V, F> {
        match self {
            Node::Leaf(leaf) => leaf.insert(key, value),
            Node::Branch(branch) => branch.insert(key, value),
        }
    }
}

impl<K, V, const F: usize> Leaf<K, V, F> {
    pub(crate) fn with_entry(key: K, value: V) -> Self {
        let mut keys = Vec::with_capacity(capacity(F));
        let mut values = Vec::with_capacity(capacity(F));
        keys.push(key);
        values.push(value);
        Leaf { keys, values }
    }

    /// `Ok(index)` of `key`, or `Err(index)` where it would be inserted.
    pub(crate) fn search<Q>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.keys.binary_search_by(|probe| probe.borrow().cmp(key))
    }

    /// Index of the first entry whose key is `>= key` (`inclusive`) or `> key`; may be `len`.
    pub(crate) fn lower_bound<Q>(&self, key: &Q, inclusive: bool) -> usize
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.keys
            .partition_point(|probe| match probe.borrow().cmp(key) {
                Ordering::Less => true,
                Ordering::Equal => !inclusive,
                Ordering::Greater => false,
            })
    }
}

impl<K: Ord + Clone, V, const F: usize> Leaf<K, V, F> {
    fn insert(&mut self, key: K, value: V) -> Insert<K, V, F> {
        match self.search(&key) {
            Ok(i) => Insert::Replaced(mem::replace(&mut self.values[i], value)),
            Err(i) => {
                self.keys.insert(i, key);
                self.values.insert(i, value);
                if self.keys.len() <= F {
                    return Insert::Inserted;
                }
                let right = self.split();
                Insert::Split {
                    separator: right.keys[0].clone(),
                    right: Arc::new(Node::Leaf(right)),
                }
            }
        }
    }

    /// Moves the upper entries of an overfull leaf into a new right sibling.
    fn split(&mut self) -> Self {
        assert_eq!(
            self.keys.len(),
            F + 1,
            "a leaf splits only when one entry over the maximum"
        );
        let left_len = split_left_len(F);
        let mut keys = Vec::with_capacity(capacity(F));
        let mut values = Vec::with_capacity(capacity(F));
        keys.extend(self.keys.drain(left_len..));
        values.extend(self.values.drain(left_len..));
        Leaf { keys, values }
    }
}

impl<K, V, const F: usize> Branch<K, V, F> {
    pub(crate) fn new_root(
        left: Arc<Node<K, V, F>>,
        separator: K,
        right: Arc<Node<K, V, F>>,
    ) -> Self {
        let mut keys = Vec::with_capacity(capacity(F));
        let mut children = Vec::with_capacity(capacity(F));
        keys.push(separator);
        children.push(left);
        children.push(right);
        Branch { keys, children }
    }

    /// Index of the child whose key interval contains `key`.
    pub(crate) fn child_index<Q>(&self, key: &Q) -> usize
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.keys
            .partition_point(|separator| separator.borrow() <= key)
    }
}

impl<K: Ord + Clone, V: Clone, const F: usize> Branch<K, V, F> {
    fn insert(&mut self, key: K, value: V) -> Insert<K, V, F> {
        let i = self.child_index(&key);
        match Arc::make_mut(&mut self.children[i]).insert(key, value) {
            Insert::Split { separator, right } => {
                self.keys.insert(i, separator);
                self.children.insert(i + 1, right);
                if self.children.len() <= F {
                    return Insert::Inserted;
                }
                let (separator, right) = self.split();
                Insert::Split {
                    separator,
                    right: Arc::new(Node::Branch(right)),
                }
            }
            other => other,
        }
    }

    /// Moves the upper children of an overfull branch into a new right sibling; returns the
    /// separator that moves up to the parent between the two.
    fn split(&mut self) -> (K, Self) {
        assert_eq!(
            self.children.len(),
            F + 1,
            "a branch splits only when one child over the max"
        );
        let left_len = split_left_len(F);
        let mut keys = Vec::with_capacity(capacity(F));
        let mut children = Vec::with_capacity(capacity(F));
        keys.extend(self.keys.drain(left_len..));
        children.extend(self.children.drain(left_len..));
        let separator = self
            .keys
            .pop()
            .expect("a split branch has at least one separator left");
        (separator, Branch { keys, children })
    }

    /// Restores the fill of `children[i]` after a removal left it one under the minimum: borrow
    /// an entry from a sibling that can spare one, else merge with a sibling. The branch itself
    /// may be left under its minimum; its parent repairs that in turn.
    pub(crate) fn rebalance_child(&mut self, i: usize) {
        assert!(
            self.children.len() >= 2,
            "a branch that rebalances has a sibling to use"
        );
        assert_eq!(
            self.children[i].fill(),
            fill_min(F) - 1,
            "only a just-underfull child"
        );
        let spare = |node: &Node<K, V, F>| node.fill() > fill_min(F);
        if i > 0 && spare(&self.children[i - 1]) {
            self.borrow_from_left(i);
        } else if i + 1 < self.children.len() && spare(&self.children[i + 1]) {
            self.borrow_from_right(i);
        } else if i > 0 {
            self.merge_children(i - 1);
        } else {
            self.merge_children(i);
        }
    }

    /// `children[left]` and `children[left + 1]`, both made exclusive (copied if shared).
    fn siblings_mut(&mut self, left: usize) -> (&mut Node<K, V, F>, &mut Node<K, V, F>) {
        let (head, tail) = self.children.split_at_mut(left + 1);
        (Arc::make_mut(&mut head[left]), Arc::make_mut(&mut tail[0]))
    }

    fn borrow_from_left(&mut self, i: usize) {
        let mut separator = self.keys[i - 1].clone();
        match self.siblings_mut(i - 1) {
            (Node::Leaf(left), Node::Leaf(child)) => {
                let key = left.keys.pop().expect("a lending leaf has entries");
                let value = left.values.pop().expect("a lending leaf has values");
                separator = key.clone();
                child.keys.insert(0, key);
                child.values.insert(0, value);
            }
            (Node::Branch(left), Node::Branch(child)) => {
                let moved = left.children.pop().expect("a lending branch has children");
                let up = left.keys.pop().expect("a lending branch has separators");
                child.keys.insert(0, mem::replace(&mut separator, up));
                child.children.insert(0, moved);
            }
            _ => unreachable!("siblings are at the same depth"),
        }
        self.keys[i - 1] = separator;
    }

    fn borrow_from_right(&mut self, i: usize) {
        let mut separator = self.keys[i].clone();
        match self.siblings_mut(i) {
            (Node::Leaf(child), Node::Leaf(right)) => {
                child.keys.push(right.keys.remove(0));
                child.values.push(right.values.remove(0));
                separator = right.keys[0].clone();
            }
            (Node::Branch(child), Node::Branch(right)) => {
                let moved = right.children.remove(0);
                let up = right.keys.remove(0);
                child.keys.push(mem::replace(&mut separator, up));
                child.children.push(moved);
            }
            _ => unreachable!("siblings are at the same depth"),
        }
        self.keys[i] = separator;
    }

    /// Appends `children[left + 1]` to `children[left]` and removes it with its separator.
    fn merge_children(&mut self, left: usize) {
        let separator = self.keys.remove(left);
        let right = self.children.remove(left + 1);
        let target = Arc::make_mut(&mut self.children[left]);
        match Arc::try_unwrap(right) {
            Ok(right) => merge_owned(target, separator, right),
            Err(shared) => merge_shared(target, separator, &shared),
        }
        assert!(
            self.children[left].fill() <= F,
            "a merge never overfills a node"
        );
    }
}

fn merge_owned<K, V, const F: usize>(
    target: &mut Node<K, V, F>,
    separator: K,
    right: Node<K, V, F>,
) {
    match (target, right) {
        (Node::Leaf(left), Node::Leaf(right)) => {
            left.keys.extend(right.keys);
            left.values.extend(right.values);
        }
        (Node::Branch(left), Node::Branch(right)) => {
            left.keys.push(separator);
            left.keys.extend(right.keys);
            left.children.extend(right.children);
        }
        _ => unreachable!("siblings are at the same depth"),
    }
}

fn merge_shared<K: Clone, V: Clone, const F: usize>(
    target: &mut Node<K, V, F>,
    separator: K,
    right: &Node<K, V, F>,
) {
    match (target, right) {
        (Node::Leaf(left), Node::Leaf(right)) => {
            left.keys.extend_from_slice(&right.keys);
            left.values.extend_from_slice(&right.values);
        }
        (Node::Branch(left), Node::Branch(right)) => {
            left.keys.push(separator);
            left.keys.extend_from_slice(&right.keys);
            left.children.extend_from_slice(&right.children);
        }
        _ => unreachable!("siblings are at the same depth"),
    }
}
