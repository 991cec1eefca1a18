//! A unary gRPC client over one HTTP/2 connection, used for the request/response workloads
//! (put, range, txn-put, txn-mixed): the client's own cost per request is part of every
//! number keel-bench reports, so it should be small (docs/benchmarks.md, "The client's own
//! cost").
//!
//! tonic's `Channel` sends each request through a tower `Buffer` (a channel and a worker
//! task), then through hyper's dispatch channel to the connection task, which spawns a task
//! per request to await the answer (and one to send the body), and flushes each request's
//! HEADERS and DATA in two `writev`s. Here a client writes its request straight into h2's
//! shared stream state and awaits the answer itself; the only other task is h2's connection
//! task, which does the socket I/O and writes the requests of all clients that became ready
//! in one scheduler turn together ([`WriteBatching`], [`CopiedWrites`]).
//!
//! Contract: [`GrpcConn::unary`] sends one gRPC request (an uncompressed, length-prefixed
//! protobuf message with `content-type: application/grpc` and `te: trailers`), awaits the
//! whole answer (headers, message, trailers) and returns the decoded message, or the
//! `tonic::Status` the server or the transport gave. It does not retry, reconnect or
//! compress, and speaks no TLS.
//!
//! Invariants:
//! 1. Every received DATA byte is given back to flow control at once, so an answer larger
//!    than the receive window arrives (h2 itself gives a closed stream's bytes back to the
//!    connection).
//! 2. An answer counts as OK only with HTTP status 200, `grpc-status: 0` in the trailers
//!    and exactly one whole, uncompressed message no larger than [`RESPONSE_BYTES_MAX`].
//! 3. Nothing read from the peer is unwrapped: every malformed answer is a `Status`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE, TE, USER_AGENT};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, StatusCode, Uri};
use tonic::{Code, Status};

/// Length of a gRPC message prefix: a compressed flag byte and a big-endian u32 length.
const PREFIX_BYTES: usize = 5;
/// Largest answer accepted (tonic's default decoding limit, so a run fails where it did).
pub(crate) const RESPONSE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// HTTP/2 receive windows: hyper's client defaults (what tonic's `Channel` used), so the
/// server sends as it did before and few WINDOW_UPDATE frames are needed.
const STREAM_WINDOW_BYTES: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW_BYTES: u32 = 5 * 1024 * 1024;

/// The etcd v3 methods the workloads call.
pub(crate) mod path {
    /// `etcdserverpb.KV/Put`.
    pub(crate) const KV_PUT: &str = "/etcdserverpb.KV/Put";
    /// `etcdserverpb.KV/Range`.
    pub(crate) const KV_RANGE: &str = "/etcdserverpb.KV/Range";
    /// `etcdserverpb.KV/Txn`.
    pub(crate) const KV_TXN: &str = "/etcdserverpb.KV/Txn";
}

/// One HTTP/2 connection to a gRPC server. Clones share the connection (h2's streams are
/// multiplexed under one lock); the connection closes when the last clone is dropped.
#[derive(Clone)]
pub(crate) struct GrpcConn {
    send: h2::client::SendRequest<Bytes>,
    authority: Authority,
}

impl GrpcConn {
    /// Opens a connection to `uri` (`http://host:port`; TLS is not supported) within
    /// `timeout` (TCP connect and HTTP/2 handshake), with TCP_NODELAY, and spawns h2's
    /// connection task on the current tokio runtime.
    pub(crate) async fn connect(uri: &str, timeout: Duration) -> anyhow::Result<GrpcConn> {
        GrpcConn::connect_with_windows(uri, timeout, STREAM_WINDOW_BYTES, CONNECTION_WINDOW_BYTES)
            .await
    }

    /// [`GrpcConn::connect`] with the given receive windows (bytes).
    async fn connect_with_windows(
        uri: &str,
        timeout: Duration,
        stream_window_bytes: u32,
        connection_window_bytes: u32,
    ) -> anyhow::Result<GrpcConn> {
        let parsed: Uri = uri
            .parse()
            .with_context(|| format!("bad endpoint {uri:?}"))?;
        anyhow::ensure!(
            parsed.scheme() == Some(&Scheme::HTTP),
            "endpoint {uri:?}: only http:// is supported (keel-bench has no TLS)"
        );
        let authority = parsed
            .authority()
            .with_context(|| format!("endpoint {uri:?} has no host:port"))?
            .clone();
        let port = authority.port_u16().unwrap_or(80);
        // `host()` keeps an IPv6 literal's brackets; the resolver wants them off.
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let handshake = async {
            let tcp = tokio::net::TcpStream::connect((host, port)).await?;
            tcp.set_nodelay(true)?;
            let tcp = CopiedWrites(tcp);
            let (send, connection) = h2::client::Builder::new()
                .enable_push(false)
                .initial_window_size(stream_window_bytes)
                .initial_connection_window_size(connection_window_bytes)
                .handshake::<_, Bytes>(tcp)
                .await
                .map_err(std::io::Error::other)?;
            Ok::<_, std::io::Error>((send, connection))
        };
        let (send, connection) = tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| anyhow::anyhow!("connecting to {uri}: no answer within {timeout:?}"))?
            .with_context(|| format!("connecting to {uri}"))?;
        // The connection's end shows up as an error in every request still using it.
        tokio::spawn(async move {
            let _ = WriteBatching::new(connection).await;
        });
        Ok(GrpcConn { send, authority })
    }

    /// Calls the unary method `path` (e.g. [`path::KV_PUT`]) with `request`.
    pub(crate) async fn unary<Q, A>(&mut self, path: &'static str, request: &Q) -> Result<A, Status>
    where
        Q: prost::Message,
        A: prost::Message + Default,
    {
        let head = self.head(path)?;
        let body = encode(request);
        std::future::poll_fn(|cx| self.send.poll_ready(cx))
            .await
            .map_err(status_from_h2)?;
        let (answer, mut body_tx) = self
            .send
            .send_request(head, false)
            .map_err(status_from_h2)?;
        // Sent without reserving capacity: h2 buffers it until the window allows (one
        // message per request in flight, so the buffering is bounded).
        body_tx.send_data(body, true).map_err(status_from_h2)?;
        let answer = answer.await.map_err(status_from_h2)?;
        let (head, mut body) = answer.into_parts();
        if let Some(status) = status_from_trailers(&head.headers) {
            // A trailers-only answer: the status came in the headers and there is no message.
            return Err(if status.code() == Code::Ok {
                Status::internal("protocol error: an OK answer without a message")
            } else {
                status
            });
        }
        if head.status != StatusCode::OK {
            return Err(status_from_http(head.status));
        }
        let mut message = Message::default();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(status_from_h2)?;
            // Invariant 1: the window is given back as soon as the bytes are ours.
            body.flow_control()
                .release_capacity(chunk.len())
                .map_err(status_from_h2)?;
            message.push(chunk)?;
        }
        let trailers = body.trailers().await.map_err(status_from_h2)?;
        match trailers.as_ref().and_then(status_from_trailers) {
            Some(status) if status.code() == Code::Ok => {}
            Some(status) => return Err(status),
            None => {
                return Err(Status::unknown(
                    "protocol error: the answer ended without a grpc-status trailer",
                ))
            }
        }
        decode(message.into_bytes())
    }

    fn head(&self, path: &'static str) -> Result<Request<()>, Status> {
        let uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(PathAndQuery::from_static(path))
            .build()
            .map_err(|e| Status::internal(format!("bad request URI for {path}: {e}")))?;
        let mut head = Request::new(());
        *head.method_mut() = Method::POST;
        *head.uri_mut() = uri;
        let headers = head.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(TE, HeaderValue::from_static("trailers"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("keel-bench/", env!("CARGO_PKG_VERSION"))),
        );
        Ok(head)
    }
}

/// The TCP stream as h2 sees it: without vectored writes, so h2 copies every frame of up to
/// 1 KiB into its write buffer (its limit without vectored I/O; 256 bytes with it) instead of
/// writing a frame's payload from where it is. A put's DATA frame (key, 256-byte value and
/// prefix) is just over 256 bytes: with vectored I/O h2 must write it out before it may
/// buffer the next frame, one `writev` per request whatever [`WriteBatching`] gathers.
/// Payloads over 1 KiB still go out on their own, in two writes instead of one `writev`.
struct CopiedWrites(tokio::net::TcpStream);

impl tokio::io::AsyncRead for CopiedWrites {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for CopiedWrites {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
    // `is_write_vectored` keeps its default, false: that is the point of this type.
}

/// Runs h2's connection task one scheduler turn after it is woken, so that the requests of
/// all clients that became ready in that turn go out in one `writev` instead of one each
/// (grpc-go's writer batches the same way: it flushes when its queue is empty).
///
/// Without it, tokio runs a task woken by the running task right after it (its LIFO slot):
/// each client's request wakes the connection task, which writes that one request alone,
/// and on loopback each `writev` also pays for the TCP receive path: about a third of the
/// client's CPU. With it, the task re-queues itself at the back of the run queue once per
/// wake-up; it adds no wait when nothing else is ready to run.
struct WriteBatching<F> {
    inner: F,
    /// The task has yielded since it was last woken: poll the connection now.
    yielded: bool,
}

impl<F> WriteBatching<F> {
    fn new(inner: F) -> Self {
        WriteBatching {
            inner,
            yielded: false,
        }
    }
}

impl<F: Future + Unpin> Future for WriteBatching<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if !self.yielded {
            self.yielded = true;
            // Woken while running, a tokio task goes to the back of the run queue.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.yielded = false;
        Pin::new(&mut self.inner).poll(cx)
    }
}

/// `message` as one gRPC frame: flag 0 (uncompressed), its length, its bytes.
fn encode(message: &impl prost::Message) -> Bytes {
    let len = message.encoded_len();
    let mut frame = BytesMut::with_capacity(PREFIX_BYTES + len);
    frame.put_u8(0);
    frame.put_u32(u32::try_from(len).expect("a request message is smaller than 4 GiB"));
    message
        .encode(&mut frame)
        .expect("the buffer was sized to encoded_len");
    frame.freeze()
}

/// The DATA of one answer, in one piece when it came in one frame (the usual case) and
/// copied together otherwise.
#[derive(Default)]
struct Message {
    first: Option<Bytes>,
    rest: Option<BytesMut>,
}

impl Message {
    fn len(&self) -> usize {
        match (&self.first, &self.rest) {
            (_, Some(rest)) => rest.len(),
            (Some(first), None) => first.len(),
            (None, None) => 0,
        }
    }

    fn push(&mut self, chunk: Bytes) -> Result<(), Status> {
        if self.len() + chunk.len() > PREFIX_BYTES + RESPONSE_BYTES_MAX {
            return Err(too_large(self.len() + chunk.len()));
        }
        match (self.first.take(), &mut self.rest) {
            (None, None) => self.first = Some(chunk),
            (Some(first), None) => {
                let mut rest = BytesMut::with_capacity(first.len() + chunk.len());
                rest.extend_from_slice(&first);
                rest.extend_from_slice(&chunk);
                self.rest = Some(rest);
            }
            (_, Some(rest)) => rest.extend_from_slice(&chunk),
        }
        Ok(())
    }

    fn into_bytes(self) -> Bytes {
        match (self.first, self.rest) {
            (_, Some(rest)) => rest.freeze(),
            (Some(first), None) => first,
            (None, None) => Bytes::new(),
        }
    }
}

fn too_large(bytes: usize) -> Status {
    Status::out_of_range(format!(
        "answer too large: {bytes} bytes, the limit is {RESPONSE_BYTES_MAX} bytes"
    ))
}

/// Decodes the answer's DATA: exactly one uncompressed message (invariant 2).
fn decode<A: prost::Message + Default>(mut data: Bytes) -> Result<A, Status> {
    if data.len() < PREFIX_BYTES {
        return Err(Status::internal(format!(
            "protocol error: {} bytes of answer, not one whole message",
            data.len()
        )));
    }
    let compressed = data.get_u8();
    if compressed != 0 {
        return Err(Status::internal(
            "protocol error: a compressed answer to an uncompressed request",
        ));
    }
    let len = data.get_u32() as usize;
    if len > RESPONSE_BYTES_MAX {
        return Err(too_large(len));
    }
    if data.len() != len {
        return Err(Status::internal(format!(
            "protocol error: a {len}-byte message with {} bytes after its prefix",
            data.len()
        )));
    }
    A::decode(data).map_err(|e| Status::internal(format!("bad answer message: {e}")))
}

/// The status in `grpc-status` / `grpc-message`, if `headers` carry one.
fn status_from_trailers(headers: &HeaderMap) -> Option<Status> {
    let code = Code::from_bytes(headers.get("grpc-status")?.as_bytes());
    let message = headers
        .get("grpc-message")
        .map(|m| percent_decode(m.as_bytes()))
        .unwrap_or_default();
    Some(Status::new(code, message))
}

/// `grpc-message` is percent-encoded UTF-8; a bad escape is kept as it is.
fn percent_decode(text: &[u8]) -> String {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let escaped = (text[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(text[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// gRPC's mapping of an HTTP status without a gRPC status (grpc/doc/http-grpc-status-mapping.md).
fn status_from_http(status: StatusCode) -> Status {
    let code = match status {
        StatusCode::BAD_REQUEST => Code::Internal,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::NOT_FOUND => Code::Unimplemented,
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(
        code,
        format!(
            "grpc-status header missing, mapped from HTTP status code {}",
            status.as_u16()
        ),
    )
}

/// gRPC's mapping of an HTTP/2 error (grpc/doc/PROTOCOL-HTTP2.md, "Errors"), as tonic maps it.
fn status_from_h2(error: h2::Error) -> Status {
    let code = match error.reason() {
        Some(h2::Reason::REFUSED_STREAM) => Code::Unavailable,
        Some(h2::Reason::CANCEL) => Code::Cancelled,
        Some(h2::Reason::ENHANCE_YOUR_CALM) => Code::ResourceExhausted,
        Some(h2::Reason::INADEQUATE_SECURITY) => Code::PermissionDenied,
        Some(_) => Code::Internal,
        // Not a reset: the connection broke (I/O) or was closed.
        None if error.is_io() || error.is_go_away() => Code::Unavailable,
        None => Code::Unknown,
    };
    Status::new(code, format!("h2 protocol error: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::{
        PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader, TxnRequest,
        TxnResponse,
    };

    #[test]
    fn a_request_is_one_uncompressed_length_prefixed_message() {
        let request = PutRequest {
            key: b"k".to_vec().into(),
            value: vec![7; 300].into(),
            ..Default::default()
        };
        let frame = encode(&request);
        let len = prost::Message::encoded_len(&request);
        assert_eq!(frame.len(), PREFIX_BYTES + len);
        assert_eq!(frame[0], 0);
        assert_eq!(
            u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize,
            len
        );
        let back: PutRequest = decode(frame).expect("its own framing decodes");
        assert_eq!(back, request);
    }

    #[test]
    fn malformed_answers_are_statuses_not_panics() {
        let answer = PutResponse {
            header: Some(ResponseHeader {
                revision: 9,
                ..Default::default()
            }),
            prev_kv: None,
        };
        let frame = encode(&answer);
        // Too short, truncated, trailing bytes, compressed, too large, not protobuf.
        let short = frame.slice(..3);
        let truncated = frame.slice(..frame.len() - 1);
        let mut trailing = BytesMut::from(&frame[..]);
        trailing.put_u8(0);
        let mut compressed = BytesMut::from(&frame[..]);
        compressed[0] = 1;
        let mut huge = BytesMut::new();
        huge.put_u8(0);
        huge.put_u32(u32::MAX);
        let mut garbage = BytesMut::new();
        garbage.put_u8(0);
        garbage.put_u32(2);
        garbage.put_slice(&[0xff, 0xff]);
        let cases = [
            (short, Code::Internal),
            (truncated, Code::Internal),
            (trailing.freeze(), Code::Internal),
            (compressed.freeze(), Code::Internal),
            (huge.freeze(), Code::OutOfRange),
            (garbage.freeze(), Code::Internal),
        ];
        for (data, code) in cases {
            let outcome = decode::<PutResponse>(data.clone());
            match outcome {
                Err(status) => assert_eq!(status.code(), code, "{data:?}: {status:?}"),
                Ok(ok) => panic!("{data:?} decoded as {ok:?}"),
            }
        }
        assert_eq!(decode::<PutResponse>(frame).expect("a good answer"), answer);
    }

    #[test]
    fn an_answer_in_several_frames_is_put_back_together() {
        let answer = PutResponse {
            header: Some(ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 3,
                raft_term: 4,
            }),
            prev_kv: None,
        };
        let frame = encode(&answer);
        for split in [1, PREFIX_BYTES, frame.len() - 1] {
            let mut message = Message::default();
            message.push(frame.slice(..split)).expect("small");
            message.push(frame.slice(split..split + 1)).expect("small");
            message.push(frame.slice(split + 1..)).expect("small");
            assert_eq!(message.len(), frame.len());
            assert_eq!(
                decode::<PutResponse>(message.into_bytes()).expect("a good answer"),
                answer
            );
        }
        let mut message = Message::default();
        let over = Bytes::from(vec![0; PREFIX_BYTES + RESPONSE_BYTES_MAX + 1]);
        let status = message.push(over).expect_err("over the limit");
        assert_eq!(status.code(), Code::OutOfRange);
    }

    #[test]
    fn grpc_status_and_message_come_from_the_trailers() {
        let mut trailers = HeaderMap::new();
        assert!(status_from_trailers(&trailers).is_none());
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let ok = status_from_trailers(&trailers).expect("has a status");
        assert_eq!((ok.code(), ok.message()), (Code::Ok, ""));
        trailers.insert("grpc-status", HeaderValue::from_static("9"));
        trailers.insert(
            "grpc-message",
            HeaderValue::from_static("etcdserver: request is too large %E2%9C%93 100%"),
        );
        let failed = status_from_trailers(&trailers).expect("has a status");
        assert_eq!(failed.code(), Code::FailedPrecondition);
        assert_eq!(
            failed.message(),
            "etcdserver: request is too large \u{2713} 100%"
        );
    }

    /// A no-op KV server (tonic) on a free port; its URI.
    async fn noop_server() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let addr = listener.local_addr().expect("bound");
        tokio::spawn(crate::noop::serve_on(listener));
        format!("http://{addr}")
    }

    const TEST_TIMEOUT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn unary_calls_reach_a_tonic_server_and_decode_its_answers() {
        let uri = noop_server().await;
        let mut conn = GrpcConn::connect(&uri, TEST_TIMEOUT)
            .await
            .expect("connects");
        for revision in 1..=3 {
            let request = PutRequest {
                key: b"k".to_vec().into(),
                value: vec![1; 256].into(),
                ..Default::default()
            };
            let answer: PutResponse = conn.unary(path::KV_PUT, &request).await.expect("put");
            assert_eq!(answer.header.map(|h| h.revision), Some(revision));
        }
        let range = RangeRequest {
            key: b"k".to_vec().into(),
            ..Default::default()
        };
        let answer: RangeResponse = conn.unary(path::KV_RANGE, &range).await.expect("range");
        assert_eq!(answer.header.map(|h| h.revision), Some(3));
    }

    #[tokio::test]
    async fn a_server_error_comes_back_as_its_grpc_status() {
        let uri = noop_server().await;
        let mut conn = GrpcConn::connect(&uri, TEST_TIMEOUT)
            .await
            .expect("connects");
        let status = conn
            .unary::<_, TxnResponse>(path::KV_TXN, &TxnRequest::default())
            .await
            .expect_err("the no-op server has no Txn");
        assert_eq!(status.code(), Code::Unimplemented);
        assert_eq!(status.message(), "the no-op baseline serves Put and Range");
        // The connection is still good after an error.
        let range = RangeRequest::default();
        conn.unary::<_, RangeResponse>(path::KV_RANGE, &range)
            .await
            .expect("range after an error");
    }

    /// What the raw test server answers to every request.
    #[derive(Clone)]
    struct Answer {
        headers: Vec<(&'static str, &'static str)>,
        /// DATA frames (none: a trailers-only answer, its status in `headers`).
        data: Vec<Bytes>,
        trailers: Vec<(&'static str, &'static str)>,
    }

    fn header_map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    /// An HTTP/2 server (h2 alone, no gRPC library) that gives `answer` to every request,
    /// to produce answers a real server would not; its URI.
    async fn raw_server(answer: Answer) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let uri = format!("http://{}", listener.local_addr().expect("bound"));
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("a client connects");
            let mut connection = h2::server::handshake(tcp).await.expect("handshake");
            while let Some(Ok((_request, mut respond))) = connection.accept().await {
                let mut head = http::Response::new(());
                *head.headers_mut() = header_map(&answer.headers);
                let trailers_only = answer.data.is_empty() && answer.trailers.is_empty();
                let mut body = respond
                    .send_response(head, trailers_only)
                    .expect("send headers");
                for data in &answer.data {
                    body.send_data(data.clone(), false).expect("send data");
                }
                if !trailers_only {
                    body.send_trailers(header_map(&answer.trailers))
                        .expect("send trailers");
                }
            }
        });
        uri
    }

    const GRPC_HEADERS: [(&str, &str); 1] = [("content-type", "application/grpc")];
    const GRPC_OK: [(&str, &str); 1] = [("grpc-status", "0")];

    // An answer larger than the stream's receive window arrives only if the client gives
    // the received bytes back to flow control as they come (invariant 1).
    #[tokio::test]
    async fn an_answer_larger_than_the_receive_window_arrives_in_pieces() {
        const WINDOW_BYTES: u32 = 65_535;
        let big = RangeResponse {
            kvs: vec![crate::proto::mvccpb::KeyValue {
                key: b"k".to_vec().into(),
                value: vec![3; 4 * WINDOW_BYTES as usize].into(),
                ..Default::default()
            }],
            count: 1,
            ..Default::default()
        };
        let frame = encode(&big);
        // In pieces of at most 16 KiB (h2's default frame size), several per window.
        let pieces = (0..frame.len())
            .step_by(10_000)
            .map(|at| frame.slice(at..(at + 10_000).min(frame.len())))
            .collect();
        let uri = raw_server(Answer {
            headers: GRPC_HEADERS.to_vec(),
            data: pieces,
            trailers: GRPC_OK.to_vec(),
        })
        .await;
        let mut conn =
            GrpcConn::connect_with_windows(&uri, TEST_TIMEOUT, WINDOW_BYTES, WINDOW_BYTES)
                .await
                .expect("connects");
        let range = RangeRequest::default();
        for _ in 0..2 {
            let call = conn.unary::<_, RangeResponse>(path::KV_RANGE, &range);
            let answer = tokio::time::timeout(TEST_TIMEOUT, call)
                .await
                .expect("the whole answer arrived")
                .expect("a good answer");
            assert_eq!(answer, big);
        }
    }

    #[tokio::test]
    async fn answers_without_a_good_status_or_message_are_errors() {
        let frame = encode(&PutResponse::default());
        let cases = [
            // Trailers-only, failed: the status in the headers.
            (
                vec![("grpc-status", "14"), ("grpc-message", "leader%20lost")],
                vec![],
                vec![],
                Code::Unavailable,
            ),
            // Trailers-only "OK" has no message to return.
            (GRPC_OK.to_vec(), vec![], vec![], Code::Internal),
            // A message but no grpc-status trailer.
            (
                GRPC_HEADERS.to_vec(),
                vec![frame.clone()],
                vec![("x-other", "1")],
                Code::Unknown,
            ),
            // A message and a failed status: the status wins.
            (
                GRPC_HEADERS.to_vec(),
                vec![frame.clone()],
                vec![("grpc-status", "9")],
                Code::FailedPrecondition,
            ),
            // OK, but the message is cut short.
            (
                GRPC_HEADERS.to_vec(),
                vec![frame.slice(..3)],
                GRPC_OK.to_vec(),
                Code::Internal,
            ),
        ];
        for (headers, data, trailers, code) in cases {
            let uri = raw_server(Answer {
                headers: headers.clone(),
                data,
                trailers,
            })
            .await;
            let mut conn = GrpcConn::connect(&uri, TEST_TIMEOUT)
                .await
                .expect("connects");
            let status = conn
                .unary::<_, PutResponse>(path::KV_PUT, &PutRequest::default())
                .await
                .expect_err("not a good answer");
            assert_eq!(status.code(), code, "{headers:?}: {status:?}");
        }
    }

    #[tokio::test]
    async fn connecting_to_a_closed_port_fails_naming_the_endpoint() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let uri = format!("http://{}", listener.local_addr().expect("bound"));
        drop(listener);
        let error = GrpcConn::connect(&uri, TEST_TIMEOUT)
            .await
            .err()
            .expect("nothing listens");
        assert!(format!("{error:#}").contains(&uri), "{error:#}");
        let error = GrpcConn::connect("https://127.0.0.1:1", TEST_TIMEOUT)
            .await
            .err()
            .expect("no TLS");
        assert!(format!("{error:#}").contains("only http://"), "{error:#}");
    }

    #[test]
    fn the_connection_task_yields_once_per_wake_up_and_then_runs() {
        struct Wakes(std::sync::atomic::AtomicUsize);
        impl futures::task::ArcWake for Wakes {
            fn wake_by_ref(this: &std::sync::Arc<Self>) {
                this.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let wakes = std::sync::Arc::new(Wakes(0.into()));
        let waker = futures::task::waker(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let inner_polls = std::cell::Cell::new(0);
        let inner = std::future::poll_fn(|_| {
            inner_polls.set(inner_polls.get() + 1);
            if inner_polls.get() < 2 {
                Poll::Pending
            } else {
                Poll::Ready("done")
            }
        });
        let mut batching = WriteBatching::new(inner);
        let woken = |wakes: &Wakes| wakes.0.load(std::sync::atomic::Ordering::Relaxed);
        // Woken: yield (and ask to be polled again) without touching the connection.
        assert_eq!(Pin::new(&mut batching).poll(&mut cx), Poll::Pending);
        assert_eq!(woken(&wakes), 1);
        assert_eq!(inner_polls.get(), 0);
        // Polled again: the connection runs (and is pending).
        assert_eq!(Pin::new(&mut batching).poll(&mut cx), Poll::Pending);
        assert_eq!((woken(&wakes), inner_polls.get()), (1, 1));
        // The next wake-up yields again, then the connection runs and finishes.
        assert_eq!(Pin::new(&mut batching).poll(&mut cx), Poll::Pending);
        assert_eq!(woken(&wakes), 2);
        assert_eq!(Pin::new(&mut batching).poll(&mut cx), Poll::Ready("done"));
        assert_eq!(inner_polls.get(), 2);
    }

    #[test]
    fn http_statuses_map_as_grpc_says() {
        assert_eq!(
            status_from_http(StatusCode::NOT_FOUND).code(),
            Code::Unimplemented
        );
        assert_eq!(
            status_from_http(StatusCode::SERVICE_UNAVAILABLE).code(),
            Code::Unavailable
        );
        assert_eq!(
            status_from_http(StatusCode::IM_A_TEAPOT).code(),
            Code::Unknown
        );
        let reset = status_from_h2(h2::Error::from(h2::Reason::REFUSED_STREAM));
        assert_eq!(reset.code(), Code::Unavailable);
        let cancel = status_from_h2(h2::Error::from(h2::Reason::CANCEL));
        assert_eq!(cancel.code(), Code::Cancelled);
    }
}
