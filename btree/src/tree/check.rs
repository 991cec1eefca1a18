//! `BTree::check`: an O(n) walk that verifies the tree's structural invariants (key order,
//! separator bounds, fill factors, equal leaf depth, entry count). For tests and debugging.

use super::BTree;
use crate::node::{fill_min, Node};

/// A broken structural invariant found by [`BTree::check`]. `depth` counts from 1 at the root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeCheckError {
    /// Keys within a node are not strictly ascending.
    #[error("keys out of order in a node at depth {depth}, index {index}")]
    Unordered {
        /// Depth of the node.
        depth: usize,
        /// Index of the first key not greater than its predecessor.
        index: usize,
    },
    /// A key lies outside the interval its parent's separators give the node.
    #[error("key outside its separator bounds in a node at depth {depth}, index {index}")]
    OutOfBounds {
        /// Depth of the node.
        depth: usize,
        /// Index of the offending key.
        index: usize,
    },
    /// A node holds fewer or more entries (leaf) or children (branch) than allowed.
    #[error("node at depth {depth} has fill {fill}, allowed {fill_min}..={fill_max}")]
    Fill {
        /// Depth of the node.
        depth: usize,
        /// Entries (leaf) or children (branch).
        fill: usize,
        /// Lowest fill allowed for this node (root rules differ).
        fill_min: usize,
        /// Highest fill allowed.
        fill_max: usize,
    },
    /// A node's key and value (leaf) or separator and child (branch) counts disagree.
    #[error("node at depth {depth} has {keys} keys for {items} values or children")]
    Shape {
        /// Depth of the node.
        depth: usize,
        /// Keys or separators.
        keys: usize,
        /// Values or children.
        items: usize,
    },
    /// Leaves at different depths.
    #[error("leaf at depth {actual}, expected every leaf at depth {expected}")]
    UnevenDepth {
        /// Depth of the first leaf found.
        expected: usize,
        /// Depth of this leaf.
        actual: usize,
    },
    /// The recorded entry count differs from the entries found.
    #[error("tree records {recorded} entries but holds {counted}")]
    Len {
        /// What `len()` reports.
        recorded: usize,
        /// Entries found by the walk.
        counted: usize,
    },
}

/// Lower bound (inclusive) and upper bound (exclusive) a node's keys must respect.
struct Bounds<'a, K> {
    lower: Option<&'a K>,
    upper: Option<&'a K>,
}

struct Walk {
    leaf_depth: Option<usize>,
    counted: usize,
}

impl<K: Ord, V, const FANOUT_MAX: usize> BTree<K, V, FANOUT_MAX> {
    /// Verifies the structural invariants; O(n). Each violation is a bug in this crate.
    pub fn check(&self) -> Result<(), TreeCheckError> {
        let mut walk = Walk {
            leaf_depth: None,
            counted: 0,
        };
        if let Some(root) = self.root.as_deref() {
            check_node(
                root,
                1,
                &Bounds {
                    lower: None,
                    upper: None,
                },
                &mut walk,
            )?;
        }
        if walk.counted != self.len {
            return Err(TreeCheckError::Len {
                recorded: self.len,
                counted: walk.counted,
            });
        }
        Ok(())
    }
}

fn check_node<K: Ord, V, const F: usize>(
    node: &Node<K, V, F>,
    depth: usize,
    bounds: &Bounds<'_, K>,
    walk: &mut Walk,
) -> Result<(), TreeCheckError> {
    check_fill(node, depth)?;
    match node {
        Node::Leaf(leaf) => {
            if leaf.keys.len() != leaf.values.len() {
                let (keys, items) = (leaf.keys.len(), leaf.values.len());
                return Err(TreeCheckError::Shape { depth, keys, items });
            }
            check_keys(&leaf.keys, depth, bounds)?;
            match walk.leaf_depth {
                None => walk.leaf_depth = Some(depth),
                Some(expected) if expected != depth => {
                    return Err(TreeCheckError::UnevenDepth {
                        expected,
                        actual: depth,
                    });
                }
                Some(_) => {}
            }
            walk.counted += leaf.keys.len();
        }
        Node::Branch(branch) => {
            if branch.keys.len() + 1 != branch.children.len() {
                let (keys, items) = (branch.keys.len(), branch.children.len());
                return Err(TreeCheckError::Shape { depth, keys, items });
            }
            check_keys(&branch.keys, depth, bounds)?;
            for (i, child) in branch.children.iter().enumerate() {
                let lower = if i == 0 {
                    bounds.lower
                } else {
                    Some(&branch.keys[i - 1])
                };
                let upper = branch.keys.get(i).or(bounds.upper);
                check_node(child, depth + 1, &Bounds { lower, upper }, walk)?;
            }
        }
    }
    Ok(())
}

fn check_fill<K, V, const F: usize>(
    node: &Node<K, V, F>,
    depth: usize,
) -> Result<(), TreeCheckError> {
    let fill = node.fill();
    let fill_min = match (depth, node) {
        (1, Node::Leaf(_)) => 1,
        (1, Node::Branch(_)) => 2,
        _ => fill_min(F),
    };
    if fill < fill_min || fill > F {
        return Err(TreeCheckError::Fill {
            depth,
            fill,
            fill_min,
            fill_max: F,
        });
    }
    Ok(())
}

fn check_keys<K: Ord>(
    keys: &[K],
    depth: usize,
    bounds: &Bounds<'_, K>,
) -> Result<(), TreeCheckError> {
    for (index, key) in keys.iter().enumerate() {
        if index > 0 && keys[index - 1] >= *key {
            return Err(TreeCheckError::Unordered { depth, index });
        }
        let below = bounds.lower.is_some_and(|lower| key < lower);
        let above = bounds.upper.is_some_and(|upper| key >= upper);
        if below || above {
            return Err(TreeCheckError::OutOfBounds { depth, index });
        }
    }
    Ok(())
}
