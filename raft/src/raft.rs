//! The Raft state shared by all roles, term handling and vote granting in [`Raft::step`],
//! role transitions, and the tick-driven timers. Role-specific rules live in `role/`.

use bytes::Bytes;
use tracing::debug;

use crate::conf_change::ConfChange;
use crate::confchange::changer::apply_simple;
use crate::confchange::restore::restore;
use crate::config::Config;
use crate::errors::{ProposeError, RaftError};
use crate::log::RaftLog;
use crate::message::{Message, MessageKind, CAMPAIGN_TRANSFER_CONTEXT};
use crate::read_only::ReadOnly;
use crate::rng::Rng;
use crate::role::{candidate, follower, leader};
use crate::storage::LogStorage;
use crate::tracker::progress::Progress;
use crate::tracker::ProgressTracker;
use crate::types::{
    ConfState, Entry, HardState, LogIndex, NodeId, ReadState, Role, SoftState, Term,
};

/// One node's Raft state machine (everything but the Ready bookkeeping of `RawNode`).
pub(crate) struct Raft<S: LogStorage> {
    pub(crate) id: NodeId,
    pub(crate) term: Term,
    pub(crate) vote: Option<NodeId>,
    pub(crate) log: RaftLog<S>,
    pub(crate) tracker: ProgressTracker,
    pub(crate) role: Role,
    pub(crate) leader_id: Option<NodeId>,
    /// Leadership is being handed to this node; proposals are dropped meanwhile.
    pub(crate) lead_transferee: Option<NodeId>,
    /// Index of the latest conf change appended by this leader (0 if none this term). A new
    /// one is refused until the application applied past it.
    pub(crate) pending_conf_index: LogIndex,
    /// Payload bytes this leader appended that are not yet handed out as committed.
    pub(crate) uncommitted_size_bytes: u64,
    pub(crate) read_only: ReadOnly,
    /// Reads that arrived before this leader committed an entry of its term (thesis §6.4).
    pub(crate) pending_read_index: Vec<Message>,
    pub(crate) read_states: Vec<ReadState>,
    /// Messages that may go out immediately.
    pub(crate) msgs: Vec<Message>,
    /// Messages that may go out only once the current Ready is persisted.
    pub(crate) msgs_after_persist: Vec<Message>,
    /// Ticks since the last election timeout reset (follower/candidate) or check-quorum
    /// round (leader).
    pub(crate) election_elapsed_ticks: u32,
    pub(crate) heartbeat_elapsed_ticks: u32,
    /// This term's election timeout, in `[election_ticks, 2 * election_ticks)`.
    pub(crate) randomized_election_ticks: u32,
    pub(crate) election_ticks: u32,
    pub(crate) heartbeat_ticks: u32,
    pub(crate) msg_size_bytes_max: u64,
    pub(crate) uncommitted_size_bytes_max: u64,
    pub(crate) pre_vote: bool,
    pub(crate) check_quorum: bool,
    rng: Rng,
}

impl<S: LogStorage> Raft<S> {
    /// Restores from `storage` as a follower (config already validated).
    pub(crate) fn new(config: &Config, storage: S) -> Result<Raft<S>, RaftError> {
        let (hard_state, conf_state) = storage.initial_state()?;
        let log = RaftLog::new(storage)?;
        let tracker = restore(&conf_state, log.last_index(), config.inflight_msgs_max)
            .map_err(|reason| RaftError::InconsistentState { reason })?;
        let mut raft = Raft {
            id: config.id,
            term: Term(0),
            vote: None,
            log,
            tracker,
            role: Role::Follower,
            leader_id: None,
            lead_transferee: None,
            pending_conf_index: LogIndex(0),
            uncommitted_size_bytes: 0,
            read_only: ReadOnly::default(),
            pending_read_index: Vec::new(),
            read_states: Vec::new(),
            msgs: Vec::new(),
            msgs_after_persist: Vec::new(),
            election_elapsed_ticks: 0,
            heartbeat_elapsed_ticks: 0,
            randomized_election_ticks: config.election_ticks,
            election_ticks: config.election_ticks,
            heartbeat_ticks: config.heartbeat_ticks,
            msg_size_bytes_max: config.msg_size_bytes_max,
            uncommitted_size_bytes_max: config.uncommitted_size_bytes_max,
            pre_vote: config.pre_vote,
            check_quorum: config.check_quorum,
            rng: Rng::new(config.seed, config.id.0),
        };
        if !hard_state.is_empty() {
            raft.load_hard_state(hard_state)?;
        }
        raft.restore_applied(config.applied)?;
        raft.become_follower(raft.term, None);
        Ok(raft)
    }

    fn load_hard_state(&mut self, hard_state: HardState) -> Result<(), RaftError> {
        let first = self.log.first_index().prev();
        let last = self.log.last_index();
        if hard_state.commit > last {
            return Err(RaftError::InconsistentState {
                reason: format!(
                    "hard state commit {} beyond the log [{first}, {last}]",
                    hard_state.commit
                ),
            });
        }
        // A stored commit below the snapshot is stale, not inconsistent: a snapshot holds
        // only committed entries, and it can become durable after the last hard state did
        // (a commit-only hard state is never synced, so a crash may lose it while a later
        // compaction's snapshot survives). The snapshot index stands (found by the
        // simulator; see tests/regressions.rs).
        self.log.committed = self.log.committed.max(hard_state.commit);
        self.term = hard_state.term;
        self.vote = hard_state.vote;
        Ok(())
    }

    fn restore_applied(&mut self, applied: LogIndex) -> Result<(), RaftError> {
        if applied > self.log.last_index() {
            return Err(RaftError::InconsistentState {
                reason: format!(
                    "applied {applied} beyond last index {}",
                    self.log.last_index()
                ),
            });
        }
        // A commit-only hard state is not synced (must_sync is false), so after a crash the
        // stored commit index may lag what the application durably applied. Applied entries
        // were committed, and entries are synced before they are applied: commit them again.
        self.log.commit_to(applied);
        if applied > self.log.applied {
            self.log.applied_to(applied);
        }
        Ok(())
    }

    pub(crate) fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
        }
    }

    pub(crate) fn soft_state(&self) -> SoftState {
        SoftState {
            leader_id: self.leader_id,
            role: self.role,
        }
    }

    /// Queues `m` from this node. Messages that reveal state which must be durable first
    /// (append acknowledgements, votes, vote requests) wait for the current Ready's
    /// persistence; everything else may go out at once.
    pub(crate) fn send(&mut self, mut m: Message) {
        if m.from == NodeId(0) {
            m.from = self.id;
        }
        match m.kind {
            MessageKind::Vote
            | MessageKind::VoteResponse
            | MessageKind::PreVote
            | MessageKind::PreVoteResponse => {
                assert!(
                    m.term > Term(0),
                    "{:?} to {} must carry a term",
                    m.kind,
                    m.to
                );
            }
            MessageKind::Propose | MessageKind::ReadIndex => {}
            _ => m.term = self.term,
        }
        let after_persist = matches!(
            m.kind,
            MessageKind::AppendResponse | MessageKind::VoteResponse | MessageKind::Vote
        );
        if after_persist {
            self.msgs_after_persist.push(m);
        } else {
            self.msgs.push(m);
        }
    }

    /// Entry point for peer messages (validated by `RawNode::step`).
    pub(crate) fn step(&mut self, m: Message) -> Result<(), RaftError> {
        let term_free = matches!(m.kind, MessageKind::Propose | MessageKind::ReadIndex);
        if !term_free {
            if m.term > self.term {
                if self.ignores_higher_term(&m) {
                    return Ok(());
                }
                self.follow_higher_term(&m);
            } else if m.term < self.term {
                self.answer_lower_term(&m);
                return Ok(());
            }
        }
        match m.kind {
            MessageKind::Vote | MessageKind::PreVote => {
                self.handle_vote_request(&m);
                Ok(())
            }
            _ => match self.role {
                Role::Leader => leader::step(self, m),
                Role::Candidate | Role::PreCandidate => candidate::step(self, m),
                Role::Follower => follower::step(self, m),
            },
        }
    }

    /// Check-quorum lease: while this node hears from a leader, a vote request from a
    /// disruptive node (e.g. one rejoining after a partition) is ignored, unless a leader
    /// transfer forced it.
    fn ignores_higher_term(&self, m: &Message) -> bool {
        if !matches!(m.kind, MessageKind::Vote | MessageKind::PreVote) {
            return false;
        }
        let forced = m.context.as_ref() == CAMPAIGN_TRANSFER_CONTEXT;
        let in_lease = self.check_quorum
            && self.leader_id.is_some()
            && self.election_elapsed_ticks < self.election_ticks;
        if !forced && in_lease {
            debug!(
                id = self.id.0,
                from = m.from.0,
                term = m.term.0,
                "raft.step vote ignored in lease"
            );
            return true;
        }
        false
    }

    fn follow_higher_term(&mut self, m: &Message) {
        match m.kind {
            // A pre-vote does not change our term; neither does a granted pre-vote (the
            // pre-candidate bumps its term itself once it has a quorum).
            MessageKind::PreVote => {}
            MessageKind::PreVoteResponse if !m.reject => {}
            MessageKind::Append | MessageKind::Heartbeat | MessageKind::Snapshot => {
                self.become_follower(m.term, Some(m.from));
            }
            _ => self.become_follower(m.term, None),
        }
    }

    fn answer_lower_term(&mut self, m: &Message) {
        let stale_leader = matches!(m.kind, MessageKind::Append | MessageKind::Heartbeat);
        if (self.check_quorum || self.pre_vote) && stale_leader {
            // A leader cut off by a partition may never hear of the newer term otherwise
            // (we ignore its messages and it ignores our vote requests): tell it.
            self.send(Message::new(MessageKind::AppendResponse, NodeId(0), m.from));
        } else if m.kind == MessageKind::PreVote {
            let mut response = Message::new(MessageKind::PreVoteResponse, NodeId(0), m.from);
            response.term = self.term;
            response.reject = true;
            self.send(response);
        } else {
            debug!(id = self.id.0, from = m.from.0, kind = ?m.kind, "raft.step stale term ignored");
        }
    }

    fn handle_vote_request(&mut self, m: &Message) {
        let pre_vote = m.kind == MessageKind::PreVote;
        let can_vote = self.vote == Some(m.from)
            || (self.vote.is_none() && self.leader_id.is_none())
            || (pre_vote && m.term > self.term);
        let kind = if pre_vote {
            MessageKind::PreVoteResponse
        } else {
            MessageKind::VoteResponse
        };
        let mut response = Message::new(kind, NodeId(0), m.from);
        if can_vote && self.log.is_up_to_date(m.index, m.log_term) {
            debug!(
                id = self.id.0,
                candidate = m.from.0,
                term = m.term.0,
                pre_vote,
                "raft.vote grant"
            );
            response.term = m.term;
            if !pre_vote {
                self.election_elapsed_ticks = 0;
                self.vote = Some(m.from);
            }
        } else {
            response.term = self.term;
            response.reject = true;
        }
        self.send(response);
    }

    pub(crate) fn tick(&mut self) {
        if self.role == Role::Leader {
            self.tick_heartbeat();
        } else {
            self.tick_election();
        }
    }

    fn tick_election(&mut self) {
        self.election_elapsed_ticks += 1;
        if self.promotable() && self.election_elapsed_ticks >= self.randomized_election_ticks {
            self.election_elapsed_ticks = 0;
            if let Err(e) = candidate::hup(self, false) {
                debug!(id = self.id.0, error = %e, "raft.tick election not started");
            }
        }
    }

    fn tick_heartbeat(&mut self) {
        self.heartbeat_elapsed_ticks += 1;
        self.election_elapsed_ticks += 1;
        if self.election_elapsed_ticks >= self.election_ticks {
            self.election_elapsed_ticks = 0;
            if self.check_quorum && !leader::check_quorum_active(self) {
                return;
            }
            if self.lead_transferee.is_some() {
                debug!(id = self.id.0, "raft.transfer aborted: election timeout");
                self.lead_transferee = None;
            }
        }
        if self.heartbeat_elapsed_ticks >= self.heartbeat_ticks {
            self.heartbeat_elapsed_ticks = 0;
            leader::bcast_heartbeat(self);
        }
    }

    /// A voter without a pending snapshot may campaign.
    pub(crate) fn promotable(&self) -> bool {
        self.tracker
            .progress
            .get(&self.id)
            .is_some_and(|p| !p.is_learner)
            && self.log.unstable.snapshot.is_none()
    }

    fn reset(&mut self, term: Term) {
        if term != self.term {
            self.term = term;
            self.vote = None;
        }
        self.leader_id = None;
        self.election_elapsed_ticks = 0;
        self.heartbeat_elapsed_ticks = 0;
        self.randomized_election_ticks = self.election_ticks + self.rng.below(self.election_ticks);
        self.lead_transferee = None;
        self.tracker.reset_votes();
        let next = self.log.last_index().next();
        let durable = self.log.durable_last_index();
        let inflight_msgs_max = self.tracker.inflight_msgs_max;
        for (&id, progress) in self.tracker.progress.iter_mut() {
            let is_learner = progress.is_learner;
            *progress = Progress::new(next, inflight_msgs_max);
            progress.is_learner = is_learner;
            if id == self.id {
                // Invariant 4: the leader's own log counts only once durable.
                progress.match_index = durable;
            }
        }
        self.pending_conf_index = LogIndex(0);
        self.uncommitted_size_bytes = 0;
        self.read_only.reset();
        self.pending_read_index.clear();
    }

    pub(crate) fn become_follower(&mut self, term: Term, leader_id: Option<NodeId>) {
        self.reset(term);
        self.leader_id = leader_id;
        self.role = Role::Follower;
        debug!(id = self.id.0, term = term.0, leader = ?leader_id, "raft.role follower");
    }

    pub(crate) fn become_pre_candidate(&mut self) {
        assert_ne!(
            self.role,
            Role::Leader,
            "leader {} cannot become pre-candidate",
            self.id
        );
        // Pre-vote keeps term and vote: losing it must not disturb anyone.
        self.tracker.reset_votes();
        self.leader_id = None;
        self.role = Role::PreCandidate;
        debug!(
            id = self.id.0,
            term = self.term.0,
            "raft.role pre-candidate"
        );
    }

    pub(crate) fn become_candidate(&mut self) {
        assert_ne!(
            self.role,
            Role::Leader,
            "leader {} cannot become candidate",
            self.id
        );
        self.reset(Term(self.term.0 + 1));
        self.vote = Some(self.id);
        self.role = Role::Candidate;
        debug!(id = self.id.0, term = self.term.0, "raft.role candidate");
    }

    pub(crate) fn become_leader(&mut self) {
        assert_ne!(
            self.role,
            Role::Follower,
            "follower {} cannot become leader",
            self.id
        );
        self.reset(self.term);
        self.leader_id = Some(self.id);
        self.role = Role::Leader;
        if let Some(progress) = self.tracker.progress.get_mut(&self.id) {
            let durable = progress.match_index;
            progress.become_replicate();
            progress.match_index = durable;
            progress.next_index = self.log.last_index().next();
        }
        // Conservatively treat any unapplied entry as a pending conf change.
        self.pending_conf_index = self.log.last_index();
        // The no-op entry of the new term lets earlier entries commit (§5.4.2).
        let appended = leader::append_entries(self, vec![Entry::default()]);
        assert!(
            appended.is_ok(),
            "leader {}: empty entry refused: {appended:?}",
            self.id
        );
        debug!(id = self.id.0, term = self.term.0, "raft.role leader");
    }

    /// Local proposal: appended by a leader, forwarded by a follower that knows a leader.
    pub(crate) fn propose(&mut self, entries: Vec<Entry>) -> Result<(), ProposeError> {
        match self.role {
            Role::Leader => leader::propose(self, entries),
            Role::Candidate | Role::PreCandidate => Err(ProposeError::NoLeader),
            Role::Follower => {
                let leader_id = self.leader_id.ok_or(ProposeError::NoLeader)?;
                let mut m = Message::new(MessageKind::Propose, NodeId(0), leader_id);
                m.entries = entries;
                self.send(m);
                Ok(())
            }
        }
    }

    /// Local linearizable read request.
    pub(crate) fn read_index(&mut self, request_ctx: Bytes) {
        match self.role {
            Role::Leader => leader::read_index(self, self.id, request_ctx),
            Role::Follower => match self.leader_id {
                Some(leader_id) => {
                    let mut m = Message::new(MessageKind::ReadIndex, NodeId(0), leader_id);
                    m.context = request_ctx;
                    self.send(m);
                }
                None => debug!(id = self.id.0, "raft.read_index dropped: no leader"),
            },
            Role::Candidate | Role::PreCandidate => {
                debug!(
                    id = self.id.0,
                    "raft.read_index dropped: election in progress"
                );
            }
        }
    }

    /// Local leadership transfer request.
    pub(crate) fn transfer_leader(&mut self, transferee: NodeId) {
        match (self.role, self.leader_id) {
            (Role::Leader, _) => leader::transfer_leader(self, transferee),
            (Role::Follower, Some(leader_id)) => {
                let m = Message::new(MessageKind::TransferLeader, transferee, leader_id);
                self.send(m);
            }
            _ => debug!(id = self.id.0, "raft.transfer dropped: no leader"),
        }
    }

    /// The Ready holding entries up to the log's durable index was persisted.
    pub(crate) fn on_persisted(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let durable = self.log.durable_last_index();
        let updated = self
            .tracker
            .progress
            .get_mut(&self.id)
            .is_some_and(|p| p.maybe_update(durable));
        if updated && leader::maybe_commit(self) {
            leader::on_commit_advanced(self);
        }
    }

    /// Committed entries were handed out: they no longer count as uncommitted.
    pub(crate) fn reduce_uncommitted_size(&mut self, entries: &[Entry]) {
        if self.role != Role::Leader {
            return;
        }
        let size_bytes: u64 = entries.iter().map(Entry::payload_size_bytes).sum();
        self.uncommitted_size_bytes = self.uncommitted_size_bytes.saturating_sub(size_bytes);
    }

    /// Applies a committed membership change (every member applies the same sequence).
    pub(crate) fn apply_conf_change(&mut self, cc: &ConfChange) -> Result<ConfState, RaftError> {
        let changed = apply_simple(&self.tracker, cc, self.log.last_index())
            .map_err(|reason| RaftError::ConfChangeInvalid { reason })?;
        self.tracker.config = changed.config;
        self.tracker.progress = changed.progress;
        debug!(id = self.id.0, kind = ?cc.kind, node = cc.node_id.0, "raft.conf_change applied");
        if self.role == Role::Leader {
            self.after_leader_conf_change();
        }
        Ok(self.tracker.config.to_conf_state())
    }

    fn after_leader_conf_change(&mut self) {
        if !self.tracker.is_voter(self.id) {
            // Removed or demoted: the change is committed, so the rest of the group can
            // elect a leader without us (thesis §4.2.2).
            debug!(
                id = self.id.0,
                "raft.conf_change: leader no longer a voter, stepping down"
            );
            self.become_follower(self.term, None);
            return;
        }
        if let Some(transferee) = self.lead_transferee {
            if !self.tracker.is_voter(transferee) {
                self.lead_transferee = None;
            }
        }
        // The quorum changed: commit and pending reads may advance.
        if leader::maybe_commit(self) {
            leader::on_commit_advanced(self);
        } else {
            for id in self.tracker.member_ids() {
                if id != self.id {
                    leader::maybe_send_append(self, id, false);
                }
            }
        }
        leader::release_confirmed_reads(self);
    }
}
