//! Log matching (Raft §5.3): if two logs hold an entry with the same index and term, the
//! entries are identical and so are all entries before them.
//!
//! Checked incrementally: whenever a node appends entries (a Ready's `entries`), each new
//! position (index, term) is recorded with the digest of its content and the term of the
//! entry before it in that node's log. A position seen with a different content or a
//! different predecessor term in any log, at any time, is a violation. By induction on the
//! index this proves the whole property: equal (index, term) imply equal predecessors,
//! whose positions were themselves recorded and compared.

use std::collections::HashMap;

use crate::sim::shadow::ShadowLog;
use crate::types::{LogIndex, NodeId, Term};

/// What a position held the first time it was seen.
#[derive(Clone, Copy, Debug)]
struct Position {
    digest: u64,
    prev_term: Term,
    node: NodeId,
}

/// Every (index, term) position ever appended by any node.
#[derive(Clone, Debug, Default)]
pub(crate) struct LogMatching {
    positions: HashMap<(LogIndex, Term), Position>,
}

impl LogMatching {
    /// `node` appended entries from `from` on; `shadow` is its log afterwards.
    pub(crate) fn on_appended(
        &mut self,
        node: NodeId,
        shadow: &ShadowLog,
        from: LogIndex,
    ) -> Result<(), String> {
        let start = from.max(shadow.snapshot_index().next());
        for index in start.0..=shadow.last_index().0 {
            let index = LogIndex(index);
            let Some(id) = shadow.entry(index) else {
                continue;
            };
            let prev_term = shadow.term(index.prev()).unwrap_or_default();
            let seen = *self.positions.entry((index, id.term)).or_insert(Position {
                digest: id.digest,
                prev_term,
                node,
            });
            if seen.digest != id.digest {
                return Err(format!(
                    "{node} and {} hold different entries at {index} in {}",
                    seen.node, id.term
                ));
            }
            if seen.prev_term != prev_term {
                return Err(format!(
                    "{node} and {} both hold {index} in {} but their previous entries differ \
                     ({prev_term} vs {})",
                    seen.node, id.term, seen.prev_term
                ));
            }
        }
        Ok(())
    }
}
