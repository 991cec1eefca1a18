//! Proposals waiting for their entry to be applied, by proposal id, and
//! requests waiting for a leader before they can be proposed at all.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::ApplyResult;
use crate::api::errors::ApiError;

/// Bound on proposals in flight; past it new ones get "too many requests"
/// (etcd bounds the gap between commit and apply at 5000 entries).
pub(crate) const PROPOSALS_IN_FLIGHT_MAX: usize = 65_536;

struct Waiting {
    reply: oneshot::Sender<ApplyResult>,
    deadline: Instant,
}

/// A proposal that could not be handed to Raft yet (no leader).
pub(crate) struct Unproposed {
    pub(crate) id: u64,
    pub(crate) data: Bytes,
    reply: oneshot::Sender<ApplyResult>,
    deadline: Instant,
}

#[derive(Default)]
pub(crate) struct Proposals {
    in_flight: HashMap<u64, Waiting>,
    without_leader: VecDeque<Unproposed>,
}

impl Proposals {
    pub(crate) fn is_full(&self) -> bool {
        self.in_flight.len() + self.without_leader.len() >= PROPOSALS_IN_FLIGHT_MAX
    }

    /// Remembers a proposal handed to Raft.
    pub(crate) fn track(
        &mut self,
        id: u64,
        reply: oneshot::Sender<ApplyResult>,
        deadline: Instant,
    ) {
        self.in_flight.insert(id, Waiting { reply, deadline });
    }

    /// Parks a proposal until there is a leader.
    pub(crate) fn park(
        &mut self,
        id: u64,
        data: Bytes,
        reply: oneshot::Sender<ApplyResult>,
        deadline: Instant,
    ) {
        self.without_leader.push_back(Unproposed {
            id,
            data,
            reply,
            deadline,
        });
    }

    /// Takes every parked proposal (to propose now that there is a leader).
    pub(crate) fn take_parked(&mut self) -> Vec<Unproposed> {
        self.without_leader.drain(..).collect()
    }

    /// Puts a parked proposal back (still no leader).
    pub(crate) fn repark(&mut self, p: Unproposed) {
        self.without_leader.push_back(p);
    }

    /// Completes the proposal `id` if this member is waiting for it.
    pub(crate) fn complete(&mut self, id: u64, result: ApplyResult) {
        if let Some(waiting) = self.in_flight.remove(&id) {
            // The client may have given up (timeout, disconnect): nothing to do.
            let _ = waiting.reply.send(result);
        }
    }

    /// Moves a parked proposal into flight.
    pub(crate) fn launch(&mut self, p: Unproposed) {
        self.track(p.id, p.reply, p.deadline);
    }

    /// Fails every proposal whose client deadline has passed (its entry may
    /// still be applied later; nobody will be told).
    pub(crate) fn expire(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(w) = self.in_flight.remove(&id) {
                let _ = w.reply.send(Err(ApiError::Timeout));
            }
        }
        let mut kept = VecDeque::with_capacity(self.without_leader.len());
        for p in self.without_leader.drain(..) {
            if p.deadline > now {
                kept.push_back(p);
            } else {
                let _ = p.reply.send(Err(ApiError::Timeout));
            }
        }
        self.without_leader = kept;
    }

    /// Fails everything (shutdown or a fatal storage error).
    pub(crate) fn fail_all(&mut self, error: &ApiError) {
        for (_, w) in self.in_flight.drain() {
            let _ = w.reply.send(Err(error.clone()));
        }
        for p in self.without_leader.drain(..) {
            let _ = p.reply.send(Err(error.clone()));
        }
    }
}
