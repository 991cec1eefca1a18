//! `lease-keepalive`: keep-alive requests per second. Each client grants one
//! lease and sends keep-alives on its own stream, one at a time.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::client::{connect, drive};
use crate::proto::etcdserverpb::lease_client::LeaseClient;
use crate::proto::etcdserverpb::{LeaseGrantRequest, LeaseKeepAliveRequest};
use crate::report::Report;
use crate::Global;

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct LeaseKeepaliveArgs {
    /// Total number of keep-alive requests.
    #[arg(long, default_value_t = 10_000)]
    total: u64,
}

pub(crate) async fn run(global: &Global, args: LeaseKeepaliveArgs) -> anyhow::Result<Report> {
    let channels = connect(global).await?;
    // One lease and one keep-alive stream per client, set up before timing.
    let mut sessions = Vec::new();
    for c in 0..global.clients.max(1) {
        let mut lease = LeaseClient::new(channels[c % channels.len()].clone());
        let id = lease
            .lease_grant(LeaseGrantRequest { ttl: 600, id: 0 })
            .await?
            .into_inner()
            .id;
        let (tx, rx) = mpsc::channel(1);
        // grpc-go (etcd) sends a stream's response headers only with its
        // first message: send one keep-alive before awaiting the call.
        tx.send(LeaseKeepAliveRequest { id }).await?;
        let mut responses = lease
            .lease_keep_alive(ReceiverStream::new(rx))
            .await?
            .into_inner();
        anyhow::ensure!(
            responses.message().await?.is_some_and(|r| r.ttl > 0),
            "lease {id:x} not kept alive"
        );
        sessions.push(tokio::sync::Mutex::new((id, tx, responses)));
    }
    let sessions = std::sync::Arc::new(sessions);
    let report = drive(global, channels, args.total, 0, move |_channel, i| {
        let sessions = sessions.clone();
        async move {
            // Client k always uses session k: drive() numbers requests
            // globally, so map by request number modulo the clients.
            let mut session = sessions[(i as usize) % sessions.len()].lock().await;
            let (id, tx, responses) = &mut *session;
            tx.send(LeaseKeepAliveRequest { id: *id })
                .await
                .map_err(|_| tonic::Status::unavailable("keep-alive stream closed"))?;
            match responses.message().await? {
                Some(resp) if resp.ttl > 0 => Ok(()),
                Some(_) => Err(tonic::Status::not_found("lease not found")),
                None => Err(tonic::Status::unavailable("keep-alive stream closed")),
            }
        }
    })
    .await;
    Ok(report)
}
