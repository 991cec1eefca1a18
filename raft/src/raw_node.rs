//! [`RawNode`]: the public face of the state machine. Calls in, [`Ready`] out, with
//! asynchronous persistence tracked by Ready number (as raft-rs `on_persist_ready`).

use std::collections::VecDeque;

use bytes::Bytes;
use tracing::debug;

use crate::conf_change::{ConfChange, ConfChangeKind};
use crate::config::Config;
use crate::errors::{ProposeError, RaftError};
use crate::message::{Message, MessageKind};
use crate::raft::Raft;
use crate::ready::Ready;
use crate::role::leader;
use crate::status::{ProgressStatus, Status};
use crate::storage::LogStorage;
use crate::types::{
    ConfState, Entry, EntryKind, HardState, LogIndex, NodeId, Role, SnapshotStatus, SoftState, Term,
};

/// What a handed-out Ready asked to persist, to mark durable once it is.
#[derive(Clone, Copy, Debug)]
struct Unpersisted {
    number: u64,
    /// (index, term) of the Ready's last entry.
    last_entry: Option<(LogIndex, Term)>,
    snapshot_index: Option<LogIndex>,
}

/// Maximum Readies handed out but not yet persisted. The server persists in order and
/// should never be this far behind; the bound keeps memory finite if it is.
const UNPERSISTED_READIES_MAX: usize = 4096;

/// A Raft node driven by its caller. See the crate docs for the loop contract.
pub struct RawNode<S: LogStorage> {
    raft: Raft<S>,
    prev_soft_state: SoftState,
    prev_hard_state: HardState,
    /// Number of the last Ready handed out (0 before the first).
    ready_number: u64,
    unpersisted: VecDeque<Unpersisted>,
    ready_committed_size_bytes_max: u64,
}

impl<S: LogStorage> RawNode<S> {
    /// Restores a node from `storage` (hard state, membership, log) as a follower.
    pub fn new(config: &Config, storage: S) -> Result<Self, RaftError> {
        config.validate()?;
        let raft = Raft::new(config, storage)?;
        Ok(RawNode {
            prev_soft_state: raft.soft_state(),
            prev_hard_state: raft.hard_state(),
            raft,
            ready_number: 0,
            unpersisted: VecDeque::new(),
            ready_committed_size_bytes_max: config.ready_committed_size_bytes_max,
        })
    }

    /// For a brand-new group only (empty storage): appends one committed `AddNode` entry per
    /// peer at term 1, as etcd's StartNode. They appear in the next Ready as entries to
    /// persist, then as committed entries that the server applies with
    /// [`RawNode::apply_conf_change`] (idempotent here: the membership is already set).
    pub fn bootstrap(&mut self, peers: &[NodeId]) -> Result<(), RaftError> {
        let changes: Vec<ConfChange> = peers
            .iter()
            .map(|&id| ConfChange::new(ConfChangeKind::AddNode, id))
            .collect();
        self.bootstrap_with(&changes)
    }

    /// As [`RawNode::bootstrap`], with the application's own conf changes
    /// (etcd puts each member's attributes in the context): one entry per
    /// change at term 1, committed, in the given order.
    pub fn bootstrap_with(&mut self, changes: &[ConfChange]) -> Result<(), RaftError> {
        if changes.is_empty() {
            return Err(RaftError::NoPeers);
        }
        let last_index = self.raft.log.last_index();
        if last_index != LogIndex(0) || !self.raft.hard_state().is_empty() {
            return Err(RaftError::NotEmpty { last_index });
        }
        let changes = changes.to_vec();
        for cc in &changes {
            if cc.node_id == NodeId(0) {
                return Err(RaftError::ConfChangeInvalid {
                    reason: "peer id 0".to_string(),
                });
            }
        }
        self.raft.become_follower(Term(1), None);
        let entries: Vec<Entry> = changes
            .iter()
            .enumerate()
            .map(|(i, cc)| Entry {
                term: Term(1),
                index: LogIndex(i as u64 + 1),
                kind: EntryKind::ConfChange,
                data: cc.encode(),
            })
            .collect();
        self.raft.log.append(&entries);
        self.raft.log.commit_to(LogIndex(entries.len() as u64));
        for cc in &changes {
            self.raft.apply_conf_change(cc)?;
        }
        Ok(())
    }

    /// Advances logical time by one tick (election and heartbeat timers).
    pub fn tick(&mut self) {
        self.raft.tick();
    }

    /// Starts an election now (with pre-vote if configured).
    pub fn campaign(&mut self) -> Result<(), RaftError> {
        crate::role::candidate::hup(&mut self.raft, false)
    }

    /// Proposes `data` as a normal entry. Ok means appended (leader) or forwarded (follower);
    /// it may still be lost and never commit: the server times out and retries.
    pub fn propose(&mut self, data: Bytes) -> Result<(), ProposeError> {
        self.raft.propose(vec![Entry {
            kind: EntryKind::Normal,
            data,
            ..Entry::default()
        }])
    }

    /// Proposes a membership change (one at a time; see [`ProposeError::ConfChangePending`]).
    pub fn propose_conf_change(&mut self, cc: ConfChange) -> Result<(), ProposeError> {
        let data = cc.encode();
        self.raft.propose(vec![Entry {
            kind: EntryKind::ConfChange,
            data,
            ..Entry::default()
        }])
    }

    /// Applies a committed conf change; returns the new membership to persist with the
    /// applied state. An invalid change is refused identically on every member.
    pub fn apply_conf_change(&mut self, cc: &ConfChange) -> Result<ConfState, RaftError> {
        self.raft.apply_conf_change(cc)
    }

    /// Requests a linearizable read; the answer comes as a `ReadState` carrying
    /// `request_ctx` in a later Ready. Dropped without an answer when no leader is known
    /// or leadership changes meanwhile: the server times out and retries.
    pub fn read_index(&mut self, request_ctx: Bytes) {
        self.raft.read_index(request_ctx);
    }

    /// Feeds a message from a peer. Invalid messages are refused with an error and leave the
    /// state unchanged; nothing a peer sends makes this panic.
    pub fn step(&mut self, msg: Message) -> Result<(), RaftError> {
        self.validate(&msg)?;
        self.raft.step(msg)
    }

    fn validate(&self, m: &Message) -> Result<(), RaftError> {
        if m.to != self.raft.id {
            return Err(RaftError::NotAddressedToMe {
                kind: m.kind,
                from: m.from,
                to: m.to,
                id: self.raft.id,
            });
        }
        let invalid = |reason: String| RaftError::InvalidMessage {
            kind: m.kind,
            from: m.from,
            term: m.term,
            reason,
        };
        if m.from == NodeId(0) {
            return Err(invalid("sender id 0".to_string()));
        }
        let term_free = matches!(m.kind, MessageKind::Propose | MessageKind::ReadIndex);
        if !term_free && m.term == Term(0) {
            return Err(invalid("term 0".to_string()));
        }
        match m.kind {
            MessageKind::Append => validate_append(m).map_err(invalid),
            MessageKind::Snapshot => validate_snapshot(m).map_err(invalid),
            _ => Ok(()),
        }
    }

    /// Starts handing leadership to `to` (on the leader; forwarded by a follower).
    pub fn transfer_leader(&mut self, to: NodeId) {
        self.raft.transfer_leader(to);
    }

    /// The transport could not reach `id`: the leader falls back to probing it.
    pub fn report_unreachable(&mut self, id: NodeId) {
        if self.raft.role == Role::Leader {
            leader::report_unreachable(&mut self.raft, id);
        }
    }

    /// Outcome of sending a snapshot to `id`.
    pub fn report_snapshot(&mut self, id: NodeId, status: SnapshotStatus) {
        if self.raft.role == Role::Leader {
            leader::report_snapshot(&mut self.raft, id, status);
        }
    }

    /// True when [`RawNode::ready`] has something to hand out.
    pub fn has_ready(&self) -> bool {
        let r = &self.raft;
        r.soft_state() != self.prev_soft_state
            || r.hard_state() != self.prev_hard_state
            || r.log.unstable.snapshot_to_persist().is_some()
            || !r.log.unstable.entries_to_persist().is_empty()
            || !r.msgs.is_empty()
            || !r.msgs_after_persist.is_empty()
            || !r.read_states.is_empty()
            || r.log.has_next_committed_entries()
    }

    /// Hands out everything pending as one [`Ready`]. Call `on_persisted(ready.number)` once
    /// its hard state, entries and snapshot are durable and in the `LogStorage`.
    ///
    /// # Panics
    /// If the `LogStorage` fails to return committed entries it holds (a broken disk or a
    /// server bug): Raft cannot go on without its durable log, as in etcd.
    pub fn ready(&mut self) -> Ready {
        self.ready_number += 1;
        let soft_state = self.raft.soft_state();
        let hard_state = self.raft.hard_state();
        let log = &mut self.raft.log;
        let entries = log.unstable.entries_to_persist().to_vec();
        let snapshot = log.unstable.snapshot_to_persist().cloned();
        log.unstable.accept_in_progress();
        let committed_entries = log.next_committed_entries(self.ready_committed_size_bytes_max);
        if let Some(last) = committed_entries.last() {
            log.applying = last.index;
        }
        if let Some(snapshot) = &snapshot {
            log.applying = log.applying.max(snapshot.meta.index);
        }
        self.raft.reduce_uncommitted_size(&committed_entries);
        self.raft.read_only.close_round();
        let must_sync = !entries.is_empty()
            || snapshot.is_some()
            || hard_state.term != self.prev_hard_state.term
            || hard_state.vote != self.prev_hard_state.vote;
        let ready = Ready {
            number: self.ready_number,
            soft_state: (soft_state != self.prev_soft_state).then_some(soft_state),
            hard_state: (hard_state != self.prev_hard_state).then_some(hard_state),
            entries,
            snapshot,
            messages: std::mem::take(&mut self.raft.msgs),
            persisted_messages: std::mem::take(&mut self.raft.msgs_after_persist),
            committed_entries,
            read_states: std::mem::take(&mut self.raft.read_states),
            must_sync,
        };
        self.prev_soft_state = soft_state;
        self.prev_hard_state = hard_state;
        self.track_unpersisted(&ready);
        debug!(
            id = self.raft.id.0,
            number = ready.number,
            entries = ready.entries.len(),
            committed = ready.committed_entries.len(),
            "raft.ready"
        );
        ready
    }

    fn track_unpersisted(&mut self, ready: &Ready) {
        assert!(
            self.unpersisted.len() < UNPERSISTED_READIES_MAX,
            "{} Readies handed out and not persisted: the server stopped calling on_persisted",
            self.unpersisted.len()
        );
        self.unpersisted.push_back(Unpersisted {
            number: ready.number,
            last_entry: ready.entries.last().map(|e| (e.index, e.term)),
            snapshot_index: ready.snapshot.as_ref().map(|s| s.meta.index),
        });
    }

    /// Ready `ready_number` (and every earlier one) is durable and in the `LogStorage`.
    pub fn on_persisted(&mut self, ready_number: u64) {
        while let Some(front) = self.unpersisted.front().copied() {
            if front.number > ready_number {
                break;
            }
            self.unpersisted.pop_front();
            if let Some(index) = front.snapshot_index {
                self.raft.log.unstable.stable_snap_to(index);
                if index <= self.raft.log.committed {
                    self.raft.log.applied_to(index);
                }
            }
            if let Some((index, term)) = front.last_entry {
                self.raft.log.unstable.stable_to(index, term);
            }
        }
        self.raft.on_persisted();
    }

    /// The server applied committed entries up to `applied` (inclusive).
    pub fn advance_apply_to(&mut self, applied: LogIndex) {
        assert!(
            applied <= self.raft.log.applying,
            "advance_apply_to({applied}) beyond the entries handed out ({})",
            self.raft.log.applying
        );
        self.raft.log.applied_to(applied);
    }

    /// A summary of this node.
    pub fn status(&self) -> Status {
        let r = &self.raft;
        let progress = (r.role == Role::Leader).then(|| {
            r.tracker
                .progress
                .iter()
                .map(|(&id, p)| {
                    let status = ProgressStatus {
                        match_index: p.match_index,
                        next_index: p.next_index,
                        state: p.state,
                        is_learner: p.is_learner,
                        recent_active: p.recent_active,
                        inflight_msgs: p.inflights.count(),
                    };
                    (id, status)
                })
                .collect()
        });
        Status {
            id: r.id,
            term: r.term,
            vote: r.vote,
            commit: r.log.committed,
            applied: r.log.applied,
            leader_id: r.leader_id,
            role: r.role,
            last_index: r.log.last_index(),
            progress,
        }
    }

    /// The membership as this node currently knows it.
    pub fn conf_state(&self) -> ConfState {
        self.raft.tracker.config.to_conf_state()
    }

    /// The log storage.
    pub fn storage(&self) -> &S {
        &self.raft.log.storage
    }

    /// The log storage, for the server to write what Readies ask.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.raft.log.storage
    }
}

/// Shape rules of an Append: entries follow `index` contiguously, with terms between
/// `log_term` and the message term, never decreasing.
fn validate_append(m: &Message) -> Result<(), String> {
    let mut expected_index = m.index;
    let mut prev_term = m.log_term;
    if m.log_term > m.term {
        return Err(format!(
            "log_term {} above message term {}",
            m.log_term, m.term
        ));
    }
    for entry in &m.entries {
        expected_index = LogIndex(
            expected_index
                .0
                .checked_add(1)
                .ok_or_else(|| "entry index overflows".to_string())?,
        );
        if entry.index != expected_index {
            return Err(format!(
                "entry index {} where {expected_index} expected",
                entry.index
            ));
        }
        if entry.term < prev_term || entry.term > m.term {
            return Err(format!(
                "entry {} has term {} outside [{prev_term}, {}]",
                entry.index, entry.term, m.term
            ));
        }
        prev_term = entry.term;
    }
    if expected_index.0 == u64::MAX {
        return Err("log index at u64::MAX".to_string());
    }
    Ok(())
}

fn validate_snapshot(m: &Message) -> Result<(), String> {
    let Some(snapshot) = &m.snapshot else {
        return Err("snapshot message without a snapshot".to_string());
    };
    if snapshot.meta.index == LogIndex(0) || snapshot.meta.term == Term(0) {
        return Err("empty snapshot".to_string());
    }
    if snapshot.meta.term > m.term {
        return Err(format!(
            "snapshot term {} above message term {}",
            snapshot.meta.term, m.term
        ));
    }
    if snapshot.meta.index.0 == u64::MAX {
        return Err("snapshot index at u64::MAX".to_string());
    }
    Ok(())
}
