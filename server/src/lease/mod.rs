//! Leases: etcd's lessor.
//!
//! Two kinds of state, kept apart on purpose:
//! 1. **Applied state** (deterministic, the same on every member, rebuilt by
//!    replaying the log): which leases exist, their granted TTL, the remaining
//!    TTL recorded by the last checkpoint, and the keys attached to each.
//!    Only applied Raft entries change it (grant, revoke, checkpoint, puts and
//!    deletes that attach or detach keys).
//! 2. **The leader's clock** (local, not replicated): each lease's expiry
//!    instant. Only the leader ("primary") has it; on promotion every lease
//!    gets `now + extend + (remaining TTL if checkpointed, else TTL)`, as etcd's
//!    `refresh`. Keep-alives move it; expiry makes the leader propose a revoke
//!    through Raft, so the revoke itself is applied state again.
//!
//! Checkpoints (etcd's lease checkpointing, always on in keel) propose each
//! lease's remaining TTL every checkpoint interval (5 min by default), so a
//! new leader or a restarted member does not hand out a fresh full TTL.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::api::errors::ApiError;

/// etcd's lease.MaxLeaseTTL (seconds).
pub(crate) const LEASE_TTL_SECS_MAX: i64 = 9_000_000_000;
/// Most lease checkpoints in one proposal (etcd's maxLeaseCheckpointBatchSize).
pub(crate) const CHECKPOINT_BATCH_MAX: usize = 1000;
/// Most revokes proposed per second (etcd's leaseRevokeRate).
pub(crate) const REVOKES_PER_SEC_MAX: usize = 1000;
/// A proposed revoke that was not applied within this time is proposed again.
const REVOKE_RETRY: Duration = Duration::from_secs(3);

/// One lease's applied state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lease {
    /// Granted TTL in seconds (at least the minimum TTL).
    pub(crate) ttl_secs: i64,
    /// Remaining TTL in seconds recorded by the last checkpoint; 0 = none.
    pub(crate) remaining_ttl_secs: i64,
    /// Keys attached to the lease.
    pub(crate) keys: BTreeSet<Bytes>,
}

/// The lessor of one member.
pub(crate) struct Lessor {
    leases: BTreeMap<i64, Lease>,
    /// etcd's minLeaseTTL: 1.5 election timeouts, rounded up to seconds.
    min_ttl_secs: i64,
    /// Leader only: when each lease expires.
    expiries: HashMap<i64, Instant>,
    /// Leader only: revokes proposed and not yet applied, by lease.
    revoking: HashMap<i64, Instant>,
    primary: bool,
    last_checkpoint: Option<Instant>,
    checkpoint_interval: Duration,
}

impl Lessor {
    pub(crate) fn new(election_timeout: Duration, checkpoint_interval: Duration) -> Self {
        let min_ttl = election_timeout.mul_f64(1.5);
        let min_ttl_secs = i64::try_from(min_ttl.as_secs() + u64::from(min_ttl.subsec_nanos() > 0))
            .unwrap_or(i64::MAX);
        Lessor {
            leases: BTreeMap::new(),
            min_ttl_secs: min_ttl_secs.max(1),
            expiries: HashMap::new(),
            revoking: HashMap::new(),
            primary: false,
            last_checkpoint: None,
            checkpoint_interval,
        }
    }

    pub(crate) fn contains(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    pub(crate) fn get(&self, id: i64) -> Option<&Lease> {
        self.leases.get(&id)
    }

    /// Every lease id, ascending.
    pub(crate) fn ids(&self) -> Vec<i64> {
        self.leases.keys().copied().collect()
    }

    /// A lease read back from the lease bucket at open.
    pub(crate) fn restore(
        &mut self,
        id: i64,
        ttl_secs: i64,
        remaining_ttl_secs: i64,
        keys: Vec<Bytes>,
    ) {
        let keys = keys.into_iter().collect();
        self.leases.insert(
            id,
            Lease {
                ttl_secs,
                remaining_ttl_secs,
                keys,
            },
        );
    }

    // ---- applied state (called only while applying entries) ----

    /// Applies a grant; returns the granted TTL (raised to the minimum).
    pub(crate) fn grant(&mut self, id: i64, ttl_secs: i64, now: Instant) -> Result<i64, ApiError> {
        if id == 0 {
            return Err(ApiError::LeaseNotFound);
        }
        if ttl_secs > LEASE_TTL_SECS_MAX {
            return Err(ApiError::LeaseTtlTooLarge);
        }
        if self.leases.contains_key(&id) {
            return Err(ApiError::LeaseExist);
        }
        let ttl_secs = ttl_secs.max(self.min_ttl_secs);
        self.leases.insert(
            id,
            Lease {
                ttl_secs,
                remaining_ttl_secs: 0,
                keys: BTreeSet::new(),
            },
        );
        if self.primary {
            self.expiries.insert(id, now + secs(ttl_secs));
        }
        Ok(ttl_secs)
    }

    /// Applies a revoke: forgets the lease and returns the keys to delete.
    pub(crate) fn revoke(&mut self, id: i64) -> Result<BTreeSet<Bytes>, ApiError> {
        let lease = self.leases.remove(&id).ok_or(ApiError::LeaseNotFound)?;
        self.expiries.remove(&id);
        self.revoking.remove(&id);
        Ok(lease.keys)
    }

    /// Applies a checkpoint of the remaining TTL (0 clears it).
    pub(crate) fn checkpoint(&mut self, id: i64, remaining_ttl_secs: i64) -> Result<(), ApiError> {
        let lease = self.leases.get_mut(&id).ok_or(ApiError::LeaseNotFound)?;
        lease.remaining_ttl_secs = remaining_ttl_secs;
        Ok(())
    }

    /// A put moved `key` from lease `old` to lease `new` (0 = none).
    pub(crate) fn reattach(&mut self, key: &Bytes, old: i64, new: i64) {
        if old == new {
            return;
        }
        if let Some(lease) = self.leases.get_mut(&old) {
            lease.keys.remove(key);
        }
        if let Some(lease) = self.leases.get_mut(&new) {
            lease.keys.insert(key.clone());
        }
    }

    // ---- the leader's clock ----

    pub(crate) fn is_primary(&self) -> bool {
        self.primary
    }

    /// This member became leader: every lease gets a fresh expiry, extended
    /// by `extend` (etcd extends by the election timeout).
    pub(crate) fn promote(&mut self, now: Instant, extend: Duration) {
        self.primary = true;
        self.expiries.clear();
        self.revoking.clear();
        for (id, lease) in &self.leases {
            let remaining = if lease.remaining_ttl_secs > 0 {
                lease.remaining_ttl_secs
            } else {
                lease.ttl_secs
            };
            self.expiries.insert(*id, now + extend + secs(remaining));
        }
        self.last_checkpoint = Some(now);
    }

    /// This member stopped being leader.
    pub(crate) fn demote(&mut self) {
        self.primary = false;
        self.expiries.clear();
        self.revoking.clear();
    }

    /// Keep-alive on the leader: returns the granted TTL, and whether a
    /// checkpointed remaining TTL must be cleared through Raft (etcd clears it
    /// so the renewed full TTL survives a leader change).
    pub(crate) fn renew(&mut self, id: i64, now: Instant) -> Result<(i64, bool), ApiError> {
        let lease = self.leases.get(&id).ok_or(ApiError::LeaseNotFound)?;
        if self.revoking.contains_key(&id) {
            // Already expired and being revoked: etcd answers "not found".
            return Err(ApiError::LeaseNotFound);
        }
        self.expiries.insert(id, now + secs(lease.ttl_secs));
        Ok((lease.ttl_secs, lease.remaining_ttl_secs > 0))
    }

    /// Remaining seconds on the leader's clock (rounded up), or the granted
    /// TTL where the clock is not running.
    pub(crate) fn remaining_secs(&self, id: i64, now: Instant) -> Option<i64> {
        let lease = self.leases.get(&id)?;
        match self.expiries.get(&id) {
            Some(expiry) => {
                let left = expiry.saturating_duration_since(now);
                Some(
                    i64::try_from(left.as_secs() + u64::from(left.subsec_nanos() > 0))
                        .unwrap_or(i64::MAX),
                )
            }
            None => Some(lease.ttl_secs),
        }
    }

    /// Leader: leases whose time is up and that are not already being
    /// revoked (at most `limit`); they are marked as being revoked.
    pub(crate) fn take_expired(&mut self, now: Instant, limit: usize) -> Vec<i64> {
        if !self.primary {
            return Vec::new();
        }
        self.revoking
            .retain(|_, proposed| now.duration_since(*proposed) < REVOKE_RETRY);
        let mut expired: Vec<(Instant, i64)> = self
            .expiries
            .iter()
            .filter(|(id, at)| **at <= now && !self.revoking.contains_key(id))
            .map(|(id, at)| (*at, *id))
            .collect();
        expired.sort_unstable();
        expired.truncate(limit);
        for (_, id) in &expired {
            self.revoking.insert(*id, now);
        }
        expired.into_iter().map(|(_, id)| id).collect()
    }

    /// Leader: the remaining TTLs to record, if a checkpoint is due.
    pub(crate) fn due_checkpoints(&mut self, now: Instant) -> Vec<(i64, i64)> {
        if !self.primary
            || self
                .last_checkpoint
                .is_some_and(|t| now.duration_since(t) < self.checkpoint_interval)
        {
            return Vec::new();
        }
        self.last_checkpoint = Some(now);
        self.leases
            .keys()
            .filter_map(|id| Some((*id, self.remaining_secs(*id, now)?)))
            .filter(|(_, remaining)| *remaining > 0)
            .collect()
    }
}

fn secs(s: i64) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lessor() -> Lessor {
        Lessor::new(Duration::from_millis(1000), Duration::from_secs(300))
    }

    // Guards etcd's minimum TTL: 1.5 x election timeout, rounded up (2 s for
    // the default 1 s election timeout).
    #[test]
    fn grants_below_the_minimum_ttl_are_raised_to_it() {
        let mut l = lessor();
        let now = Instant::now();
        assert_eq!(l.grant(1, 1, now), Ok(2));
        assert_eq!(l.grant(2, 30, now), Ok(30));
        assert_eq!(l.grant(2, 30, now), Err(ApiError::LeaseExist));
        assert_eq!(
            l.grant(3, LEASE_TTL_SECS_MAX + 1, now),
            Err(ApiError::LeaseTtlTooLarge)
        );
    }

    // Guards expiry on the leader: nothing expires before its TTL, an expired
    // lease is handed out for revoking once, keep-alive pushes expiry out.
    #[test]
    fn leader_expires_leases_once_and_keepalive_extends_them() {
        let mut l = lessor();
        let t0 = Instant::now();
        l.promote(t0, Duration::ZERO);
        l.grant(7, 10, t0).expect("grant");
        l.grant(8, 10, t0).expect("grant");
        assert!(l.take_expired(t0 + secs(9), 10).is_empty());
        l.renew(8, t0 + secs(5)).expect("renew");
        assert_eq!(l.take_expired(t0 + secs(11), 10), vec![7]);
        assert!(
            l.take_expired(t0 + secs(12), 10).is_empty(),
            "7 is being revoked"
        );
        assert_eq!(l.renew(7, t0 + secs(12)), Err(ApiError::LeaseNotFound));
        // Applying the revoke ends lease 7 for good.
        l.revoke(7).expect("apply the revoke");
        assert_eq!(l.take_expired(t0 + secs(16), 10), vec![8]);
    }

    // Guards checkpoints: a new leader uses the recorded remaining TTL, not
    // a fresh full TTL.
    #[test]
    fn promotion_uses_checkpointed_remaining_ttl() {
        let mut l = lessor();
        let t0 = Instant::now();
        l.grant(1, 100, t0).expect("grant");
        l.checkpoint(1, 5).expect("checkpoint");
        l.promote(t0, Duration::ZERO);
        assert_eq!(l.remaining_secs(1, t0), Some(5));
        assert_eq!(l.take_expired(t0 + secs(6), 10), vec![1]);
    }

    #[test]
    fn revoke_returns_attached_keys_and_reattach_moves_keys() {
        let mut l = lessor();
        let now = Instant::now();
        l.grant(1, 10, now).expect("grant");
        l.grant(2, 10, now).expect("grant");
        let k = Bytes::from_static(b"k");
        l.reattach(&k, 0, 1);
        l.reattach(&k, 1, 2);
        assert!(l.revoke(1).expect("revoke").is_empty());
        assert_eq!(l.revoke(2).expect("revoke"), BTreeSet::from([k]));
        assert_eq!(l.revoke(2), Err(ApiError::LeaseNotFound));
    }
}
