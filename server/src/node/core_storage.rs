//! The core's storage duties beside applying: B+tree checkpoints (encoded
//! here, written by a checkpoint thread, finished here, then the WAL behind
//! them released), online compaction and defragmentation in bounded steps
//! between applies, the space quota, and the sizes Status reports.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use keel_btree::{
    BtreeError, CheckpointJob, CheckpointStats, DefragProgress, MvccStore, StoreOptions,
};
use keel_raft::{LogIndex, LogStorage, Snapshot};
use prost::Message;
use tokio::sync::oneshot;

use super::core::{Core, CoreError};
use super::{ApplyResult, CoreRequest, Published};
use crate::api::errors::ApiError;
use crate::apply::Applier;
use crate::proto::etcdserverpb::alarm_request::AlarmAction;
use crate::proto::etcdserverpb::{AlarmRequest, AlarmType};
use crate::proto::keelpb::internal_request::Request;
use crate::proto::keelpb::CheckpointMeta;
use crate::watch::EventBatch;

/// Most index entries (first pass) or records (second pass) one compaction
/// step visits: ~3 ms of pause at most (measured). A request that arrives
/// during a step waits for that step only.
const COMPACT_STEP_ENTRIES: usize = 100;
/// Most time spent in compaction steps between the starts of two checkpoints:
/// compaction waits for the next checkpoint to begin (and one is due) past
/// it. It also bounds one turn's steps: a turn runs them back to back, since
/// a turn with nothing else to do still costs its wait for the timer (tokio
/// rounds even a zero sleep up to the next millisecond), and one step per
/// turn spent ~1 ms idle per ~0.1 ms of work (a 1.2M-revision compaction
/// took 20-30 s; docs/storage-benchmarks.md, 2026-11-25). A checkpoint encodes the pages the steps changed on the core thread,
/// ~0.5 ms per ms of steps (measured: ~90 ms of steps between two
/// checkpoints, --backend-batch-interval 100ms, paused puts for 27-50 ms).
const COMPACT_WORK_PER_CHECKPOINT: Duration = Duration::from_millis(5);
/// Most entries one defragmentation step copies between applies.
const DEFRAG_STEP_ENTRIES: usize = 200;
/// A raised-alarm proposal is not repeated more often than this.
const ALARM_RETRY: Duration = Duration::from_secs(1);
/// etcd's DefaultQuotaBytes (2 GiB) for --quota-backend-bytes 0.
pub(crate) const QUOTA_BYTES_DEFAULT: u64 = 2 << 30;

/// Checkpoint and background-work bookkeeping of the core.
pub(crate) struct StorageState {
    /// Checkpoint when this many entries were applied since the last one
    /// (--backend-batch-limit) ...
    batch_limit: u64,
    /// ... or this long passed (--backend-batch-interval).
    batch_interval: Duration,
    applied_since_checkpoint: u64,
    /// Time spent in compaction steps since the last checkpoint began.
    compaction_work_since_checkpoint: Duration,
    last_checkpoint: Instant,
    /// The checkpoint being written, by applied index.
    in_flight: Option<u64>,
    worker: mpsc::Sender<(u64, CheckpointJob)>,
    /// Bumped when a snapshot install replaces the store: checkpoint jobs
    /// of an older store are dropped when they come back.
    generation: u64,
    /// The store file, its options, and how to rebuild the applier on it.
    db_path: PathBuf,
    store_options: StoreOptions,
    applier_settings: ApplierSettings,
    /// Received store snapshots by Raft index, waiting for Raft to install.
    incoming: BTreeMap<u64, PathBuf>,
    /// Release the WAL before this index once the core is between readies.
    pub(super) release_wal_before: Option<u64>,
    /// None = no quota (--quota-backend-bytes < 0).
    quota_bytes: Option<u64>,
    alarm_proposed: Option<Instant>,
    defrag_waiters: Vec<oneshot::Sender<Result<(), ApiError>>>,
}

impl StorageState {
    pub(crate) fn new(
        batch_limit: u64,
        batch_interval: Duration,
        quota_bytes: Option<u64>,
        inbox: flume::Sender<CoreRequest>,
        db_path: PathBuf,
        store_options: StoreOptions,
        applier_settings: ApplierSettings,
    ) -> Self {
        StorageState {
            generation: 0,
            db_path,
            store_options,
            applier_settings,
            incoming: BTreeMap::new(),
            batch_limit: batch_limit.max(1),
            batch_interval,
            applied_since_checkpoint: 0,
            compaction_work_since_checkpoint: Duration::ZERO,
            last_checkpoint: Instant::now(),
            in_flight: None,
            worker: spawn_checkpoint_worker(inbox),
            release_wal_before: None,
            quota_bytes,
            alarm_proposed: None,
            defrag_waiters: Vec::new(),
        }
    }
}

/// What [`Applier::new`] needs besides the store.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ApplierSettings {
    pub(crate) warning_apply_duration: Duration,
    pub(crate) election_timeout: Duration,
    pub(crate) lease_checkpoint_interval: Duration,
}

impl ApplierSettings {
    pub(crate) fn applier(&self, store: MvccStore) -> Result<Applier, String> {
        Applier::new(
            store,
            self.warning_apply_duration,
            self.election_timeout,
            self.lease_checkpoint_interval,
        )
    }
}

/// The checkpoint thread: runs each job's I/O and hands it back to the core.
fn spawn_checkpoint_worker(
    inbox: flume::Sender<CoreRequest>,
) -> mpsc::Sender<(u64, CheckpointJob)> {
    let (jobs, receiver) = mpsc::channel::<(u64, CheckpointJob)>();
    std::thread::Builder::new()
        .name("keel-checkpoint".into())
        .spawn(move || {
            // Ends when the core drops its sender.
            while let Ok((generation, mut job)) = receiver.recv() {
                let result = job.run();
                let done = CoreRequest::CheckpointDone {
                    generation,
                    job: Box::new(job),
                    result,
                };
                if inbox.send(done).is_err() {
                    return;
                }
            }
        })
        .expect("spawning the checkpoint thread");
    jobs
}

impl Core {
    /// Work that must not wait for the next request or tick.
    pub(super) fn has_background_work(&self) -> bool {
        let store = self.applier.store();
        store.compaction_running().is_some() || store.defrag_running()
    }

    pub(super) fn note_applied(&mut self, entries: u64) {
        self.storage.applied_since_checkpoint += entries;
    }

    /// Starts a checkpoint when one is due and none is being written.
    pub(super) fn maybe_checkpoint(&mut self) -> Result<(), CoreError> {
        let s = &self.storage;
        let due = s.applied_since_checkpoint >= s.batch_limit
            || (s.applied_since_checkpoint > 0 && s.last_checkpoint.elapsed() >= s.batch_interval)
            || s.compaction_work_since_checkpoint >= COMPACT_WORK_PER_CHECKPOINT;
        if !due || s.in_flight.is_some() {
            return Ok(());
        }
        let applied = self.applied_index;
        let applied_term = self
            .raw
            .storage()
            .term(LogIndex(applied))
            .map(|t| t.0)
            .unwrap_or(0);
        let meta = CheckpointMeta {
            applied_term,
            voters: self.voters.iter().map(|n| n.0).collect(),
            learners: self.learners.iter().map(|n| n.0).collect(),
        };
        let job = self
            .applier
            .store_mut()
            .begin_checkpoint(applied, &meta.encode_to_vec())?;
        self.storage.in_flight = Some(applied);
        self.storage.applied_since_checkpoint = 0;
        self.storage.compaction_work_since_checkpoint = Duration::ZERO;
        self.storage.last_checkpoint = Instant::now();
        if self
            .storage
            .worker
            .send((self.storage.generation, job))
            .is_err()
        {
            return Err(CoreError::Btree(BtreeError::Poisoned {
                path: std::path::PathBuf::from("checkpoint thread"),
                reason: "the checkpoint thread is gone".into(),
            }));
        }
        Ok(())
    }

    /// The checkpoint thread finished a job: make it count and let the WAL go.
    pub(super) fn checkpoint_done(
        &mut self,
        generation: u64,
        job: CheckpointJob,
        result: Result<CheckpointStats, BtreeError>,
    ) -> Result<(), CoreError> {
        if generation != self.storage.generation {
            // A job of a store a snapshot install replaced.
            drop(job);
            return Ok(());
        }
        let applied = self.storage.in_flight.take().unwrap_or(0);
        result?;
        let stats = self.applier.store_mut().finish_checkpoint(job)?;
        tracing::debug!(applied, ?stats, "checkpoint durable");
        // A restart opens the store at this index and replays the WAL after
        // it; a member that needs older entries is sent a store snapshot.
        self.storage.release_wal_before = Some(applied + 1);
        Ok(())
    }

    /// Bounded compaction steps and one defragmentation step, if running.
    /// Compaction steps repeat until the compaction is done, a request is
    /// waiting in the inbox, or [`COMPACT_WORK_PER_CHECKPOINT`] was spent since
    /// the last checkpoint began: a request waits for at most one step, and a
    /// checkpoint encodes at most that much compaction work.
    pub(super) fn step_background(&mut self) -> Result<(), CoreError> {
        while self.applier.store().compaction_running().is_some()
            && self.storage.compaction_work_since_checkpoint < COMPACT_WORK_PER_CHECKPOINT
        {
            let step_started = Instant::now();
            let progress = self
                .applier
                .store_mut()
                .compact_step(COMPACT_STEP_ENTRIES)?;
            self.storage.compaction_work_since_checkpoint += step_started.elapsed();
            if progress.done {
                tracing::info!(outcome = ?progress.outcome, "compaction finished");
                self.proposals.release_held();
                break;
            }
            if !self.inbox.is_empty() {
                break;
            }
        }
        if self.applier.store().defrag_running() {
            if let DefragProgress::Swapped {
                size_bytes_before,
                size_bytes_after,
            } = self.applier.store_mut().defrag_step(DEFRAG_STEP_ENTRIES)?
            {
                tracing::info!(size_bytes_before, size_bytes_after, "defragmented");
                // The next checkpoint makes the new file durable.
                self.storage.applied_since_checkpoint = self
                    .storage
                    .applied_since_checkpoint
                    .max(self.storage.batch_limit);
                for waiter in self.storage.defrag_waiters.drain(..) {
                    let _ = waiter.send(Ok(()));
                }
            }
        }
        Ok(())
    }

    /// Maintenance.Defragment: answered once the new file is swapped in.
    pub(super) fn defragment(&mut self, reply: oneshot::Sender<Result<(), ApiError>>) {
        match self.applier.store_mut().start_defrag() {
            Ok(_) => self.storage.defrag_waiters.push(reply),
            Err(e) => {
                let _ = reply.send(Err(ApiError::Internal(format!("defragment: {e}"))));
            }
        }
    }

    /// A physical compaction is answered when its removal finished, however
    /// long that takes: its request deadline ends with the apply (etcd 3.4).
    pub(super) fn hold_until_compacted(&mut self, id: u64, result: ApplyResult) {
        self.proposals.hold(id, result);
    }

    /// Publishes sizes and alarms for Status; raises NOSPACE past the quota.
    pub(super) fn check_space(&mut self) {
        let store = self.applier.store();
        let (size, in_use) = (store.size_bytes(), store.size_in_use_bytes());
        self.shared
            .set_storage(size, in_use, self.applier.alarm_members());
        let Some(quota) = self.storage.quota_bytes else {
            return;
        };
        let raised = self
            .applier
            .alarms()
            .iter()
            .any(|(_, a)| *a == AlarmType::Nospace as i32);
        if size <= quota || raised || self.leader_id == 0 {
            return;
        }
        if self
            .storage
            .alarm_proposed
            .is_some_and(|t| t.elapsed() < ALARM_RETRY)
        {
            return;
        }
        tracing::warn!(
            size_bytes = size,
            quota_bytes = quota,
            "database space exceeded; raising the NOSPACE alarm"
        );
        self.storage.alarm_proposed = Some(Instant::now());
        self.propose_internal(Request::Alarm(AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: self.settings.member_id,
            alarm: AlarmType::Nospace as i32,
        }));
    }

    /// Records a store snapshot the transport received, and steps its
    /// message into Raft (which may install it in the next Ready).
    pub(super) fn snapshot_received(&mut self, message: keel_raft::Message, path: PathBuf) {
        let Some(index) = message.snapshot.as_ref().map(|s| s.meta.index.0) else {
            return;
        };
        if index <= self.applied_index {
            tracing::info!(
                index,
                applied = self.applied_index,
                "stale store snapshot ignored"
            );
            let _ = std::fs::remove_file(&path);
            return;
        }
        if let Some(previous) = self.storage.incoming.insert(index, path.clone()) {
            if previous != path {
                let _ = std::fs::remove_file(previous);
            }
        }
        self.step(vec![message]);
    }

    /// The leader's snapshot messages: the state sent is the current applied
    /// state (the view published at `applied_index`), whatever older index
    /// Raft's log snapshot names; the follower then continues from there.
    pub(super) fn send_snapshots(&mut self, messages: Vec<keel_raft::Message>) {
        for mut message in messages {
            let applied = self.applied_index;
            let term = match self.raw.storage().term(LogIndex(applied)) {
                Ok(term) => term,
                Err(e) => {
                    tracing::warn!(index = applied, error = %e, "no term for the snapshot index");
                    self.raw
                        .report_snapshot(message.to, keel_raft::SnapshotStatus::Failure);
                    continue;
                }
            };
            let conf_state = keel_raft::ConfState {
                voters: self.voters.clone(),
                learners: self.learners.clone(),
            };
            let metadata = CheckpointMeta {
                applied_term: term.0,
                voters: conf_state.voters.iter().map(|n| n.0).collect(),
                learners: conf_state.learners.iter().map(|n| n.0).collect(),
            }
            .encode_to_vec();
            message.snapshot = Some(Snapshot {
                meta: keel_raft::SnapshotMeta {
                    index: LogIndex(applied),
                    term,
                    conf_state,
                },
                data: Default::default(),
            });
            tracing::info!(
                to = format!("{:x}", message.to.0),
                index = applied,
                "sending a store snapshot"
            );
            self.transport
                .send_snapshot(crate::transport::OutgoingSnapshot {
                    message,
                    view: self.applier.read_view(),
                    metadata,
                });
        }
    }

    /// Raft installs a snapshot: swap the received file in as the store,
    /// rebuild the applied state on it, and restart the log after it. Runs
    /// before the Ready's entries are persisted.
    pub(super) async fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), CoreError> {
        let index = snapshot.meta.index.0;
        let failed = |reason: String| CoreError::Snapshot { index, reason };
        let incoming =
            self.storage.incoming.remove(&index).ok_or_else(|| {
                failed("raft installs a snapshot whose file was not received".into())
            })?;
        // Older received files are superseded.
        let older: Vec<u64> = self
            .storage
            .incoming
            .range(..index)
            .map(|(i, _)| *i)
            .collect();
        for i in older {
            if let Some(path) = self.storage.incoming.remove(&i) {
                let _ = std::fs::remove_file(path);
            }
        }
        let db_path = self.storage.db_path.clone();
        std::fs::rename(&incoming, &db_path).map_err(|e| {
            failed(format!(
                "moving {} to {}: {e}",
                incoming.display(),
                db_path.display()
            ))
        })?;
        if let Some(dir) = db_path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| failed(format!("syncing {}: {e}", dir.display())))?;
        }
        let (store, opened) = MvccStore::open(&db_path, &self.storage.store_options)?;
        if opened.applied_index != index {
            return Err(failed(format!(
                "the received store holds index {}, not {index}",
                opened.applied_index
            )));
        }
        let revision_before = self.applier.revision();
        self.applier = self
            .storage
            .applier_settings
            .applier(store)
            .map_err(failed)?;
        // The old store's background work went with it.
        self.storage.generation += 1;
        self.storage.in_flight = None;
        self.storage.applied_since_checkpoint = 0;
        self.storage.last_checkpoint = Instant::now();
        for waiter in self.storage.defrag_waiters.drain(..) {
            let _ = waiter.send(Ok(()));
        }
        self.proposals.release_held();
        self.wal
            .save_snapshot_marker(index, snapshot.meta.term.0)
            .await?;
        self.raw.storage_mut().apply_snapshot(snapshot.clone())?;
        self.applied_index = index;
        self.voters = snapshot.meta.conf_state.voters.clone();
        self.learners = snapshot.meta.conf_state.learners.clone();
        self.shared.publish(Published {
            view: self.applier.read_view(),
            applied_index: index,
        });
        self.force_publish_members();
        // Watchers catch up from the new store's history (a gap for the hub).
        let revision = self.applier.revision();
        self.watch_hub.publish(EventBatch {
            first_revision: revision + 1,
            last_revision: revision,
            events: Vec::new(),
        });
        tracing::info!(
            index,
            term = snapshot.meta.term.0,
            revision_before,
            revision,
            "installed a store snapshot from the leader"
        );
        Ok(())
    }

    pub(super) fn fail_storage_requests(&mut self, error: &ApiError) {
        for waiter in self.storage.defrag_waiters.drain(..) {
            let _ = waiter.send(Err(error.clone()));
        }
        self.proposals.fail_held(error);
    }
}
