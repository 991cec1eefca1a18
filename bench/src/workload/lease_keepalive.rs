//! `lease-keepalive`: keep-alive requests per second (etcd's `benchmark lease-keepalive`).
//! Each client grants one lease before the clock starts and sends keep-alives for it on its
//! own stream, one at a time.

use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::cli::Global;
use crate::client::{connect, drive_one};
use crate::proto::etcdserverpb::lease_client::LeaseClient;
use crate::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
};
use crate::report::Outcome;

/// TTL of the benchmark's leases: long enough to outlive any bounded run.
const LEASE_TTL_SECS: i64 = 600;

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct LeaseKeepaliveArgs {
    /// Total number of lease keepalive requests.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) total: u64,
}

/// One client's lease and keep-alive stream.
struct Session {
    id: i64,
    requests: mpsc::Sender<LeaseKeepAliveRequest>,
    responses: Streaming<LeaseKeepAliveResponse>,
}

async fn open_session(channel: tonic::transport::Channel) -> anyhow::Result<Session> {
    let mut lease = LeaseClient::new(channel);
    let id = lease
        .lease_grant(LeaseGrantRequest {
            ttl: LEASE_TTL_SECS,
            id: 0,
        })
        .await
        .context("LeaseGrant")?
        .into_inner()
        .id;
    let (requests, rx) = mpsc::channel(1);
    // grpc-go (etcd) sends a stream's response headers only with its first message: queue
    // one keep-alive before awaiting the call.
    requests
        .send(LeaseKeepAliveRequest { id })
        .await
        .context("keep-alive channel closed")?;
    let mut responses = lease
        .lease_keep_alive(ReceiverStream::new(rx))
        .await
        .context("opening a keep-alive stream")?
        .into_inner();
    let first = responses
        .message()
        .await
        .context("keep-alive stream failed")?;
    anyhow::ensure!(
        first.is_some_and(|r| r.ttl > 0),
        "lease {id:x} was not kept alive"
    );
    Ok(Session {
        id,
        requests,
        responses,
    })
}

pub(crate) async fn run(global: &Global, args: LeaseKeepaliveArgs) -> anyhow::Result<Outcome> {
    let channels = connect(global).await?;
    let mut sessions = Vec::new();
    for c in 0..usize::try_from(global.clients)? {
        let session = open_session(channels[c % channels.len()].clone()).await?;
        sessions.push(tokio::sync::Mutex::new(session));
    }
    let sessions = Arc::new(sessions);
    let report = drive_one(
        global,
        &channels,
        args.total,
        0,
        "lease-keepalive",
        move |call| {
            let sessions = sessions.clone();
            async move {
                // Client k is the only user of session k: the lock is never contended.
                let mut session = sessions[call.client].lock().await;
                let session = &mut *session;
                session
                    .requests
                    .send(LeaseKeepAliveRequest { id: session.id })
                    .await
                    .map_err(|_| tonic::Status::unavailable("keep-alive stream closed"))?;
                match session.responses.message().await? {
                    Some(response) if response.ttl > 0 => Ok(()),
                    Some(_) => Err(tonic::Status::not_found("lease not found")),
                    None => Err(tonic::Status::unavailable("keep-alive stream closed")),
                }
            }
        },
    )
    .await;
    Ok(Outcome::single("lease-keepalive", report))
}
