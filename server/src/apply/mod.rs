//! Applier: committed Raft entries -> the MVCC store and the lessor.
//! Deterministic: the same entries give the same store, the same leases and
//! the same responses on every member and on every replay after a restart.
//!
//! Each request runs in its own store write transaction (one main revision
//! per request, as etcd); a request that fails (unknown lease, compacted
//! revision, ...) discards its transaction, so it changes nothing.

use std::time::{Duration, Instant};

use keel_btree::{Event, MvccStore, ReadView};

use crate::api::errors::ApiError;
use crate::cluster::Members;
use crate::lease::Lessor;
use crate::mvcc::{self, Writer};
use crate::node::{ApplyOutput, ApplyResult};
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, LeaseCheckpointRequest,
    LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse, ResponseHeader,
};
use crate::proto::keelpb::internal_request::Request;

/// Owns the store and the lessor; lives on the core thread.
pub(crate) struct Applier {
    store: MvccStore,
    lessor: Lessor,
    members: Members,
    /// Bumped on every change of `members` (the core republishes on change).
    members_version: u64,
    /// Events of the requests applied since the last `take_events`.
    events: Vec<Event>,
    /// Requests slower than this are logged (etcd's
    /// --experimental-warning-apply-duration).
    warning_apply_duration: Duration,
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

impl Applier {
    pub(crate) fn new(
        warning_apply_duration: Duration,
        election_timeout: Duration,
        lease_checkpoint_interval: Duration,
    ) -> Self {
        Applier {
            store: MvccStore::new(),
            lessor: Lessor::new(election_timeout, lease_checkpoint_interval),
            members: Members::default(),
            members_version: 0,
            events: Vec::new(),
            warning_apply_duration,
        }
    }

    /// The store's current revision.
    pub(crate) fn revision(&self) -> i64 {
        self.store.revision()
    }

    /// The events applied since the last call, in revision order.
    pub(crate) fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// A snapshot for readers.
    pub(crate) fn read_view(&self) -> ReadView {
        self.store.read_view()
    }

    pub(crate) fn lessor(&self) -> &Lessor {
        &self.lessor
    }

    pub(crate) fn lessor_mut(&mut self) -> &mut Lessor {
        &mut self.lessor
    }

    pub(crate) fn members(&self) -> &Members {
        &self.members
    }

    /// For conf changes (applied by the core, which also tells Raft).
    pub(crate) fn members_mut(&mut self) -> &mut Members {
        self.members_version += 1;
        &mut self.members
    }

    pub(crate) fn members_version(&self) -> u64 {
        self.members_version
    }

    /// Applies one request.
    pub(crate) fn apply(&mut self, request: &Request) -> ApplyResult {
        let started = Instant::now();
        let result = self.apply_inner(request);
        let took = started.elapsed();
        if took > self.warning_apply_duration {
            tracing::warn!(
                took_us = took.as_micros() as u64,
                expected_us = self.warning_apply_duration.as_micros() as u64,
                request = request_name(request),
                "apply request took too long"
            );
        }
        result
    }

    fn apply_inner(&mut self, request: &Request) -> ApplyResult {
        match request {
            Request::Compaction(compaction) => return self.compact(compaction),
            Request::LeaseGrant(grant) => return self.lease_grant(grant),
            Request::LeaseRevoke(revoke) => return self.lease_revoke(revoke),
            Request::LeaseCheckpoint(checkpoint) => return self.lease_checkpoint(checkpoint),
            Request::MemberAttributes(attributes) => {
                self.members_mut().apply_attributes(attributes);
                return Ok(ApplyOutput::Members(self.members.list()));
            }
            Request::MemberPeerUrls(update) => {
                if !self.members_mut().apply_peer_urls(update) {
                    return Err(ApiError::MemberNotFound);
                }
                return Ok(ApplyOutput::Members(self.members.list()));
            }
            Request::Put(_) | Request::DeleteRange(_) | Request::Txn(_) => {}
        }
        let lessor = &mut self.lessor;
        let lease_exists = |id: i64| lessor.contains(id);
        let begin_revision = self.store.revision();
        let compacted_revision = self.store.compacted_revision();
        let mut writer = Writer::new(self.store.write_txn(), begin_revision);
        let output = match request {
            Request::Put(put) => ApplyOutput::Put(mvcc::put(&mut writer, put, &lease_exists)?),
            Request::DeleteRange(delete) => {
                ApplyOutput::DeleteRange(mvcc::delete_range(&mut writer, delete))
            }
            Request::Txn(txn) => ApplyOutput::Txn(mvcc::apply_txn(
                &mut writer,
                txn,
                &lease_exists,
                compacted_revision,
            )?),
            _ => unreachable!("handled above"),
        };
        let moves = std::mem::take(&mut writer.lease_moves);
        let committed = writer.into_inner().commit();
        for (key, old, new) in moves {
            lessor.reattach(&key, old, new);
        }
        self.events.extend(committed.events);
        Ok(output)
    }

    fn compact(&mut self, req: &CompactionRequest) -> ApplyResult {
        self.store.compact(req.revision).map_err(ApiError::from)?;
        Ok(ApplyOutput::Compact(CompactionResponse {
            header: header(self.store.revision()),
        }))
    }

    fn lease_grant(&mut self, req: &LeaseGrantRequest) -> ApplyResult {
        let ttl = self.lessor.grant(req.id, req.ttl, Instant::now())?;
        Ok(ApplyOutput::LeaseGrant(LeaseGrantResponse {
            header: header(self.store.revision()),
            id: req.id,
            ttl,
            error: String::new(),
        }))
    }

    /// etcd's revoke: every attached key is deleted in one revision (so
    /// watchers see the deletes together), then the lease is gone.
    fn lease_revoke(&mut self, req: &LeaseRevokeRequest) -> ApplyResult {
        let keys = self.lessor.revoke(req.id)?;
        if !keys.is_empty() {
            let begin_revision = self.store.revision();
            let mut writer = Writer::new(self.store.write_txn(), begin_revision);
            for key in keys {
                let delete = DeleteRangeRequest {
                    key,
                    ..Default::default()
                };
                mvcc::delete_range(&mut writer, &delete);
            }
            let committed = writer.into_inner().commit();
            self.events.extend(committed.events);
        }
        Ok(ApplyOutput::LeaseRevoke(LeaseRevokeResponse {
            header: header(self.store.revision()),
        }))
    }

    fn lease_checkpoint(&mut self, req: &LeaseCheckpointRequest) -> ApplyResult {
        for checkpoint in &req.checkpoints {
            // A lease revoked meanwhile has nothing to record (etcd stops at
            // the first error; later checkpoints of the batch still apply here
            // because they are independent).
            let _ = self
                .lessor
                .checkpoint(checkpoint.id, checkpoint.remaining_ttl);
        }
        Ok(ApplyOutput::LeaseCheckpoint)
    }

    /// The keys attached to a lease, for TimeToLive.
    pub(crate) fn lease_keys(&self, id: i64) -> Vec<bytes::Bytes> {
        self.lessor
            .get(id)
            .map(|l| l.keys.iter().cloned().collect())
            .unwrap_or_default()
    }
}

fn request_name(request: &Request) -> &'static str {
    match request {
        Request::Put(_) => "put",
        Request::DeleteRange(_) => "delete_range",
        Request::Txn(_) => "txn",
        Request::Compaction(_) => "compaction",
        Request::LeaseGrant(_) => "lease_grant",
        Request::LeaseRevoke(_) => "lease_revoke",
        Request::LeaseCheckpoint(_) => "lease_checkpoint",
        Request::MemberAttributes(_) => "member_attributes",
        Request::MemberPeerUrls(_) => "member_peer_urls",
    }
}
