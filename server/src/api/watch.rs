//! etcd's Watch service: one bidirectional stream per client connection
//! carrying any number of watchers (see `crate::watch`).

use tonic::{Request, Response, Status, Streaming};

use super::closing::{until_stopping, ServerStream};

use crate::node::NodeHandle;
use crate::proto::etcdserverpb::watch_server::Watch;
use crate::proto::etcdserverpb::{WatchRequest, WatchResponse};
use crate::watch::{serve_stream, WatchHubHandle};

pub(crate) struct WatchService {
    hub: WatchHubHandle,
    node: NodeHandle,
    max_request_bytes: usize,
}

impl WatchService {
    pub(crate) fn new(hub: WatchHubHandle, node: NodeHandle, max_request_bytes: u64) -> Self {
        let max_request_bytes = usize::try_from(max_request_bytes).unwrap_or(usize::MAX);
        WatchService {
            hub,
            node,
            max_request_bytes,
        }
    }
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = ServerStream<WatchResponse>;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let stream = serve_stream(
            self.hub.clone(),
            self.node.clone(),
            request.into_inner(),
            self.max_request_bytes,
        );
        Ok(Response::new(until_stopping(&self.node, stream)))
    }
}
