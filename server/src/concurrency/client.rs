//! A client of this member's own KV, lease and watch, for server-side recipes.

use bytes::Bytes;
use keel_btree::KeyRange;
use tokio::sync::mpsc;

use crate::api::errors::ApiError;
use crate::node::{ApplyOutput, NodeHandle};
use crate::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::proto::etcdserverpb::{
    DeleteRangeRequest, LeaseGrantRequest, RangeRequest, RangeResponse, ResponseHeader, TxnRequest,
    TxnResponse, WatchResponse,
};
use crate::proto::keelpb::internal_request::Request as Internal;
use crate::proto::mvccpb::event::EventType;
use crate::watch::{self, Registration, Selection, WatchHubHandle};

/// etcd's concurrency.defaultSessionTTL (seconds), for sessions without a lease.
pub(crate) const SESSION_TTL_SECS_DEFAULT: i64 = 60;

#[derive(Clone)]
pub(crate) struct InternalClient {
    node: NodeHandle,
    hub: WatchHubHandle,
}

fn unexpected(output: &ApplyOutput) -> ApiError {
    ApiError::Internal(format!("unexpected apply output {output:?}"))
}

/// The smallest key greater than every key with `prefix` (etcd's
/// clientv3.GetPrefixRangeEnd); "\0" (every key) when there is none.
pub(crate) fn prefix_end(prefix: &[u8]) -> Bytes {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Bytes::from(end);
        }
    }
    Bytes::from_static(&[0])
}

impl InternalClient {
    pub(crate) fn new(node: NodeHandle, hub: WatchHubHandle) -> Self {
        InternalClient { node, hub }
    }

    /// The member this client runs in.
    pub(crate) fn node(&self) -> &NodeHandle {
        &self.node
    }

    pub(crate) fn fill_header(&self, header: &mut Option<ResponseHeader>) {
        self.node.fill_header(header);
    }

    pub(crate) async fn txn(&self, req: TxnRequest) -> Result<TxnResponse, ApiError> {
        match self.node.propose(Internal::Txn(req)).await? {
            ApplyOutput::Txn(mut resp) => {
                self.node.fill_header(&mut resp.header);
                Ok(resp)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// A linearizable Range.
    pub(crate) async fn get(&self, req: RangeRequest) -> Result<RangeResponse, ApiError> {
        self.node.read_index().await?;
        let published = self.node.published();
        let mut resp = crate::mvcc::range(&published.view, &req)?;
        self.node.fill_header(&mut resp.header);
        Ok(resp)
    }

    /// The key with the smallest (first) or largest (last) create revision
    /// under `prefix`, at most `max_create_revision` if non-zero (etcd's
    /// WithFirstCreate / WithLastCreate + WithMaxCreateRev).
    pub(crate) async fn get_by_create(
        &self,
        prefix: &Bytes,
        order: SortOrder,
        max_create_revision: i64,
    ) -> Result<RangeResponse, ApiError> {
        self.get(RangeRequest {
            key: prefix.clone(),
            range_end: prefix_end(prefix),
            limit: 1,
            sort_order: order as i32,
            sort_target: SortTarget::Create as i32,
            max_create_revision,
            ..Default::default()
        })
        .await
    }

    pub(crate) async fn delete(
        &self,
        key: Bytes,
    ) -> Result<crate::proto::etcdserverpb::DeleteRangeResponse, ApiError> {
        match self
            .node
            .propose(Internal::DeleteRange(DeleteRangeRequest {
                key,
                ..Default::default()
            }))
            .await?
        {
            ApplyOutput::DeleteRange(mut resp) => {
                self.node.fill_header(&mut resp.header);
                Ok(resp)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// A new lease (etcd's NewSession without a lease), never kept alive
    /// here: the v3lock/v3election servers orphan their sessions.
    pub(crate) async fn grant(&self, ttl_secs: i64) -> Result<i64, ApiError> {
        let id = self.node.new_lease_id();
        match self
            .node
            .propose(Internal::LeaseGrant(LeaseGrantRequest {
                ttl: ttl_secs,
                id,
            }))
            .await?
        {
            ApplyOutput::LeaseGrant(resp) => Ok(resp.id),
            other => Err(unexpected(&other)),
        }
    }

    /// Watches `range` from `start_revision`; the watch ends when the
    /// returned [`Watching`] is dropped.
    pub(crate) fn watch(&self, range: KeyRange, start_revision: i64) -> Watching {
        let stream_id = watch::next_stream_id();
        let (sink, events) = mpsc::channel(watch::STREAM_BUFFER_RESPONSES);
        self.hub.register(Registration {
            stream_id,
            watch_id: 0,
            selection: Selection {
                range,
                no_put: false,
                no_delete: false,
                prev_kv: false,
            },
            start_revision,
            progress_notify: false,
            sink,
        });
        Watching {
            stream_id,
            hub: self.hub.clone(),
            events,
        }
    }

    /// etcd's waitDelete: returns once `key` is deleted at or after `revision`.
    pub(crate) async fn wait_delete(&self, key: &Bytes, revision: i64) -> Result<(), ApiError> {
        let mut watching = self.watch(KeyRange::Key(key.clone()), revision);
        while let Some(response) = watching.next().await {
            if response.compact_revision != 0 {
                return Err(ApiError::Compacted);
            }
            if response
                .events
                .iter()
                .any(|e| e.r#type == EventType::Delete as i32)
            {
                return Ok(());
            }
        }
        Err(ApiError::Internal("lost watcher waiting for delete".into()))
    }

    /// etcd's waitDeletes: until no key under `prefix` has a create revision
    /// up to `max_create_revision`, wait for the newest such key to go.
    pub(crate) async fn wait_deletes(
        &self,
        prefix: &Bytes,
        max_create_revision: i64,
    ) -> Result<Option<ResponseHeader>, ApiError> {
        loop {
            let resp = self
                .get_by_create(prefix, SortOrder::Descend, max_create_revision)
                .await?;
            let Some(last) = resp.kvs.first() else {
                return Ok(resp.header);
            };
            let revision = resp.header.as_ref().map_or(0, |h| h.revision);
            self.wait_delete(&last.key, revision).await?;
        }
    }
}

/// An internal watch; dropping it cancels the watch.
pub(crate) struct Watching {
    stream_id: u64,
    hub: WatchHubHandle,
    events: mpsc::Receiver<WatchResponse>,
}

impl Watching {
    pub(crate) async fn next(&mut self) -> Option<WatchResponse> {
        self.events.recv().await
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.hub.close_stream(self.stream_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_etcds_get_prefix_range_end() {
        assert_eq!(prefix_end(b"abc"), Bytes::from_static(b"abd"));
        assert_eq!(prefix_end(b"a\xff"), Bytes::from_static(b"b"));
        assert_eq!(prefix_end(b"\xff\xff"), Bytes::from_static(&[0]));
        assert_eq!(prefix_end(b""), Bytes::from_static(&[0]));
    }
}
