//! The core's lease duties: keep-alives and TTL answers from the leader's
//! clock, expiry -> revoke proposals, remaining-TTL checkpoints.

use std::time::Instant;

use super::core::Core;
use super::LeaseInfo;
use crate::api::errors::ApiError;
use crate::lease::{CHECKPOINT_BATCH_MAX, REVOKES_PER_SEC_MAX};
use crate::proto::etcdserverpb::{LeaseCheckpoint, LeaseCheckpointRequest, LeaseRevokeRequest};
use crate::proto::keelpb::internal_request::Request;

impl Core {
    /// A keep-alive: only the leader's clock counts (followers forward to the
    /// leader; a member that is not leader answers "no leader").
    pub(super) fn lease_renew(&mut self, id: i64) -> Result<i64, ApiError> {
        if !self.applier.lessor().is_primary() {
            return Err(ApiError::NoLeader);
        }
        let (ttl, clear_checkpoint) = self.applier.lessor_mut().renew(id, Instant::now())?;
        if clear_checkpoint {
            self.propose_internal(Request::LeaseCheckpoint(LeaseCheckpointRequest {
                checkpoints: vec![LeaseCheckpoint {
                    id,
                    remaining_ttl: 0,
                }],
            }));
        }
        Ok(ttl)
    }

    /// TTLs from the leader's clock (only the leader's answer is right).
    pub(super) fn lease_time_to_live(&self, id: i64) -> Result<LeaseInfo, ApiError> {
        let lessor = self.applier.lessor();
        if !lessor.is_primary() {
            return Err(ApiError::NoLeader);
        }
        match (lessor.get(id), lessor.remaining_secs(id, Instant::now())) {
            (Some(lease), Some(remaining)) => Ok(LeaseInfo {
                remaining_ttl_secs: remaining,
                granted_ttl_secs: lease.ttl_secs,
                keys: self.applier.lease_keys(id),
            }),
            _ => Err(ApiError::LeaseNotFound),
        }
    }

    /// The leader's lease clock: revoke what expired (rate-limited, as
    /// etcd's leaseRevokeRate), record remaining TTLs when a checkpoint is due.
    pub(super) fn tick_leases(&mut self) {
        let now = Instant::now();
        let per_tick = (REVOKES_PER_SEC_MAX as u128 * self.settings.tick_interval.as_millis()
            / 1000)
            .max(1) as usize;
        for id in self.applier.lessor_mut().take_expired(now, per_tick) {
            tracing::info!(lease = format!("{id:x}"), "lease expired; revoking");
            self.propose_internal(Request::LeaseRevoke(LeaseRevokeRequest { id }));
        }
        let due = self.applier.lessor_mut().due_checkpoints(now);
        for batch in due.chunks(CHECKPOINT_BATCH_MAX) {
            let checkpoints = batch
                .iter()
                .map(|(id, remaining)| LeaseCheckpoint {
                    id: *id,
                    remaining_ttl: *remaining,
                })
                .collect();
            self.propose_internal(Request::LeaseCheckpoint(LeaseCheckpointRequest {
                checkpoints,
            }));
        }
    }
}
