//! Applier: committed Raft entries -> the MVCC store, the lessor, the members
//! registry and the alarms. Deterministic: the same entries give the same
//! store, leases, members and responses on every member and on every replay.
//!
//! Each request runs in its own store write transaction (one main revision
//! per request, as etcd); a request that fails (unknown lease, compacted
//! revision, ...) discards its transaction, so it changes nothing. Unversioned
//! state changes (lease records and attachments, members, alarms) go into the
//! same transaction's buckets, so every checkpoint is consistent.
//!
//! A storage error (`BtreeError`) while applying is not the client's fault
//! and cannot be skipped without members diverging: it stops the core; the
//! entries stay in the WAL and are applied again after a restart.

mod buckets;

use std::time::{Duration, Instant};

use bytes::Bytes;
use keel_btree::{BtreeError, Event, MvccStore, ReadView};

use crate::api::errors::ApiError;
use crate::cluster::{MemberChange, Members};
use crate::lease::Lessor;
use crate::mvcc::{self, Writer};
use crate::node::{ApplyOutput, ApplyResult};
use crate::proto::etcdserverpb::alarm_request::AlarmAction;
use crate::proto::etcdserverpb::request_op::Request as Op;
use crate::proto::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, AlarmType, CompactionRequest, CompactionResponse,
    DeleteRangeRequest, LeaseCheckpointRequest, LeaseGrantRequest, LeaseGrantResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, ResponseHeader, TxnRequest,
};
use crate::proto::keelpb::internal_request::Request;
use crate::proto::keelpb::LeaseRecord;

/// A request's outcome, or a storage failure that must stop the member.
pub(crate) type Applied = Result<ApplyResult, BtreeError>;

/// Owns the store and the applied state around it; lives on the core thread.
pub(crate) struct Applier {
    store: MvccStore,
    lessor: Lessor,
    members: Members,
    /// Bumped on every change of `members` (the core republishes on change).
    members_version: u64,
    /// Active alarms: (member id, alarm type).
    alarms: Vec<(u64, i32)>,
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
    /// Wraps an opened store and restores leases, members and alarms from
    /// its buckets.
    pub(crate) fn new(
        store: MvccStore,
        warning_apply_duration: Duration,
        election_timeout: Duration,
        lease_checkpoint_interval: Duration,
    ) -> Result<Self, String> {
        let restored = buckets::restore(&store.read_view())?;
        let mut lessor = Lessor::new(election_timeout, lease_checkpoint_interval);
        for (id, record, keys) in restored.leases {
            lessor.restore(id, record.ttl, record.remaining_ttl, keys);
        }
        let members = Members::restore(restored.members, restored.removed);
        Ok(Applier {
            store,
            lessor,
            members,
            members_version: 1,
            alarms: restored.alarms,
            events: Vec::new(),
            warning_apply_duration,
        })
    }

    pub(crate) fn store(&self) -> &MvccStore {
        &self.store
    }

    pub(crate) fn store_mut(&mut self) -> &mut MvccStore {
        &mut self.store
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

    pub(crate) fn members_version(&self) -> u64 {
        self.members_version
    }

    pub(crate) fn alarms(&self) -> &[(u64, i32)] {
        &self.alarms
    }

    fn nospace(&self) -> bool {
        self.alarms
            .iter()
            .any(|(_, a)| *a == AlarmType::Nospace as i32)
    }

    /// Applies one request.
    pub(crate) fn apply(&mut self, request: &Request) -> Applied {
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

    fn apply_inner(&mut self, request: &Request) -> Applied {
        // etcd's capped applier: with the NOSPACE alarm raised, requests that
        // can grow the store are refused (deletes, compaction, revokes pass).
        if self.nospace() && grows_store(request) {
            return Ok(Err(ApiError::NoSpace));
        }
        match request {
            Request::Compaction(compaction) => return Ok(self.compact(compaction)),
            Request::LeaseGrant(grant) => return self.lease_grant(grant),
            Request::LeaseRevoke(revoke) => return self.lease_revoke(revoke),
            Request::LeaseCheckpoint(checkpoint) => return self.lease_checkpoint(checkpoint),
            Request::MemberAttributes(attributes) => {
                let changed = self.members.apply_attributes(attributes);
                return self.persist_member(changed);
            }
            Request::MemberPeerUrls(update) => {
                if !self.members.apply_peer_urls(update) {
                    return Ok(Err(ApiError::MemberNotFound));
                }
                return self.persist_member(Some(update.id));
            }
            Request::Alarm(alarm) => return self.alarm(alarm),
            Request::Put(_) | Request::DeleteRange(_) | Request::Txn(_) => {}
        }
        let lessor = &self.lessor;
        let lease_exists = |id: i64| lessor.contains(id);
        let begin_revision = self.store.revision();
        let compacted_revision = self.store.compacted_revision();
        let mut writer = Writer::new(self.store.write_txn(), begin_revision);
        let output = match request {
            Request::Put(put) => mvcc::put(&mut writer, put, &lease_exists).map(ApplyOutput::Put),
            Request::DeleteRange(delete) => {
                mvcc::delete_range(&mut writer, delete).map(ApplyOutput::DeleteRange)
            }
            Request::Txn(txn) => {
                mvcc::apply_txn(&mut writer, txn, &lease_exists, compacted_revision)
                    .map(ApplyOutput::Txn)
            }
            _ => unreachable!("handled above"),
        };
        let output = match output {
            Ok(output) => output,
            Err(ApiError::Internal(reason)) => return Err(BtreeError::TxnFailed { reason }),
            Err(e) => return Ok(Err(e)),
        };
        let moves = std::mem::take(&mut writer.lease_moves);
        let mut txn = writer.into_inner();
        for (key, old, new) in &moves {
            if *old != 0 {
                buckets::detach(&mut txn, *old, key)?;
            }
            if *new != 0 {
                buckets::attach(&mut txn, *new, key)?;
            }
        }
        let committed = txn.try_commit()?;
        for (key, old, new) in moves {
            self.lessor.reattach(&key, old, new);
        }
        self.events.extend(committed.events);
        Ok(Ok(output))
    }

    /// etcd's compaction: refused at once below/above the limits; the removal
    /// then runs in steps the core drives between applies.
    fn compact(&mut self, req: &CompactionRequest) -> ApplyResult {
        self.store
            .start_compaction(req.revision)
            .map_err(ApiError::from)?;
        Ok(ApplyOutput::Compact(CompactionResponse {
            header: header(self.store.revision()),
        }))
    }

    fn lease_grant(&mut self, req: &LeaseGrantRequest) -> Applied {
        let ttl = match self.lessor.grant(req.id, req.ttl, Instant::now()) {
            Ok(ttl) => ttl,
            Err(e) => return Ok(Err(e)),
        };
        let mut txn = self.store.write_txn();
        buckets::put_lease(
            &mut txn,
            req.id,
            &LeaseRecord {
                ttl,
                remaining_ttl: 0,
            },
        )?;
        txn.try_commit()?;
        Ok(Ok(ApplyOutput::LeaseGrant(LeaseGrantResponse {
            header: header(self.store.revision()),
            id: req.id,
            ttl,
            error: String::new(),
        })))
    }

    /// etcd's revoke: every attached key is deleted in one revision (so
    /// watchers see the deletes together), then the lease is gone.
    fn lease_revoke(&mut self, req: &LeaseRevokeRequest) -> Applied {
        let keys = match self.lessor.revoke(req.id) {
            Ok(keys) => keys,
            Err(e) => return Ok(Err(e)),
        };
        let begin_revision = self.store.revision();
        let mut writer = Writer::new(self.store.write_txn(), begin_revision);
        for key in &keys {
            let delete = DeleteRangeRequest {
                key: key.clone(),
                ..Default::default()
            };
            if let Err(e) = mvcc::delete_range(&mut writer, &delete) {
                return Err(BtreeError::TxnFailed {
                    reason: e.to_string(),
                });
            }
        }
        let mut txn = writer.into_inner();
        for key in &keys {
            buckets::detach(&mut txn, req.id, key)?;
        }
        buckets::delete_lease(&mut txn, req.id)?;
        let committed = txn.try_commit()?;
        self.events.extend(committed.events);
        Ok(Ok(ApplyOutput::LeaseRevoke(LeaseRevokeResponse {
            header: header(self.store.revision()),
        })))
    }

    fn lease_checkpoint(&mut self, req: &LeaseCheckpointRequest) -> Applied {
        let mut txn = self.store.write_txn();
        for checkpoint in &req.checkpoints {
            // A lease revoked meanwhile has nothing to record.
            if self
                .lessor
                .checkpoint(checkpoint.id, checkpoint.remaining_ttl)
                .is_ok()
            {
                if let Some(lease) = self.lessor.get(checkpoint.id) {
                    let record = LeaseRecord {
                        ttl: lease.ttl_secs,
                        remaining_ttl: lease.remaining_ttl_secs,
                    };
                    buckets::put_lease(&mut txn, checkpoint.id, &record)?;
                }
            }
        }
        txn.try_commit()?;
        Ok(Ok(ApplyOutput::LeaseCheckpoint))
    }

    /// A conf change's effect on the registry (Raft is told by the core).
    pub(crate) fn apply_member_change(
        &mut self,
        change: &keel_raft::ConfChange,
    ) -> Result<MemberChange, BtreeError> {
        let outcome = self.members.apply_conf_change(change);
        let mut txn = self.store.write_txn();
        match &outcome {
            MemberChange::Added(member) => buckets::put_member(&mut txn, member)?,
            MemberChange::Promoted(id) => {
                if let Some(member) = self.members.get(*id) {
                    buckets::put_member(&mut txn, member)?;
                }
            }
            MemberChange::Removed(id) => buckets::remove_member(&mut txn, *id)?,
            MemberChange::Ignored => {}
        }
        txn.try_commit()?;
        self.members_version += 1;
        Ok(outcome)
    }

    fn persist_member(&mut self, id: Option<u64>) -> Applied {
        if let Some(member) = id.and_then(|id| self.members.get(id)).cloned() {
            let mut txn = self.store.write_txn();
            buckets::put_member(&mut txn, &member)?;
            txn.try_commit()?;
            self.members_version += 1;
        }
        Ok(Ok(ApplyOutput::Members(self.members.list())))
    }

    /// etcd's Alarm apply (v3alarm.AlarmStore): GET lists the alarms of a
    /// type (NONE: all); ACTIVATE raises one member's alarm and answers it
    /// (also when it was already raised); DEACTIVATE clears exactly that
    /// member's alarm of that type and answers it (nothing if it was not set).
    fn alarm(&mut self, req: &AlarmRequest) -> Applied {
        let action = AlarmAction::try_from(req.action).unwrap_or(AlarmAction::Get);
        let entry = (req.member_id, req.alarm);
        let member = AlarmMember {
            member_id: req.member_id,
            alarm: req.alarm,
        };
        let alarms = match action {
            AlarmAction::Get => self
                .alarm_members()
                .into_iter()
                .filter(|m| req.alarm == AlarmType::None as i32 || m.alarm == req.alarm)
                .collect(),
            AlarmAction::Activate => {
                if !self.alarms.contains(&entry) {
                    let mut txn = self.store.write_txn();
                    buckets::set_alarm(&mut txn, req.member_id, req.alarm, true)?;
                    txn.try_commit()?;
                    self.alarms.push(entry);
                    tracing::warn!(
                        member = format!("{:x}", req.member_id),
                        alarm = alarm_name(req.alarm),
                        "alarm raised"
                    );
                }
                vec![member]
            }
            AlarmAction::Deactivate => {
                if self.alarms.contains(&entry) {
                    let mut txn = self.store.write_txn();
                    buckets::set_alarm(&mut txn, req.member_id, req.alarm, false)?;
                    txn.try_commit()?;
                    self.alarms.retain(|x| *x != entry);
                    tracing::info!(
                        member = format!("{:x}", req.member_id),
                        alarm = alarm_name(req.alarm),
                        "alarm cleared"
                    );
                    vec![member]
                } else {
                    Vec::new()
                }
            }
        };
        Ok(Ok(ApplyOutput::Alarm(AlarmResponse {
            header: header(self.store.revision()),
            alarms,
        })))
    }

    pub(crate) fn alarm_members(&self) -> Vec<AlarmMember> {
        self.alarms
            .iter()
            .map(|(member_id, alarm)| AlarmMember {
                member_id: *member_id,
                alarm: *alarm,
            })
            .collect()
    }

    /// The keys attached to a lease, for TimeToLive.
    pub(crate) fn lease_keys(&self, id: i64) -> Vec<Bytes> {
        self.lessor
            .get(id)
            .map(|l| l.keys.iter().cloned().collect())
            .unwrap_or_default()
    }
}

fn alarm_name(alarm: i32) -> &'static str {
    AlarmType::try_from(alarm).map_or("UNKNOWN", |a| a.as_str_name())
}

/// etcd's quota applies to puts, txns with puts, and lease grants.
fn grows_store(request: &Request) -> bool {
    match request {
        Request::Put(_) | Request::LeaseGrant(_) => true,
        Request::Txn(txn) => txn_has_put(txn),
        _ => false,
    }
}

fn txn_has_put(txn: &TxnRequest) -> bool {
    txn.success
        .iter()
        .chain(&txn.failure)
        .any(|op| match &op.request {
            Some(Op::RequestPut(_)) => true,
            Some(Op::RequestTxn(nested)) => txn_has_put(nested),
            _ => false,
        })
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
        Request::Alarm(_) => "alarm",
    }
}
