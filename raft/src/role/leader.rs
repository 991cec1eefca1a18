//! Leader rules: proposals, replication with flow control, the commit rule, heartbeats,
//! check-quorum, ReadIndex, leadership transfer and snapshot/unreachable reports.

use bytes::Bytes;
use tracing::debug;

use crate::conf_change::ConfChange;
use crate::confchange::changer::apply_simple;
use crate::errors::{ProposeError, RaftError};
use crate::message::{Message, MessageKind};
use crate::raft::Raft;
use crate::storage::LogStorage;
use crate::tracker::progress::ProgressState;
use crate::types::{Entry, EntryKind, LogIndex, NodeId, ReadState, SnapshotStatus};

/// Leader's handling of a peer message at its current term.
pub(crate) fn step<S: LogStorage>(r: &mut Raft<S>, m: Message) -> Result<(), RaftError> {
    match m.kind {
        MessageKind::Propose => {
            if let Err(e) = propose(r, m.entries) {
                debug!(id = r.id.0, from = m.from.0, error = %e, "raft.propose forwarded dropped");
            }
        }
        MessageKind::ReadIndex => read_index(r, m.from, m.context),
        MessageKind::AppendResponse => handle_append_response(r, &m)?,
        MessageKind::HeartbeatResponse => handle_heartbeat_response(r, &m),
        MessageKind::TransferLeader => transfer_leader(r, m.from),
        _ => debug!(id = r.id.0, from = m.from.0, kind = ?m.kind, "raft.leader ignored"),
    }
    Ok(())
}

/// Appends a proposal and replicates it.
pub(crate) fn propose<S: LogStorage>(
    r: &mut Raft<S>,
    entries: Vec<Entry>,
) -> Result<(), ProposeError> {
    if !r.tracker.progress.contains_key(&r.id) {
        return Err(ProposeError::NotAMember);
    }
    if let Some(transferee) = r.lead_transferee {
        return Err(ProposeError::LeaderTransferring { transferee });
    }
    let conf_changes = entries
        .iter()
        .filter(|e| e.kind == EntryKind::ConfChange)
        .count();
    if conf_changes > 0 {
        check_conf_change_proposal(r, &entries, conf_changes)?;
    }
    append_entries(r, entries)?;
    if conf_changes > 0 {
        r.pending_conf_index = r.log.last_index();
    }
    bcast_append(r);
    Ok(())
}

/// One change at a time (Raft thesis §4.1): the previous one must be applied, and the new
/// one must be valid against the current membership.
fn check_conf_change_proposal<S: LogStorage>(
    r: &Raft<S>,
    entries: &[Entry],
    conf_changes: usize,
) -> Result<(), ProposeError> {
    if r.pending_conf_index > r.log.applied || conf_changes > 1 {
        return Err(ProposeError::ConfChangePending {
            pending_index: r.pending_conf_index,
            applied: r.log.applied,
        });
    }
    for entry in entries.iter().filter(|e| e.kind == EntryKind::ConfChange) {
        let cc = ConfChange::decode(&entry.data).map_err(|e| ProposeError::ConfChangeInvalid {
            reason: e.to_string(),
        })?;
        apply_simple(&r.tracker, &cc, r.log.last_index())
            .map_err(|reason| ProposeError::ConfChangeInvalid { reason })?;
    }
    Ok(())
}

/// Stamps `entries` with this term and the next indexes, checks the uncommitted-size limit
/// and appends them to the (unstable) log. The leader's own progress advances only when the
/// entries are persisted (invariant 4).
pub(crate) fn append_entries<S: LogStorage>(
    r: &mut Raft<S>,
    mut entries: Vec<Entry>,
) -> Result<(), ProposeError> {
    let last_index = r.log.last_index();
    for (offset, entry) in entries.iter_mut().enumerate() {
        entry.term = r.term;
        entry.index = LogIndex(last_index.0 + 1 + offset as u64);
    }
    let size_bytes: u64 = entries.iter().map(Entry::payload_size_bytes).sum();
    if r.uncommitted_size_bytes > 0
        && size_bytes > 0
        && r.uncommitted_size_bytes.saturating_add(size_bytes) > r.uncommitted_size_bytes_max
    {
        return Err(ProposeError::UncommittedSizeExceeded {
            uncommitted_size_bytes: r.uncommitted_size_bytes,
            uncommitted_size_bytes_max: r.uncommitted_size_bytes_max,
        });
    }
    r.uncommitted_size_bytes += size_bytes;
    r.log.append(&entries);
    Ok(())
}

/// Advances commit to the quorum's durable match index, if that entry is of this term.
pub(crate) fn maybe_commit<S: LogStorage>(r: &mut Raft<S>) -> bool {
    let quorum_index = r.tracker.committed();
    r.log.maybe_commit(quorum_index, r.term)
}

/// After commit advanced: reads waiting for this term's first commit may proceed, and
/// followers learn the new commit index.
pub(crate) fn on_commit_advanced<S: LogStorage>(r: &mut Raft<S>) {
    release_pending_read_index(r);
    bcast_append(r);
}

pub(crate) fn bcast_append<S: LogStorage>(r: &mut Raft<S>) {
    for id in r.tracker.member_ids() {
        if id != r.id {
            send_append(r, id);
        }
    }
}

pub(crate) fn send_append<S: LogStorage>(r: &mut Raft<S>, to: NodeId) -> bool {
    maybe_send_append(r, to, true)
}

/// Sends the next Append to `to` if flow control allows (or a snapshot if the entries it
/// needs are released). With `send_if_empty` false, nothing is sent when no entry is due.
pub(crate) fn maybe_send_append<S: LogStorage>(
    r: &mut Raft<S>,
    to: NodeId,
    send_if_empty: bool,
) -> bool {
    let Some(progress) = r.tracker.progress.get(&to) else {
        return false;
    };
    if progress.is_paused() {
        return false;
    }
    let next = progress.next_index;
    let prev_term = r.log.term(next.prev());
    let entries = r.log.entries_from(next, r.msg_size_bytes_max);
    if entries.as_ref().is_ok_and(|e| e.is_empty()) && !send_if_empty {
        return false;
    }
    let (Ok(prev_term), Ok(entries)) = (prev_term, entries) else {
        return send_snapshot(r, to);
    };
    let mut m = Message::new(MessageKind::Append, NodeId(0), to);
    m.index = next.prev();
    m.log_term = prev_term;
    m.commit = r.log.committed;
    if let Some(last) = entries.last() {
        let progress = r
            .tracker
            .progress
            .get_mut(&to)
            .expect("progress checked above");
        progress.sent_entries(last.index);
    }
    m.entries = entries;
    r.send(m);
    true
}

/// The entries `to` needs are released: send the latest snapshot instead.
fn send_snapshot<S: LogStorage>(r: &mut Raft<S>, to: NodeId) -> bool {
    let recent_active = r.tracker.progress.get(&to).is_some_and(|p| p.recent_active);
    if !recent_active {
        debug!(
            id = r.id.0,
            to = to.0,
            "raft.snapshot not sent: follower not recently active"
        );
        return false;
    }
    let request_index = r.log.first_index().prev();
    let snapshot = match r.log.snapshot(request_index) {
        Ok(snapshot) if !snapshot.is_empty() => snapshot,
        Ok(_) => return false,
        Err(e) => {
            debug!(id = r.id.0, to = to.0, error = %e, "raft.snapshot not sent");
            return false;
        }
    };
    let snapshot_index = snapshot.meta.index;
    debug!(
        id = r.id.0,
        to = to.0,
        index = snapshot_index.0,
        "raft.snapshot sent"
    );
    if let Some(progress) = r.tracker.progress.get_mut(&to) {
        progress.become_snapshot(snapshot_index);
    }
    let mut m = Message::new(MessageKind::Snapshot, NodeId(0), to);
    m.snapshot = Some(snapshot);
    r.send(m);
    true
}

pub(crate) fn bcast_heartbeat<S: LogStorage>(r: &mut Raft<S>) {
    let context = r.read_only.heartbeat_context();
    bcast_heartbeat_with_context(r, context);
}

fn bcast_heartbeat_with_context<S: LogStorage>(r: &mut Raft<S>, context: Bytes) {
    let targets: Vec<(NodeId, LogIndex)> = r
        .tracker
        .progress
        .iter()
        .filter(|(&id, _)| id != r.id)
        .map(|(&id, p)| (id, p.match_index))
        .collect();
    for (to, match_index) in targets {
        let mut m = Message::new(MessageKind::Heartbeat, NodeId(0), to);
        // A follower may not yet have entries up to our commit index.
        m.commit = match_index.min(r.log.committed);
        m.context = context.clone();
        r.send(m);
    }
}

/// Check-quorum: steps down (returns false) if a quorum was not heard from during the last
/// election timeout; otherwise starts the next observation period.
pub(crate) fn check_quorum_active<S: LogStorage>(r: &mut Raft<S>) -> bool {
    if !r.tracker.quorum_active(r.id) {
        debug!(
            id = r.id.0,
            term = r.term.0,
            "raft.check_quorum lost: stepping down"
        );
        r.become_follower(r.term, None);
        return false;
    }
    let self_id = r.id;
    for (&id, progress) in r.tracker.progress.iter_mut() {
        if id != self_id {
            progress.recent_active = false;
        }
    }
    true
}

fn handle_append_response<S: LogStorage>(r: &mut Raft<S>, m: &Message) -> Result<(), RaftError> {
    if !m.reject && m.index > r.log.last_index() {
        return Err(RaftError::InvalidMessage {
            kind: m.kind,
            from: m.from,
            term: m.term,
            reason: format!(
                "acknowledges {} beyond last index {}",
                m.index,
                r.log.last_index()
            ),
        });
    }
    let Some(progress) = r.tracker.progress.get_mut(&m.from) else {
        return Ok(());
    };
    progress.recent_active = true;
    if m.reject {
        handle_append_rejection(r, m);
        return Ok(());
    }
    let was_paused = progress.is_paused();
    if !progress.maybe_update(m.index) {
        return Ok(());
    }
    match progress.state {
        ProgressState::Probe => progress.become_replicate(),
        ProgressState::Snapshot if progress.match_index >= progress.pending_snapshot => {
            progress.become_probe();
            progress.become_replicate();
        }
        ProgressState::Replicate => progress.inflights.free_le(m.index),
        ProgressState::Snapshot => {}
    }
    if maybe_commit(r) {
        on_commit_advanced(r);
    } else if was_paused {
        send_append(r, m.from);
    }
    // Fill the window while entries are due.
    while maybe_send_append(r, m.from, false) {}
    let caught_up =
        r.tracker.progress.get(&m.from).map(|p| p.match_index) == Some(r.log.last_index());
    if r.lead_transferee == Some(m.from) && caught_up {
        debug!(
            id = r.id.0,
            to = m.from.0,
            "raft.transfer target caught up: timeout now"
        );
        r.send(Message::new(MessageKind::TimeoutNow, NodeId(0), m.from));
    }
    Ok(())
}

/// Fast back-off: jump `next` to the follower's hint, refined by our own log's terms.
fn handle_append_rejection<S: LogStorage>(r: &mut Raft<S>, m: &Message) {
    let mut next_probe = m.reject_hint;
    if m.log_term.0 > 0 {
        next_probe = r.log.find_conflict_by_term(m.reject_hint, m.log_term).0;
    }
    let Some(progress) = r.tracker.progress.get_mut(&m.from) else {
        return;
    };
    debug!(
        id = r.id.0,
        from = m.from.0,
        rejected = m.index.0,
        hint = m.reject_hint.0,
        "raft.append rejected"
    );
    if progress.maybe_decr_to(m.index, next_probe) {
        if progress.state == ProgressState::Replicate {
            progress.become_probe();
        }
        send_append(r, m.from);
    }
}

fn handle_heartbeat_response<S: LogStorage>(r: &mut Raft<S>, m: &Message) {
    let Some(progress) = r.tracker.progress.get_mut(&m.from) else {
        return;
    };
    progress.recent_active = true;
    progress.probe_sent = false;
    // A full window with a live follower means acknowledgements were lost: free a slot.
    if progress.state == ProgressState::Replicate && progress.inflights.full() {
        progress.inflights.free_first_one();
    }
    if progress.match_index < r.log.last_index() {
        send_append(r, m.from);
    }
    if !m.context.is_empty() {
        r.read_only.recv_ack(m.from, &m.context);
        release_confirmed_reads(r);
    }
}

/// A read from `from` (this node or a follower) at this leader.
pub(crate) fn read_index<S: LogStorage>(r: &mut Raft<S>, from: NodeId, request_ctx: Bytes) {
    let committed_this_term = r.log.term_or_zero(r.log.committed) == r.term;
    if !committed_this_term {
        // Until an entry of our term commits, our commit index may lag entries earlier
        // leaders committed (thesis §6.4): postpone.
        let mut m = Message::new(MessageKind::ReadIndex, from, r.id);
        m.context = request_ctx;
        r.pending_read_index.push(m);
        return;
    }
    let index = r.log.committed;
    if r.tracker.is_singleton() {
        respond_to_read(r, from, index, request_ctx);
        return;
    }
    if let Some(round) = r.read_only.add_request(index, from, request_ctx) {
        debug!(id = r.id.0, round, "raft.read_index round opened");
        bcast_heartbeat_with_context(r, crate::read_only::round_context(round));
    }
}

fn release_pending_read_index<S: LogStorage>(r: &mut Raft<S>) {
    if r.pending_read_index.is_empty() || r.log.term_or_zero(r.log.committed) != r.term {
        return;
    }
    for m in std::mem::take(&mut r.pending_read_index) {
        read_index(r, m.from, m.context);
    }
}

pub(crate) fn release_confirmed_reads<S: LogStorage>(r: &mut Raft<S>) {
    for request in r.read_only.advance(&r.tracker.config.voters, r.id) {
        respond_to_read(r, request.from, request.index, request.request_ctx);
    }
}

fn respond_to_read<S: LogStorage>(r: &mut Raft<S>, from: NodeId, index: LogIndex, ctx: Bytes) {
    if from == r.id {
        r.read_states.push(ReadState {
            index,
            request_ctx: ctx,
        });
        return;
    }
    let mut m = Message::new(MessageKind::ReadIndexResponse, NodeId(0), from);
    m.index = index;
    m.context = ctx;
    r.send(m);
}

/// Starts handing leadership to `transferee` (thesis §3.10): bring it up to date, then tell
/// it to campaign at once. Proposals are dropped until it takes over or the attempt times
/// out after an election timeout.
pub(crate) fn transfer_leader<S: LogStorage>(r: &mut Raft<S>, transferee: NodeId) {
    let Some(progress) = r.tracker.progress.get(&transferee) else {
        debug!(
            id = r.id.0,
            to = transferee.0,
            "raft.transfer ignored: not a member"
        );
        return;
    };
    if progress.is_learner {
        debug!(
            id = r.id.0,
            to = transferee.0,
            "raft.transfer ignored: learner"
        );
        return;
    }
    if r.lead_transferee == Some(transferee) || transferee == r.id {
        return;
    }
    let caught_up = progress.match_index == r.log.last_index();
    r.election_elapsed_ticks = 0;
    r.lead_transferee = Some(transferee);
    debug!(id = r.id.0, to = transferee.0, "raft.transfer started");
    if caught_up {
        r.send(Message::new(MessageKind::TimeoutNow, NodeId(0), transferee));
    } else {
        send_append(r, transferee);
    }
}

pub(crate) fn report_unreachable<S: LogStorage>(r: &mut Raft<S>, id: NodeId) {
    if let Some(progress) = r.tracker.progress.get_mut(&id) {
        if progress.state == ProgressState::Replicate {
            progress.become_probe();
        }
    }
}

pub(crate) fn report_snapshot<S: LogStorage>(r: &mut Raft<S>, id: NodeId, status: SnapshotStatus) {
    let Some(progress) = r.tracker.progress.get_mut(&id) else {
        return;
    };
    if progress.state != ProgressState::Snapshot {
        return;
    }
    if status == SnapshotStatus::Failure {
        progress.pending_snapshot = LogIndex(0);
    }
    progress.become_probe();
    // Finish: wait for the follower's Append response; Failure: wait a heartbeat.
    progress.probe_sent = true;
}
