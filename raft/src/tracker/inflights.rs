//! The inflight window of one follower: the last index of each Append message sent but not
//! yet acknowledged, bounded by `inflight_msgs_max` (flow control).

use std::collections::VecDeque;

use crate::types::LogIndex;

/// Sent-but-unacknowledged Appends, oldest first (last entry index of each, increasing).
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Inflights {
    last_indexes: VecDeque<LogIndex>,
    /// Maximum messages in flight (>= 1).
    capacity_msgs: usize,
}

impl Inflights {
    pub(crate) fn new(capacity_msgs: usize) -> Inflights {
        assert!(capacity_msgs > 0, "inflight window needs capacity >= 1");
        Inflights {
            last_indexes: VecDeque::new(),
            capacity_msgs,
        }
    }

    /// Records an Append whose last entry is `last_index`.
    pub(crate) fn add(&mut self, last_index: LogIndex) {
        assert!(
            !self.full(),
            "inflights: add while full ({} msgs)",
            self.capacity_msgs
        );
        if let Some(&newest) = self.last_indexes.back() {
            assert!(
                last_index > newest,
                "inflights: {last_index} not above newest {newest}"
            );
        }
        self.last_indexes.push_back(last_index);
    }

    /// Frees every message whose last index is <= `index` (acknowledged).
    pub(crate) fn free_le(&mut self, index: LogIndex) {
        while self
            .last_indexes
            .front()
            .is_some_and(|&oldest| oldest <= index)
        {
            self.last_indexes.pop_front();
        }
    }

    /// Frees the oldest message (a heartbeat response proves the follower is alive).
    pub(crate) fn free_first_one(&mut self) {
        self.last_indexes.pop_front();
    }

    pub(crate) fn full(&self) -> bool {
        self.last_indexes.len() >= self.capacity_msgs
    }

    pub(crate) fn count(&self) -> usize {
        self.last_indexes.len()
    }

    pub(crate) fn reset(&mut self) {
        self.last_indexes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The window fills at capacity and frees by acknowledgement.
    #[test]
    fn window_fills_and_frees_by_acknowledged_index() {
        let mut inflights = Inflights::new(3);
        for i in [2, 4, 6] {
            inflights.add(LogIndex(i));
        }
        assert!(inflights.full());
        inflights.free_le(LogIndex(4));
        assert_eq!(inflights.count(), 1);
        inflights.free_le(LogIndex(3));
        assert_eq!(inflights.count(), 1);
        inflights.free_first_one();
        assert_eq!(inflights.count(), 0);
        inflights.free_first_one();
        inflights.add(LogIndex(7));
        inflights.reset();
        assert_eq!(inflights.count(), 0);
    }
}
