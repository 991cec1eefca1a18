//! etcd's v3election: clientv3/concurrency Election on orphaned sessions.
//! Candidates put `<name>/<lease hex>`; the leader is the candidate with the
//! smallest create revision; Campaign returns once every earlier candidate's
//! key is gone.

use bytes::Bytes;
use futures::Stream;

use super::client::{prefix_end, InternalClient, SESSION_TTL_SECS_DEFAULT};
use super::mutex::{create_revision_is, get, put, range_kvs, session_key, DeleteOnDrop};
use crate::api::errors::ApiError;
use crate::proto::etcdserverpb::range_request::SortOrder;
use crate::proto::etcdserverpb::request_op::Request as Op;
use crate::proto::etcdserverpb::{DeleteRangeRequest, RequestOp, ResponseHeader, TxnRequest};
use crate::proto::mvccpb::event::EventType;
use crate::proto::mvccpb::KeyValue;
use keel_btree::KeyRange;

/// Identifies a leadership (etcd's LeaderKey).
#[derive(Debug, Clone)]
pub(crate) struct LeaderKey {
    pub(crate) name: Bytes,
    pub(crate) key: Bytes,
    pub(crate) revision: i64,
    pub(crate) lease: i64,
}

pub(crate) struct Election {
    client: InternalClient,
    name: Bytes,
    prefix: Bytes,
}

impl Election {
    pub(crate) fn new(client: InternalClient, name: Bytes) -> Self {
        let mut prefix = name.to_vec();
        prefix.push(b'/');
        Election {
            client,
            name,
            prefix: Bytes::from(prefix),
        }
    }

    /// etcd's Campaign: become a candidate, return once leader.
    pub(crate) async fn campaign(
        &self,
        lease: i64,
        value: Bytes,
    ) -> Result<(Option<ResponseHeader>, LeaderKey), ApiError> {
        let lease = if lease == 0 {
            self.client.grant(SESSION_TTL_SECS_DEFAULT).await?
        } else {
            lease
        };
        let (key, _) = session_key(&self.name, lease);
        let txn = TxnRequest {
            compare: vec![create_revision_is(&key, 0)],
            success: vec![put(&key, value.clone(), lease)],
            failure: vec![get(&key)],
        };
        let resp = self.client.txn(txn).await?;
        let mut leader = LeaderKey {
            name: self.name.clone(),
            key: key.clone(),
            revision: resp.header.as_ref().map_or(0, |h| h.revision),
            lease,
        };
        if !resp.succeeded {
            if let Some(kv) = range_kvs(&resp, 0).first() {
                leader.revision = kv.create_revision;
                if kv.value != value {
                    if let Err(e) = self.proclaim(&leader, value).await {
                        let _ = self.resign(&leader).await;
                        return Err(e);
                    }
                }
            }
        }
        let guard = DeleteOnDrop::new(self.client.clone(), key);
        self.client
            .wait_deletes(&self.prefix, leader.revision - 1)
            .await?;
        guard.disarm();
        Ok((resp.header, leader))
    }

    /// etcd's Proclaim: a new value without a new election.
    pub(crate) async fn proclaim(
        &self,
        leader: &LeaderKey,
        value: Bytes,
    ) -> Result<Option<ResponseHeader>, ApiError> {
        let txn = TxnRequest {
            compare: vec![create_revision_is(&leader.key, leader.revision)],
            success: vec![put(&leader.key, value, leader.lease)],
            failure: Vec::new(),
        };
        let resp = self.client.txn(txn).await?;
        if !resp.succeeded {
            return Err(ApiError::ElectionNotLeader);
        }
        Ok(resp.header)
    }

    /// etcd's Resign: give up leadership (a no-op if not the leader any more).
    pub(crate) async fn resign(
        &self,
        leader: &LeaderKey,
    ) -> Result<Option<ResponseHeader>, ApiError> {
        let delete = RequestOp {
            request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                key: leader.key.clone(),
                ..Default::default()
            })),
        };
        let txn = TxnRequest {
            compare: vec![create_revision_is(&leader.key, leader.revision)],
            success: vec![delete],
            failure: Vec::new(),
        };
        Ok(self.client.txn(txn).await?.header)
    }

    /// etcd's Leader: the current leader's key and value.
    pub(crate) async fn leader(&self) -> Result<(Option<ResponseHeader>, KeyValue), ApiError> {
        let resp = self
            .client
            .get_by_create(&self.prefix, SortOrder::Ascend, 0)
            .await?;
        let kv = resp
            .kvs
            .into_iter()
            .next()
            .ok_or(ApiError::ElectionNoLeader)?;
        Ok((resp.header, kv))
    }

    /// etcd's Observe: the leader now, then every new leader and every value
    /// it proclaims, until the stream is dropped.
    pub(crate) fn observe(
        self,
    ) -> impl Stream<Item = Result<(Option<ResponseHeader>, KeyValue), ApiError>> {
        async_stream::try_stream! {
            loop {
                let resp = self.client.get_by_create(&self.prefix, SortOrder::Ascend, 0).await?;
                let (header, kv) = match resp.kvs.into_iter().next() {
                    Some(kv) => (resp.header, kv),
                    None => {
                        // Wait for the first candidate to appear.
                        let start = resp.header.as_ref().map_or(0, |h| h.revision);
                        let mut watching = self.client.watch(
                            KeyRange::Range { start: self.prefix.clone(), end: prefix_end(&self.prefix) },
                            start,
                        );
                        let mut found = None;
                        while found.is_none() {
                            let Some(wr) = watching.next().await else { return };
                            for event in wr.events {
                                if event.r#type == EventType::Put as i32 {
                                    if let Some(kv) = event.kv {
                                        let mut header = wr.header;
                                        if let Some(h) = header.as_mut() {
                                            h.revision = kv.mod_revision;
                                        }
                                        found = Some((header, kv));
                                        break;
                                    }
                                }
                            }
                        }
                        found.expect("loop ends only when found")
                    }
                };
                yield (header, kv.clone());
                let next = header.as_ref().map_or(0, |h| h.revision) + 1;
                let mut watching = self.client.watch(KeyRange::Key(kv.key.clone()), next);
                'leader: loop {
                    let Some(wr) = watching.next().await else { return };
                    for event in wr.events {
                        if event.r#type == EventType::Delete as i32 {
                            break 'leader;
                        }
                        if let Some(kv) = event.kv {
                            yield (wr.header, kv);
                        }
                    }
                }
            }
        }
    }
}
