//! Applier: committed Raft entries -> the MVCC store. Deterministic: the same
//! entries give the same store (and the same responses) on every member and
//! on every replay after a restart.
//!
//! Each request runs in its own store write transaction (one main revision
//! per request, as etcd); a request that fails (unknown lease, compacted
//! revision, ...) discards its transaction, so it changes nothing.

use std::time::Instant;

use keel_btree::{Event, MvccStore, ReadView};

use crate::api::errors::ApiError;
use crate::mvcc::{self, Writer};
use crate::node::{ApplyOutput, ApplyResult};
use crate::proto::etcdserverpb::{CompactionRequest, CompactionResponse, ResponseHeader};
use crate::proto::keelpb::internal_request::Request;

/// Owns the store; lives on the core thread.
pub(crate) struct Applier {
    store: MvccStore,
    /// Events of the requests applied since the last `take_events`.
    events: Vec<Event>,
    /// Requests slower than this are logged (etcd's
    /// --experimental-warning-apply-duration).
    warning_apply_duration: std::time::Duration,
}

impl Applier {
    pub(crate) fn new(warning_apply_duration: std::time::Duration) -> Self {
        Applier {
            store: MvccStore::new(),
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
        // No lease can exist until the Lease service lands: every lease id
        // names no lease, so a Put with a lease gets etcd's LeaseNotFound.
        let lease_exists = |_id: i64| false;
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
            Request::Compaction(compaction) => {
                drop(writer);
                return self.compact(compaction);
            }
        };
        let committed = writer.into_inner().commit();
        self.events.extend(committed.events);
        Ok(output)
    }

    fn compact(&mut self, req: &CompactionRequest) -> ApplyResult {
        self.store.compact(req.revision).map_err(ApiError::from)?;
        Ok(ApplyOutput::Compact(CompactionResponse {
            header: Some(ResponseHeader {
                revision: self.store.revision(),
                ..Default::default()
            }),
        }))
    }
}

fn request_name(request: &Request) -> &'static str {
    match request {
        Request::Put(_) => "put",
        Request::DeleteRange(_) => "delete_range",
        Request::Txn(_) => "txn",
        Request::Compaction(_) => "compaction",
    }
}
