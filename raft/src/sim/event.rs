//! The event queue: everything that happens in a run is an [`Event`] scheduled at a
//! [`SimTime`]. Events at the same time run in scheduling order (a sequence number breaks
//! ties), so the order never depends on anything but the seed.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::message::Message;
use crate::sim::kv::{ClientId, OpId};
use crate::sim::time::SimTime;
use crate::types::NodeId;

/// Something that happens at a point in time.
#[derive(Clone, Debug)]
pub(crate) enum Event {
    /// A node's clock ticks (and schedules its next tick).
    Tick(NodeId),
    /// A message arrives (unless its link is cut or the receiver is down by then).
    Deliver(Box<Message>),
    /// A node's fsync completes: its first `records` written records are durable. Ignored
    /// if the node crashed since (`incarnation` changed).
    SyncDone {
        node: NodeId,
        incarnation: u64,
        records: u64,
    },
    /// A client wakes up to invoke its next operation.
    ClientWake(ClientId),
    /// A client gives up waiting for an operation.
    ClientTimeout(ClientId, OpId),
    /// The fault scheduler picks its next action.
    Chaos,
    /// Power loss at a node while one of its fsyncs is in flight.
    CrashDuringSync(NodeId),
    /// A crashed node comes back.
    Restart(NodeId),
    /// Every network partition heals.
    Heal,
}

struct Scheduled {
    at: SimTime,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    /// Reversed: the heap pops the earliest (time, sequence) first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Pending events, earliest first.
#[derive(Default)]
pub(crate) struct EventQueue {
    heap: BinaryHeap<Scheduled>,
    next_seq: u64,
}

impl EventQueue {
    pub(crate) fn schedule(&mut self, at: SimTime, event: Event) {
        self.heap.push(Scheduled {
            at,
            seq: self.next_seq,
            event,
        });
        self.next_seq += 1;
    }

    pub(crate) fn pop(&mut self) -> Option<(SimTime, Event)> {
        self.heap.pop().map(|s| (s.at, s.event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Determinism: same-time events pop in the order they were scheduled.
    #[test]
    fn events_pop_by_time_then_scheduling_order() {
        let mut queue = EventQueue::default();
        queue.schedule(SimTime(5), Event::Tick(NodeId(1)));
        queue.schedule(SimTime(3), Event::Tick(NodeId(2)));
        queue.schedule(SimTime(5), Event::Tick(NodeId(3)));
        queue.schedule(SimTime(3), Event::Heal);
        let order: Vec<String> = std::iter::from_fn(|| queue.pop())
            .map(|(at, event)| format!("{}:{event:?}", at.0))
            .collect();
        assert_eq!(
            order,
            vec![
                "3:Tick(NodeId(2))",
                "3:Heal",
                "5:Tick(NodeId(1))",
                "5:Tick(NodeId(3))"
            ]
        );
    }
}
