//! A cluster of real member processes on loopback: started with etcd's
//! flags on free ports, each in its own data dir under one temp dir, peer
//! traffic through `PeerProxy`s; killed, stopped and restarted by PID (only
//! processes started here); queried with `etcd-client` (Maintenance.Status
//! for leaders and progress, HashKV, serializable reads). Every wait polls
//! with a deadline.

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, GetOptions};

use super::binary::MemberBinary;
use super::error::FaultError;
use super::proxy::{Network, PeerProxy};

/// A member's position in the cluster (0-based), not its Raft member id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct MemberIndex(pub usize);

impl fmt::Display for MemberIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m{}", self.0)
    }
}

/// Between two polls of a state we wait for.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// One status/health call to one member, max.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1_000);
/// SIGTERM to exit, max.
const STOP_DEADLINE: Duration = Duration::from_secs(20);
/// Lines of each member's log in failure reports.
pub(crate) const LOG_TAIL_LINES: usize = 40;
/// The key health probes read (never written).
const HEALTH_KEY: &str = "keel-faults/health";

/// How to build a cluster.
#[derive(Clone, Debug)]
pub(crate) struct ClusterConfig {
    pub member_count: usize,
    pub binary: MemberBinary,
    /// Flags appended to every member's command line.
    pub extra_args: Vec<String>,
    /// From spawn to a healthy cluster, max.
    pub start_deadline: Duration,
}

/// What one member says about itself (Maintenance.Status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MemberStatus {
    /// Its Raft member id.
    pub member_id: u64,
    /// The leader it follows; 0 = none.
    pub leader_id: u64,
    pub raft_term: u64,
    pub raft_index: u64,
    pub raft_applied_index: u64,
    /// Its store's current revision.
    pub revision: i64,
}

struct Member {
    name: String,
    data_dir: PathBuf,
    log_path: PathBuf,
    client_port: u16,
    /// Where the member itself listens for peers.
    peer_listen_port: u16,
    /// Its proxy, which it advertises to the others.
    peer_advertised_port: u16,
    child: Option<Child>,
    /// Raft member id, learned from its first status answer (0: not yet).
    id: u64,
}

/// A running cluster. Dropping it kills every member it started.
pub(crate) struct Cluster {
    config: ClusterConfig,
    members: Vec<Member>,
    network: Arc<Network>,
    proxies: Vec<PeerProxy>,
    token: String,
    /// Data dirs and logs; `None` once preserved for a post-mortem.
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
}

/// A free TCP port on 127.0.0.1 (bound and released; another process could
/// take it before the member binds it, a race these tests accept).
fn free_port() -> Result<u16, FaultError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|e| FaultError::io("picking a free port", e))
}

fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

impl Cluster {
    /// Spawns every member (and the peer proxies). The caller then waits
    /// for health with `wait_healthy(config.start_deadline)`, keeping the
    /// cluster (and its logs) at hand if that fails.
    pub(crate) fn launch(config: ClusterConfig) -> Result<Cluster, FaultError> {
        assert!(config.member_count >= 1, "a cluster has members");
        let dir = tempfile::Builder::new()
            .prefix("keel-faults-")
            .tempdir()
            .map_err(|e| FaultError::io("creating the cluster dir", e))?;
        let dir_path = dir.path().to_path_buf();
        let network = Network::new(config.member_count);
        let mut members = Vec::with_capacity(config.member_count);
        let mut proxies = Vec::with_capacity(config.member_count);
        for i in 0..config.member_count {
            let proxy_listener = TcpListener::bind("127.0.0.1:0")
                .map_err(|e| FaultError::io("binding a peer proxy", e))?;
            let peer_advertised_port = proxy_listener
                .local_addr()
                .map_err(|e| FaultError::io("peer proxy address", e))?
                .port();
            let peer_listen_port = free_port()?;
            let upstream = SocketAddr::from(([127, 0, 0, 1], peer_listen_port));
            proxies.push(
                PeerProxy::start(MemberIndex(i), proxy_listener, upstream, network.clone())
                    .map_err(|e| FaultError::io("starting a peer proxy", e))?,
            );
            members.push(Member {
                name: format!("m{i}"),
                data_dir: dir_path.join(format!("m{i}.data")),
                log_path: dir_path.join(format!("m{i}.log")),
                client_port: free_port()?,
                peer_listen_port,
                peer_advertised_port,
                child: None,
                id: 0,
            });
        }
        let token = format!("keel-faults-{}", std::process::id());
        let mut cluster = Cluster {
            config,
            members,
            network,
            proxies,
            token,
            dir: Some(dir),
            dir_path,
        };
        for i in 0..cluster.members.len() {
            cluster.spawn(MemberIndex(i))?;
        }
        Ok(cluster)
    }

    /// From spawn to a healthy cluster, max.
    pub(crate) fn start_deadline(&self) -> Duration {
        self.config.start_deadline
    }

    pub(crate) fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Every member, running or not.
    pub(crate) fn all_members(&self) -> Vec<MemberIndex> {
        (0..self.members.len()).map(MemberIndex).collect()
    }

    /// The cut and heal switchboard of the peer links.
    pub(crate) fn network(&self) -> &Network {
        &self.network
    }

    /// `host:port` of a member's client listener.
    pub(crate) fn client_endpoint(&self, member: MemberIndex) -> String {
        format!("127.0.0.1:{}", self.members[member.0].client_port)
    }

    /// Peer connections the proxies forwarded and cut, for reports.
    pub(crate) fn proxy_summary(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let total = |pick: fn(&super::proxy::ProxyStats) -> &std::sync::atomic::AtomicU64| {
            self.proxies
                .iter()
                .map(|p| pick(&p.stats).load(Relaxed))
                .sum::<u64>()
        };
        format!(
            "peer connections: {} forwarded, {} silenced by a cut, {} black-holed, {} refused by \
             a stopped member, {} unattributed",
            total(|s| &s.forwarded),
            total(|s| &s.silenced),
            total(|s| &s.blackholed),
            total(|s| &s.upstream_refused),
            total(|s| &s.unattributed),
        )
    }

    fn args(&self, member: MemberIndex) -> Vec<String> {
        let me = &self.members[member.0];
        let initial_cluster: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, url(m.peer_advertised_port)))
            .collect();
        let mut args = vec![
            format!("--name={}", me.name),
            format!("--data-dir={}", me.data_dir.display()),
            format!("--listen-client-urls={}", url(me.client_port)),
            format!("--advertise-client-urls={}", url(me.client_port)),
            format!("--listen-peer-urls={}", url(me.peer_listen_port)),
            format!(
                "--initial-advertise-peer-urls={}",
                url(me.peer_advertised_port)
            ),
            format!("--initial-cluster={}", initial_cluster.join(",")),
            "--initial-cluster-state=new".to_string(),
            format!("--initial-cluster-token={}", self.token),
        ];
        args.extend(self.config.extra_args.iter().cloned());
        args
    }

    fn spawn(&mut self, member: MemberIndex) -> Result<(), FaultError> {
        assert!(
            self.members[member.0].child.is_none(),
            "{member} is already running"
        );
        let args = self.args(member);
        let me = &mut self.members[member.0];
        let program = self.config.binary.program();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&me.log_path)
            .map_err(|e| FaultError::io(format!("opening {}", me.log_path.display()), e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| FaultError::io("cloning a log handle", e))?;
        let mut command = Command::new(&program);
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1");
        // The members get their configuration from flags only.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ETCD") {
                command.env_remove(name);
            }
        }
        let child = command.spawn().map_err(|source| FaultError::Spawn {
            member: me.name.clone(),
            program: program.display().to_string(),
            source,
        })?;
        self.network.set_pid(member, Some(child.id()));
        me.child = Some(child);
        Ok(())
    }

    /// Whether `member` was started and not stopped (it may have crashed;
    /// `check_running` finds out).
    pub(crate) fn is_running(&self, member: MemberIndex) -> bool {
        self.members[member.0].child.is_some()
    }

    /// Members started and not stopped.
    pub(crate) fn running_members(&self) -> Vec<MemberIndex> {
        self.all_members()
            .into_iter()
            .filter(|&m| self.is_running(m))
            .collect()
    }

    /// Fails if a member we did not stop has exited.
    pub(crate) fn check_running(&mut self) -> Result<(), FaultError> {
        for member in &mut self.members {
            if let Some(child) = member.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    member.child = None;
                    return Err(FaultError::MemberExited {
                        member: member.name.clone(),
                        status: status.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// SIGKILL: the member gets no chance to flush or say goodbye.
    pub(crate) fn kill9(&mut self, member: MemberIndex) -> Result<(), FaultError> {
        let me = &mut self.members[member.0];
        let mut child = me
            .child
            .take()
            .unwrap_or_else(|| panic!("{member} is not running"));
        self.network.set_pid(member, None);
        let killed = child.kill();
        let reaped = child.wait();
        killed.map_err(|e| FaultError::io(format!("SIGKILL to {}", me.name), e))?;
        reaped.map_err(|e| FaultError::io(format!("reaping {}", me.name), e))?;
        Ok(())
    }

    /// SIGTERM, then waits for the exit (SIGKILL after `STOP_DEADLINE`).
    pub(crate) async fn terminate(&mut self, member: MemberIndex) -> Result<(), FaultError> {
        let me = &mut self.members[member.0];
        let mut child = me
            .child
            .take()
            .unwrap_or_else(|| panic!("{member} is not running"));
        let pid = libc::pid_t::try_from(child.id()).expect("pids fit pid_t");
        // SAFETY: kill(2) takes no pointers; `pid` is our own unreaped child,
        // so it cannot name a recycled process.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            let error = std::io::Error::last_os_error();
            let _ = child.kill();
            let _ = child.wait();
            self.network.set_pid(member, None);
            return Err(FaultError::io(format!("SIGTERM to {}", me.name), error));
        }
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if started.elapsed() < STOP_DEADLINE => {
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    self.network.set_pid(member, None);
                    return Err(FaultError::StopTimeout {
                        member: me.name.clone(),
                        waited_ms: started.elapsed().as_millis(),
                    });
                }
            }
        }
        self.network.set_pid(member, None);
        Ok(())
    }

    /// Starts a stopped member again on its data dir and ports (it rejoins;
    /// callers wait for health).
    pub(crate) fn restart(&mut self, member: MemberIndex) -> Result<(), FaultError> {
        self.spawn(member)
    }

    async fn client(&self, member: MemberIndex) -> Result<Client, FaultError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(PROBE_TIMEOUT)
            .with_timeout(PROBE_TIMEOUT);
        Client::connect([self.client_endpoint(member)], Some(options))
            .await
            .map_err(|source| self.client_error(member, "connect", source))
    }

    fn client_error(
        &self,
        member: MemberIndex,
        operation: &str,
        source: etcd_client::Error,
    ) -> FaultError {
        FaultError::client(
            self.members[member.0].name.clone(),
            operation.to_string(),
            source,
        )
    }

    /// Maintenance.Status of one member.
    pub(crate) async fn status(&self, member: MemberIndex) -> Result<MemberStatus, FaultError> {
        let mut client = self.client(member).await?;
        let status = client
            .status()
            .await
            .map_err(|source| self.client_error(member, "Maintenance.Status", source))?;
        let header = status.header().ok_or_else(|| FaultError::Protocol {
            member: self.members[member.0].name.clone(),
            detail: "Maintenance.Status answered without a response header".to_string(),
        })?;
        Ok(MemberStatus {
            member_id: header.member_id(),
            leader_id: status.leader(),
            raft_term: status.raft_term(),
            raft_index: status.raft_index(),
            raft_applied_index: status.raft_applied_index(),
            revision: header.revision(),
        })
    }

    /// Statuses of `members`, remembering their Raft ids.
    async fn statuses(&mut self, members: &[MemberIndex]) -> Result<Vec<MemberStatus>, FaultError> {
        let mut out = Vec::with_capacity(members.len());
        for &member in members {
            let status = self.status(member).await?;
            let me = &mut self.members[member.0];
            if me.id != 0 && me.id != status.member_id {
                return Err(FaultError::Protocol {
                    member: me.name.clone(),
                    detail: format!(
                        "member id changed from {:x} to {:x} (same data dir)",
                        me.id, status.member_id
                    ),
                });
            }
            me.id = status.member_id;
            out.push(status);
        }
        Ok(out)
    }

    fn member_by_id(&self, id: u64) -> Option<MemberIndex> {
        if id == 0 {
            return None;
        }
        self.members
            .iter()
            .position(|m| m.id == id)
            .map(MemberIndex)
    }

    /// Polls until every member of `among` answers Status, all name the same
    /// leader, and that leader is in `among` and names itself. Members
    /// outside `among` (isolated or stopped) are not asked.
    pub(crate) async fn wait_for_leader(
        &mut self,
        among: &[MemberIndex],
        deadline: Duration,
    ) -> Result<MemberIndex, FaultError> {
        let started = Instant::now();
        let mut last;
        loop {
            self.check_running()?;
            match self.statuses(among).await {
                Ok(statuses) => {
                    let leader_id = statuses[0].leader_id;
                    let agreed = statuses.iter().all(|s| s.leader_id == leader_id);
                    if let Some(leader) = self.member_by_id(leader_id).filter(|_| agreed) {
                        if among.contains(&leader) {
                            return Ok(leader);
                        }
                    }
                    last = statuses
                        .iter()
                        .zip(among)
                        .map(|(s, m)| {
                            format!("{m} follows {:x} (term {})", s.leader_id, s.raft_term)
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                }
                Err(e) => last = e.to_string(),
            }
            if started.elapsed() > deadline {
                let among: Vec<String> = among.iter().map(|m| m.to_string()).collect();
                return Err(FaultError::Deadline {
                    what: format!("one leader among {}", among.join(", ")),
                    waited_ms: started.elapsed().as_millis(),
                    last,
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Polls until the running members agree on a leader and each serves a
    /// linearizable read (a ReadIndex round through the leader).
    pub(crate) async fn wait_healthy(
        &mut self,
        deadline: Duration,
    ) -> Result<MemberIndex, FaultError> {
        let started = Instant::now();
        let running = self.running_members();
        let leader = self.wait_for_leader(&running, deadline).await?;
        for &member in &running {
            let mut last;
            loop {
                self.check_running()?;
                let read = async {
                    let mut client = self.client(member).await?;
                    client
                        .get(HEALTH_KEY, None)
                        .await
                        .map_err(|source| self.client_error(member, "linearizable Range", source))
                };
                match read.await {
                    Ok(_) => break,
                    Err(e) => last = e.to_string(),
                }
                if started.elapsed() > deadline {
                    return Err(FaultError::Deadline {
                        what: format!("a linearizable read served by {member}"),
                        waited_ms: started.elapsed().as_millis(),
                        last,
                    });
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
        Ok(leader)
    }

    /// Polls until every member is running and all report the same store
    /// revision and Raft applied index; returns that revision.
    pub(crate) async fn wait_converged(&mut self, deadline: Duration) -> Result<i64, FaultError> {
        let started = Instant::now();
        let all = self.all_members();
        assert_eq!(
            self.running_members(),
            all,
            "convergence needs every member running"
        );
        let mut last;
        loop {
            self.check_running()?;
            match self.statuses(&all).await {
                Ok(statuses) => {
                    let first = statuses[0];
                    if statuses.iter().all(|s| {
                        s.revision == first.revision
                            && s.raft_applied_index == first.raft_applied_index
                    }) {
                        return Ok(first.revision);
                    }
                    last = statuses
                        .iter()
                        .zip(&all)
                        .map(|(s, m)| {
                            format!(
                                "{m}: revision {} raft index {} applied {}",
                                s.revision, s.raft_index, s.raft_applied_index
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                }
                Err(e) => last = e.to_string(),
            }
            if started.elapsed() > deadline {
                return Err(FaultError::Deadline {
                    what: "every member at the same revision and applied index".to_string(),
                    waited_ms: started.elapsed().as_millis(),
                    last,
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Maintenance.HashKV of one member at `revision`: (hash, compact revision).
    pub(crate) async fn hash_kv(
        &self,
        member: MemberIndex,
        revision: i64,
    ) -> Result<(u32, i64), FaultError> {
        let mut client = self.client(member).await?;
        let response = client
            .hash_kv(revision)
            .await
            .map_err(|source| match source {
                etcd_client::Error::GRpcStatus(status)
                    if status.code() == tonic::Code::Unimplemented =>
                {
                    FaultError::HashKvUnsupported {
                        member: self.members[member.0].name.clone(),
                        message: status.message().to_string(),
                    }
                }
                source => self.client_error(member, "Maintenance.HashKV", source),
            })?;
        Ok((response.hash(), response.compact_version()))
    }

    /// A client for bulk serializable reads from one member.
    pub(crate) async fn reader(&self, member: MemberIndex) -> Result<MemberReader, FaultError> {
        Ok(MemberReader {
            member,
            name: self.members[member.0].name.clone(),
            client: self.client(member).await?,
        })
    }

    /// The last `lines` lines of every member's log, for failure reports.
    pub(crate) fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for member in &self.members {
            let text = std::fs::read_to_string(&member.log_path).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            let tail = &all[all.len().saturating_sub(lines)..];
            out.push_str(&format!(
                "----- {} ({}), last {} lines -----\n{}\n",
                member.name,
                member.log_path.display(),
                tail.len(),
                tail.join("\n")
            ));
        }
        out
    }

    /// Keeps the data dirs and logs after the cluster is dropped; returns
    /// where they are.
    pub(crate) fn preserve_dir(&mut self) -> PathBuf {
        if let Some(dir) = self.dir.take() {
            let _ = dir.keep();
        }
        self.dir_path.clone()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            if let Some(mut child) = self.members[i].child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// One key as read: (key, value, mod revision).
pub(crate) type KeyRow = (Vec<u8>, Vec<u8>, i64);

/// Serializable reads from one member (its local store, no Raft round).
#[derive(Clone)]
pub(crate) struct MemberReader {
    pub member: MemberIndex,
    name: String,
    client: Client,
}

impl MemberReader {
    /// `key` as of `revision` (0: latest): (value, mod revision) or `None`.
    pub(crate) async fn get_at(
        &mut self,
        key: &[u8],
        revision: i64,
    ) -> Result<Option<(Vec<u8>, i64)>, FaultError> {
        let options = GetOptions::new()
            .with_serializable()
            .with_revision(revision);
        let response = self
            .client
            .get(key, Some(options))
            .await
            .map_err(|source| {
                FaultError::client(
                    self.name.clone(),
                    format!("serializable Range at revision {revision}"),
                    source,
                )
            })?;
        Ok(response
            .kvs()
            .first()
            .map(|kv| (kv.value().to_vec(), kv.mod_revision())))
    }

    /// Every key under `prefix` as of `revision`, with value and mod revision.
    pub(crate) async fn prefix_at(
        &mut self,
        prefix: &[u8],
        revision: i64,
    ) -> Result<Vec<KeyRow>, FaultError> {
        let options = GetOptions::new()
            .with_serializable()
            .with_revision(revision)
            .with_prefix();
        let response = self
            .client
            .get(prefix, Some(options))
            .await
            .map_err(|source| {
                FaultError::client(
                    self.name.clone(),
                    format!("serializable prefix Range at revision {revision}"),
                    source,
                )
            })?;
        Ok(response
            .kvs()
            .iter()
            .map(|kv| (kv.key().to_vec(), kv.value().to_vec(), kv.mod_revision()))
            .collect())
    }
}
