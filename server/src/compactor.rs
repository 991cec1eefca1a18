//! Automatic compaction (`--auto-compaction-mode`, `--auto-compaction-retention`),
//! as etcd 3.4's v3compactor does it. Runs on the edge and proposes an
//! ordinary (logical) Compaction through Raft; only the leader compacts.
//! The store then removes the superseded revisions online, in small steps
//! between applies.
//!
//! - periodic, retention P: every `min(P, 1h) / 10` the current revision is
//!   recorded (a window of `P / interval + 1` samples); once P has passed
//!   since start (then every `min(P, 1h)` after the last success) the
//!   compaction goes to the oldest sample, the revision of about P ago.
//! - revision, retention R: every 5 minutes, compact to `current - R` when
//!   that is positive and new.
//!
//! A compaction refused as "already compacted" counts as done (etcd's
//! rule). The decisions are a pure state machine ([`Periodic`],
//! [`Revisions`]) driven by a clock, so they are tested without waiting.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::api::errors::ApiError;
use crate::config::AutoCompaction;
use crate::node::NodeHandle;
use crate::proto::etcdserverpb::CompactionRequest;
use crate::proto::keelpb::internal_request::Request;

/// etcd's revInterval.
const REVISION_MODE_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// etcd's retryDivisor.
const RETRY_DIVISOR: u32 = 10;

/// Periodic mode's decisions.
#[derive(Debug)]
pub(crate) struct Periodic {
    period: Duration,
    /// Revisions sampled every `interval()`, oldest first.
    samples: VecDeque<i64>,
    last_success: Instant,
    /// First `period`, then `min(period, 1h)`.
    base_interval: Duration,
}

impl Periodic {
    pub(crate) fn new(period: Duration, now: Instant) -> Self {
        Periodic {
            period,
            samples: VecDeque::new(),
            last_success: now,
            base_interval: period,
        }
    }

    fn compact_interval(&self) -> Duration {
        self.period.min(Duration::from_secs(3600))
    }

    /// How long to wait between samples.
    pub(crate) fn interval(&self) -> Duration {
        (self.compact_interval() / RETRY_DIVISOR).max(Duration::from_millis(1))
    }

    fn retentions(&self) -> usize {
        let interval = self.interval().as_nanos().max(1);
        usize::try_from(self.period.as_nanos() / interval).unwrap_or(usize::MAX) + 1
    }

    /// Records the current revision (at the top of each round).
    pub(crate) fn sample(&mut self, revision: i64) {
        self.samples.push_back(revision);
        while self.samples.len() > self.retentions() {
            self.samples.pop_front();
        }
    }

    /// After waiting one interval: the revision to compact to, if due.
    pub(crate) fn due(&mut self, now: Instant, leader: bool) -> Option<i64> {
        if !leader || now.saturating_duration_since(self.last_success) < self.base_interval {
            return None;
        }
        if self.base_interval == self.period {
            self.base_interval = self.compact_interval();
        }
        self.samples.front().copied()
    }

    /// The compaction succeeded (or the revision was already compacted).
    pub(crate) fn succeeded(&mut self, now: Instant) {
        self.last_success = now;
    }
}

/// Revision mode's decisions.
#[derive(Debug)]
pub(crate) struct Revisions {
    retention: i64,
    previous: i64,
}

impl Revisions {
    pub(crate) fn new(retention: i64) -> Self {
        Revisions {
            retention,
            previous: 0,
        }
    }

    /// Every interval: the revision to compact to, if any.
    pub(crate) fn due(&self, current: i64, leader: bool) -> Option<i64> {
        let revision = current - self.retention;
        (leader && revision > 0 && revision != self.previous).then_some(revision)
    }

    pub(crate) fn succeeded(&mut self, revision: i64) {
        self.previous = revision;
    }
}

/// Runs the compactor for `mode` until the node stops.
pub(crate) async fn run(node: NodeHandle, mode: AutoCompaction) {
    match mode {
        AutoCompaction::Periodic(period) => run_periodic(node, period).await,
        AutoCompaction::Revision(retention) => run_revisions(node, retention).await,
    }
}

fn current_revision(node: &NodeHandle) -> i64 {
    node.published().view.revision()
}

/// Proposes a logical compaction; true when it took effect or was already done.
async fn compact(node: &NodeHandle, revision: i64, why: &str) -> bool {
    tracing::info!(revision, mode = why, "starting auto compaction");
    let started = std::time::Instant::now();
    let request = Request::Compaction(CompactionRequest {
        revision,
        physical: false,
    });
    match node.propose(request).await {
        Ok(_) | Err(ApiError::Compacted) => {
            tracing::info!(
                revision,
                mode = why,
                took_ms = started.elapsed().as_millis() as u64,
                "completed auto compaction"
            );
            true
        }
        Err(e) => {
            tracing::warn!(revision, mode = why, error = %e, "failed auto compaction; retrying later");
            false
        }
    }
}

async fn run_periodic(node: NodeHandle, period: Duration) {
    let mut periodic = Periodic::new(period, Instant::now());
    while !node.shared().is_stopped() {
        periodic.sample(current_revision(&node));
        tokio::time::sleep(periodic.interval()).await;
        if let Some(revision) = periodic.due(Instant::now(), node.is_leader()) {
            if compact(&node, revision, "periodic").await {
                periodic.succeeded(Instant::now());
            }
        }
    }
}

async fn run_revisions(node: NodeHandle, retention: i64) {
    let mut revisions = Revisions::new(retention);
    while !node.shared().is_stopped() {
        tokio::time::sleep(REVISION_MODE_INTERVAL).await;
        if let Some(revision) = revisions.due(current_revision(&node), node.is_leader()) {
            if compact(&node, revision, "revision").await {
                revisions.succeeded(revision);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a periodic compactor through `rounds` rounds in which the
    /// revision grows by `per_round`; returns (round, revision) compactions.
    fn drive(period: Duration, rounds: u32, per_round: i64, leader_from: u32) -> Vec<(u32, i64)> {
        let start = Instant::now();
        let mut p = Periodic::new(period, start);
        let mut revision = 1;
        let mut compactions = Vec::new();
        for round in 1..=rounds {
            p.sample(revision);
            revision += per_round;
            let now = start + p.interval() * round;
            if let Some(at) = p.due(now, round >= leader_from) {
                compactions.push((round, at));
                p.succeeded(now);
            }
        }
        compactions
    }

    #[test]
    fn periodic_compacts_to_the_revision_of_one_period_ago() {
        // 1 s period: samples every 100 ms; first compaction after 1 s.
        let compactions = drive(Duration::from_secs(1), 35, 10, 0);
        assert_eq!(compactions[0], (10, 1));
        // Then every period, to the revision sampled a period before.
        assert_eq!(compactions[1], (20, 91));
        assert_eq!(compactions[2], (30, 191));
        assert_eq!(compactions.len(), 3);
    }

    #[test]
    fn periodic_with_a_long_period_compacts_hourly_after_the_first() {
        let compactions = drive(Duration::from_secs(5 * 3600), 80, 1, 0);
        // Samples every 6 min; 5 h = 50 samples before the first compaction.
        assert_eq!(compactions[0], (50, 1));
        // Then hourly (10 samples), keeping a 5 h window.
        assert_eq!(compactions[1], (60, 10));
        assert_eq!(compactions[2], (70, 20));
    }

    #[test]
    fn periodic_compacts_only_on_the_leader() {
        let compactions = drive(Duration::from_secs(1), 14, 10, 13);
        assert_eq!(compactions, [(13, 21)]);
    }

    #[test]
    fn revision_mode_keeps_the_retention_and_skips_repeats() {
        let mut r = Revisions::new(100);
        assert_eq!(r.due(100, true), None);
        assert_eq!(r.due(150, false), None);
        assert_eq!(r.due(150, true), Some(50));
        r.succeeded(50);
        assert_eq!(r.due(150, true), None);
        assert_eq!(r.due(151, true), Some(51));
    }
}
