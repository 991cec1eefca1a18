//! etcd's v3lock Lock: clientv3/concurrency Mutex.Lock on an orphaned session.
//! The lock key is `<name>/<lease id in hex>`; the holder is the key with the
//! smallest create revision under `<name>/`; a waiter waits for every key
//! created before its own to be deleted (unlock, or its lease expiring).

use bytes::{BufMut, Bytes, BytesMut};

use super::client::{prefix_end, InternalClient, SESSION_TTL_SECS_DEFAULT};
use crate::api::errors::ApiError;
use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::proto::etcdserverpb::request_op::Request as Op;
use crate::proto::etcdserverpb::response_op::Response as OpResponse;
use crate::proto::etcdserverpb::{
    Compare, PutRequest, RangeRequest, RequestOp, ResponseHeader, TxnRequest, TxnResponse,
};
use crate::proto::mvccpb::KeyValue;

/// `<name>/<lease hex>` and its prefix `<name>/`.
pub(super) fn session_key(name: &[u8], lease: i64) -> (Bytes, Bytes) {
    let mut prefix = BytesMut::from(name);
    prefix.put_u8(b'/');
    let prefix = prefix.freeze();
    let mut key = BytesMut::from(prefix.as_ref());
    key.put_slice(format!("{lease:x}").as_bytes());
    (key.freeze(), prefix)
}

/// etcd's WithFirstCreate on `prefix`.
pub(super) fn first_create(prefix: &Bytes) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(RangeRequest {
            key: prefix.clone(),
            range_end: prefix_end(prefix),
            limit: 1,
            sort_order: SortOrder::Ascend as i32,
            sort_target: SortTarget::Create as i32,
            ..Default::default()
        })),
    }
}

pub(super) fn get(key: &Bytes) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(RangeRequest {
            key: key.clone(),
            ..Default::default()
        })),
    }
}

pub(super) fn put(key: &Bytes, value: Bytes, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: key.clone(),
            value,
            lease,
            ..Default::default()
        })),
    }
}

pub(super) fn create_revision_is(key: &Bytes, revision: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.clone(),
        target_union: Some(TargetUnion::CreateRevision(revision)),
        range_end: Bytes::new(),
    }
}

/// The kvs of the `index`-th op response if it is a Range.
pub(super) fn range_kvs(resp: &TxnResponse, index: usize) -> &[KeyValue] {
    match resp.responses.get(index).and_then(|r| r.response.as_ref()) {
        Some(OpResponse::ResponseRange(r)) => &r.kvs,
        _ => &[],
    }
}

/// Deletes a key when dropped unless disarmed: a waiter whose client went
/// away (tonic drops the handler) must leave the queue, as etcd's Mutex does
/// when its context is cancelled.
pub(super) struct DeleteOnDrop {
    client: Option<InternalClient>,
    key: Bytes,
}

impl DeleteOnDrop {
    pub(super) fn new(client: InternalClient, key: Bytes) -> Self {
        DeleteOnDrop {
            client: Some(client),
            key,
        }
    }

    pub(super) fn disarm(mut self) {
        self.client = None;
    }
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let key = self.key.clone();
            tokio::spawn(async move {
                let _ = client.delete(key).await;
            });
        }
    }
}

/// Acquires the lock `name` for `lease` (0: a new 60 s lease that nobody
/// keeps alive, as etcd's orphaned session). Returns the header and the key.
pub(crate) async fn lock(
    client: &InternalClient,
    name: &[u8],
    lease: i64,
) -> Result<(Option<ResponseHeader>, Bytes), ApiError> {
    let lease = if lease == 0 {
        client.grant(SESSION_TTL_SECS_DEFAULT).await?
    } else {
        lease
    };
    let (key, prefix) = session_key(name, lease);
    let txn = TxnRequest {
        compare: vec![create_revision_is(&key, 0)],
        success: vec![put(&key, Bytes::new(), lease), first_create(&prefix)],
        failure: vec![get(&key), first_create(&prefix)],
    };
    let resp = client.txn(txn).await?;
    let mut my_revision = resp.header.as_ref().map_or(0, |h| h.revision);
    if !resp.succeeded {
        // This session already waits for or holds the lock: reuse the key.
        my_revision = range_kvs(&resp, 0)
            .first()
            .map_or(my_revision, |kv| kv.create_revision);
    }
    let owner = range_kvs(&resp, 1);
    if owner.is_empty() || owner[0].create_revision == my_revision {
        return Ok((resp.header, key));
    }
    let guard = DeleteOnDrop::new(client.clone(), key.clone());
    let header = client.wait_deletes(&prefix, my_revision - 1).await?;
    guard.disarm();
    Ok((header, key))
}
