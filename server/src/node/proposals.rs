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
    /// Applied proposals and their results, answered only when work after the
    /// apply ends (a physical compaction's removal): no deadline any more, as
    /// etcd waits for the removal unbounded once the entry is applied.
    held: Vec<(oneshot::Sender<ApplyResult>, ApplyResult)>,
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

    /// Takes the applied proposal `id` off the deadline table and keeps its
    /// `result` until [`Proposals::release_held`], however long that takes.
    /// `false`: this member does not wait for it (its deadline passed already).
    pub(crate) fn hold(&mut self, id: u64, result: ApplyResult) -> bool {
        match self.in_flight.remove(&id) {
            Some(waiting) => {
                self.held.push((waiting.reply, result));
                true
            }
            None => false,
        }
    }

    /// Answers every held proposal with its result (the work it waited for ended).
    pub(crate) fn release_held(&mut self) {
        for (reply, result) in self.held.drain(..) {
            let _ = reply.send(result);
        }
    }

    /// Fails every held proposal (the work it waited for cannot end).
    pub(crate) fn fail_held(&mut self, error: &ApiError) {
        for (reply, _) in self.held.drain(..) {
            let _ = reply.send(Err(error.clone()));
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
        self.fail_held(error);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::node::ApplyOutput;
    use crate::proto::etcdserverpb::CompactionResponse;

    fn compacted() -> ApplyResult {
        Ok(ApplyOutput::Compact(CompactionResponse::default()))
    }

    // Guards `etcdctl compact --physical` on a long removal: once applied and
    // held, the proposal outlives its deadline and gets the compaction's answer,
    // not "request timed out" (etcd 3.4 waits on the removal unbounded).
    #[test]
    fn a_held_proposal_outlives_its_deadline_and_gets_its_answer() {
        let mut proposals = Proposals::default();
        let start = Instant::now();
        let (reply, mut answer) = oneshot::channel();
        proposals.track(7, reply, start + Duration::from_secs(1));
        assert!(proposals.hold(7, compacted()));
        proposals.expire(start + Duration::from_secs(60));
        assert!(
            answer.try_recv().is_err(),
            "no answer before the removal ends"
        );
        proposals.release_held();
        assert!(matches!(answer.try_recv(), Ok(Ok(ApplyOutput::Compact(_)))));
    }

    // The contrast: a proposal not yet applied times out at its deadline, and
    // one that expired cannot be held any more.
    #[test]
    fn an_unapplied_proposal_times_out_and_cannot_be_held_after() {
        let mut proposals = Proposals::default();
        let start = Instant::now();
        let (reply, mut answer) = oneshot::channel();
        proposals.track(8, reply, start + Duration::from_secs(1));
        proposals.expire(start + Duration::from_secs(2));
        assert!(matches!(answer.try_recv(), Ok(Err(ApiError::Timeout))));
        assert!(!proposals.hold(8, compacted()));
    }

    // A held proposal is failed, not forgotten, when the core stops.
    #[test]
    fn a_held_proposal_fails_when_the_core_stops() {
        let mut proposals = Proposals::default();
        let (reply, mut answer) = oneshot::channel();
        proposals.track(9, reply, Instant::now() + Duration::from_secs(1));
        assert!(proposals.hold(9, compacted()));
        proposals.fail_all(&ApiError::Stopped);
        assert!(matches!(answer.try_recv(), Ok(Err(ApiError::Stopped))));
    }
}
