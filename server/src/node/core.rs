//! The core turn: one thread, one Raft member, one writer.
//!
//! Each turn (an endless loop until shutdown):
//! 1. wait for a request or the next tick (not at all while compaction or
//!    defragmentation runs), then drain the inbox (bounded);
//! 2. hand proposals to Raft, start one read-index round for the new reads;
//! 3. for every Ready: send the messages that may go before persisting,
//!    apply the committed entries (durable here already), publish the new
//!    read view and answer their clients, then persist the new entries +
//!    hard state in the WAL (one write + one fdatasync, or one durable
//!    write with `--wal-sync dsync`), append them to
//!    Raft's log storage, report them persisted and send the rest;
//! 4. storage work: one compaction and one defragmentation step, a
//!    checkpoint when due, the space quota, WAL release behind checkpoints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use keel_raft::{Entry, EntryKind, LogIndex, LogStorage, MemStorage, NodeId, RawNode, Ready};
use prost::Message;

use super::core_cluster::ClusterState;
use super::core_storage::StorageState;
use super::log::{to_wal_entry, to_wal_state, WalBackend};
use super::proposals::Proposals;
use super::reads::ReadIndexBatches;
use super::{ApplyResult, CoreRequest, Published, Shared};
use crate::api::errors::ApiError;
use crate::apply::Applier;
use crate::proto::keelpb::internal_request::Request;
use crate::proto::keelpb::{InternalRequest, RequestHeader};
use crate::transport::Transport;
use crate::watch::{EventBatch, WatchHubHandle};

/// Entries Raft's in-memory log keeps behind the applied index after a
/// compaction (etcd's SnapshotCatchUpEntries).
const CATCH_UP_ENTRIES: u64 = 5_000;

/// Requests taken from the inbox in one turn (`--wal-batch-limit` bounds them).
#[derive(Default)]
struct Taken {
    requests: usize,
    proposals: usize,
}

/// How the core sleeps: glommio's timer on the glommio executor
/// (`--storage-io glommio`), tokio's on the current-thread runtime the core
/// runs on with `--storage-io std` (the default).
#[derive(Clone, Copy)]
pub(crate) enum CoreTimer {
    Glommio,
    Tokio,
}

impl CoreTimer {
    async fn sleep(self, duration: Duration) {
        match self {
            CoreTimer::Glommio => glommio::timer::sleep(duration).await,
            CoreTimer::Tokio => tokio::time::sleep(duration).await,
        }
    }
}

/// Why the core stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CoreError {
    #[error("WAL write failed; refusing to continue without durable storage: {0}")]
    Wal(#[from] keel_wal::WalError),
    #[error("raft log storage rejected persisted entries: {0}")]
    Storage(#[from] keel_raft::StorageError),
    #[error("the member has been permanently removed from the cluster")]
    Removed,
    #[error("the B+tree store failed; refusing to continue: {0}")]
    Btree(#[from] keel_btree::BtreeError),
    #[error("installing the store snapshot at index {index} failed: {reason}")]
    Snapshot { index: u64, reason: String },
}

/// Numbers the core needs from the configuration.
pub(crate) struct CoreSettings {
    pub(crate) member_id: u64,
    pub(crate) tick_interval: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) snapshot_count: u64,
    /// Election timeout in ticks (lease promotion extends by it).
    pub(crate) election_ticks: u32,
    /// --initial-election-tick-advance: campaign at once when this member is
    /// the only voter, else skip all but one tick of the first election timeout.
    pub(crate) initial_election_tick_advance: bool,
    /// --wal-batch-limit: most requests taken from the inbox in one turn
    /// (bounds one Raft batch, so one WAL write).
    pub(crate) batch_limit: usize,
    /// --wal-batch-interval: after a proposal woke the core, how long it
    /// waits for more before proposing the batch (zero: not at all).
    pub(crate) batch_interval: Duration,
    pub(crate) timer: CoreTimer,
}

pub(crate) struct Core {
    pub(crate) raw: RawNode<MemStorage>,
    pub(crate) wal: WalBackend,
    pub(crate) applier: Applier,
    pub(crate) shared: Arc<Shared>,
    pub(crate) inbox: flume::Receiver<CoreRequest>,
    pub(crate) watch_hub: WatchHubHandle,
    pub(crate) settings: CoreSettings,
    pub(crate) proposals: Proposals,
    pub(crate) reads: ReadIndexBatches,
    pub(crate) applied_index: u64,
    pub(crate) leader_id: u64,
    pub(crate) voters: Vec<NodeId>,
    pub(crate) learners: Vec<NodeId>,
    pub(crate) campaigned: bool,
    pub(crate) transport: Transport,
    pub(crate) cluster: ClusterState,
    pub(crate) storage: StorageState,
    /// This member was removed from the cluster: the core stops.
    pub(crate) removed: bool,
    /// The newest hard state not yet written to the WAL (commit-only changes
    /// wait for the next batch of entries).
    pub(crate) unsaved_state: Option<keel_raft::HardState>,
    /// The answers of the batch being applied; empty between batches, kept so
    /// that its capacity is reused instead of allocated per batch.
    pub(crate) answers: Vec<(u64, ApplyResult)>,
}

enum Wake {
    Request(CoreRequest),
    Tick,
    Shutdown,
}

impl Core {
    /// Runs turns until shutdown, removal or a storage failure.
    pub(crate) async fn run(mut self) -> Result<(), CoreError> {
        let mut next_tick = Instant::now() + self.settings.tick_interval;
        let result = loop {
            // Endless by design: the core turn.
            match self.turn(&mut next_tick).await {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.stop(&result);
        let Core {
            mut wal,
            unsaved_state,
            ..
        } = self;
        if result.is_ok() {
            if let Some(state) = unsaved_state {
                if let Err(e) = wal.append(&[], Some(&to_wal_state(&state))).await {
                    tracing::warn!(error = %e, "saving the final hard state failed");
                }
            }
            if let Err(e) = wal.close().await {
                tracing::warn!(error = %e, "closing the WAL failed");
            }
        }
        result
    }

    /// One turn; `Ok(false)` = shut down.
    async fn turn(&mut self, next_tick: &mut Instant) -> Result<bool, CoreError> {
        let limit = self.settings.batch_limit;
        let mut taken = Taken::default();
        if !self.raw.has_ready() {
            match self.wait(*next_tick).await {
                Wake::Request(CoreRequest::Shutdown) | Wake::Shutdown => return Ok(false),
                Wake::Request(request) => self.take(request, &mut taken)?,
                Wake::Tick => {}
            }
        }
        if !self.take_pending(limit, &mut taken)? {
            return Ok(false);
        }
        if taken.proposals > 0 && !self.settings.batch_interval.is_zero() && taken.requests < limit
        {
            // Gather: the proposals that arrive meanwhile share the batch
            // (and its fdatasync).
            self.settings
                .timer
                .sleep(self.settings.batch_interval)
                .await;
            if !self.take_pending(limit, &mut taken)? {
                return Ok(false);
            }
        }
        let now = Instant::now();
        if now >= *next_tick {
            self.raw.tick();
            self.tick_leases();
            self.tick_cluster(now);
            self.proposals.expire(now);
            self.reads.expire(now);
            *next_tick = now + self.settings.tick_interval;
        }
        self.propose_parked();
        self.propose_parked_conf_changes();
        self.start_read_round();
        self.drain_readies().await?;
        self.storage_turn().await?;
        if self.removed {
            return Err(CoreError::Removed);
        }
        self.maybe_campaign();
        Ok(true)
    }

    /// Checkpoint, compaction and defragmentation work of one turn.
    async fn storage_turn(&mut self) -> Result<(), CoreError> {
        self.step_background()?;
        self.maybe_checkpoint()?;
        self.check_space();
        if let Some(before) = self.storage.release_wal_before.take() {
            self.wal.release_before(before).await?;
        }
        Ok(())
    }

    /// Takes one request from the inbox into this turn.
    fn take(&mut self, request: CoreRequest, taken: &mut Taken) -> Result<(), CoreError> {
        taken.requests += 1;
        taken.proposals += usize::from(matches!(request, CoreRequest::Propose { .. }));
        self.accept(request)
    }

    /// Takes what the inbox holds, up to `limit` requests in the turn; `Ok(false)`: shut down.
    fn take_pending(&mut self, limit: usize, taken: &mut Taken) -> Result<bool, CoreError> {
        while taken.requests < limit {
            let Ok(request) = self.inbox.try_recv() else {
                break;
            };
            if matches!(request, CoreRequest::Shutdown) {
                return Ok(false);
            }
            self.take(request, taken)?;
        }
        Ok(true)
    }

    async fn wait(&mut self, next_tick: Instant) -> Wake {
        // Compaction or defragmentation under way: only look for requests.
        let timeout = if self.has_background_work() {
            Duration::ZERO
        } else {
            next_tick.saturating_duration_since(Instant::now())
        };
        let receive = self.inbox.recv_async();
        let sleep = self.settings.timer.sleep(timeout);
        futures::pin_mut!(receive, sleep);
        match futures::future::select(receive, sleep).await {
            futures::future::Either::Left((Ok(request), _)) => Wake::Request(request),
            futures::future::Either::Left((Err(_), _)) => Wake::Shutdown,
            futures::future::Either::Right(_) => Wake::Tick,
        }
    }

    fn accept(&mut self, request: CoreRequest) -> Result<(), CoreError> {
        let deadline = Instant::now() + self.settings.request_timeout;
        match request {
            CoreRequest::Propose { id, data, reply } => {
                if self.proposals.is_full() {
                    let _ = reply.send(Err(ApiError::TooManyRequests));
                } else if self.leader_id != 0 && self.raw.propose(data.clone()).is_ok() {
                    self.proposals.track(id, reply, deadline);
                } else {
                    self.proposals.park(id, data, reply, deadline);
                }
            }
            CoreRequest::ReadIndex { reply } => self.reads.add(reply, deadline),
            CoreRequest::LeaseRenew { id, reply } => {
                let _ = reply.send(self.lease_renew(id));
            }
            CoreRequest::LeaseTimeToLive { id, reply } => {
                let _ = reply.send(self.lease_time_to_live(id));
            }
            CoreRequest::LeaseLeases { reply } => {
                let _ = reply.send(self.applier.lessor().ids());
            }
            CoreRequest::Step { messages } => self.step(messages),
            CoreRequest::Unreachable { id } => self.raw.report_unreachable(NodeId(id)),
            CoreRequest::RemovedFromCluster => self.removed_from_cluster(),
            CoreRequest::ProposeConfChange { id, change, reply } => {
                self.propose_conf_change(id, change, reply, deadline)
            }
            CoreRequest::TransferLeader { target, reply } => {
                self.transfer_leader(target, reply, deadline)
            }
            CoreRequest::RaftStatus { reply } => {
                let _ = reply.send(self.raw.status());
            }
            CoreRequest::CheckpointDone {
                generation,
                job,
                result,
            } => self.checkpoint_done(generation, *job, result)?,
            CoreRequest::SnapshotReceived { message, path } => {
                self.snapshot_received(*message, path)
            }
            CoreRequest::SnapshotSent { to, ok } => {
                let status = if ok {
                    keel_raft::SnapshotStatus::Finish
                } else {
                    keel_raft::SnapshotStatus::Failure
                };
                self.raw.report_snapshot(NodeId(to), status);
            }
            CoreRequest::Defragment { reply } => self.defragment(reply),
            // The turn loop stops on it before accept() sees it.
            CoreRequest::Shutdown => {}
        }
        Ok(())
    }

    /// Proposes a request nobody waits for (lease revokes and checkpoints,
    /// member attributes, alarms). If there is no leader it is dropped: the
    /// caller proposes again on a later tick.
    pub(super) fn propose_internal(&mut self, request: Request) {
        let data = InternalRequest {
            header: Some(RequestHeader {
                id: 0,
                proposer: self.settings.member_id,
            }),
            request: Some(request),
        }
        .encode_to_vec();
        if let Err(e) = self.raw.propose(Bytes::from(data)) {
            tracing::debug!(error = %e, "internal proposal dropped");
        }
    }

    fn propose_parked(&mut self) {
        if self.leader_id == 0 {
            return;
        }
        for parked in self.proposals.take_parked() {
            if self.raw.propose(parked.data.clone()).is_ok() {
                self.proposals.launch(parked);
            } else {
                self.proposals.repark(parked);
            }
        }
    }

    fn start_read_round(&mut self) {
        if self.leader_id == 0 {
            return;
        }
        if let Some(ctx) = self.reads.start_round() {
            self.raw
                .read_index(Bytes::copy_from_slice(&ctx.to_be_bytes()));
        }
    }

    /// etcd's initial election tick advance: the only voter need not wait
    /// an election timeout to lead; in a larger cluster all but one tick of
    /// the first timeout are skipped.
    fn maybe_campaign(&mut self) {
        let me = NodeId(self.settings.member_id);
        if !self.settings.initial_election_tick_advance || self.campaigned || self.leader_id != 0 {
            return;
        }
        if self.voters == [me] {
            self.campaigned = true;
            if let Err(e) = self.raw.campaign() {
                tracing::warn!(error = %e, "campaign failed");
            }
        } else if self.voters.contains(&me) {
            self.campaigned = true;
            for _ in 1..self.settings.election_ticks {
                self.raw.tick();
            }
        }
    }

    async fn drain_readies(&mut self) -> Result<(), CoreError> {
        while self.raw.has_ready() {
            let ready = self.raw.ready();
            self.handle_ready(ready).await?;
        }
        Ok(())
    }

    async fn handle_ready(&mut self, mut ready: Ready) -> Result<(), CoreError> {
        if let Some(soft) = &ready.soft_state {
            self.on_soft_state(soft.leader_id.map_or(0, |l| l.0), soft.role);
        }
        // Snapshot messages carry a store export, sent on their own stream
        // (checked first: no extra allocation on the common path).
        if ready
            .messages
            .iter()
            .any(|m| m.kind == keel_raft::MessageKind::Snapshot)
        {
            let (snapshots, messages): (Vec<_>, Vec<_>) = std::mem::take(&mut ready.messages)
                .into_iter()
                .partition(|m| m.kind == keel_raft::MessageKind::Snapshot);
            ready.messages = messages;
            self.send_snapshots(snapshots);
        }
        // A leader may send before its own fsync; it counts itself in the
        // quorum only once this Ready is persisted (on_persisted below).
        self.transport.send(&ready.messages);
        if let Some(snapshot) = &ready.snapshot {
            self.install_snapshot(snapshot).await?;
        }
        // Raft hands out only committed entries that earlier Readies made
        // durable here, so they are applied (and their clients answered)
        // before this Ready's own write and fdatasync, not after: a batch's
        // answers never wait for the next batch's fsync.
        let committed = std::mem::take(&mut ready.committed_entries);
        if !committed.is_empty() {
            self.apply(committed)?;
        }
        if let Some(hard_state) = &ready.hard_state {
            self.unsaved_state = Some(*hard_state);
        }
        // etcd's MustSync: new entries, a new term or a new vote must be
        // durable before anyone hears of them; a hard state that only moves
        // the commit index need not be (Raft relearns it from the log), so it
        // rides along with the next batch instead of costing an fsync.
        if !ready.entries.is_empty() || ready.must_sync {
            let entries: Vec<_> = ready.entries.iter().map(to_wal_entry).collect();
            let state = self.unsaved_state.take();
            self.wal
                .append(&entries, state.as_ref().map(to_wal_state).as_ref())
                .await?;
            let storage = self.raw.storage_mut();
            storage.append(&ready.entries)?;
            if let Some(hard_state) = state {
                storage.set_hard_state(hard_state);
            }
        } else if let Some(hard_state) = &ready.hard_state {
            self.raw.storage_mut().set_hard_state(*hard_state);
        }
        self.raw.on_persisted(ready.number);
        self.transport.send(&ready.persisted_messages);
        for read_state in &ready.read_states {
            if let Ok(ctx) = <[u8; 8]>::try_from(read_state.request_ctx.as_ref()) {
                self.reads
                    .confirmed(u64::from_be_bytes(ctx), read_state.index.0);
            }
        }
        self.reads.release(self.applied_index);
        let status = self.raw.status();
        self.shared
            .set_raft(status.term.0, self.leader_id, status.commit.0);
        Ok(())
    }

    /// Leadership changed: the lease clock moves with it.
    fn on_soft_state(&mut self, leader: u64, role: keel_raft::Role) {
        let me = self.settings.member_id;
        if leader == me && self.leader_id != me {
            // etcd extends leases by the election timeout on promotion.
            let extend = self.settings.tick_interval * self.settings.election_ticks;
            self.applier.lessor_mut().promote(Instant::now(), extend);
        } else if leader != me && self.leader_id == me {
            self.applier.lessor_mut().demote();
        }
        if leader != self.leader_id {
            tracing::info!(leader = format!("{leader:x}"), ?role, "raft leader changed");
        }
        self.leader_id = leader;
        self.on_leader_known();
    }

    fn apply(&mut self, entries: Vec<Entry>) -> Result<(), CoreError> {
        self.note_applied(entries.len() as u64);
        // Reused from batch to batch (see `Core::answers`).
        let mut answers = std::mem::take(&mut self.answers);
        answers.reserve(entries.len());
        let mut last = self.applied_index;
        let revision_before = self.applier.revision();
        for entry in &entries {
            match entry.kind {
                EntryKind::Normal => self.apply_normal(entry, &mut answers)?,
                EntryKind::ConfChange => self.apply_conf_change(entry, &mut answers)?,
            }
            last = entry.index.0;
        }
        self.applied_index = last;
        // Publish before answering: an acknowledged write is visible to reads.
        self.shared.publish(Published {
            view: self.applier.read_view(),
            applied_index: last,
        });
        self.publish_members_if_changed();
        let events = self.applier.take_events();
        if !events.is_empty() {
            self.watch_hub.publish(EventBatch {
                first_revision: revision_before + 1,
                last_revision: self.applier.revision(),
                events,
            });
        }
        for (id, result) in answers.drain(..) {
            self.proposals.complete(id, result);
        }
        self.answers = answers;
        self.raw.advance_apply_to(LogIndex(last));
        self.compact_raft_log();
        Ok(())
    }

    fn apply_normal(
        &mut self,
        entry: &Entry,
        answers: &mut Vec<(u64, ApplyResult)>,
    ) -> Result<(), CoreError> {
        if entry.data.is_empty() {
            return Ok(()); // a new leader's empty entry
        }
        let request = match InternalRequest::decode(entry.data.clone()) {
            Ok(request) => request,
            Err(e) => {
                // Same bytes on every member, so every member skips it alike.
                tracing::error!(index = entry.index.0, error = %e, "undecodable raft entry skipped");
                return Ok(());
            }
        };
        let Some(body) = &request.request else {
            return Ok(());
        };
        let result = self.applier.apply(body)?;
        if let Some(header) = request.header {
            if header.proposer == self.settings.member_id && header.id != 0 {
                match body {
                    // etcd answers a physical compaction once it finished.
                    Request::Compaction(c) if c.physical && result.is_ok() => {
                        self.hold_until_compacted(header.id, result)
                    }
                    _ => answers.push((header.id, result)),
                }
            }
        }
        Ok(())
    }

    /// Keeps Raft's in-memory log bounded: every --snapshot-count applied
    /// entries, drop all but the last CATCH_UP_ENTRIES (they stay in the WAL).
    fn compact_raft_log(&mut self) {
        // A member that needs released entries is sent a store snapshot
        // (send_snapshots): Raft's log snapshot only marks where the log
        // starts, the data is exported when it is sent.
        let conf_state = keel_raft::ConfState {
            voters: self.voters.clone(),
            learners: self.learners.clone(),
        };
        let applied = self.applied_index;
        let storage = self.raw.storage_mut();
        let Ok(first) = storage.first_index() else {
            return;
        };
        let keep_from = applied.saturating_sub(CATCH_UP_ENTRIES);
        if keep_from > first.0 && keep_from - first.0 >= self.settings.snapshot_count {
            if let Err(e) = storage.create_snapshot(LogIndex(applied), conf_state, Bytes::new()) {
                tracing::warn!(error = %e, "raft log snapshot failed");
                return;
            }
            if let Err(e) = storage.compact(LogIndex(keep_from)) {
                tracing::warn!(error = %e, "raft log compaction failed");
            }
        }
    }

    fn stop(&mut self, result: &Result<(), CoreError>) {
        self.shared.mark_stopped();
        if let Err(e) = result {
            tracing::error!(error = %e, "core stopped");
        }
        let error = ApiError::Stopped;
        self.proposals.fail_all(&error);
        self.reads.fail_all(&error);
        self.fail_cluster_requests(&error);
        self.fail_storage_requests(&error);
        self.transport.shutdown();
    }
}
