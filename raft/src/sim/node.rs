//! One simulated server: a [`RawNode`] driven exactly as keel's core drives it (the crate
//! docs' loop), a [`SimDisk`], and the KV application.
//!
//! Each Ready is handled in order: observe it (checkers), send `messages`, write snapshot,
//! entries and hard state to the disk (one batch), and request an fsync if `must_sync`.
//! Once the disk reports the batch durable (at once when no sync is needed, but never
//! before an earlier Ready), the Ready is *finished*: the in-memory log storage takes its
//! writes, `on_persisted`, `persisted_messages` go out, a snapshot is installed in the
//! application, committed entries are applied, then `advance_apply_to`. Several Readies can
//! wait for their fsync at once (pipelining). Reads wait until applied up to their index.
//!
//! A crash drops everything in memory (Raft, the application, unfinished Readies, waiting
//! reads) and whatever the disk had not synced (a torn crash keeps part of it). A restart
//! rebuilds the application from its durable checkpoint (or the disk's snapshot if newer)
//! and Raft from the disk, passing the checkpoint's index as `Config::applied`.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::conf_change::ConfChange;
use crate::config::Config;
use crate::message::{Message, MessageKind};
use crate::raw_node::RawNode;
use crate::ready::Ready;
use crate::sim::checkers::Checkers;
use crate::sim::disk::{AppCheckpoint, Record, SimDisk};
use crate::sim::kv::{Command, KvOutput, KvStore};
use crate::sim::shadow::{EntryId, ShadowLog};
use crate::sim::violation::Property;
use crate::storage::{LogStorage, MemStorage};
use crate::types::{
    ConfState, Entry, EntryKind, LogIndex, NodeId, ReadState, Role, Snapshot, SnapshotMeta, Term,
};

/// Readies one turn may hand out before the loop is declared stuck (a bound, not a limit
/// any correct run approaches).
const READIES_PER_TURN_MAX: usize = 10_000;

/// Whether the server process runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum NodeState {
    Up,
    Crashed,
    /// Applied its own removal from the group and shut down (as etcd members do).
    Removed,
}

/// The application as the server holds it in memory.
#[derive(Clone, Debug, Default)]
pub(crate) struct App {
    pub(crate) kv: KvStore,
    /// Last applied index (inclusive).
    pub(crate) applied: LogIndex,
    pub(crate) conf_state: ConfState,
    applies_since_checkpoint: u64,
}

/// A Ready handed out and not yet finished.
struct InFlight {
    ready: Ready,
    /// Disk records that must be durable before it finishes (0: none).
    needs_records: u64,
}

/// What a node's turn produced for the rest of the simulation.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub(crate) messages: Vec<Message>,
    /// fsyncs to schedule: (node, incarnation, records covered).
    pub(crate) syncs: Vec<(NodeId, u64, u64)>,
    /// Commands applied: (node, index, command, output).
    pub(crate) applied: Vec<(NodeId, LogIndex, Command, Option<KvOutput>)>,
    /// Reads now answerable at a node: (node, request context).
    pub(crate) reads: Vec<(NodeId, Bytes)>,
    /// Membership changes a node applied: (index, change).
    pub(crate) conf_changes: Vec<(LogIndex, ConfChange)>,
}

/// Context of one turn.
pub(crate) struct Cx<'a> {
    pub(crate) checkers: &'a mut Checkers,
    pub(crate) outbox: &'a mut Outbox,
    pub(crate) ack_before_sync: bool,
    pub(crate) checkpoint_every_applies: u64,
}

/// One server.
pub(crate) struct SimNode {
    pub(crate) id: NodeId,
    config: Config,
    pub(crate) raw: Option<RawNode<MemStorage>>,
    pub(crate) disk: SimDisk,
    pub(crate) app: App,
    pub(crate) shadow: ShadowLog,
    in_flight: VecDeque<InFlight>,
    read_waiters: Vec<ReadState>,
    /// Bumped at every crash, so fsyncs of a previous life are ignored.
    pub(crate) incarnation: u64,
    pub(crate) state: NodeState,
    /// Role and term as of the last Ready.
    pub(crate) role: Role,
    pub(crate) term: Term,
}

impl SimNode {
    /// A node with empty storage (bootstrap it, or let a leader bring it in).
    pub(crate) fn new(config: Config) -> SimNode {
        let raw = RawNode::new(&config, MemStorage::new()).expect("valid sim config");
        SimNode {
            id: config.id,
            config,
            raw: Some(raw),
            disk: SimDisk::default(),
            app: App::default(),
            shadow: ShadowLog::default(),
            in_flight: VecDeque::new(),
            read_waiters: Vec::new(),
            incarnation: 0,
            state: NodeState::Up,
            role: Role::Follower,
            term: Term(0),
        }
    }

    pub(crate) fn is_up(&self) -> bool {
        self.state == NodeState::Up
    }

    /// Readies handed out but waiting for their fsync.
    pub(crate) fn unsynced_readies(&self) -> usize {
        self.in_flight.len()
    }

    /// Hands out and handles every Ready (the server loop's inner `while has_ready()`).
    pub(crate) fn turn(&mut self, cx: &mut Cx<'_>) {
        for _ in 0..READIES_PER_TURN_MAX {
            let Some(raw) = self.raw.as_mut() else { return };
            if !raw.has_ready() {
                self.serve_reads(cx);
                return;
            }
            let ready = raw.ready();
            self.handle_ready(ready, cx);
        }
        cx.checkers.fail(
            Property::ServerLoop,
            format!(
                "{} handed out {READIES_PER_TURN_MAX} Readies in one turn",
                self.id
            ),
        );
    }

    fn handle_ready(&mut self, mut ready: Ready, cx: &mut Cx<'_>) {
        self.observe(&ready, cx);
        cx.outbox.messages.append(&mut ready.messages);
        self.read_waiters.append(&mut ready.read_states);
        let mut records = Vec::new();
        records.extend(ready.snapshot.clone().map(Record::Snapshot));
        records.extend(ready.entries.iter().cloned().map(Record::Entry));
        records.extend(ready.hard_state.map(Record::HardState));
        self.disk.write(records);
        let mut needs_records = 0;
        if ready.must_sync {
            needs_records = self.disk.written_records();
            cx.outbox
                .syncs
                .push((self.id, self.incarnation, needs_records));
        }
        if cx.ack_before_sync {
            // Injected bug: treat the write as durable before its fsync completes.
            needs_records = 0;
        }
        self.in_flight.push_back(InFlight {
            ready,
            needs_records,
        });
        self.finish_durable(cx);
    }

    /// Feeds the checkers what a Ready reveals: the log it extends, a new leadership, and
    /// commit indexes known to a leader (its own hard state, and its Appends and heartbeats)
    /// before any entry they cover is applied anywhere.
    fn observe(&mut self, ready: &Ready, cx: &mut Cx<'_>) {
        let led_term = (self.role == Role::Leader).then_some(self.term);
        if let Some(hard_state) = ready.hard_state {
            self.term = hard_state.term;
        }
        if let Some(first) = self.shadow.apply_ready(ready) {
            cx.checkers.on_appended(self.id, &self.shadow, first);
        }
        if let Some(soft_state) = ready.soft_state {
            self.role = soft_state.role;
            if soft_state.role == Role::Leader {
                cx.checkers.on_leader(self.id, self.term, &self.shadow);
            }
        }
        if let Some(hard_state) = ready.hard_state {
            // A leader that stepped down during this turn (it applied its own removal or
            // demotion) committed in the term it led, which has not changed since.
            let leader_term = if self.role == Role::Leader {
                Some(self.term)
            } else {
                led_term.filter(|&term| term == hard_state.term)
            };
            if let Some(term) = leader_term {
                cx.checkers
                    .on_leader_commit(self.id, term, hard_state.commit, &self.shadow);
            }
        }
        for m in &ready.messages {
            if matches!(m.kind, MessageKind::Append | MessageKind::Heartbeat) {
                cx.checkers
                    .on_leader_commit(self.id, m.term, m.commit, &self.shadow);
            }
        }
    }

    /// The disk finished an fsync covering `records` written records.
    pub(crate) fn on_sync_done(&mut self, incarnation: u64, records: u64, cx: &mut Cx<'_>) {
        if incarnation != self.incarnation || !self.is_up() {
            return;
        }
        self.disk.sync_to(records);
        self.finish_durable(cx);
        self.turn(cx);
    }

    /// Finishes, in order, every leading Ready whose writes are durable.
    fn finish_durable(&mut self, cx: &mut Cx<'_>) {
        while let Some(front) = self.in_flight.front() {
            if front.needs_records > self.disk.durable_records() {
                return;
            }
            let Some(in_flight) = self.in_flight.pop_front() else {
                return;
            };
            self.finish(in_flight.ready, cx);
            if self.raw.is_none() {
                return;
            }
        }
    }

    fn finish(&mut self, mut ready: Ready, cx: &mut Cx<'_>) {
        let id = self.id;
        let Some(raw) = self.raw.as_mut() else { return };
        let storage = raw.storage_mut();
        if let Some(snapshot) = &ready.snapshot {
            if let Err(e) = storage.apply_snapshot(snapshot.clone()) {
                cx.checkers.fail(
                    Property::ServerLoop,
                    format!(
                        "{id}: storage refused snapshot {}: {e}",
                        snapshot.meta.index
                    ),
                );
                return;
            }
        }
        if let Err(e) = storage.append(&ready.entries) {
            cx.checkers.fail(
                Property::ServerLoop,
                format!("{id}: storage refused entries: {e}"),
            );
            return;
        }
        if let Some(hard_state) = ready.hard_state {
            storage.set_hard_state(hard_state);
        }
        raw.on_persisted(ready.number);
        cx.outbox.messages.append(&mut ready.persisted_messages);
        if let Some(snapshot) = &ready.snapshot {
            self.install_snapshot(
                snapshot.meta.index,
                &snapshot.data,
                snapshot.meta.conf_state.clone(),
                cx,
            );
        }
        self.apply(&ready.committed_entries, cx);
    }

    fn install_snapshot(
        &mut self,
        index: LogIndex,
        data: &Bytes,
        conf_state: ConfState,
        cx: &mut Cx<'_>,
    ) {
        let kv = match KvStore::decode(data) {
            Ok(kv) => kv,
            Err(e) => {
                cx.checkers.fail(
                    Property::ServerLoop,
                    format!("{}: snapshot {index} data: {e}", self.id),
                );
                return;
            }
        };
        cx.checkers.on_restored(self.id, index, kv.digest());
        cx.checkers.on_conf_applied(index, &conf_state);
        self.app = App {
            kv,
            applied: index,
            conf_state,
            applies_since_checkpoint: 0,
        };
        self.checkpoint();
    }

    fn apply(&mut self, entries: &[Entry], cx: &mut Cx<'_>) {
        let Some(last) = entries.last() else { return };
        for entry in entries {
            if entry.index != self.app.applied.next() {
                cx.checkers.fail(
                    Property::ServerLoop,
                    format!(
                        "{} was handed {} to apply after {}",
                        self.id, entry.index, self.app.applied
                    ),
                );
                return;
            }
            match entry.kind {
                EntryKind::ConfChange => self.apply_conf_change(entry, cx),
                EntryKind::Normal if entry.data.is_empty() => {}
                EntryKind::Normal => self.apply_command(entry, cx),
            }
            self.app.applied = entry.index;
            cx.checkers.on_applied(
                self.id,
                entry.index,
                EntryId::of(entry),
                self.app.kv.digest(),
            );
        }
        if let Some(raw) = self.raw.as_mut() {
            raw.advance_apply_to(last.index);
        }
        self.app.applies_since_checkpoint += entries.len() as u64;
        if self.app.applies_since_checkpoint >= cx.checkpoint_every_applies {
            self.checkpoint();
        }
    }

    fn apply_command(&mut self, entry: &Entry, cx: &mut Cx<'_>) {
        match Command::decode(&entry.data) {
            Ok(command) => {
                let output = self.app.kv.apply(&command);
                cx.outbox
                    .applied
                    .push((self.id, entry.index, command, output));
            }
            Err(e) => cx.checkers.fail(
                Property::ServerLoop,
                format!("{}: entry {} does not decode: {e}", self.id, entry.index),
            ),
        }
    }

    fn apply_conf_change(&mut self, entry: &Entry, cx: &mut Cx<'_>) {
        let cc = match ConfChange::decode(&entry.data) {
            Ok(cc) => cc,
            Err(e) => {
                cx.checkers.fail(
                    Property::ServerLoop,
                    format!(
                        "{}: conf change {} does not decode: {e}",
                        self.id, entry.index
                    ),
                );
                return;
            }
        };
        let Some(raw) = self.raw.as_mut() else { return };
        // An invalid change is refused identically on every node: membership stays as is.
        if let Ok(conf_state) = raw.apply_conf_change(&cc) {
            raw.storage_mut().set_conf_state(conf_state.clone());
            cx.checkers.on_conf_applied(entry.index, &conf_state);
            self.app.conf_state = conf_state;
            cx.outbox.conf_changes.push((entry.index, cc));
        }
    }

    /// Answers every waiting read whose index is applied.
    fn serve_reads(&mut self, cx: &mut Cx<'_>) {
        let applied = self.app.applied;
        let id = self.id;
        self.read_waiters.retain(|read| {
            if read.index <= applied {
                cx.outbox.reads.push((id, read.request_ctx.clone()));
                return false;
            }
            true
        });
    }

    /// Durably records the application state (the server's checkpoint commit).
    pub(crate) fn checkpoint(&mut self) {
        self.disk.write_checkpoint(AppCheckpoint {
            applied: self.app.applied,
            kv: self.app.kv.clone(),
            conf_state: self.app.conf_state.clone(),
        });
        self.app.applies_since_checkpoint = 0;
    }

    /// Takes a snapshot at the applied index and releases the log up to
    /// `catch_up_entries` before it (etcd keeps such a tail for slow followers).
    pub(crate) fn compact(&mut self, catch_up_entries: u64, cx: &mut Cx<'_>) -> bool {
        let id = self.id;
        let applied = self.app.applied;
        let Some(raw) = self.raw.as_mut() else {
            return false;
        };
        let storage = raw.storage_mut();
        let snapshot_index = storage
            .snapshot(LogIndex(0))
            .map_or(LogIndex(0), |s| s.meta.index);
        if applied <= snapshot_index {
            return false;
        }
        let data = self.app.kv.encode();
        let snapshot = match storage.create_snapshot(applied, self.app.conf_state.clone(), data) {
            Ok(snapshot) => snapshot,
            Err(e) => {
                cx.checkers.fail(
                    Property::ServerLoop,
                    format!("{id}: snapshot at applied {applied} refused: {e}"),
                );
                return false;
            }
        };
        let release_to = LogIndex(applied.0.saturating_sub(catch_up_entries));
        let release_term = self.shadow.term(release_to);
        if let Err(e) = storage.compact(release_to.next()) {
            cx.checkers.fail(
                Property::ServerLoop,
                format!("{id}: releasing the log to {release_to} refused: {e}"),
            );
            return false;
        }
        if let Some(term) = release_term {
            self.shadow.compact(release_to, term);
        }
        self.disk.compact(snapshot);
        self.checkpoint();
        true
    }

    /// The snapshot the transport actually sends for a Snapshot message: the current applied
    /// state with the membership as of it (etcd's "merged snapshot"). The stored snapshot
    /// Raft picked may predate the recipient's own addition, and a node refuses a snapshot
    /// whose membership leaves it out.
    pub(crate) fn fresh_snapshot(&self) -> Option<Snapshot> {
        let raw = self.raw.as_ref()?;
        let index = self.app.applied;
        let term = raw.storage().term(index).ok()?;
        Some(Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                conf_state: self.app.conf_state.clone(),
            },
            data: self.app.kv.encode(),
        })
    }

    /// Power loss. `kept_records` of the unsynced writes reach the media (torn write).
    pub(crate) fn crash(&mut self, kept_records: usize) {
        self.raw = None;
        self.in_flight.clear();
        self.read_waiters.clear();
        self.incarnation += 1;
        self.disk.crash(kept_records);
        self.state = NodeState::Crashed;
        self.role = Role::Follower;
    }

    /// Shuts the node down for good (it applied its own removal).
    pub(crate) fn shut_down(&mut self) {
        self.raw = None;
        self.in_flight.clear();
        self.read_waiters.clear();
        self.incarnation += 1;
        self.state = NodeState::Removed;
        self.role = Role::Follower;
    }

    /// Restarts from the disk. Err: keel-raft refused the state its own Readies left.
    pub(crate) fn restart(&mut self, cx: &mut Cx<'_>) -> Result<(), String> {
        let checkpoint = self.disk.checkpoint().clone();
        let mut app = App {
            kv: checkpoint.kv,
            applied: checkpoint.applied,
            conf_state: checkpoint.conf_state,
            applies_since_checkpoint: 0,
        };
        let snapshot = &self.disk.image().snapshot;
        if snapshot.meta.index > app.applied {
            app = App {
                kv: KvStore::decode(&snapshot.data)
                    .map_err(|e| format!("{}: disk snapshot data: {e}", self.id))?,
                applied: snapshot.meta.index,
                conf_state: snapshot.meta.conf_state.clone(),
                applies_since_checkpoint: 0,
            };
        }
        let mut storage = self.disk.recover_storage();
        storage.set_conf_state(app.conf_state.clone());
        let config = Config {
            applied: app.applied,
            ..self.config.clone()
        };
        let raw = RawNode::new(&config, storage)
            .map_err(|e| format!("{} cannot restart from its disk: {e}", self.id))?;
        cx.checkers
            .on_restored(self.id, app.applied, app.kv.digest());
        self.raw = Some(raw);
        self.app = app;
        self.shadow = ShadowLog::from_image(self.disk.image());
        self.state = NodeState::Up;
        self.role = Role::Follower;
        self.term = self.disk.image().hard_state.term;
        Ok(())
    }

    /// Handles what is ready and makes it durable at once (used right after bootstrap,
    /// which the server completes before it starts serving).
    pub(crate) fn sync_now(&mut self, cx: &mut Cx<'_>) {
        self.turn(cx);
        self.disk.sync_to(self.disk.written_records());
        self.finish_durable(cx);
        self.turn(cx);
    }
}
