//! Txn: etcd's applierV3backend.Txn. The compares of the whole (nested) txn
//! are evaluated first against the state before it, giving the path of
//! success/failure branches; then the chosen branch's puts are checked
//! (leases, ignore_* keys) and its ranges' revisions; then every op runs in
//! one write transaction, each seeing the writes before it.

use bytes::Bytes;
use keel_btree::RangeOptions;

use super::write::{delete_range, put, LeaseExists, Writer};
use super::{key_range, range, ReadSource};
use crate::api::errors::ApiError;
use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::response_op::Response;
use crate::proto::etcdserverpb::{
    Compare, RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use crate::proto::mvccpb::KeyValue;

/// Applies `req` in `writer`. `compacted_revision` is the store's (for the
/// revision check of range ops). The response header carries only the revision.
pub(crate) fn apply_txn(
    writer: &mut Writer<'_>,
    req: &TxnRequest,
    lease_exists: LeaseExists<'_>,
    compacted_revision: i64,
) -> Result<TxnResponse, ApiError> {
    let path = compare_path(writer, req)?;
    check_ops(writer, req, &path, &mut |w, op| {
        check_op(w, op, lease_exists, compacted_revision)
    })?;
    let mut cursor = path.as_slice();
    let mut response = apply_branch(writer, req, &mut cursor, lease_exists)?;
    response.header = Some(ResponseHeader {
        revision: writer.revision(),
        ..Default::default()
    });
    Ok(response)
}

/// A txn whose ops are all Ranges, answered from a read view without Raft
/// (etcd's Txn fast path for read-only txns).
pub(crate) fn read_only_txn(
    source: &(impl ReadSource + RevisionInfo),
    req: &TxnRequest,
) -> Result<TxnResponse, ApiError> {
    let succeeded = compares_hold(source, &req.compare)?;
    let ops = branch(req, succeeded);
    for op in ops {
        if let Some(Request::RequestRange(r)) = &op.request {
            if r.revision > source.current_revision() {
                return Err(ApiError::FutureRevision);
            }
            if r.revision != 0 && r.revision < source.compacted_revision() {
                return Err(ApiError::Compacted);
            }
        }
    }
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let response = match &op.request {
            Some(Request::RequestRange(r)) => Some(Response::ResponseRange(range(source, r)?)),
            _ => None,
        };
        responses.push(ResponseOp { response });
    }
    Ok(TxnResponse {
        header: Some(ResponseHeader {
            revision: source.current_revision(),
            ..Default::default()
        }),
        succeeded,
        responses,
    })
}

/// The revisions a read-only txn checks its ranges against.
pub(crate) trait RevisionInfo {
    fn current_revision(&self) -> i64;
    fn compacted_revision(&self) -> i64;
}

impl RevisionInfo for keel_btree::ReadView {
    fn current_revision(&self) -> i64 {
        self.revision()
    }
    fn compacted_revision(&self) -> i64 {
        keel_btree::ReadView::compacted_revision(self)
    }
}

/// One bool per (nested) txn, depth first, for the branches that will run.
fn compare_path(source: &impl ReadSource, req: &TxnRequest) -> Result<Vec<bool>, ApiError> {
    let succeeded = compares_hold(source, &req.compare)?;
    let mut path = vec![succeeded];
    for op in branch(req, succeeded) {
        if let Some(Request::RequestTxn(nested)) = &op.request {
            path.extend(compare_path(source, nested)?);
        }
    }
    Ok(path)
}

fn branch(req: &TxnRequest, succeeded: bool) -> &[RequestOp] {
    if succeeded {
        &req.success
    } else {
        &req.failure
    }
}

fn compares_hold(source: &impl ReadSource, compares: &[Compare]) -> Result<bool, ApiError> {
    for c in compares {
        if !compare_holds(source, c)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// etcd's applyCompare: every key in the range must satisfy the compare; a
/// missing key compares as a zero KeyValue, except that a value compare on
/// missing keys always fails.
fn compare_holds(source: &impl ReadSource, c: &Compare) -> Result<bool, ApiError> {
    let found = match source.read(&key_range(&c.key, &c.range_end), &RangeOptions::default()) {
        Ok(found) => found,
        // A storage failure is not an answer: it must stop the apply.
        Err(e @ ApiError::Internal(_)) => return Err(e),
        // etcd: a compare whose range fails to read is false.
        Err(_) => return Ok(false),
    };
    if found.kvs.is_empty() {
        if c.target == CompareTarget::Value as i32 {
            return Ok(false);
        }
        return Ok(compare_kv(c, &KeyValue::default()));
    }
    Ok(found
        .kvs
        .into_iter()
        .map(super::to_pb)
        .all(|kv| compare_kv(c, &kv)))
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    let ordering = match CompareTarget::try_from(c.target) {
        Ok(CompareTarget::Value) => {
            let wanted = match &c.target_union {
                Some(TargetUnion::Value(v)) => v.clone(),
                _ => Bytes::new(),
            };
            kv.value.as_ref().cmp(wanted.as_ref())
        }
        Ok(CompareTarget::Create) => kv.create_revision.cmp(&int_target(c, |t| match t {
            TargetUnion::CreateRevision(r) => Some(*r),
            _ => None,
        })),
        Ok(CompareTarget::Mod) => kv.mod_revision.cmp(&int_target(c, |t| match t {
            TargetUnion::ModRevision(r) => Some(*r),
            _ => None,
        })),
        Ok(CompareTarget::Version) => kv.version.cmp(&int_target(c, |t| match t {
            TargetUnion::Version(v) => Some(*v),
            _ => None,
        })),
        Ok(CompareTarget::Lease) => kv.lease.cmp(&int_target(c, |t| match t {
            TargetUnion::Lease(l) => Some(*l),
            _ => None,
        })),
        // etcd: an unknown target compares equal.
        Err(_) => std::cmp::Ordering::Equal,
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ordering.is_eq(),
        Ok(CompareResult::NotEqual) => ordering.is_ne(),
        Ok(CompareResult::Greater) => ordering.is_gt(),
        Ok(CompareResult::Less) => ordering.is_lt(),
        // etcd: an unknown result holds.
        Err(_) => true,
    }
}

/// The compare's integer target, 0 when the union holds another kind (etcd).
fn int_target(c: &Compare, pick: impl Fn(&TargetUnion) -> Option<i64>) -> i64 {
    c.target_union.as_ref().and_then(pick).unwrap_or(0)
}

/// Visits the ops of the branches on `path` (etcd's checkRequests); returns
/// how many nested txns it consumed.
fn check_ops(
    writer: &Writer<'_>,
    req: &TxnRequest,
    path: &[bool],
    check: &mut dyn FnMut(&Writer<'_>, &RequestOp) -> Result<(), ApiError>,
) -> Result<usize, ApiError> {
    let mut consumed = 0;
    for op in branch(req, path[0]) {
        if let Some(Request::RequestTxn(nested)) = &op.request {
            let nested_consumed = check_ops(writer, nested, &path[1 + consumed..], check)?;
            consumed += nested_consumed + 1;
            continue;
        }
        check(writer, op)?;
    }
    Ok(consumed)
}

/// etcd's checkRequestPut and checkRequestRange.
fn check_op(
    writer: &Writer<'_>,
    op: &RequestOp,
    lease_exists: LeaseExists<'_>,
    compacted_revision: i64,
) -> Result<(), ApiError> {
    match &op.request {
        Some(Request::RequestPut(p)) => {
            if p.ignore_value || p.ignore_lease {
                let found =
                    writer.read(&key_range(&p.key, &Bytes::new()), &RangeOptions::default())?;
                if found.kvs.is_empty() {
                    return Err(ApiError::KeyNotFound);
                }
            }
            if p.lease != 0 && !lease_exists(p.lease) {
                return Err(ApiError::LeaseNotFound);
            }
            Ok(())
        }
        Some(Request::RequestRange(r)) if r.revision != 0 => {
            if r.revision > writer.revision() {
                Err(ApiError::FutureRevision)
            } else if r.revision < compacted_revision {
                Err(ApiError::Compacted)
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// Runs the branch chosen by `path[0]`, advancing `path` past the nested
/// txns it ran (etcd's applyTxn). As in etcd, a nested txn's response header
/// is empty; the top level's is filled by the caller.
fn apply_branch(
    writer: &mut Writer<'_>,
    req: &TxnRequest,
    path: &mut &[bool],
    lease_exists: LeaseExists<'_>,
) -> Result<TxnResponse, ApiError> {
    let succeeded = path[0];
    *path = &path[1..];
    let mut responses = Vec::new();
    for op in branch(req, succeeded) {
        let response = match &op.request {
            Some(Request::RequestRange(r)) => Some(Response::ResponseRange(range(&*writer, r)?)),
            Some(Request::RequestPut(p)) => {
                Some(Response::ResponsePut(put(writer, p, lease_exists)?))
            }
            Some(Request::RequestDeleteRange(d)) => {
                Some(Response::ResponseDeleteRange(delete_range(writer, d)?))
            }
            Some(Request::RequestTxn(nested)) => Some(Response::ResponseTxn(apply_branch(
                writer,
                nested,
                path,
                lease_exists,
            )?)),
            None => None,
        };
        responses.push(ResponseOp { response });
    }
    Ok(TxnResponse {
        header: Some(ResponseHeader::default()),
        succeeded,
        responses,
    })
}
