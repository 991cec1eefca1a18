//! Follower rules: accept the leader's Appends, heartbeats and snapshots; forward
//! proposals, reads and transfer requests to the leader; campaign on TimeoutNow.

use tracing::debug;

use crate::confchange::restore::restore;
use crate::errors::RaftError;
use crate::message::{Message, MessageKind};
use crate::raft::Raft;
use crate::role::candidate;
use crate::storage::LogStorage;
use crate::types::{NodeId, ReadState, Role, Snapshot, Term};

/// Follower's handling of a peer message at its current term.
pub(crate) fn step<S: LogStorage>(r: &mut Raft<S>, mut m: Message) -> Result<(), RaftError> {
    match m.kind {
        MessageKind::Append => {
            heard_from_leader(r, m.from);
            handle_append(r, &m)?;
        }
        MessageKind::Heartbeat => {
            heard_from_leader(r, m.from);
            handle_heartbeat(r, &m);
        }
        MessageKind::Snapshot => {
            heard_from_leader(r, m.from);
            handle_snapshot(r, m)?;
        }
        MessageKind::Propose | MessageKind::ReadIndex | MessageKind::TransferLeader => {
            match r.leader_id {
                Some(leader_id) => {
                    m.to = leader_id;
                    r.send(m);
                }
                None => debug!(id = r.id.0, kind = ?m.kind, "raft.follower dropped: no leader"),
            }
        }
        MessageKind::TimeoutNow => {
            debug!(
                id = r.id.0,
                from = m.from.0,
                "raft.transfer: campaigning now"
            );
            if let Err(e) = candidate::hup(r, true) {
                debug!(id = r.id.0, error = %e, "raft.transfer campaign refused");
            }
        }
        MessageKind::ReadIndexResponse => {
            r.read_states.push(ReadState {
                index: m.index,
                request_ctx: m.context,
            });
        }
        _ => debug!(id = r.id.0, from = m.from.0, kind = ?m.kind, "raft.follower ignored"),
    }
    Ok(())
}

fn heard_from_leader<S: LogStorage>(r: &mut Raft<S>, leader_id: NodeId) {
    r.election_elapsed_ticks = 0;
    r.leader_id = Some(leader_id);
}

/// §5.3: append if our log matches at (index, log_term), else reject with a hint.
pub(crate) fn handle_append<S: LogStorage>(r: &mut Raft<S>, m: &Message) -> Result<(), RaftError> {
    let mut response = Message::new(MessageKind::AppendResponse, NodeId(0), m.from);
    if m.index < r.log.committed {
        // Everything up to commit matches any leader's log: acknowledge it.
        response.index = r.log.committed;
        r.send(response);
        return Ok(());
    }
    match r
        .log
        .maybe_append(m.from, m.index, m.log_term, m.commit, &m.entries)?
    {
        Some(last_new) => response.index = last_new,
        None => {
            // Fast back-off hint: the last index that could match, given the leader's
            // entry at m.index has term m.log_term.
            let (hint_index, hint_term) = r.log.find_conflict_by_term(m.index, m.log_term);
            debug!(
                id = r.id.0,
                from = m.from.0,
                index = m.index.0,
                hint = hint_index.0,
                "raft.append rejecting"
            );
            response.index = m.index;
            response.reject = true;
            response.reject_hint = hint_index;
            response.log_term = hint_term;
        }
    }
    r.send(response);
    Ok(())
}

pub(crate) fn handle_heartbeat<S: LogStorage>(r: &mut Raft<S>, m: &Message) {
    r.log.commit_to(m.commit.min(r.log.last_index()));
    let mut response = Message::new(MessageKind::HeartbeatResponse, NodeId(0), m.from);
    response.context = m.context.clone();
    r.send(response);
}

pub(crate) fn handle_snapshot<S: LogStorage>(
    r: &mut Raft<S>,
    mut m: Message,
) -> Result<(), RaftError> {
    let Some(snapshot) = m.snapshot.take() else {
        return Err(RaftError::InvalidMessage {
            kind: m.kind,
            from: m.from,
            term: m.term,
            reason: "snapshot message without a snapshot".to_string(),
        });
    };
    let index = snapshot.meta.index;
    let mut response = Message::new(MessageKind::AppendResponse, NodeId(0), m.from);
    if restore_snapshot(r, snapshot) {
        debug!(id = r.id.0, index = index.0, "raft.snapshot restored");
        response.index = r.log.last_index();
    } else {
        response.index = r.log.committed;
    }
    r.send(response);
    Ok(())
}

/// Installs `snapshot` unless it is stale, excludes us, or our log already has its last
/// entry (then only commit moves). Returns true when the log was replaced.
fn restore_snapshot<S: LogStorage>(r: &mut Raft<S>, snapshot: Snapshot) -> bool {
    let (index, term) = (snapshot.meta.index, snapshot.meta.term);
    if index <= r.log.committed {
        return false;
    }
    if r.role != Role::Follower {
        // Defensive (etcd does the same): only followers install snapshots.
        r.become_follower(Term(r.term.0 + 1), None);
        return false;
    }
    let conf_state = &snapshot.meta.conf_state;
    if !conf_state.voters.contains(&r.id) && !conf_state.learners.contains(&r.id) {
        debug!(
            id = r.id.0,
            index = index.0,
            "raft.snapshot ignored: we are not a member"
        );
        return false;
    }
    if r.log.match_term(index, term) {
        r.log.commit_to(index);
        return false;
    }
    let tracker = match restore(conf_state, index, r.tracker.inflight_msgs_max) {
        Ok(tracker) => tracker,
        Err(reason) => {
            debug!(id = r.id.0, %reason, "raft.snapshot ignored: invalid membership");
            return false;
        }
    };
    r.log.restore(snapshot);
    r.tracker = tracker;
    true
}
