//! Durability: an entry acknowledged to a client is never lost.
//!
//! After every step: let i be the highest index whose entry a client was told succeeded.
//! For each voter of the latest applied membership, compute how far its *durable* disk
//! (what survives a crash right now) agrees with the commit log. The voters lacking entry i
//! on disk must not be able to form a quorum; otherwise crashing the others at this instant
//! would let those voters elect a leader without it and lose an acknowledged write. (With
//! one membership change at a time, any quorum of the latest membership overlaps the quorum
//! that committed i; the prefix property of logs makes checking the highest index enough.)

use std::collections::BTreeMap;

use crate::sim::commit_log::CommitLog;
use crate::sim::disk::SimDisk;
use crate::types::{ConfState, LogIndex, NodeId};

/// Acknowledged index, latest membership and each node's durable agreement.
#[derive(Clone, Debug, Default)]
pub(crate) struct Durability {
    acknowledged_max: LogIndex,
    voters: Vec<NodeId>,
    /// Index of the conf change that produced `voters` (0 = bootstrap).
    conf_index: LogIndex,
    /// Per node: last index up to which its durable log agrees with the commit log.
    matched: BTreeMap<NodeId, LogIndex>,
}

impl Durability {
    pub(crate) fn new(voters: &[NodeId]) -> Durability {
        Durability {
            voters: voters.to_vec(),
            ..Durability::default()
        }
    }

    /// A client was told the entry at `index` succeeded.
    pub(crate) fn on_acknowledged(&mut self, index: LogIndex) {
        self.acknowledged_max = self.acknowledged_max.max(index);
    }

    /// Some node applied the conf change at `index`, producing `conf_state`.
    pub(crate) fn on_conf_applied(&mut self, index: LogIndex, conf_state: &ConfState) {
        if index > self.conf_index {
            self.conf_index = index;
            self.voters = conf_state.voters.clone();
        }
    }

    pub(crate) fn acknowledged_max(&self) -> LogIndex {
        self.acknowledged_max
    }

    /// The per-step check over every node's disk.
    pub(crate) fn check<'a>(
        &mut self,
        disks: impl Iterator<Item = (NodeId, &'a mut SimDisk)>,
        commit_log: &CommitLog,
    ) -> Result<(), String> {
        for (node, disk) in disks {
            let matched = self.matched.entry(node).or_default();
            if let Some(changed) = disk.take_changed_from() {
                *matched = (*matched).min(changed.prev());
            }
            *matched = extend_match(*matched, disk, commit_log);
        }
        let index = self.acknowledged_max;
        if index == LogIndex(0) {
            return Ok(());
        }
        let lacking: Vec<NodeId> = self
            .voters
            .iter()
            .copied()
            .filter(|v| self.matched.get(v).copied().unwrap_or_default() < index)
            .collect();
        let quorum = self.voters.len() / 2 + 1;
        if lacking.len() >= quorum {
            return Err(format!(
                "acknowledged entry {index} is durable on too few voters: {lacking:?} of {:?} \
                 lack it and form a quorum",
                self.voters
            ));
        }
        Ok(())
    }
}

/// Advances `matched` while the durable log agrees with the commit log.
fn extend_match(mut matched: LogIndex, disk: &SimDisk, commit_log: &CommitLog) -> LogIndex {
    let image = disk.image();
    let snapshot = &image.snapshot.meta;
    if snapshot.index > matched
        && commit_log
            .get(snapshot.index)
            .is_some_and(|c| c.id.term == snapshot.term)
    {
        matched = snapshot.index;
    }
    loop {
        let next = matched.next();
        let (Some(committed), Some(entry)) = (commit_log.get(next), image.entry(next)) else {
            return matched;
        };
        if committed.id.term != entry.term {
            return matched;
        }
        matched = next;
    }
}
