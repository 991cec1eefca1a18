//! Requests rejected at the edge, before Raft (etcd's v3rpc/key.go checks).

use crate::api::errors::ApiError;
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

pub(crate) fn check_range(req: &RangeRequest) -> Result<(), ApiError> {
    if req.key.is_empty() {
        return Err(ApiError::EmptyKey);
    }
    Ok(())
}

pub(crate) fn check_put(req: &PutRequest) -> Result<(), ApiError> {
    if req.key.is_empty() {
        return Err(ApiError::EmptyKey);
    }
    if req.ignore_value && !req.value.is_empty() {
        return Err(ApiError::ValueProvided);
    }
    if req.ignore_lease && req.lease != 0 {
        return Err(ApiError::LeaseProvided);
    }
    Ok(())
}

pub(crate) fn check_delete(req: &DeleteRangeRequest) -> Result<(), ApiError> {
    if req.key.is_empty() {
        return Err(ApiError::EmptyKey);
    }
    Ok(())
}

/// etcd's checkTxnRequest followed by checkIntervals on both branches.
pub(crate) fn check_txn(req: &TxnRequest, max_txn_ops: u64) -> Result<(), ApiError> {
    check_txn_ops(req, i64::try_from(max_txn_ops).unwrap_or(i64::MAX))?;
    intervals::check(&req.success)?;
    intervals::check(&req.failure)?;
    Ok(())
}

/// The op count of a level is the largest of its compares, success and
/// failure lists; nested txns get what is left of the budget (etcd).
fn check_txn_ops(req: &TxnRequest, max_txn_ops: i64) -> Result<(), ApiError> {
    let ops = req
        .compare
        .len()
        .max(req.success.len())
        .max(req.failure.len());
    let ops = i64::try_from(ops).unwrap_or(i64::MAX);
    if ops > max_txn_ops {
        return Err(ApiError::TooManyOps);
    }
    if req.compare.iter().any(|c| c.key.is_empty()) {
        return Err(ApiError::EmptyKey);
    }
    for op in req.success.iter().chain(&req.failure) {
        check_op(op, max_txn_ops - ops)?;
    }
    Ok(())
}

fn check_op(op: &RequestOp, max_txn_ops: i64) -> Result<(), ApiError> {
    match &op.request {
        Some(Request::RequestRange(r)) => check_range(r),
        Some(Request::RequestPut(p)) => check_put(p),
        Some(Request::RequestDeleteRange(d)) => check_delete(d),
        Some(Request::RequestTxn(t)) => check_txn_ops(t, max_txn_ops),
        // etcd: an empty op is "key not found".
        None => Err(ApiError::KeyNotFound),
    }
}

/// etcd's checkIntervals: within one txn, no key may be put twice or be both
/// put and deleted, across nesting levels; the two branches of a nested txn
/// may put the same key (only one runs).
mod intervals {
    use std::collections::BTreeSet;

    use bytes::Bytes;

    use super::{ApiError, Request, RequestOp};

    /// A deleted interval `[start, end)`; `end == None` is a single key.
    /// As in etcd's affine string intervals, an empty end means "to +inf" and
    /// `"\0"` is compared as an ordinary key (so a from-key delete written
    /// with end "\0" covers nothing here, exactly as in etcd 3.4).
    #[derive(Clone)]
    struct Deleted {
        start: Bytes,
        end: Option<Bytes>,
    }

    impl Deleted {
        fn contains(&self, key: &[u8]) -> bool {
            match &self.end {
                None => key == self.start.as_ref(),
                Some(end) => key >= self.start.as_ref() && (end.is_empty() || key < end.as_ref()),
            }
        }
    }

    pub(super) fn check(ops: &[RequestOp]) -> Result<(), ApiError> {
        collect(ops).map(|_| ())
    }

    fn collect(ops: &[RequestOp]) -> Result<(BTreeSet<Bytes>, Vec<Deleted>), ApiError> {
        let mut dels: Vec<Deleted> = ops
            .iter()
            .filter_map(|op| match &op.request {
                Some(Request::RequestDeleteRange(d)) => Some(Deleted {
                    start: d.key.clone(),
                    end: (!d.range_end.is_empty()).then(|| d.range_end.clone()),
                }),
                _ => None,
            })
            .collect();
        let deleted = |dels: &[Deleted], key: &[u8]| dels.iter().any(|d| d.contains(key));
        let mut puts = BTreeSet::new();
        for op in ops {
            let Some(Request::RequestTxn(nested)) = &op.request else {
                continue;
            };
            let (puts_then, dels_then) = collect(&nested.success)?;
            let (puts_else, dels_else) = collect(&nested.failure)?;
            for key in &puts_then {
                if puts.contains(key) || deleted(&dels, key) {
                    return Err(ApiError::DuplicateKey);
                }
                puts.insert(key.clone());
            }
            for key in &puts_else {
                if (puts.contains(key) && !puts_then.contains(key)) || deleted(&dels, key) {
                    return Err(ApiError::DuplicateKey);
                }
                puts.insert(key.clone());
            }
            dels.extend(dels_then);
            dels.extend(dels_else);
        }
        for op in ops {
            let Some(Request::RequestPut(p)) = &op.request else {
                continue;
            };
            if puts.contains(&p.key) || deleted(&dels, &p.key) {
                return Err(ApiError::DuplicateKey);
            }
            puts.insert(p.key.clone());
        }
        Ok((puts, dels))
    }
}
