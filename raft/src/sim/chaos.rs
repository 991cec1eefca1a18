//! The fault scheduler: while the faulty phase runs, a `Chaos` event every
//! `chaos_interval_us` (on average) picks one action: crash a node (often one with written
//! but unsynced records: a crash between "written" and "synced"), crash the leader, cut
//! links (isolate the leader both ways, only outbound, only inbound, a random bipartition,
//! a random one-way link), heal, transfer leadership, change membership, compact a node's
//! log, or cut the power of every node at once. Crashed nodes restart and partitions heal
//! after random delays.

use crate::conf_change::{ConfChange, ConfChangeKind};
use crate::sim::event::Event;
use crate::sim::node::NodeState;
use crate::sim::simulator::Simulator;
use crate::types::NodeId;

/// Longest a crashed node stays down (µs).
const DOWN_US_MAX: u64 = 2_000_000;
/// Longest a partition lasts (µs).
const PARTITION_US_MAX: u64 = 1_500_000;
/// Most entries a compaction leaves behind the snapshot for slow followers (usually at
/// most `CATCH_UP_ENTRIES_FEW`, so that lagging followers need snapshots).
const CATCH_UP_ENTRIES_MAX: u64 = 50;
const CATCH_UP_ENTRIES_FEW: u64 = 5;

impl Simulator {
    pub(crate) fn on_chaos(&mut self) {
        if !self.chaos_on {
            return;
        }
        let interval_us = self.config.settings.chaos_interval_us;
        let next = self.chaos_rng.between(interval_us / 2, interval_us * 3 / 2);
        self.queue.schedule(self.now.after_us(next), Event::Chaos);
        let settings = &self.config.settings;
        let (membership, compaction) = (settings.membership, settings.compaction);
        match self.chaos_rng.below(100) {
            0..=17 => self.crash_random(),
            18..=29 => {
                if let Some(leader) = self.leader() {
                    self.crash(leader);
                }
            }
            30..=41 => self.partition(),
            42..=47 => {
                self.network.heal();
                self.trace.note(self.now, "heal: all links restored");
            }
            48..=57 => self.transfer_leadership(),
            58..=72 if membership => self.change_membership(),
            73..=87 if compaction => self.compact_random(),
            88..=90 => self.power_outage(),
            _ => {}
        }
    }

    fn up_nodes(&self) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.is_up())
            .map(|n| n.id)
            .collect()
    }

    /// Crashes a random up node, preferring one with unsynced writes half of the time.
    fn crash_random(&mut self) {
        let unsynced: Vec<NodeId> = self
            .nodes
            .values()
            .filter(|n| n.is_up() && n.disk.pending_records() > 0)
            .map(|n| n.id)
            .collect();
        let prefer_unsynced = self.chaos_rng.chance_per_mille(500);
        let pool = if prefer_unsynced && !unsynced.is_empty() {
            unsynced
        } else {
            self.up_nodes()
        };
        if let Some(id) = self.chaos_rng.pick(&pool) {
            self.crash(id);
        }
    }

    /// Power loss at `id` (never the last node up); it restarts after a random delay.
    pub(crate) fn crash(&mut self, id: NodeId) {
        if self.up_nodes().len() > 1 {
            self.power_off(id);
        }
    }

    /// The power fails while `id` waits for an fsync: usually at that node alone, sometimes
    /// at every node (the fsync window is where an outage loses acknowledged data).
    pub(crate) fn crash_during_sync(&mut self, id: NodeId) {
        if !self.chaos_on || !self.nodes.get(&id).is_some_and(|n| n.is_up()) {
            return;
        }
        self.faults.crashes_during_sync += 1;
        if self.chaos_rng.chance_per_mille(300) {
            self.power_outage();
        } else {
            self.crash(id);
        }
    }

    /// Every node loses power at once (a rack or datacenter outage): only what each one
    /// synced survives, so an acknowledged write must have been synced on a quorum.
    fn power_outage(&mut self) {
        self.faults.outages += 1;
        self.trace
            .note(self.now, "power outage: every node crashes");
        for id in self.up_nodes() {
            self.power_off(id);
        }
    }

    fn power_off(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let pending = node.disk.pending_records();
        let torn = pending > 0
            && self
                .disk_rng
                .chance_per_mille(self.config.settings.torn_per_mille);
        let kept = if torn {
            self.disk_rng.below(pending as u64 + 1) as usize
        } else {
            0
        };
        node.crash(kept);
        self.faults.crashes += 1;
        self.faults.crashes_unsynced += u64::from(pending > 0);
        self.faults.crashes_torn += u64::from(torn);
        // Often a supervisor restarts the process at once (a vote or entry lost in the
        // crash can then meet a request of the same term); sometimes it stays down long
        // enough to need a snapshot.
        let down_us = match self.chaos_rng.below(10) {
            0..=2 => self.chaos_rng.between(100, 5_000),
            3..=8 => self.chaos_rng.between(5_000, DOWN_US_MAX / 7),
            _ => self.chaos_rng.between(5_000, DOWN_US_MAX),
        };
        self.queue
            .schedule(self.now.after_us(down_us), Event::Restart(id));
        self.trace.note(
            self.now,
            &format!("crash {id}: {pending} unsynced records, {kept} kept"),
        );
    }

    fn partition(&mut self) {
        let all: Vec<NodeId> = self
            .nodes
            .values()
            .filter(|n| n.state != NodeState::Removed)
            .map(|n| n.id)
            .collect();
        let pivot = match self.leader() {
            Some(leader) => leader,
            None => match self.chaos_rng.pick(&all) {
                Some(id) => id,
                None => return,
            },
        };
        let others: Vec<NodeId> = all.iter().copied().filter(|&n| n != pivot).collect();
        let description = match self.chaos_rng.below(5) {
            0 => {
                self.network.cut_links(&[pivot], &others);
                self.network.cut_links(&others, &[pivot]);
                format!("isolate {pivot} both ways")
            }
            1 => {
                self.network.cut_links(&[pivot], &others);
                format!("{pivot} cannot send")
            }
            2 => {
                self.network.cut_links(&others, &[pivot]);
                format!("{pivot} cannot receive")
            }
            3 => {
                let (a, b) = self.bipartition(&all);
                self.network.cut_links(&a, &b);
                self.network.cut_links(&b, &a);
                format!("split {a:?} | {b:?}")
            }
            _ => {
                let Some(to) = self.chaos_rng.pick(&others) else {
                    return;
                };
                self.network.cut_links(&[pivot], &[to]);
                format!("cut link {pivot} -> {to}")
            }
        };
        self.faults.partitions += 1;
        let heal_us = self.chaos_rng.between(50_000, PARTITION_US_MAX);
        self.queue.schedule(self.now.after_us(heal_us), Event::Heal);
        self.trace
            .note(self.now, &format!("partition: {description}"));
    }

    /// A random split of `all` into two non-empty sides.
    fn bipartition(&mut self, all: &[NodeId]) -> (Vec<NodeId>, Vec<NodeId>) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for &id in all {
            if self.chaos_rng.chance_per_mille(500) {
                a.push(id);
            } else {
                b.push(id);
            }
        }
        if a.is_empty() {
            a.extend(b.pop());
        } else if b.is_empty() {
            b.extend(a.pop());
        }
        (a, b)
    }

    fn transfer_leadership(&mut self) {
        let Some(leader) = self.leader() else { return };
        let voters = self.nodes[&leader]
            .raw
            .as_ref()
            .map(|raw| raw.conf_state().voters)
            .unwrap_or_default();
        let others: Vec<NodeId> = voters.into_iter().filter(|&v| v != leader).collect();
        let Some(target) = self.chaos_rng.pick(&others) else {
            return;
        };
        self.faults.transfers += 1;
        self.trace.note(
            self.now,
            &format!("transfer leadership {leader} -> {target}"),
        );
        self.with_node(leader, |n, cx| {
            if let Some(raw) = n.raw.as_mut() {
                raw.transfer_leader(target);
                n.turn(cx);
            }
        });
    }

    /// Proposes one membership change at the leader: add a spare (as learner or voter),
    /// promote or remove a learner, demote or remove a voter (keeping at least two voters).
    fn change_membership(&mut self) {
        let Some(leader) = self.leader() else { return };
        let Some(conf_state) = self.nodes[&leader].raw.as_ref().map(|r| r.conf_state()) else {
            return;
        };
        let spares: Vec<NodeId> = self
            .nodes
            .keys()
            .copied()
            .filter(|id| {
                !conf_state.voters.contains(id)
                    && !conf_state.learners.contains(id)
                    && !self.removed.contains(id)
            })
            .collect();
        let mut options: Vec<ConfChange> = Vec::new();
        for &spare in &spares {
            options.push(ConfChange::new(ConfChangeKind::AddLearner, spare));
            options.push(ConfChange::new(ConfChangeKind::AddNode, spare));
        }
        for &learner in &conf_state.learners {
            options.push(ConfChange::new(ConfChangeKind::AddNode, learner));
            options.push(ConfChange::new(ConfChangeKind::RemoveNode, learner));
        }
        if conf_state.voters.len() > 2 {
            for &voter in &conf_state.voters {
                options.push(ConfChange::new(ConfChangeKind::AddLearner, voter));
                options.push(ConfChange::new(ConfChangeKind::RemoveNode, voter));
            }
        }
        let Some(index) =
            (!options.is_empty()).then(|| self.chaos_rng.below(options.len() as u64) as usize)
        else {
            return;
        };
        let cc = options.swap_remove(index);
        let description = format!("{:?} {}", cc.kind, cc.node_id);
        let accepted = self.with_node(leader, |n, cx| {
            let accepted = n
                .raw
                .as_mut()
                .is_some_and(|raw| raw.propose_conf_change(cc).is_ok());
            n.turn(cx);
            accepted
        });
        if accepted == Some(true) {
            self.faults.conf_changes_proposed += 1;
            self.trace.note(
                self.now,
                &format!("propose conf change {description} at {leader}"),
            );
        }
    }

    fn compact_random(&mut self) {
        let Some(id) = self.chaos_rng.pick(&self.up_nodes()) else {
            return;
        };
        let catch_up_max = if self.chaos_rng.chance_per_mille(800) {
            CATCH_UP_ENTRIES_FEW
        } else {
            CATCH_UP_ENTRIES_MAX
        };
        let catch_up = self.chaos_rng.between(0, catch_up_max);
        let compacted = self.with_node(id, |n, cx| n.compact(catch_up, cx));
        if compacted == Some(true) {
            self.faults.compactions += 1;
            self.trace.note(self.now, &format!("compact {id}"));
        }
    }
}
