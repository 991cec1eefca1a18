//! Runs a member: starts the node, serves the peer service on every
//! --listen-peer-urls address and the client API on every
//! --listen-client-urls address, stops cleanly on SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt as _;
use tokio::net::TcpListener;
use tonic::transport::server::{Router, TcpIncoming};

use crate::api::{
    ClusterOps, ClusterService, ElectionService, KvService, LeaseService, LockService,
    MaintenanceService, WatchService,
};
use crate::concurrency::InternalClient;
use crate::config::Config;
use crate::node::{start, RunningNode};
use crate::proto::etcdserverpb::cluster_server::ClusterServer;
use crate::proto::etcdserverpb::kv_server::KvServer;
use crate::proto::etcdserverpb::lease_server::LeaseServer;
use crate::proto::etcdserverpb::maintenance_server::MaintenanceServer;
use crate::proto::etcdserverpb::watch_server::WatchServer;
use crate::proto::keelpb::peer_server::PeerServer;
use crate::proto::v3electionpb::election_server::ElectionServer;
use crate::proto::v3lockpb::lock_server::LockServer;
use crate::transport::PeerService;

/// etcd's grpcOverheadBytes: gRPC accepts messages this much larger than
/// --max-request-bytes, so that the request itself can be rejected with
/// etcd's "request is too large" instead of a transport error.
const GRPC_OVERHEAD_BYTES: u64 = 512 * 1024;
/// Longest a stopping leader waits for its successor to take over.
const LEADERSHIP_HANDOVER_MAX: Duration = Duration::from_secs(3);
/// How long a stop waits for open connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Largest peer message (Raft appends of up to 1 MiB, snapshots more).
const PEER_MESSAGE_BYTES_MAX: usize = 256 << 20;

/// Runs the member described by `config` until SIGINT/SIGTERM.
pub fn run(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("keel-edge")
        .enable_all()
        .build()
        .context("starting the edge runtime")?;
    let node = runtime.block_on(start(&config))?;
    let served = runtime.block_on(serve(&config, &node));
    drop(runtime);
    let stopped = node.join();
    served.and(stopped)
}

async fn serve(config: &Config, node: &RunningNode) -> anyhow::Result<()> {
    let client_listeners = bind_all("listen-client-urls", &config.listen_client_urls).await?;
    let peer_listeners = bind_all("listen-peer-urls", &config.listen_peer_urls).await?;
    node.spawn_watch_hub();
    if let Some(mode) = config.auto_compaction {
        tokio::spawn(crate::compactor::run(node.handle.clone(), mode));
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let cluster = ClusterOps::new(
        node.handle.clone(),
        node.transport.clone(),
        config.strict_reconfig_check,
    );
    // Peers first: this member cannot become ready without its peers.
    let mut servers = Vec::new();
    for (url, listener) in peer_listeners {
        tracing::info!(address = %url, "serving peer requests");
        let peer = PeerServer::new(PeerService::new(
            node.handle.clone(),
            node.transport.clone(),
            cluster.clone(),
        ))
        .max_decoding_message_size(PEER_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(PEER_MESSAGE_BYTES_MAX);
        let router = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(peer);
        servers.push(spawn_server(router, listener, stop_rx.clone()));
    }
    node.ready().await?;
    for (url, listener) in client_listeners {
        tracing::info!(address = %url, "serving client requests");
        servers.push(spawn_server(
            client_router(config, node, cluster.clone()),
            listener,
            stop_rx.clone(),
        ));
    }
    tracing::info!("ready to serve client requests");
    let outcome = wait_for_stop(node).await;
    if outcome.is_ok() {
        hand_over_leadership(&node.handle).await;
    }
    let _ = stop_tx.send(true);
    // Streams (watch, keep-alive, observe) never end by themselves: end them,
    // so that the connections holding them can close now.
    node.handle.shared().close_streams();
    // Graceful: finish in-flight requests; a client that keeps its
    // connection open without reading cannot hold the stop up longer.
    let aborts: Vec<_> = servers.iter().map(|s| s.abort_handle()).collect();
    match tokio::time::timeout(SHUTDOWN_GRACE, futures::future::join_all(servers)).await {
        Ok(results) => {
            for result in results {
                result.context("server task")?.context("serving")?;
            }
        }
        Err(_) => {
            tracing::warn!(
                grace_ms = SHUTDOWN_GRACE.as_millis() as u64,
                "closing connections that outlived the shutdown grace period"
            );
            aborts.iter().for_each(|a| a.abort());
        }
    }
    outcome
}

fn spawn_server(
    router: Router,
    listener: TcpListener,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Result<(), tonic::transport::Error>> {
    tokio::spawn(async move {
        router
            // tonic applies tcp_nodelay only to listeners it binds itself;
            // without it, small frames wait for delayed ACKs (Nagle): ~40 ms
            // stalls at the tail.
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener)
                    .with_nodelay(Some(true))
                    .map(|stream| stream.map(crate::batched_io::BatchedWrites::new)),
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            )
            .await
    })
}

fn client_router(config: &Config, node: &RunningNode, cluster: ClusterOps) -> Router {
    let max_decoding_bytes =
        usize::try_from(config.max_request_bytes + GRPC_OVERHEAD_BYTES).unwrap_or(usize::MAX);
    let kv = KvServer::new(KvService::new(node.handle.clone(), config.max_txn_ops))
        .max_decoding_message_size(max_decoding_bytes)
        .max_encoding_message_size(usize::MAX);
    let maintenance = MaintenanceServer::new(MaintenanceService::new(node.handle.clone()))
        .max_decoding_message_size(max_decoding_bytes)
        .max_encoding_message_size(usize::MAX);
    let watch = WatchServer::new(WatchService::new(
        node.watch_hub.clone(),
        node.handle.clone(),
        config.max_request_bytes,
    ))
    .max_decoding_message_size(max_decoding_bytes)
    .max_encoding_message_size(usize::MAX);
    let lease = LeaseServer::new(LeaseService::new(
        node.handle.clone(),
        node.transport.clone(),
    ))
    .max_decoding_message_size(max_decoding_bytes)
    .max_encoding_message_size(usize::MAX);
    let cluster = ClusterServer::new(ClusterService::new(cluster))
        .max_decoding_message_size(max_decoding_bytes);
    let internal = InternalClient::new(node.handle.clone(), node.watch_hub.clone());
    let lock = LockServer::new(LockService::new(internal.clone()))
        .max_decoding_message_size(max_decoding_bytes);
    let election = ElectionServer::new(ElectionService::new(internal))
        .max_decoding_message_size(max_decoding_bytes);
    tonic::transport::Server::builder()
        .max_concurrent_streams(Some(config.max_concurrent_streams))
        .http2_keepalive_interval(config.grpc_keepalive_interval)
        .http2_keepalive_timeout(config.grpc_keepalive_timeout)
        .add_service(kv)
        .add_service(maintenance)
        .add_service(watch)
        .add_service(lease)
        .add_service(cluster)
        .add_service(lock)
        .add_service(election)
}

/// Binds every URL before serving, so a taken port fails at startup.
async fn bind_all(flag: &str, urls: &[url::Url]) -> anyhow::Result<Vec<(String, TcpListener)>> {
    let mut listeners = Vec::new();
    for url in urls {
        let addr = socket_addr(url)?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("listen tcp {addr} (--{flag} {url})"))?;
        listeners.push((crate::cluster::url_text(url), listener));
    }
    Ok(listeners)
}

/// `http://localhost:2379` binds 127.0.0.1:2379, as etcd does.
fn socket_addr(url: &url::Url) -> anyhow::Result<SocketAddr> {
    let port = url.port().with_context(|| format!("{url} has no port"))?;
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.into(),
        Some(url::Host::Ipv6(ip)) => ip.into(),
        Some(url::Host::Domain("localhost")) => std::net::Ipv4Addr::LOCALHOST.into(),
        _ => anyhow::bail!("expected IP in URL for binding ({url})"),
    };
    Ok(SocketAddr::new(ip, port))
}

/// Until SIGINT/SIGTERM (clean stop) or the core stopping on its own (error).
/// etcd's TransferLeadership on a graceful stop: a leader with other voters
/// hands leadership to the most up-to-date active one first, so the cluster
/// does not wait an election timeout for a new leader.
async fn hand_over_leadership(node: &crate::node::NodeHandle) {
    if !node.is_leader() {
        return;
    }
    let Ok(status) = node.raft_status().await else {
        return;
    };
    let me = node.shared().member_id;
    let target = status
        .progress
        .iter()
        .flatten()
        .filter(|(id, p)| id.0 != me && !p.is_learner && p.recent_active)
        .max_by_key(|(_, p)| p.match_index)
        .map(|(id, _)| id.0);
    let Some(target) = target else { return };
    let started = std::time::Instant::now();
    match tokio::time::timeout(LEADERSHIP_HANDOVER_MAX, node.transfer_leader(target)).await {
        Ok(Ok(())) => tracing::info!(
            to = format!("{target:x}"),
            took_ms = started.elapsed().as_millis() as u64,
            "handed leadership over before stopping"
        ),
        Ok(Err(e)) => {
            tracing::warn!(to = format!("{target:x}"), error = %e, "leadership handover failed; stopping anyway")
        }
        Err(_) => tracing::warn!(
            to = format!("{target:x}"),
            "leadership handover timed out; stopping anyway"
        ),
    }
}

async fn wait_for_stop(node: &RunningNode) -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("received SIGINT, stopping");
                return Ok(());
            }
            _ = terminate.recv() => {
                tracing::info!("received SIGTERM, stopping");
                return Ok(());
            }
            _ = poll.tick() => {
                if node.core_finished() || node.handle.shared().is_stopped() {
                    anyhow::bail!("the core stopped; the member cannot serve (see the log above)");
                }
            }
        }
    }
}
