//! Response streams that end when the member stops serving.
//!
//! A watch, a lease keep-alive or an election observe stream never ends by itself, so
//! without this a stopping member would wait out the whole shutdown grace period for every
//! client that keeps one open. Instead each such stream ends with etcd's
//! `etcdserver: server stopped` (Unavailable), which etcd's clients answer by moving to
//! another endpoint, and the connection can close at once.

use std::pin::Pin;

use futures::{Stream, StreamExt as _};
use tonic::Status;

use crate::api::errors::ApiError;
use crate::node::NodeHandle;

/// A boxed response stream of a streaming RPC.
pub(crate) type ServerStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// `stream`, ending with "server stopped" once the member stops serving.
pub(crate) fn until_stopping<T, S>(node: &NodeHandle, stream: S) -> ServerStream<T>
where
    T: Send + 'static,
    S: Stream<Item = Result<T, Status>> + Send + 'static,
{
    let stopping: Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
        Box::pin(node.shared().streams_closing());
    let state = (Box::pin(stream), Some(stopping));
    Box::pin(futures::stream::unfold(
        state,
        |(mut stream, stopping)| async move {
            let mut stopping = stopping?;
            tokio::select! {
                biased;
                item = stream.next() => item.map(|item| (item, (stream, Some(stopping)))),
                () = &mut stopping => Some((Err(Status::from(ApiError::Stopped)), (stream, None))),
            }
        },
    ))
}
