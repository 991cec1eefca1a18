//! Put and DeleteRange inside one store write transaction, with etcd's rules
//! for prev_kv, ignore_value, ignore_lease and the header revision.

use bytes::Bytes;
use keel_btree::{KeyRange, RangeOptions, RangeResult, WriteTxn};

use super::{key_range, storage_error, to_pb, ReadSource};
use crate::api::errors::ApiError;
use crate::proto::etcdserverpb::{
    DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, ResponseHeader,
};

/// Which lease ids name a live lease (the lessor's lookup).
pub(crate) type LeaseExists<'a> = &'a dyn Fn(i64) -> bool;

/// A store write transaction with etcd's notion of its revision: the
/// revision it started from, plus one once it has changed anything.
pub(crate) struct Writer<'a> {
    txn: WriteTxn<'a>,
    begin_revision: i64,
    changed: bool,
    /// Keys whose lease changed: (key, old lease, new lease), 0 = none. The
    /// applier records them in the lease bucket and the lessor.
    pub(crate) lease_moves: Vec<(Bytes, i64, i64)>,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(txn: WriteTxn<'a>, begin_revision: i64) -> Self {
        Writer {
            txn,
            begin_revision,
            changed: false,
            lease_moves: Vec::new(),
        }
    }

    /// The revision readers of this transaction see (etcd's tw.Rev()+changes).
    pub(crate) fn revision(&self) -> i64 {
        self.begin_revision + i64::from(self.changed)
    }

    pub(crate) fn into_inner(self) -> WriteTxn<'a> {
        self.txn
    }
}

impl ReadSource for Writer<'_> {
    fn read(&self, range: &KeyRange, opts: &RangeOptions) -> Result<RangeResult, ApiError> {
        self.txn.try_range(range, opts).map_err(storage_error)
    }
}

/// etcd's applierV3backend.Put.
pub(crate) fn put(
    writer: &mut Writer<'_>,
    req: &PutRequest,
    lease_exists: LeaseExists<'_>,
) -> Result<PutResponse, ApiError> {
    if req.lease != 0 && !lease_exists(req.lease) {
        return Err(ApiError::LeaseNotFound);
    }
    let mut value = req.value.clone();
    let mut lease = req.lease;
    let mut prev = None;
    if req.ignore_value || req.ignore_lease || req.prev_kv {
        let found = writer.read(&KeyRange::Key(req.key.clone()), &RangeOptions::default())?;
        prev = found.kvs.into_iter().next();
        if (req.ignore_value || req.ignore_lease) && prev.is_none() {
            return Err(ApiError::KeyNotFound);
        }
    }
    if let Some(prev) = &prev {
        if req.ignore_value {
            value = prev.value.clone();
        }
        if req.ignore_lease {
            lease = prev.lease;
        }
    }
    let replaced = writer
        .txn
        .try_put(req.key.clone(), value, lease)
        .map_err(storage_error)?;
    let old_lease = replaced.map_or(0, |kv| kv.lease);
    if old_lease != lease {
        writer.lease_moves.push((req.key.clone(), old_lease, lease));
    }
    writer.changed = true;
    Ok(PutResponse {
        header: Some(ResponseHeader {
            revision: writer.revision(),
            ..Default::default()
        }),
        prev_kv: if req.prev_kv { prev.map(to_pb) } else { None },
    })
}

/// etcd's applierV3backend.DeleteRange. Deleted keys leave their leases.
pub(crate) fn delete_range(
    writer: &mut Writer<'_>,
    req: &DeleteRangeRequest,
) -> Result<DeleteRangeResponse, ApiError> {
    let deleted = writer
        .txn
        .try_delete_range(&key_range(&req.key, &req.range_end))
        .map_err(storage_error)?;
    if !deleted.is_empty() {
        writer.changed = true;
    }
    for kv in deleted.iter().filter(|kv| kv.lease != 0) {
        writer.lease_moves.push((kv.key.clone(), kv.lease, 0));
    }
    Ok(DeleteRangeResponse {
        header: Some(ResponseHeader {
            revision: writer.revision(),
            ..Default::default()
        }),
        deleted: i64::try_from(deleted.len()).unwrap_or(i64::MAX),
        prev_kvs: if req.prev_kv {
            deleted.into_iter().map(to_pb).collect()
        } else {
            Vec::new()
        },
    })
}
