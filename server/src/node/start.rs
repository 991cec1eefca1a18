//! Starting a member: data dir and its lock, identity (new or restarted
//! member), the core thread (WAL recovery, Raft, replay), readiness.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use keel_btree::{MvccStore, StoreOptions};
use keel_raft::{
    ConfChange, ConfChangeKind, ConfState, Config as RaftConfig, LogIndex, MemStorage, NodeId,
    RawNode, Snapshot, SnapshotMeta, Term,
};
use prost::Message;

use super::core::{Core, CoreError, CoreSettings, CoreTimer};
use super::core_storage::{ApplierSettings, StorageState, QUOTA_BYTES_DEFAULT};
use super::log::{from_wal_entry, from_wal_state, WalBackend};
use super::{NodeHandle, Published, Shared, INBOX_CAPACITY};
use crate::apply::Applier;
use crate::cluster::{self, Identity};
use crate::config::{ClusterState, Config, StorageIo};
use crate::proto::keelpb::{CheckpointMeta, Member, MemberAttributes};
use crate::transport::Transport;
use crate::watch::{HubInbox, WatchHub, WatchHubHandle};

use super::core_cluster::ClusterState as CoreClusterState;

/// A started member: the edge's handle and the core thread.
pub(crate) struct RunningNode {
    pub(crate) handle: NodeHandle,
    pub(crate) watch_hub: WatchHubHandle,
    pub(crate) transport: Transport,
    /// The hub task, to be spawned on the edge runtime once.
    hub_task: std::sync::Mutex<Option<(WatchHub, HubInbox)>>,
    core: std::thread::JoinHandle<Result<(), CoreError>>,
    _lock: fs::File,
}

impl RunningNode {
    /// Waits until the member has a leader and has applied everything it
    /// recovered, or the core failed.
    pub(crate) async fn ready(&self) -> anyhow::Result<()> {
        let shared = self.handle.shared();
        let mut waited = Duration::ZERO;
        let step = Duration::from_millis(5);
        loop {
            let raft = shared.raft();
            if raft.leader_id != 0 && raft.applied_index >= raft.commit_index {
                return Ok(());
            }
            if self.core.is_finished() || shared.is_stopped() {
                bail!("the core stopped during startup (see the log above)");
            }
            tokio::time::sleep(step).await;
            waited += step;
            if waited.as_millis().is_multiple_of(5_000) {
                tracing::info!(
                    applied = raft.applied_index,
                    commit = raft.commit_index,
                    "still starting"
                );
            }
        }
    }

    /// Starts the watch hub on the current (edge) runtime.
    pub(crate) fn spawn_watch_hub(&self) {
        let task = self.hub_task.lock().ok().and_then(|mut t| t.take());
        if let Some((hub, inbox)) = task {
            tokio::spawn(hub.run(inbox));
        }
    }

    /// Lets the core finish (after every handle is dropped) and reports how.
    pub(crate) fn join(self) -> anyhow::Result<()> {
        let RunningNode {
            handle,
            watch_hub,
            transport,
            hub_task,
            core,
            _lock,
        } = self;
        transport.shutdown();
        drop(transport);
        handle.shutdown();
        drop(handle);
        drop(watch_hub);
        drop(hub_task);
        match core.join() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => bail!("the core thread panicked"),
        }
    }

    pub(crate) fn core_finished(&self) -> bool {
        self.core.is_finished()
    }
}

/// Opens or creates the member in `config.data_dir` and starts its core.
/// Runs on the edge runtime (a joining member asks its peers who it is).
pub(crate) async fn start(config: &Config) -> anyhow::Result<RunningNode> {
    let member_dir = config.data_dir.join("member");
    create_private_dir(&member_dir)?;
    let lock = lock_data_dir(&member_dir)?;
    let Membership {
        identity,
        bootstrap,
        peers,
    } = load_or_create_identity(config, &member_dir).await?;
    tracing::info!(
        name = identity.name,
        member_id = format!("{:x}", identity.member_id),
        cluster_id = format!("{:x}", identity.cluster_id),
        data_dir = %config.data_dir.display(),
        "starting member"
    );
    let wal_dir = config.wal_dir();
    create_private_dir(&wal_dir)?;

    let election_timeout = Duration::from_millis(config.election_timeout_ms);
    let snap_dir = member_dir.join("snap");
    create_private_dir(&snap_dir)?;
    remove_partial_snapshots(&snap_dir);
    let db_path = snap_dir.join("keel.db");
    let store_options = StoreOptions {
        fsync: !config.unsafe_no_fsync,
        ..StoreOptions::default()
    };
    let (store, checkpoint) = open_store(&db_path, &store_options)?;
    let applier_settings = ApplierSettings {
        warning_apply_duration: config.warning_apply_duration,
        election_timeout,
        lease_checkpoint_interval: config.lease_checkpoint_interval,
    };
    let applier = applier_settings
        .applier(store)
        .map_err(|e| anyhow::anyhow!("restoring the state of {}: {e}", member_dir.display()))?;
    let shared = Shared::new(
        identity.cluster_id,
        identity.member_id,
        Published {
            view: applier.read_view(),
            applied_index: checkpoint.index,
        },
    );
    let (watch_hub_task, watch_hub, hub_inbox) =
        WatchHub::new(shared.clone(), config.watch_progress_notify_interval);
    let (inbox_tx, inbox_rx) = flume::bounded(INBOX_CAPACITY);
    let transport = Transport::new(
        tokio::runtime::Handle::current(),
        identity.cluster_id,
        identity.member_id,
        inbox_tx.clone(),
        snap_dir.clone(),
    );
    transport.set_peers(&peers);
    let storage = StorageState::new(
        config.backend_batch_limit,
        config.backend_batch_interval,
        match config.quota_backend_bytes {
            q if q < 0 => None,
            0 => Some(QUOTA_BYTES_DEFAULT),
            q => Some(q.unsigned_abs()),
        },
        inbox_tx.clone(),
        db_path,
        store_options,
        applier_settings,
    );
    let handle = NodeHandle::new(
        inbox_tx,
        shared.clone(),
        config.max_request_bytes,
        election_timeout,
    );
    let settings = CoreSettings {
        member_id: identity.member_id,
        tick_interval: Duration::from_millis(config.heartbeat_interval_ms),
        request_timeout: Duration::from_secs(5) + 2 * election_timeout,
        snapshot_count: config.snapshot_count.max(1),
        election_ticks: u32::try_from(config.election_timeout_ms / config.heartbeat_interval_ms)
            .unwrap_or(u32::MAX),
        initial_election_tick_advance: config.initial_election_tick_advance,
        batch_limit: config.wal_batch_limit,
        batch_interval: config.wal_batch_interval,
        timer: match config.storage_io {
            StorageIo::Glommio => CoreTimer::Glommio,
            StorageIo::Std => CoreTimer::Tokio,
        },
    };
    let raft_config = raft_config(config, identity.member_id)?;
    let wal_options = keel_wal::WalOptions {
        segment_size_bytes: config.wal_segment_size_bytes,
        preallocation: config.wal_preallocation,
        // --unsafe-no-fsync wins over --wal-sync.
        sync_mode: if config.unsafe_no_fsync {
            keel_wal::SyncMode::None
        } else {
            config.wal_sync
        },
    };
    tracing::info!(
        sync_mode = ?wal_options.sync_mode,
        preallocation = ?wal_options.preallocation,
        segment_size_bytes = wal_options.segment_size_bytes,
        "wal options"
    );
    let boot = CoreBoot {
        io: config.storage_io,
        wal_dir,
        wal_options,
        raft_config,
        applier,
        checkpoint,
        storage,
        shared,
        inbox: inbox_rx,
        watch_hub: watch_hub.clone(),
        transport: transport.clone(),
        cluster: CoreClusterState::new(MemberAttributes {
            id: identity.member_id,
            name: identity.name.clone(),
            client_urls: config
                .advertise_client_urls
                .iter()
                .map(crate::cluster::url_text)
                .collect(),
        }),
        bootstrap,
        settings,
    };
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let core = std::thread::Builder::new()
        .name("keel-core".into())
        .spawn(move || run_core_thread(boot, started_tx))
        .context("spawning the core thread")?;
    let started = tokio::task::spawn_blocking(move || started_rx.recv())
        .await
        .context("waiting for the core to start")?;
    match started {
        Ok(Ok(())) => Ok(RunningNode {
            handle,
            watch_hub,
            transport,
            hub_task: std::sync::Mutex::new(Some((watch_hub_task, hub_inbox))),
            core,
            _lock: lock,
        }),
        Ok(Err(message)) => {
            let _ = core.join();
            bail!("{message}")
        }
        Err(_) => match core.join() {
            Ok(Err(e)) => Err(e.into()),
            _ => bail!("the core thread died during startup"),
        },
    }
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("setting permissions of {}", dir.display()))?;
    }
    Ok(())
}

/// Where the last checkpoint of the store left the log.
struct Checkpoint {
    /// Applied index the store holds (0: a new store).
    index: u64,
    term: u64,
    conf_state: ConfState,
}

/// Store snapshots half sent or received when the member stopped are of
/// no use: the leader sends a fresh one.
fn remove_partial_snapshots(snap_dir: &Path) {
    let Ok(entries) = fs::read_dir(snap_dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("keel.db.incoming-") || name.starts_with("keel.db.outgoing-") {
            tracing::info!(file = %entry.path().display(), "removing a partial store snapshot");
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Opens (or creates) the B+tree store `<data-dir>/member/snap/keel.db`.
fn open_store(path: &Path, options: &StoreOptions) -> anyhow::Result<(MvccStore, Checkpoint)> {
    let (store, opened) = MvccStore::open(path, options)
        .with_context(|| format!("opening the store {}", path.display()))?;
    let meta = if opened.applied_index == 0 {
        CheckpointMeta::default()
    } else {
        CheckpointMeta::decode(opened.checkpoint_metadata.clone())
            .with_context(|| format!("{}: undecodable checkpoint metadata", path.display()))?
    };
    tracing::info!(
        path = %path.display(),
        applied_index = opened.applied_index,
        revision = store.revision(),
        size_bytes = store.size_bytes(),
        created = opened.created,
        "opened the store"
    );
    Ok((
        store,
        Checkpoint {
            index: opened.applied_index,
            term: meta.applied_term,
            conf_state: ConfState {
                voters: meta.voters.into_iter().map(NodeId).collect(),
                learners: meta.learners.into_iter().map(NodeId).collect(),
            },
        },
    ))
}

/// One process per data dir: a second keel on the same dir is refused.
fn lock_data_dir(member_dir: &Path) -> anyhow::Result<fs::File> {
    let path = member_dir.join("keel.lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => {
            bail!(
                "data dir {} is in use by another keel process",
                member_dir.display()
            )
        }
        Err(fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// Who this member is and how it starts.
struct Membership {
    identity: Identity,
    /// A new cluster's members, to bootstrap the log with (empty otherwise).
    bootstrap: Vec<Member>,
    /// Peers to link to before the log says who the members are.
    peers: Vec<(u64, Vec<String>)>,
}

async fn load_or_create_identity(config: &Config, member_dir: &Path) -> anyhow::Result<Membership> {
    if let Some(identity) = Identity::load(member_dir)? {
        if identity.name != config.name {
            tracing::warn!(
                stored = identity.name,
                given = config.name,
                "--name differs from the name this member was created with; keeping the stored one"
            );
        }
        let peers = initial_peers(config);
        return Ok(Membership {
            identity,
            bootstrap: Vec::new(),
            peers,
        });
    }
    let membership = match config.initial_cluster_state {
        ClusterState::New => new_cluster(config)?,
        ClusterState::Existing => join_cluster(config).await?,
    };
    membership.identity.store(member_dir)?;
    Ok(membership)
}

/// --initial-cluster's members as peers (ids as etcd computes them).
fn initial_peers(config: &Config) -> Vec<(u64, Vec<String>)> {
    cluster::initial_members(config)
        .into_iter()
        .map(|m| (m.id, m.peer_urls))
        .collect()
}

/// A new cluster: every member of --initial-cluster, ids as etcd computes them.
fn new_cluster(config: &Config) -> anyhow::Result<Membership> {
    let members = cluster::initial_members(config);
    let me = members
        .iter()
        .find(|m| m.name == config.name)
        .context("this member is not in --initial-cluster")?;
    let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
    let identity = Identity {
        cluster_id: cluster::cluster_id(&ids),
        member_id: me.id,
        name: me.name.clone(),
    };
    let bootstrap = members
        .iter()
        .map(|m| Member {
            id: m.id,
            name: m.name.clone(),
            peer_urls: m.peer_urls.clone(),
            ..Default::default()
        })
        .collect();
    let peers = members
        .iter()
        .map(|m| (m.id, m.peer_urls.clone()))
        .collect();
    Ok(Membership {
        identity,
        bootstrap,
        peers,
    })
}

/// --initial-cluster-state existing: ask the other members of
/// --initial-cluster who the cluster is, and find this member (added with
/// `etcdctl member add`) by its advertised peer URLs.
async fn join_cluster(config: &Config) -> anyhow::Result<Membership> {
    let mine: Vec<String> = config
        .initial_advertise_peer_urls
        .iter()
        .map(cluster::url_text)
        .collect();
    let mut attempts = Vec::new();
    for (name, url) in &config.initial_cluster {
        let url = cluster::url_text(url);
        if mine.contains(&url) {
            continue;
        }
        let info = match ask_cluster_info(&url).await {
            Ok(info) => info,
            Err(e) => {
                attempts.push(format!("{name}={url}: {e}"));
                continue;
            }
        };
        let me = info
            .members
            .iter()
            .find(|m| m.peer_urls.iter().any(|u| mine.contains(u)))
            .with_context(|| {
                format!(
                    "the cluster at {url} has no member with peer URLs {}; add this member first \
                     (etcdctl member add {} --peer-urls={})",
                    mine.join(","),
                    config.name,
                    mine.join(",")
                )
            })?;
        let identity = Identity {
            cluster_id: info.cluster_id,
            member_id: me.id,
            name: config.name.clone(),
        };
        let peers = info
            .members
            .iter()
            .map(|m| (m.id, m.peer_urls.clone()))
            .collect();
        return Ok(Membership {
            identity,
            bootstrap: Vec::new(),
            peers,
        });
    }
    bail!(
        "--initial-cluster-state=existing: no member of --initial-cluster answered ({})",
        attempts.join("; ")
    )
}

async fn ask_cluster_info(url: &str) -> anyhow::Result<crate::proto::keelpb::ClusterInfoResponse> {
    let channel = crate::transport::connect_peer(url)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let mut client = crate::proto::keelpb::peer_client::PeerClient::new(channel);
    let info = tokio::time::timeout(
        Duration::from_secs(5),
        client.cluster_info(crate::proto::keelpb::ClusterInfoRequest {}),
    )
    .await
    .context("timed out")??;
    Ok(info.into_inner())
}

fn raft_config(config: &Config, member_id: u64) -> anyhow::Result<RaftConfig> {
    let mut raft = RaftConfig::new(NodeId(member_id));
    raft.election_ticks = u32::try_from(config.election_timeout_ms / config.heartbeat_interval_ms)
        .context("--election-timeout / --heartbeat-interval is too large")?;
    raft.heartbeat_ticks = 1;
    raft.pre_vote = config.pre_vote;
    raft.check_quorum = true;
    raft.seed = member_id ^ u64::from(std::process::id());
    raft.validate()
        .map_err(|e| anyhow::anyhow!("raft configuration: {e}"))?;
    Ok(raft)
}

/// What the core thread needs to start.
struct CoreBoot {
    io: StorageIo,
    wal_dir: std::path::PathBuf,
    wal_options: keel_wal::WalOptions,
    raft_config: RaftConfig,
    applier: Applier,
    /// The store's last checkpoint: the log is replayed after it.
    checkpoint: Checkpoint,
    storage: StorageState,
    shared: Arc<Shared>,
    inbox: flume::Receiver<CoreRequest>,
    watch_hub: WatchHubHandle,
    transport: Transport,
    cluster: CoreClusterState,
    /// A new cluster's members (the log starts with their conf changes).
    bootstrap: Vec<Member>,
    settings: CoreSettings,
}

use super::CoreRequest;

type Started = std::sync::mpsc::Sender<Result<(), String>>;

fn run_core_thread(boot: CoreBoot, started: Started) -> Result<(), CoreError> {
    match boot.io {
        StorageIo::Glommio => {
            let executor = match glommio_executor() {
                Ok(executor) => executor,
                Err(message) => {
                    let _ = started.send(Err(message));
                    return Ok(());
                }
            };
            executor.run(boot_and_run(boot, started))
        }
        StorageIo::Std => {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = started.send(Err(format!("starting the core runtime: {e}")));
                    return Ok(());
                }
            };
            runtime.block_on(boot_and_run(boot, started))
        }
    }
}

/// glommio needs locked memory for its I/O buffers. As root (CAP_IPC_LOCK)
/// the default works; otherwise fall back to the 2 MiB that fits a small
/// `ulimit -l`, and below glommio's 512 KiB minimum say what to do.
fn glommio_executor() -> Result<glommio::LocalExecutor, String> {
    let build = |io_memory: Option<usize>| {
        let mut builder =
            glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound).name("keel-core");
        if let Some(bytes) = io_memory {
            builder = builder.io_memory(bytes);
        }
        builder.make()
    };
    match build(None) {
        Ok(executor) => Ok(executor),
        Err(first) => {
            tracing::warn!(error = %first, "glommio could not lock its default I/O memory; retrying with 2 MiB (raise `ulimit -l` or grant CAP_IPC_LOCK)");
            build(Some(2 << 20)).map_err(|e| {
                format!(
                    "cannot start the glommio core: {e}. glommio locks at least 512 KiB of I/O \
                     memory: raise `ulimit -l`, run with CAP_IPC_LOCK, or start with \
                     --storage-io std"
                )
            })
        }
    }
}

async fn boot_and_run(boot: CoreBoot, started: Started) -> Result<(), CoreError> {
    let core = match boot_core(boot).await {
        Ok(core) => core,
        Err(message) => {
            let _ = started.send(Err(message));
            return Ok(());
        }
    };
    let _ = started.send(Ok(()));
    core.run().await
}

/// Opens the WAL, rebuilds Raft's log from it (or bootstraps a new member).
async fn boot_core(mut boot: CoreBoot) -> Result<Core, String> {
    let checkpoint = &boot.checkpoint;
    // Raft's log starts after the store's checkpoint (a member that needs
    // older entries is sent a store snapshot).
    let (wal, recovered) = WalBackend::open(
        boot.io,
        &boot.wal_dir,
        boot.wal_options.clone(),
        checkpoint.index + 1,
    )
    .await
    .map_err(|e| format!("opening the WAL in {}: {e}", boot.wal_dir.display()))?;
    if let Some(torn) = &recovered.torn_tail {
        tracing::warn!(
            segment = %torn.segment.display(),
            offset_bytes = torn.offset_bytes,
            reason = torn.reason,
            "cut off a torn WAL tail (an unacknowledged write interrupted by a crash)"
        );
    }
    let fresh = checkpoint.index == 0 && recovered.entries.is_empty() && recovered.state.is_none();
    let mut storage = MemStorage::new();
    let entry_count = recovered.entries.len();
    let entries = recovered
        .entries
        .into_iter()
        .map(from_wal_entry)
        .collect::<Result<Vec<_>, _>>()?;
    if checkpoint.index > 0 {
        // The store holds everything up to the checkpoint: Raft's log starts
        // after it, as if a snapshot at that index had been installed.
        if let Some(first) = entries.first() {
            if first.index.0 != checkpoint.index + 1 {
                return Err(format!(
                    "the WAL in {} continues at index {} but the store's checkpoint is at {}: \
                     entries in between are missing",
                    boot.wal_dir.display(),
                    first.index.0,
                    checkpoint.index
                ));
            }
        }
        storage
            .apply_snapshot(Snapshot {
                meta: SnapshotMeta {
                    index: LogIndex(checkpoint.index),
                    term: Term(checkpoint.term),
                    conf_state: checkpoint.conf_state.clone(),
                },
                data: Default::default(),
            })
            .map_err(|e| format!("restoring the raft log at the checkpoint: {e}"))?;
        boot.raft_config.applied = LogIndex(checkpoint.index);
    }
    storage
        .append(&entries)
        .map_err(|e| format!("rebuilding the raft log from the WAL: {e}"))?;
    if let Some(state) = &recovered.state {
        storage.set_hard_state(from_wal_state(state));
    }
    let mut raw = RawNode::new(&boot.raft_config, storage).map_err(|e| format!("raft: {e}"))?;
    if fresh && !boot.bootstrap.is_empty() {
        let changes: Vec<ConfChange> = boot
            .bootstrap
            .iter()
            .map(|m| ConfChange {
                kind: ConfChangeKind::AddNode,
                node_id: NodeId(m.id),
                context: crate::cluster::encode_context(m.clone(), 0, 0),
            })
            .collect();
        raw.bootstrap_with(&changes)
            .map_err(|e| format!("raft bootstrap: {e}"))?;
    } else if fresh {
        tracing::info!("joining an existing cluster: waiting for the leader to send the log");
    } else {
        tracing::info!(
            checkpoint_index = checkpoint.index,
            entries = entry_count,
            "replaying the WAL after the store's checkpoint"
        );
    }
    let Checkpoint {
        index: applied_index,
        conf_state,
        ..
    } = boot.checkpoint;
    let mut core = Core {
        raw,
        wal,
        applier: boot.applier,
        shared: boot.shared,
        inbox: boot.inbox,
        watch_hub: boot.watch_hub,
        transport: boot.transport,
        cluster: boot.cluster,
        removed: false,
        settings: boot.settings,
        proposals: Default::default(),
        reads: Default::default(),
        applied_index,
        leader_id: 0,
        voters: conf_state.voters,
        learners: conf_state.learners,
        campaigned: false,
        unsaved_state: None,
        storage: boot.storage,
        answers: Vec::new(),
    };
    // A restarted member knows its peers from the store; a joining one
    // keeps the peers it was told until the log says who the members are.
    if !core.applier.members().list().is_empty() {
        core.publish_members_if_changed();
    }
    Ok(core)
}
