//! ReadIndex bookkeeping on the leader (Raft thesis §6.4), batched by heartbeat round.
//!
//! Every read that arrives while a round is *open* (its heartbeats are not yet handed out in
//! a Ready) joins that round; the first read after the round closes opens the next one,
//! which broadcasts one heartbeat carrying the round number. A follower's acknowledgement of
//! round r was sent after it received heartbeats that left the leader after every read of
//! rounds <= r arrived, so once a quorum acknowledged some round >= r, all reads of round r
//! are safe at the commit index each had on arrival. Worked example: reads A and B arrive in
//! one turn (round 1, one heartbeat broadcast); C arrives next turn (round 2). Acks for round
//! 2 from a majority release A, B and C at once; acks for round 1 release only A and B.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::quorum::joint::JointConfig;
use crate::types::{LogIndex, NodeId};

/// Bytes of a heartbeat context carrying a round number (little-endian u64).
const ROUND_CONTEXT_BYTES: usize = 8;

/// One pending linearizable read.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct ReadRequest {
    /// Leader's commit index when the read arrived (inclusive).
    pub(crate) index: LogIndex,
    /// Who asked (the leader itself, or a follower that forwarded it).
    pub(crate) from: NodeId,
    pub(crate) request_ctx: Bytes,
    /// The heartbeat round that confirms it.
    round: u64,
}

/// Pending reads and per-voter acknowledged rounds.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReadOnly {
    pending: VecDeque<ReadRequest>,
    /// Number of the newest round started (monotonic across leadership changes).
    last_round: u64,
    /// Whether the newest round's heartbeats are still unsent (new reads may join it).
    round_open: bool,
    /// Highest round each node acknowledged in the current term.
    acked_rounds: BTreeMap<NodeId, u64>,
}

impl ReadOnly {
    /// Queues a read. Returns the round number if this read opened a new round: the caller
    /// must then broadcast heartbeats carrying [`ReadOnly::round_context`].
    pub(crate) fn add_request(
        &mut self,
        index: LogIndex,
        from: NodeId,
        request_ctx: Bytes,
    ) -> Option<u64> {
        let mut opened = None;
        if !self.round_open {
            self.last_round += 1;
            self.round_open = true;
            opened = Some(self.last_round);
        }
        self.pending.push_back(ReadRequest {
            index,
            from,
            request_ctx,
            round: self.last_round,
        });
        opened
    }

    /// The open round's heartbeats were handed out: later reads need a new round.
    pub(crate) fn close_round(&mut self) {
        self.round_open = false;
    }

    /// Context for heartbeats: the newest round while reads wait (so periodic heartbeats
    /// retry lost acknowledgements), otherwise empty.
    pub(crate) fn heartbeat_context(&self) -> Bytes {
        if self.pending.is_empty() {
            return Bytes::new();
        }
        round_context(self.last_round)
    }

    /// Records `from`'s acknowledgement of the round in `context` (ignored if malformed).
    pub(crate) fn recv_ack(&mut self, from: NodeId, context: &Bytes) {
        let Some(round) = decode_round(context) else {
            return;
        };
        if round > self.last_round {
            return;
        }
        let acked = self.acked_rounds.entry(from).or_default();
        *acked = (*acked).max(round);
    }

    /// Removes and returns every read confirmed by a quorum of `voters` (`self_id` always
    /// acknowledges the newest round).
    pub(crate) fn advance(&mut self, voters: &JointConfig, self_id: NodeId) -> Vec<ReadRequest> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let confirmed = voters.committed_index(|id| {
            let round = if id == self_id {
                self.last_round
            } else {
                *self.acked_rounds.get(&id)?
            };
            Some(LogIndex(round))
        });
        let mut released = Vec::new();
        while self.pending.front().is_some_and(|r| r.round <= confirmed.0) {
            released.extend(self.pending.pop_front());
        }
        released
    }

    /// Drops all pending reads (leadership lost); rounds stay monotonic.
    pub(crate) fn reset(&mut self) {
        self.pending.clear();
        self.acked_rounds.clear();
        self.round_open = false;
    }

    #[cfg(test)]
    pub(crate) fn pending_count(&self) -> usize {
        self.pending.len()
    }
}

/// Heartbeat context for `round`.
pub(crate) fn round_context(round: u64) -> Bytes {
    Bytes::copy_from_slice(&round.to_le_bytes())
}

fn decode_round(context: &Bytes) -> Option<u64> {
    let bytes: [u8; ROUND_CONTEXT_BYTES] = context.as_ref().try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voters(ids: &[u64]) -> JointConfig {
        JointConfig::new(ids.iter().map(|&i| NodeId(i)))
    }

    // The module docs' worked example: one heartbeat round serves every read of a turn.
    #[test]
    fn one_round_confirms_all_reads_that_joined_it() {
        let mut read_only = ReadOnly::default();
        let config = voters(&[1, 2, 3]);
        assert_eq!(
            read_only.add_request(LogIndex(5), NodeId(1), Bytes::from_static(b"a")),
            Some(1)
        );
        assert_eq!(
            read_only.add_request(LogIndex(6), NodeId(2), Bytes::from_static(b"b")),
            None
        );
        read_only.close_round();
        assert_eq!(
            read_only.add_request(LogIndex(7), NodeId(1), Bytes::from_static(b"c")),
            Some(2)
        );
        assert!(
            read_only.advance(&config, NodeId(1)).is_empty(),
            "leader alone is no quorum"
        );
        read_only.recv_ack(NodeId(3), &round_context(1));
        let released: Vec<LogIndex> = read_only
            .advance(&config, NodeId(1))
            .iter()
            .map(|r| r.index)
            .collect();
        assert_eq!(released, vec![LogIndex(5), LogIndex(6)]);
        read_only.recv_ack(NodeId(2), &round_context(2));
        assert_eq!(read_only.advance(&config, NodeId(1)).len(), 1);
        assert_eq!(read_only.pending_count(), 0);
    }

    // Garbage or future rounds from a peer confirm nothing.
    #[test]
    fn malformed_or_future_acks_are_ignored() {
        let mut read_only = ReadOnly::default();
        let config = voters(&[1, 2, 3]);
        read_only.add_request(LogIndex(5), NodeId(1), Bytes::new());
        read_only.recv_ack(NodeId(2), &Bytes::from_static(b"xyz"));
        read_only.recv_ack(NodeId(3), &round_context(99));
        assert!(read_only.advance(&config, NodeId(1)).is_empty());
        assert_eq!(read_only.heartbeat_context(), round_context(1));
        read_only.reset();
        assert_eq!(read_only.heartbeat_context(), Bytes::new());
    }
}
