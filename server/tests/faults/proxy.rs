//! TCP proxies in front of every member's peer listener, and the link table
//! that lets a test cut and heal the directed links between members.
//!
//! Each member advertises its proxy's port as its peer URL, so every peer
//! connection to member `to` goes through `to`'s proxy. The proxy learns the
//! dialing member `from` from the socket's owner (see `socket_owner`), and
//! forwards bytes only while the link `from -> to` is up. Cutting a link is a
//! black hole, as a real partition is: bytes in flight are dropped, open
//! connections go silent, new connections are accepted and never answered.
//! Healing closes every connection that went silent (their byte streams have
//! gaps), so members reconnect afresh.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::cluster::MemberIndex;
use super::socket_owner::socket_owner;

/// Connections one proxy serves at once, max; more are closed on accept.
const CONNECTIONS_MAX: usize = 512;
/// Attempts to attribute a connection to a member before giving up on it.
const ATTRIBUTION_ATTEMPTS_MAX: u32 = 3;
/// Pause between attribution attempts.
const ATTRIBUTION_RETRY_DELAY: Duration = Duration::from_millis(5);
/// Pause after a failed accept (e.g. out of file descriptors).
const ACCEPT_ERROR_DELAY: Duration = Duration::from_millis(20);

/// Which directed links are cut, and which pid each member runs as.
pub(crate) struct Network {
    state: Mutex<NetworkState>,
    /// Bumped on every change of `cut`, to wake connections.
    changed: watch::Sender<u64>,
}

struct NetworkState {
    /// Directed links (from, to) that drop traffic.
    cut: BTreeSet<(MemberIndex, MemberIndex)>,
    /// The pid of each member's running process.
    pids: Vec<Option<u32>>,
}

impl Network {
    pub(crate) fn new(member_count: usize) -> Arc<Network> {
        Arc::new(Network {
            state: Mutex::new(NetworkState {
                cut: BTreeSet::new(),
                pids: vec![None; member_count],
            }),
            changed: watch::channel(0).0,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NetworkState> {
        self.state
            .lock()
            .expect("network table lock is never held across a panic")
    }

    /// Records the pid `member` now runs as (`None`: not running).
    pub(crate) fn set_pid(&self, member: MemberIndex, pid: Option<u32>) {
        self.lock().pids[member.0] = pid;
    }

    fn running_pids(&self) -> Vec<(MemberIndex, u32)> {
        let state = self.lock();
        (0..state.pids.len())
            .filter_map(|i| state.pids[i].map(|pid| (MemberIndex(i), pid)))
            .collect()
    }

    /// Cuts `member` off from every other member, both directions.
    pub(crate) fn isolate(&self, member: MemberIndex) {
        let mut state = self.lock();
        for other in (0..state.pids.len())
            .map(MemberIndex)
            .filter(|&m| m != member)
        {
            state.cut.insert((member, other));
            state.cut.insert((other, member));
        }
        drop(state);
        self.changed.send_modify(|generation| *generation += 1);
    }

    /// Restores every link.
    pub(crate) fn heal_all(&self) {
        self.lock().cut.clear();
        self.changed.send_modify(|generation| *generation += 1);
    }

    /// Whether traffic from `from` to `to` is dropped.
    pub(crate) fn is_cut(&self, from: MemberIndex, to: MemberIndex) -> bool {
        self.lock().cut.contains(&(from, to))
    }

    /// The cut links, for reports.
    pub(crate) fn cut_links(&self) -> Vec<(MemberIndex, MemberIndex)> {
        self.lock().cut.iter().copied().collect()
    }

    /// Resolves once `link_is_cut(from, to) == cut` (at once if it already is).
    async fn wait_until(&self, from: MemberIndex, to: MemberIndex, cut: bool) {
        let mut changes = self.changed.subscribe();
        while self.is_cut(from, to) != cut {
            if changes.changed().await.is_err() {
                return; // The network is gone: nothing will change any more.
            }
        }
    }
}

/// Counters of one proxy, for reports.
#[derive(Debug, Default)]
pub(crate) struct ProxyStats {
    /// Connections forwarded to the member.
    pub forwarded: AtomicU64,
    /// Connections accepted on a cut link and never answered.
    pub blackholed: AtomicU64,
    /// Forwarded connections that went silent when their link was cut.
    pub silenced: AtomicU64,
    /// Connections no member could be found for (closed at once).
    pub unattributed: AtomicU64,
    /// Connections the member's listener refused (member down).
    pub upstream_refused: AtomicU64,
}

impl ProxyStats {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A proxy in front of one member's peer listener.
pub(crate) struct PeerProxy {
    pub stats: Arc<ProxyStats>,
    accept_task: JoinHandle<()>,
}

impl PeerProxy {
    /// Serves `listener` (already bound, so its port is ours), forwarding to
    /// `upstream`, the real peer listener of member `target`.
    pub(crate) fn start(
        target: MemberIndex,
        listener: std::net::TcpListener,
        upstream: SocketAddr,
        network: Arc<Network>,
    ) -> std::io::Result<PeerProxy> {
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let stats = Arc::new(ProxyStats::default());
        let accept_task = tokio::spawn(accept_loop(
            listener,
            Link {
                target,
                upstream,
                network,
                stats: stats.clone(),
            },
        ));
        Ok(PeerProxy { stats, accept_task })
    }
}

impl Drop for PeerProxy {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet, which aborts every
        // connection task and closes their sockets.
        self.accept_task.abort();
    }
}

/// What every connection task of one proxy needs.
#[derive(Clone)]
struct Link {
    target: MemberIndex,
    upstream: SocketAddr,
    network: Arc<Network>,
    stats: Arc<ProxyStats>,
}

/// Endless by design: runs until the proxy is dropped.
async fn accept_loop(listener: TcpListener, link: Link) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, dialer)) if connections.len() < CONNECTIONS_MAX => {
                    let local = stream.local_addr();
                    if let Ok(local) = local {
                        connections.spawn(serve(stream, dialer, local, link.clone()));
                    }
                }
                Ok(_) => {} // Over the bound: dropping closes it; the dialer retries.
                Err(_) => tokio::time::sleep(ACCEPT_ERROR_DELAY).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// One accepted connection from `dialer`, through its whole life.
async fn serve(inbound: TcpStream, dialer: SocketAddr, local: SocketAddr, link: Link) {
    let Some(from) = attribute(dialer, local, &link.network).await else {
        ProxyStats::bump(&link.stats.unattributed);
        return;
    };
    let to = link.target;
    if link.network.is_cut(from, to) {
        ProxyStats::bump(&link.stats.blackholed);
        link.network.wait_until(from, to, false).await;
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(link.upstream).await else {
        ProxyStats::bump(&link.stats.upstream_refused);
        return;
    };
    // Peer traffic is many small messages: never let Nagle hold them.
    let _ = inbound.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    ProxyStats::bump(&link.stats.forwarded);
    let mut inbound = inbound;
    let cut = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut upstream) => false,
        _ = link.network.wait_until(from, to, true) => true,
    };
    if cut {
        ProxyStats::bump(&link.stats.silenced);
        link.network.wait_until(from, to, false).await;
    }
}

/// The member whose process opened the connection from `dialer`.
async fn attribute(
    dialer: SocketAddr,
    local: SocketAddr,
    network: &Network,
) -> Option<MemberIndex> {
    for _ in 0..ATTRIBUTION_ATTEMPTS_MAX {
        let running = network.running_pids();
        let pids: Vec<u32> = running.iter().map(|&(_, pid)| pid).collect();
        let owner = tokio::task::spawn_blocking(move || socket_owner(dialer, local, &pids)).await;
        if let Ok(Ok(Some(pid))) = owner {
            return running
                .iter()
                .find(|&&(_, p)| p == pid)
                .map(|&(member, _)| member);
        }
        tokio::time::sleep(ATTRIBUTION_RETRY_DELAY).await;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An echo server on a free port, for the proxy to forward to.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let address = listener.local_addr().expect("echo address");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0u8; 1024];
                    while let Ok(n @ 1..) = stream.read(&mut buffer).await {
                        if stream.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        address
    }

    async fn round_trip(stream: &mut TcpStream, payload: &[u8]) -> std::io::Result<Vec<u8>> {
        stream.write_all(payload).await?;
        let mut answer = vec![0u8; payload.len()];
        stream.read_exact(&mut answer).await?;
        Ok(answer)
    }

    // Guards the partition mechanics with this test process playing member
    // 0 and the proxy fronting member 1: traffic flows while the link is up,
    // goes silent (not refused) when it is cut, new connections on the cut
    // link are accepted but never answered, and after healing a silenced
    // connection is closed while a new one works.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cut_links_drop_traffic_silently_and_healing_restores_it() {
        let network = Network::new(2);
        network.set_pid(MemberIndex(0), Some(std::process::id()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let proxy_address = listener.local_addr().expect("proxy address");
        let proxy = PeerProxy::start(
            MemberIndex(1),
            listener,
            echo_server().await,
            network.clone(),
        )
        .expect("start proxy");
        let silence = Duration::from_millis(300);

        let mut before = TcpStream::connect(proxy_address).await.expect("connect");
        assert_eq!(
            round_trip(&mut before, b"ping").await.expect("echo"),
            b"ping"
        );

        network.isolate(MemberIndex(0));
        assert!(network.is_cut(MemberIndex(0), MemberIndex(1)));
        let silenced = tokio::time::timeout(silence, round_trip(&mut before, b"lost")).await;
        assert!(
            silenced.is_err(),
            "a cut link must drop bytes, got {silenced:?}"
        );
        let mut during = TcpStream::connect(proxy_address)
            .await
            .expect("accepted while cut");
        let blackholed = tokio::time::timeout(silence, round_trip(&mut during, b"lost")).await;
        assert!(
            blackholed.is_err(),
            "a new connection on a cut link must hang, got {blackholed:?}"
        );

        network.heal_all();
        let mut byte = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(5), before.read(&mut byte)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "silenced connection must close: {closed:?}"
        );
        let mut after = TcpStream::connect(proxy_address)
            .await
            .expect("connect after heal");
        assert_eq!(
            round_trip(&mut after, b"pong")
                .await
                .expect("echo after heal"),
            b"pong"
        );
        assert_eq!(proxy.stats.forwarded.load(Ordering::Relaxed), 2);
        assert_eq!(proxy.stats.silenced.load(Ordering::Relaxed), 1);
        assert_eq!(proxy.stats.blackholed.load(Ordering::Relaxed), 1);
    }

    // Guards attribution: a connection from a process that is not a member
    // (here: no member pid registered) is closed, never forwarded.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_from_unknown_processes_are_closed() {
        let network = Network::new(2);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let proxy_address = listener.local_addr().expect("proxy address");
        let proxy = PeerProxy::start(MemberIndex(1), listener, echo_server().await, network)
            .expect("start proxy");
        let mut stream = TcpStream::connect(proxy_address).await.expect("connect");
        let mut byte = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "must be closed: {closed:?}"
        );
        assert_eq!(proxy.stats.unattributed.load(Ordering::Relaxed), 1);
        assert_eq!(proxy.stats.forwarded.load(Ordering::Relaxed), 0);
    }
}
