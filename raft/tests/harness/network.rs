//! The simulated network: a queue of in-flight messages with optional loss, reordering,
//! duplication and partitions, all decided by a seeded RNG.

use std::collections::BTreeSet;

use keel_raft::{Message, NodeId};

use super::rng::TestRng;

/// Fault settings (percentages).
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    pub drop_percent: u64,
    pub duplicate_percent: u64,
    /// Deliver a random queued message instead of the oldest.
    pub reorder: bool,
}

/// In-flight messages.
#[derive(Debug)]
pub struct Network {
    pub queue: Vec<Message>,
    pub faults: Faults,
    /// Blocked directed links (from, to).
    pub blocked: BTreeSet<(NodeId, NodeId)>,
    rng: TestRng,
}

impl Network {
    pub fn new(seed: u64) -> Network {
        Network {
            queue: Vec::new(),
            faults: Faults::default(),
            blocked: BTreeSet::new(),
            rng: TestRng::new(seed),
        }
    }

    pub fn send(&mut self, messages: Vec<Message>) {
        for m in messages {
            if self.faults.duplicate_percent > 0 && self.rng.chance(self.faults.duplicate_percent) {
                self.queue.push(m.clone());
            }
            self.queue.push(m);
        }
    }

    /// Removes the next message to deliver (None if empty). Dropped messages are returned
    /// as `Err` so the caller can report snapshot failures.
    pub fn next(&mut self) -> Option<Result<Message, Message>> {
        if self.queue.is_empty() {
            return None;
        }
        let index = if self.faults.reorder {
            self.rng.below(self.queue.len() as u64) as usize
        } else {
            0
        };
        let m = self.queue.remove(index);
        let lost = self.blocked.contains(&(m.from, m.to))
            || (self.faults.drop_percent > 0 && self.rng.chance(self.faults.drop_percent));
        Some(if lost { Err(m) } else { Ok(m) })
    }

    /// Takes every queued message addressed to `to`, in order.
    /// Messages on blocked links are dropped.
    pub fn take_for(&mut self, to: NodeId) -> Vec<Message> {
        let (mine, rest): (Vec<Message>, Vec<Message>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|m| m.to == to);
        self.queue = rest;
        mine.into_iter()
            .filter(|m| !self.blocked.contains(&(m.from, m.to)))
            .collect()
    }

    /// Blocks both directions between every node of `a` and every node of `b`.
    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId]) {
        for &x in a {
            for &y in b {
                self.blocked.insert((x, y));
                self.blocked.insert((y, x));
            }
        }
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// Drops every queued message from or to `id` (a crash loses what was on the wire).
    /// Returns the dropped messages (the transport reports lost snapshots).
    pub fn drop_node(&mut self, id: NodeId) -> Vec<Message> {
        let (dropped, kept) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|m| m.from == id || m.to == id);
        self.queue = kept;
        dropped
    }
}
