//! The clients: each a sequential process with at most one operation outstanding, invoking
//! random puts, gets and compare-and-swaps on a handful of keys, and recording every
//! operation that reached a node in the history (see `history.rs`). Put and cas values are
//! unique in a run, so a read names the write it saw. A cas expects the value the client
//! last read (or a random guess), so both outcomes happen.
//!
//! In the final phase the clients stop, and client 0 reads every key once more (retrying
//! until a read completes), so that a lost acknowledged write cannot hide at the end of
//! the history.

use std::collections::{BTreeMap, VecDeque};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::sim::history::Operation;
use crate::sim::kv::{ClientId, Key, KvInput, KvOutput, OpId, KEY_COUNT};
use crate::sim::rng::{SimRng, Stream};
use crate::sim::time::SimTime;
use crate::types::NodeId;

/// Bytes of a read request context: client u32, op u64.
const READ_CONTEXT_BYTES: usize = 12;

/// Operation counts for the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkloadStats {
    /// Operations that reached a node (recorded in the history).
    pub invoked: u64,
    /// Operations answered.
    pub completed: u64,
    /// Operations whose client timed out (indeterminate).
    pub indeterminate: u64,
    /// Requests refused outright (node down, no leader): not in the history.
    pub refused: u64,
    /// Indeterminate writes no node ever executed: they took no effect, and the
    /// linearizability check leaves them out.
    pub never_applied: u64,
    /// Indeterminate writes some node executed: the linearizability check completes them
    /// at their first execution, with its output.
    pub executed_unanswered: u64,
}

/// The operation a client waits for.
#[derive(Clone, Copy, Debug)]
struct Outstanding {
    op: OpId,
    node: NodeId,
    /// Position in the history.
    position: usize,
}

#[derive(Clone, Debug)]
struct Client {
    next_op: u64,
    outstanding: Option<Outstanding>,
    /// Last value read per key (a cas expects it).
    last_read: BTreeMap<Key, Option<u64>>,
    /// Final phase: reads still to do; None while the normal workload runs.
    final_reads: Option<VecDeque<Key>>,
}

/// All clients and the history.
pub(crate) struct Workload {
    clients: Vec<Client>,
    rng: SimRng,
    history: Vec<Operation>,
    /// First execution (time, output) of each write some node executed, by client and op.
    executed: BTreeMap<(ClientId, OpId), (SimTime, KvOutput)>,
    next_value: u64,
    pub(crate) stats: WorkloadStats,
}

impl Workload {
    pub(crate) fn new(seed: u64, clients: usize) -> Workload {
        let client = Client {
            next_op: 1,
            outstanding: None,
            last_read: BTreeMap::new(),
            final_reads: None,
        };
        Workload {
            clients: vec![client; clients],
            rng: SimRng::new(seed, Stream::Workload),
            history: Vec::new(),
            executed: BTreeMap::new(),
            next_value: 1,
            stats: WorkloadStats::default(),
        }
    }

    pub(crate) fn client_ids(&self) -> Vec<ClientId> {
        (0..self.clients.len() as u32).map(ClientId).collect()
    }

    pub(crate) fn history(&self) -> &[Operation] {
        &self.history
    }

    /// Some node executed write `op` of `client` at `now` with `output`.
    pub(crate) fn executed(&mut self, client: ClientId, op: OpId, output: KvOutput, now: SimTime) {
        self.executed.entry((client, op)).or_insert((now, output));
    }

    /// The history to check for linearizability. Every indeterminate write is resolved by
    /// what the nodes did, which is sound because the KV state changes only by executing
    /// applied commands (and the state machine checker ties every application to the
    /// commit log):
    /// - executed by no node: it took no effect anywhere; it is dropped (its "never" case);
    /// - executed: it completes at its first execution, with that execution's output. In a
    ///   correct cluster its commit, which is its place in the log order, precedes every
    ///   execution, so the log order still linearizes the history; the check only gets
    ///   stricter (a read that misses a write some node already executed is caught).
    ///
    /// Without this the search must try every placement of every unanswered write, which
    /// grows exponentially with their number (a few dozen per key already cost 10^7 steps).
    pub(crate) fn history_to_check(&mut self) -> Vec<Operation> {
        let mut checked = Vec::with_capacity(self.history.len());
        let (mut dropped, mut resolved) = (0, 0);
        for op in &self.history {
            let write = !matches!(op.input, KvInput::Get { .. });
            if !write || !op.is_indeterminate() {
                checked.push(*op);
                continue;
            }
            match self.executed.get(&(op.client, op.op)) {
                Some(&(at, output)) => {
                    resolved += 1;
                    checked.push(Operation {
                        output: Some(output),
                        complete: Some(at.max(op.invoke)),
                        ..*op
                    });
                }
                None => dropped += 1,
            }
        }
        self.stats.never_applied = dropped;
        self.stats.executed_unanswered = resolved;
        checked
    }

    fn client(&mut self, id: ClientId) -> &mut Client {
        &mut self.clients[id.0 as usize]
    }

    /// What `client` does next, with the op id it will carry; None if it is done (final
    /// phase) or still waiting.
    pub(crate) fn next_request(&mut self, id: ClientId) -> Option<(OpId, KvInput)> {
        let client = &self.clients[id.0 as usize];
        if client.outstanding.is_some() {
            return None;
        }
        let input = match &client.final_reads {
            Some(reads) => KvInput::Get {
                key: *reads.front()?,
            },
            None => self.random_input(id),
        };
        let client = self.client(id);
        let op = OpId(client.next_op);
        client.next_op += 1;
        Some((op, input))
    }

    fn random_input(&mut self, id: ClientId) -> KvInput {
        let key = Key(self.rng.below(u64::from(KEY_COUNT)) as u8);
        let value = self.next_value;
        match self.rng.below(100) {
            0..=39 => {
                self.next_value += 1;
                KvInput::Put { key, value }
            }
            40..=74 => KvInput::Get { key },
            _ => {
                self.next_value += 1;
                let last = self.clients[id.0 as usize].last_read.get(&key).copied();
                let guess = self.rng.between(1, self.next_value);
                let expected = match last {
                    Some(seen) if !self.rng.chance_per_mille(200) => seen,
                    _ => self.rng.pick(&[None, Some(guess)]).flatten(),
                };
                KvInput::Cas {
                    key,
                    expected,
                    value,
                }
            }
        }
    }

    /// The request reached `node` at `now`: it is in the history from here on.
    pub(crate) fn invoked(
        &mut self,
        id: ClientId,
        op: OpId,
        input: KvInput,
        node: NodeId,
        now: SimTime,
    ) {
        self.stats.invoked += 1;
        let position = self.history.len();
        self.history.push(Operation {
            client: id,
            op,
            input,
            output: None,
            invoke: now,
            complete: None,
        });
        self.client(id).outstanding = Some(Outstanding { op, node, position });
    }

    /// The request never reached a node (refused): it took no effect.
    pub(crate) fn refused(&mut self) {
        self.stats.refused += 1;
    }

    /// `node` answered `op` of `id` with `output`. Returns true if the client was waiting
    /// for exactly that answer from that node (then it is recorded).
    pub(crate) fn answered(
        &mut self,
        id: ClientId,
        op: OpId,
        node: NodeId,
        output: KvOutput,
        now: SimTime,
    ) -> bool {
        let Some(client) = self.clients.get_mut(id.0 as usize) else {
            return false;
        };
        let Some(outstanding) = client.outstanding else {
            return false;
        };
        if outstanding.op != op || outstanding.node != node {
            return false;
        }
        client.outstanding = None;
        let record = &mut self.history[outstanding.position];
        record.output = Some(output);
        record.complete = Some(now);
        if let KvOutput::Get(value) = output {
            let key = record.input.key();
            client.last_read.insert(key, value);
            if let Some(reads) = &mut client.final_reads {
                reads.retain(|k| *k != key);
            }
        }
        self.stats.completed += 1;
        true
    }

    /// The client stops waiting for `op`: it stays in the history as indeterminate.
    /// Returns true if `op` was outstanding.
    pub(crate) fn timed_out(&mut self, id: ClientId, op: OpId) -> bool {
        let client = self.client(id);
        if client.outstanding.map(|o| o.op) != Some(op) {
            return false;
        }
        client.outstanding = None;
        self.stats.indeterminate += 1;
        true
    }

    /// The key a pending read of `op` asks for, if it is the client's outstanding read.
    pub(crate) fn outstanding_read(&self, id: ClientId, op: OpId) -> Option<(NodeId, Key)> {
        let client = self.clients.get(id.0 as usize)?;
        let outstanding = client.outstanding?;
        let record = &self.history[outstanding.position];
        match record.input {
            KvInput::Get { key } if outstanding.op == op => Some((outstanding.node, key)),
            _ => None,
        }
    }

    /// Final phase: no more random operations; client 0 reads every key.
    pub(crate) fn start_final_reads(&mut self) {
        for (i, client) in self.clients.iter_mut().enumerate() {
            let keys = if i == 0 {
                (0..KEY_COUNT).map(Key).collect()
            } else {
                VecDeque::new()
            };
            client.final_reads = Some(keys);
        }
    }

    /// True once no client waits for anything and no final read remains.
    pub(crate) fn is_done(&self) -> bool {
        self.clients.iter().all(|c| {
            c.outstanding.is_none() && c.final_reads.as_ref().is_some_and(VecDeque::is_empty)
        })
    }

    /// True while some client waits for an answer.
    pub(crate) fn has_outstanding(&self) -> bool {
        self.clients.iter().any(|c| c.outstanding.is_some())
    }

    /// Think time before a client's next operation (µs).
    pub(crate) fn think_time_us(&mut self) -> u64 {
        self.rng.between(1, 5_000)
    }

    /// Back-off after a refused request (µs).
    pub(crate) fn backoff_us(&mut self) -> u64 {
        self.rng.between(2_000, 20_000)
    }

    /// A random choice in `[0, bound)` from the workload's stream (target selection).
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        self.rng.below(bound)
    }
}

/// The ReadIndex request context of a read.
pub(crate) fn read_context(client: ClientId, op: OpId) -> Bytes {
    let mut buf = BytesMut::with_capacity(READ_CONTEXT_BYTES);
    buf.put_u32_le(client.0);
    buf.put_u64_le(op.0);
    buf.freeze()
}

/// Decodes [`read_context`]; None for any other bytes.
pub(crate) fn decode_read_context(ctx: &Bytes) -> Option<(ClientId, OpId)> {
    if ctx.len() != READ_CONTEXT_BYTES {
        return None;
    }
    let mut buf = ctx.clone();
    Some((ClientId(buf.get_u32_le()), OpId(buf.get_u64_le())))
}

#[cfg(test)]
mod tests {
    use super::*;

    // A client answers only for its outstanding op at the node it asked.
    #[test]
    fn answers_must_match_the_outstanding_op_and_node() {
        let mut workload = Workload::new(1, 1);
        let client = ClientId(0);
        let (op, input) = workload.next_request(client).expect("idle client");
        workload.invoked(client, op, input, NodeId(2), SimTime(10));
        assert!(workload.next_request(client).is_none());
        let output = match input {
            KvInput::Get { .. } => KvOutput::Get(None),
            KvInput::Put { .. } => KvOutput::Put,
            KvInput::Cas { .. } => KvOutput::Cas(false),
        };
        assert!(!workload.answered(client, op, NodeId(3), output, SimTime(11)));
        assert!(!workload.answered(client, OpId(op.0 + 1), NodeId(2), output, SimTime(11)));
        assert!(workload.answered(client, op, NodeId(2), output, SimTime(12)));
        assert_eq!(workload.history()[0].complete, Some(SimTime(12)));
        assert_eq!(
            decode_read_context(&read_context(client, op)),
            Some((client, op))
        );
    }

    // The final phase ends only when every key was read successfully.
    #[test]
    fn final_reads_cover_every_key() {
        let mut workload = Workload::new(3, 2);
        workload.start_final_reads();
        let mut read = 0;
        while let Some((op, input)) = workload.next_request(ClientId(0)) {
            workload.invoked(ClientId(0), op, input, NodeId(1), SimTime(1));
            assert!(workload.answered(ClientId(0), op, NodeId(1), KvOutput::Get(None), SimTime(2)));
            read += 1;
        }
        assert_eq!(read, usize::from(KEY_COUNT));
        assert!(workload.next_request(ClientId(1)).is_none());
        assert!(workload.is_done());
    }
}
