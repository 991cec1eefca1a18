//! Election safety (Raft §5.2, Figure 3): at most one leader is elected in a given term.
//! Every Ready whose soft state says Leader reports (node, term) here; a second node
//! leading a term already led by another is a violation.

use std::collections::BTreeMap;

use crate::types::{NodeId, Term};

/// Leaders seen per term.
#[derive(Clone, Debug, Default)]
pub(crate) struct ElectionSafety {
    leaders: BTreeMap<Term, NodeId>,
}

impl ElectionSafety {
    /// `node` leads `term`.
    pub(crate) fn on_leader(&mut self, node: NodeId, term: Term) -> Result<(), String> {
        let first = *self.leaders.entry(term).or_insert(node);
        if first != node {
            return Err(format!("{node} and {first} both lead {term}"));
        }
        Ok(())
    }

    /// Number of terms that had a leader.
    pub(crate) fn leader_terms(&self) -> usize {
        self.leaders.len()
    }

    /// The highest term with a leader.
    pub(crate) fn max_term(&self) -> Term {
        self.leaders.keys().next_back().copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The checker must fire on the bug it exists for.
    #[test]
    fn a_second_leader_in_a_term_is_reported() {
        let mut election = ElectionSafety::default();
        assert!(election.on_leader(NodeId(1), Term(2)).is_ok());
        assert!(election.on_leader(NodeId(1), Term(2)).is_ok());
        assert!(election.on_leader(NodeId(2), Term(3)).is_ok());
        assert!(election.on_leader(NodeId(3), Term(2)).is_err());
        assert_eq!(election.max_term(), Term(3));
    }
}
