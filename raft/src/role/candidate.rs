//! Elections: starting one (with or without pre-vote), counting votes, and the rules of
//! (pre-)candidates for the messages they receive.

use bytes::Bytes;
use tracing::debug;

use crate::errors::RaftError;
use crate::message::{Message, MessageKind, CAMPAIGN_TRANSFER_CONTEXT};
use crate::quorum::VoteResult;
use crate::raft::Raft;
use crate::role::{follower, leader};
use crate::storage::LogStorage;
use crate::types::{EntryKind, NodeId, Role, Term};

/// How an election is run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Campaign {
    /// Pre-vote round: ask at term + 1 without bumping our term.
    PreElection,
    /// Real election at term + 1.
    Election,
    /// Real election forced by a leader transfer (bypasses the voters' leases).
    Transfer,
}

/// Starts an election if this node may: it must be a voter without a pending snapshot, and
/// every committed conf change must be applied (a stale membership could elect wrongly).
pub(crate) fn hup<S: LogStorage>(r: &mut Raft<S>, transfer: bool) -> Result<(), RaftError> {
    if r.role == Role::Leader {
        return Ok(());
    }
    if !r.promotable() {
        return Err(RaftError::CampaignRefused {
            reason: format!("{} is not a voter or has a snapshot pending", r.id),
        });
    }
    let unapplied = r
        .log
        .slice(r.log.applied.next(), r.log.committed.next(), None)?;
    let pending = unapplied
        .iter()
        .filter(|e| e.kind == EntryKind::ConfChange)
        .count();
    if pending > 0 {
        return Err(RaftError::CampaignRefused {
            reason: format!("{pending} committed conf changes are not applied yet"),
        });
    }
    let campaign = match (transfer, r.pre_vote) {
        (true, _) => Campaign::Transfer,
        (false, true) => Campaign::PreElection,
        (false, false) => Campaign::Election,
    };
    campaign_run(r, campaign);
    Ok(())
}

fn campaign_run<S: LogStorage>(r: &mut Raft<S>, campaign: Campaign) {
    let (vote_kind, term) = if campaign == Campaign::PreElection {
        r.become_pre_candidate();
        (MessageKind::PreVote, Term(r.term.0 + 1))
    } else {
        r.become_candidate();
        (MessageKind::Vote, r.term)
    };
    // Our own vote first: a single voter wins at once.
    if poll(r, r.id, true) == VoteResult::Won {
        won(r);
        return;
    }
    let context = if campaign == Campaign::Transfer {
        Bytes::from_static(CAMPAIGN_TRANSFER_CONTEXT)
    } else {
        Bytes::new()
    };
    let (last_index, last_term) = (r.log.last_index(), r.log.last_term());
    for id in r.tracker.config.voters.ids() {
        if id == r.id {
            continue;
        }
        let mut m = Message::new(vote_kind, NodeId(0), id);
        m.term = term;
        m.index = last_index;
        m.log_term = last_term;
        m.context = context.clone();
        r.send(m);
    }
    debug!(
        id = r.id.0,
        term = term.0,
        ?campaign,
        "raft.campaign started"
    );
}

fn poll<S: LogStorage>(r: &mut Raft<S>, from: NodeId, granted: bool) -> VoteResult {
    r.tracker.record_vote(from, granted);
    let (granted_count, rejected_count, result) = r.tracker.tally_votes();
    debug!(
        id = r.id.0,
        granted = granted_count,
        rejected = rejected_count,
        ?result,
        "raft.campaign tally"
    );
    result
}

fn won<S: LogStorage>(r: &mut Raft<S>) {
    if r.role == Role::PreCandidate {
        campaign_run(r, Campaign::Election);
    } else {
        r.become_leader();
        leader::bcast_append(r);
    }
}

/// (Pre-)candidate's handling of a peer message at its current term.
pub(crate) fn step<S: LogStorage>(r: &mut Raft<S>, m: Message) -> Result<(), RaftError> {
    match m.kind {
        MessageKind::Propose => {
            debug!(
                id = r.id.0,
                from = m.from.0,
                "raft.propose dropped: election in progress"
            );
        }
        // Someone else won this term: follow it.
        MessageKind::Append => {
            r.become_follower(m.term, Some(m.from));
            follower::handle_append(r, &m)?;
        }
        MessageKind::Heartbeat => {
            r.become_follower(m.term, Some(m.from));
            follower::handle_heartbeat(r, &m);
        }
        MessageKind::Snapshot => {
            r.become_follower(m.term, Some(m.from));
            follower::handle_snapshot(r, m)?;
        }
        MessageKind::VoteResponse | MessageKind::PreVoteResponse => handle_vote_response(r, &m),
        _ => debug!(id = r.id.0, from = m.from.0, kind = ?m.kind, "raft.candidate ignored"),
    }
    Ok(())
}

fn handle_vote_response<S: LogStorage>(r: &mut Raft<S>, m: &Message) {
    let expected = match r.role {
        Role::PreCandidate => MessageKind::PreVoteResponse,
        _ => MessageKind::VoteResponse,
    };
    if m.kind != expected {
        return;
    }
    match poll(r, m.from, !m.reject) {
        VoteResult::Won => won(r),
        VoteResult::Lost => r.become_follower(r.term, None),
        VoteResult::Pending => {}
    }
}
