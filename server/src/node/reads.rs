//! Batched ReadIndex: every linearizable read that arrives between two core
//! turns shares one Raft read-index round; the batch is released when the
//! applied index reaches the index Raft confirmed.

use std::collections::HashMap;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::api::errors::ApiError;

type Reply = oneshot::Sender<Result<(), ApiError>>;

struct Batch {
    replies: Vec<Reply>,
    deadline: Instant,
}

#[derive(Default)]
pub(crate) struct ReadIndexBatches {
    next_ctx: u64,
    /// Arrived since the last round was started.
    unsent: Vec<Reply>,
    unsent_deadline: Option<Instant>,
    /// Round started, waiting for Raft's ReadState, by request context.
    in_flight: HashMap<u64, Batch>,
    /// Confirmed at a read index, waiting for apply to reach it.
    confirmed: Vec<(u64, Batch)>,
}

impl ReadIndexBatches {
    pub(crate) fn add(&mut self, reply: Reply, deadline: Instant) {
        self.unsent.push(reply);
        self.unsent_deadline.get_or_insert(deadline);
    }

    /// Starts a round for the unsent reads: returns the request context to
    /// hand to `RawNode::read_index`, if there is anything to send.
    pub(crate) fn start_round(&mut self) -> Option<u64> {
        if self.unsent.is_empty() {
            return None;
        }
        self.next_ctx += 1;
        let batch = Batch {
            replies: std::mem::take(&mut self.unsent),
            deadline: self.unsent_deadline.take().unwrap_or_else(Instant::now),
        };
        self.in_flight.insert(self.next_ctx, batch);
        Some(self.next_ctx)
    }

    /// Raft confirmed round `ctx` at `index`.
    pub(crate) fn confirmed(&mut self, ctx: u64, index: u64) {
        if let Some(batch) = self.in_flight.remove(&ctx) {
            self.confirmed.push((index, batch));
        }
    }

    /// Releases every confirmed batch whose index is applied.
    pub(crate) fn release(&mut self, applied_index: u64) {
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.confirmed)
            .into_iter()
            .partition(|(i, _)| *i <= applied_index);
        self.confirmed = waiting;
        for (_, batch) in ready {
            for reply in batch.replies {
                let _ = reply.send(Ok(()));
            }
        }
    }

    /// Times out rounds Raft never answered (leader lost meanwhile), and
    /// confirmed ones apply did not reach in time.
    pub(crate) fn expire(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, b)| b.deadline <= now)
            .map(|(c, _)| *c)
            .collect();
        for ctx in expired {
            if let Some(batch) = self.in_flight.remove(&ctx) {
                fail(batch, &ApiError::Timeout);
            }
        }
        let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.confirmed)
            .into_iter()
            .partition(|(_, b)| b.deadline <= now);
        self.confirmed = kept;
        for (_, batch) in expired {
            fail(batch, &ApiError::TimeoutWaitAppliedIndex);
        }
        if self.unsent_deadline.is_some_and(|d| d <= now) {
            for reply in self.unsent.drain(..) {
                let _ = reply.send(Err(ApiError::Timeout));
            }
            self.unsent_deadline = None;
        }
    }

    pub(crate) fn fail_all(&mut self, error: &ApiError) {
        for reply in self.unsent.drain(..) {
            let _ = reply.send(Err(error.clone()));
        }
        for (_, batch) in self.in_flight.drain() {
            fail(batch, error);
        }
        for (_, batch) in self.confirmed.drain(..) {
            fail(batch, error);
        }
    }
}

fn fail(batch: Batch, error: &ApiError) {
    for reply in batch.replies {
        let _ = reply.send(Err(error.clone()));
    }
}
