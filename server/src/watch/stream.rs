//! One gRPC Watch stream: etcd's serverWatchStream. Reads create, cancel and
//! progress requests; writes created/canceled answers and the hub's event
//! responses, fragmenting large ones for watchers that allow it.

use std::collections::HashMap;

use bytes::Bytes;
use keel_btree::KeyRange;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Status, Streaming};

use super::filter::Selection;
use super::hub::{Registration, WatchHubHandle};
use super::STREAM_BUFFER_RESPONSES;
use crate::node::NodeHandle;
use crate::proto::etcdserverpb::watch_create_request::FilterType;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::{ResponseHeader, WatchCreateRequest, WatchRequest, WatchResponse};

/// etcd's clientv3.InvalidWatchID.
const INVALID_WATCH_ID: i64 = -1;
/// Responses queued towards gRPC before the stream task waits for the client.
const OUTPUT_BUFFER_RESPONSES: usize = 16;

/// Starts serving one Watch stream; returns the response stream for tonic.
pub(crate) fn serve_stream(
    hub: WatchHubHandle,
    node: NodeHandle,
    requests: Streaming<WatchRequest>,
    max_request_bytes: usize,
) -> ReceiverStream<Result<WatchResponse, Status>> {
    let (output, receiver) = mpsc::channel(OUTPUT_BUFFER_RESPONSES);
    let stream_id = super::next_stream_id();
    let (events_tx, events_rx) = mpsc::channel(STREAM_BUFFER_RESPONSES);
    let state = StreamState {
        stream_id,
        hub,
        node,
        output,
        events_tx,
        watches: HashMap::new(),
        next_watch_id: 0,
        max_request_bytes,
    };
    tokio::spawn(state.run(requests, events_rx));
    ReceiverStream::new(receiver)
}

struct WatchOptions {
    fragment: bool,
}

struct StreamState {
    stream_id: u64,
    hub: WatchHubHandle,
    node: NodeHandle,
    output: mpsc::Sender<Result<WatchResponse, Status>>,
    events_tx: mpsc::Sender<WatchResponse>,
    /// Active watch ids of this stream.
    watches: HashMap<i64, WatchOptions>,
    next_watch_id: i64,
    max_request_bytes: usize,
}

impl StreamState {
    async fn run(
        mut self,
        mut requests: Streaming<WatchRequest>,
        mut events: mpsc::Receiver<WatchResponse>,
    ) {
        loop {
            let alive = tokio::select! {
                biased;
                request = requests.next() => match request {
                    Some(Ok(request)) => self.on_request(request).await,
                    // Client closed the stream or it broke.
                    Some(Err(_)) | None => false,
                },
                response = events.recv() => match response {
                    Some(response) => self.on_event_response(response).await,
                    None => false,
                },
                // The response stream was dropped (the member stops, or the
                // client went away): let go of the request stream too, so
                // the HTTP/2 stream and its connection can close.
                () = self.output.closed() => false,
            };
            if !alive {
                break;
            }
        }
        self.hub.close_stream(self.stream_id);
    }

    fn header(&self, revision: i64) -> Option<ResponseHeader> {
        let mut header = Some(ResponseHeader {
            revision,
            ..Default::default()
        });
        self.node.fill_header(&mut header);
        header
    }

    async fn send(&self, response: WatchResponse) -> bool {
        self.output.send(Ok(response)).await.is_ok()
    }

    async fn on_request(&mut self, request: WatchRequest) -> bool {
        match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => self.on_create(create).await,
            Some(RequestUnion::CancelRequest(cancel)) => {
                if self.watches.remove(&cancel.watch_id).is_some() {
                    self.hub.cancel(self.stream_id, cancel.watch_id);
                    let revision = self.node.published().view.revision();
                    let response = WatchResponse {
                        header: self.header(revision),
                        watch_id: cancel.watch_id,
                        canceled: true,
                        ..Default::default()
                    };
                    return self.send(response).await;
                }
                true
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                let revision = self.node.published().view.revision();
                let response = WatchResponse {
                    header: self.header(revision),
                    watch_id: INVALID_WATCH_ID,
                    ..Default::default()
                };
                self.send(response).await
            }
            // etcd ignores an empty request rather than ending the stream.
            None => true,
        }
    }

    /// etcd's create handling: normalize the range, pick or check the id,
    /// start at current + 1 unless told otherwise.
    async fn on_create(&mut self, create: WatchCreateRequest) -> bool {
        let current = self.node.published().view.revision();
        let created = match self.register(&create, current) {
            Ok(watch_id) => WatchResponse {
                header: self.header(current),
                watch_id,
                created: true,
                ..Default::default()
            },
            Err(reason) => WatchResponse {
                header: self.header(current),
                watch_id: INVALID_WATCH_ID,
                created: true,
                canceled: true,
                cancel_reason: reason.to_string(),
                ..Default::default()
            },
        };
        self.send(created).await
    }

    fn register(&mut self, create: &WatchCreateRequest, current: i64) -> Result<i64, &'static str> {
        let key = if create.key.is_empty() {
            Bytes::from_static(&[0])
        } else {
            create.key.clone()
        };
        let range = match create.range_end.as_ref() {
            [] => KeyRange::Key(key.clone()),
            [0] => KeyRange::FromKey(key.clone()),
            end => {
                if key.as_ref() >= end {
                    return Err("mvcc: watcher range is empty");
                }
                KeyRange::Range {
                    start: key.clone(),
                    end: create.range_end.clone(),
                }
            }
        };
        let watch_id = if create.watch_id == 0 {
            while self.watches.contains_key(&self.next_watch_id) {
                self.next_watch_id += 1;
            }
            let id = self.next_watch_id;
            self.next_watch_id += 1;
            id
        } else if self.watches.contains_key(&create.watch_id) {
            return Err("mvcc: duplicate watch ID provided on the WatchStream");
        } else {
            create.watch_id
        };
        let filters: Vec<i32> = create.filters.clone();
        let selection = Selection {
            range,
            no_put: filters.contains(&(FilterType::Noput as i32)),
            no_delete: filters.contains(&(FilterType::Nodelete as i32)),
            prev_kv: create.prev_kv,
        };
        let start_revision = if create.start_revision == 0 {
            current + 1
        } else {
            create.start_revision
        };
        self.watches.insert(
            watch_id,
            WatchOptions {
                fragment: create.fragment,
            },
        );
        self.hub.register(Registration {
            stream_id: self.stream_id,
            watch_id,
            selection,
            start_revision,
            progress_notify: create.progress_notify,
            sink: self.events_tx.clone(),
        });
        Ok(watch_id)
    }

    async fn on_event_response(&mut self, response: WatchResponse) -> bool {
        // Events still queued for a watch the client already cancelled are
        // not sent (etcd drops them too).
        let Some(options) = self.watches.get(&response.watch_id) else {
            return true;
        };
        let fragment = options.fragment;
        if response.canceled {
            self.watches.remove(&response.watch_id);
        }
        if fragment {
            for part in fragments(response, self.max_request_bytes) {
                if !self.send(part).await {
                    return false;
                }
            }
            true
        } else {
            self.send(response).await
        }
    }
}

/// etcd's sendFragments: split a response whose encoding reaches
/// `max_bytes` into parts of at least one event each, all but the last
/// marked `fragment`.
fn fragments(response: WatchResponse, max_bytes: usize) -> Vec<WatchResponse> {
    if response.encoded_len() < max_bytes || response.events.len() < 2 {
        return vec![response];
    }
    let mut parts = Vec::new();
    let mut template = response.clone();
    template.events.clear();
    template.fragment = true;
    let mut current = template.clone();
    for event in response.events {
        current.events.push(event);
        if current.events.len() > 1 && current.encoded_len() >= max_bytes {
            let overflow = current.events.pop().expect("just pushed");
            parts.push(std::mem::replace(&mut current, template.clone()));
            current.events.push(overflow);
        }
    }
    current.fragment = false;
    parts.push(current);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mvccpb;

    fn event(size: usize) -> mvccpb::Event {
        mvccpb::Event {
            kv: Some(mvccpb::KeyValue {
                key: Bytes::from_static(b"k"),
                value: Bytes::from(vec![b'v'; size]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    // Guards etcd's fragment rule: parts below the limit, every event kept in
    // order, only the last part without `fragment`.
    #[test]
    fn large_responses_are_split_into_fragments_in_order() {
        let response = WatchResponse {
            watch_id: 7,
            events: (0..10).map(|_| event(100)).collect(),
            ..Default::default()
        };
        let parts = fragments(response, 350);
        assert!(parts.len() > 1);
        assert_eq!(parts.iter().map(|p| p.events.len()).sum::<usize>(), 10);
        for part in &parts[..parts.len() - 1] {
            assert!(part.fragment);
            assert!(part.encoded_len() < 350 || part.events.len() == 1);
        }
        assert!(!parts[parts.len() - 1].fragment);
        assert!(parts.iter().all(|p| p.watch_id == 7));
    }

    #[test]
    fn small_responses_are_not_fragmented() {
        let response = WatchResponse {
            events: vec![event(10), event(10)],
            ..Default::default()
        };
        let parts = fragments(response, 10_000);
        assert_eq!(parts.len(), 1);
        assert!(!parts[0].fragment);
    }
}
