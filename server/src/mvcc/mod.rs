//! etcd's KV semantics (etcd 3.4 `etcdserver/apply.go`, `v3rpc/key.go`) over
//! keel-btree's MVCC store: how a Range, Put, DeleteRange or Txn request reads
//! and changes the store, and which requests are rejected before they reach
//! Raft. keel-btree knows revisions and generations; this module knows
//! etcd's requests, responses and error rules.

mod check;
mod range;
mod txn;
mod write;

pub(crate) use check::{check_delete, check_put, check_range, check_txn};
pub(crate) use range::range;
pub(crate) use txn::{apply_txn, read_only_txn};
pub(crate) use write::{delete_range, put, Writer};

use bytes::Bytes;
use keel_btree::{BtreeError, KeyRange, RangeOptions, RangeResult};

use crate::api::errors::ApiError;

use crate::proto::mvccpb;

/// Something a Range can read: a committed [`keel_btree::ReadView`] or a
/// [`keel_btree::WriteTxn`] that sees its own writes.
pub(crate) trait ReadSource {
    /// MVCC refusals come back as etcd's errors; a storage failure as
    /// [`ApiError::Internal`] (fatal when applying).
    fn read(&self, range: &KeyRange, opts: &RangeOptions) -> Result<RangeResult, ApiError>;
}

/// keel-btree's error -> the client's: MVCC refusals keep etcd's meaning.
pub(crate) fn storage_error(error: BtreeError) -> ApiError {
    match error {
        BtreeError::Mvcc(e) => ApiError::from(e),
        other => ApiError::Internal(format!("storage: {other}")),
    }
}

impl ReadSource for keel_btree::ReadView {
    fn read(&self, range: &KeyRange, opts: &RangeOptions) -> Result<RangeResult, ApiError> {
        self.try_range(range, opts).map_err(storage_error)
    }
}

/// etcd's key + range_end pair: empty end = the key alone; `"\0"` = every key
/// from `key` on (etcd's mkGteRange); otherwise `[key, range_end)`.
pub(crate) fn key_range(key: &Bytes, range_end: &Bytes) -> KeyRange {
    match range_end.as_ref() {
        [] => KeyRange::Key(key.clone()),
        [0] => KeyRange::FromKey(key.clone()),
        _ => KeyRange::Range {
            start: key.clone(),
            end: range_end.clone(),
        },
    }
}

/// keel-btree's record -> etcd's wire KeyValue (shares the key and value bytes).
pub(crate) fn to_pb(kv: keel_btree::KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}
