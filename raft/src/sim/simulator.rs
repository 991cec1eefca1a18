//! [`Simulator`]: one run. It owns the nodes, the network, the clients and the checkers,
//! pops events in time order and dispatches each one to the node (or client, or fault
//! scheduler) it concerns; after every event it routes what the nodes produced (messages,
//! fsync requests, answers), observes the leaders' commit indexes and runs the per-step
//! checks. Fault actions live in `chaos.rs`, the end-of-run convergence in `finale.rs`.

use std::collections::{BTreeMap, BTreeSet};

use crate::conf_change::{ConfChange, ConfChangeKind};
use crate::config::Config;
use crate::errors::RaftError;
use crate::message::{Message, MessageKind};
use crate::sim::checkers::Checkers;
use crate::sim::event::{Event, EventQueue};
use crate::sim::kv::{ClientId, Command, KvInput, KvOutput, OpId};
use crate::sim::network::Network;
use crate::sim::node::{Cx, NodeState, Outbox, SimNode};
use crate::sim::report::{ClusterStats, FaultStats, RunReport};
use crate::sim::rng::{SimRng, Stream};
use crate::sim::settings::SimConfig;
use crate::sim::shadow::EntryId;
use crate::sim::time::SimTime;
use crate::sim::trace::Trace;
use crate::sim::violation::Property;
use crate::sim::workload::{decode_read_context, read_context, Workload};
use crate::types::{Entry, EntryKind, LogIndex, NodeId, Role, SnapshotStatus, Term};

/// Nodes kept in reserve for membership changes (never bootstrapped).
const SPARE_NODES: usize = 2;
/// Base tick interval (µs); each node's clock runs up to ±10% off it.
const TICK_US: u64 = 10_000;
/// Raft election timeout (ticks).
const ELECTION_TICKS: u32 = 10;
/// Lower bound of an fsync (µs).
const FSYNC_US_MIN: u64 = 50;
/// Rounds of routing one event's output may take (a bound; one or two are normal).
const FLUSH_ROUNDS_MAX: usize = 1_000;

/// One run in progress.
pub(crate) struct Simulator {
    pub(crate) config: SimConfig,
    pub(crate) now: SimTime,
    pub(crate) events: u64,
    pub(crate) queue: EventQueue,
    pub(crate) nodes: BTreeMap<NodeId, SimNode>,
    pub(crate) network: Network,
    pub(crate) workload: Workload,
    pub(crate) checkers: Checkers,
    outbox: Outbox,
    pub(crate) trace: Trace,
    pub(crate) chaos_rng: SimRng,
    pub(crate) disk_rng: SimRng,
    tick_us: BTreeMap<NodeId, u64>,
    sync_done_at: BTreeMap<NodeId, SimTime>,
    /// Nodes removed from the group (shut down for good, never restarted).
    pub(crate) removed: BTreeSet<NodeId>,
    pub(crate) faults: FaultStats,
    snapshots_sent: u64,
    conf_indexes_applied: BTreeSet<LogIndex>,
    /// Fault actions happen only while true (the faulty phase).
    pub(crate) chaos_on: bool,
}

impl Simulator {
    pub(crate) fn new(config: SimConfig) -> Simulator {
        let seed = config.seed;
        let voters: Vec<NodeId> = (1..=config.nodes as u64).map(NodeId).collect();
        let mut sim = Simulator {
            network: Network::new(seed, &config.settings),
            workload: Workload::new(seed, config.settings.clients),
            checkers: Checkers::new(&voters),
            trace: Trace::new(config.trace),
            chaos_rng: SimRng::new(seed, Stream::Chaos),
            disk_rng: SimRng::new(seed, Stream::Disk),
            now: SimTime(0),
            events: 0,
            queue: EventQueue::default(),
            nodes: BTreeMap::new(),
            outbox: Outbox::default(),
            tick_us: BTreeMap::new(),
            sync_done_at: BTreeMap::new(),
            removed: BTreeSet::new(),
            faults: FaultStats::default(),
            snapshots_sent: 0,
            conf_indexes_applied: BTreeSet::new(),
            chaos_on: true,
            config,
        };
        sim.checkers.step_checks_enabled = sim.config.step_checks;
        sim.start_nodes(&voters);
        sim.start_clients();
        let first_chaos = sim
            .chaos_rng
            .between(1, sim.config.settings.chaos_interval_us);
        sim.queue.schedule(SimTime(first_chaos), Event::Chaos);
        sim
    }

    fn raft_config(&self, id: NodeId) -> Config {
        let s = &self.config.settings;
        Config {
            election_ticks: ELECTION_TICKS,
            heartbeat_ticks: s.heartbeat_ticks,
            inflight_msgs_max: s.inflight_msgs_max,
            msg_size_bytes_max: s.msg_size_bytes_max,
            pre_vote: s.pre_vote,
            check_quorum: s.check_quorum,
            seed: self.config.seed,
            ..Config::new(id)
        }
    }

    /// Bootstraps the voters (durably, before anything else happens, as a server does) and
    /// starts every node's clock.
    fn start_nodes(&mut self, voters: &[NodeId]) {
        let bootstrap: Vec<EntryId> = voters
            .iter()
            .enumerate()
            .map(|(i, &id)| {
                EntryId::of(&Entry {
                    term: Term(1),
                    index: LogIndex(i as u64 + 1),
                    kind: EntryKind::ConfChange,
                    data: ConfChange::new(ConfChangeKind::AddNode, id).encode(),
                })
            })
            .collect();
        self.checkers.on_bootstrap(&bootstrap);
        let mut clock = SimRng::new(self.config.seed, Stream::Clock);
        let total = self.config.nodes + SPARE_NODES;
        for raw_id in 1..=total as u64 {
            let id = NodeId(raw_id);
            let mut node = SimNode::new(self.raft_config(id));
            if voters.contains(&id) {
                let raw = node.raw.as_mut().expect("a new node is up");
                raw.bootstrap(voters).expect("fresh storage");
                self.with_cx(|cx| node.sync_now(cx));
            }
            self.nodes.insert(id, node);
            let tick_us = clock.between(TICK_US * 9 / 10, TICK_US * 11 / 10);
            self.tick_us.insert(id, tick_us);
            self.queue
                .schedule(SimTime(clock.below(tick_us)), Event::Tick(id));
        }
        self.flush();
    }

    fn start_clients(&mut self) {
        for client in self.workload.client_ids() {
            let at = SimTime(self.workload.think_time_us());
            self.queue.schedule(at, Event::ClientWake(client));
        }
    }

    /// Runs `f` with a turn context (for nodes not stored in `self.nodes` yet).
    fn with_cx<R>(&mut self, f: impl FnOnce(&mut Cx<'_>) -> R) -> R {
        let mut cx = Cx {
            checkers: &mut self.checkers,
            outbox: &mut self.outbox,
            ack_before_sync: self.config.bugs.ack_before_sync,
            checkpoint_every_applies: self.config.settings.checkpoint_every_applies,
        };
        f(&mut cx)
    }

    /// Runs `f` on node `id` with a turn context; None if there is no such node.
    pub(crate) fn with_node<R>(
        &mut self,
        id: NodeId,
        f: impl FnOnce(&mut SimNode, &mut Cx<'_>) -> R,
    ) -> Option<R> {
        let node = self.nodes.get_mut(&id)?;
        let mut cx = Cx {
            checkers: &mut self.checkers,
            outbox: &mut self.outbox,
            ack_before_sync: self.config.bugs.ack_before_sync,
            checkpoint_every_applies: self.config.settings.checkpoint_every_applies,
        };
        Some(f(node, &mut cx))
    }

    pub(crate) fn violated(&self) -> bool {
        self.checkers.violation().is_some()
    }

    /// Processes one event. Returns false when the queue is empty.
    pub(crate) fn step(&mut self) -> bool {
        let Some((at, event)) = self.queue.pop() else {
            return false;
        };
        self.now = at;
        self.events += 1;
        self.checkers.set_clock(self.events, at);
        self.trace.record(self.events, at, &event);
        self.dispatch(event);
        self.flush();
        self.observe_leaders();
        let disks = self.nodes.iter_mut().map(|(&id, n)| (id, &mut n.disk));
        self.checkers.after_step(disks);
        true
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Tick(id) => self.on_tick(id),
            Event::Deliver(m) => self.on_deliver(*m),
            Event::SyncDone {
                node,
                incarnation,
                records,
            } => {
                self.with_node(node, |n, cx| n.on_sync_done(incarnation, records, cx));
            }
            Event::ClientWake(client) => self.on_client_wake(client),
            Event::ClientTimeout(client, op) => {
                if self.workload.timed_out(client, op) {
                    self.wake_client_later(client, false);
                }
            }
            Event::Chaos => self.on_chaos(),
            Event::Restart(id) => self.restart(id),
            Event::CrashDuringSync(id) => self.crash_during_sync(id),
            Event::Heal => {
                self.network.heal();
                self.trace.note(self.now, "heal: all links restored");
            }
        }
    }

    fn on_tick(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get(&id) else {
            return;
        };
        if node.state == NodeState::Removed {
            return;
        }
        let tick_us = self.tick_us.get(&id).copied().unwrap_or(TICK_US);
        self.queue
            .schedule(self.now.after_us(tick_us), Event::Tick(id));
        self.with_node(id, |n, cx| {
            if let Some(raw) = n.raw.as_mut() {
                raw.tick();
                n.turn(cx);
            }
        });
    }

    fn on_deliver(&mut self, m: Message) {
        let (from, to, kind) = (m.from, m.to, m.kind);
        let up = self.nodes.get(&to).is_some_and(SimNode::is_up);
        if !up || self.network.is_cut(from, to) {
            if up {
                self.network.note_cut_on_arrival();
            }
            if kind == MessageKind::Snapshot {
                self.report_snapshot(from, to, SnapshotStatus::Failure);
            }
            return;
        }
        let result = self.with_node(to, |n, cx| {
            let result = n.raw.as_mut().map_or(Ok(()), |raw| raw.step(m));
            n.turn(cx);
            result
        });
        if let Some(Err(e)) = result {
            let property = match e {
                RaftError::ConflictBelowCommit { .. } => Property::LeaderCompleteness,
                _ => Property::ServerLoop,
            };
            self.checkers
                .fail(property, format!("{to} refused {kind:?} from {from}: {e}"));
        }
        if kind == MessageKind::Snapshot {
            self.report_snapshot(from, to, SnapshotStatus::Finish);
        }
    }

    /// The transport tells the sender how a snapshot transfer ended.
    fn report_snapshot(&mut self, from: NodeId, to: NodeId, status: SnapshotStatus) {
        self.with_node(from, |n, cx| {
            if let Some(raw) = n.raw.as_mut() {
                raw.report_snapshot(to, status);
                n.turn(cx);
            }
        });
    }

    fn on_client_wake(&mut self, client: ClientId) {
        let Some((op, input)) = self.workload.next_request(client) else {
            return;
        };
        let Some(target) = self.pick_target() else {
            self.workload.refused();
            self.wake_client_later(client, true);
            return;
        };
        if let KvInput::Get { key } = input {
            if self.config.bugs.read_without_read_index {
                // Injected bug: a local read, possibly stale.
                let value = self.nodes.get(&target).and_then(|n| n.app.kv.get(key));
                self.workload.invoked(client, op, input, target, self.now);
                self.workload
                    .answered(client, op, target, KvOutput::Get(value), self.now);
                self.wake_client_later(client, false);
                return;
            }
            self.with_node(target, |n, cx| {
                if let Some(raw) = n.raw.as_mut() {
                    raw.read_index(read_context(client, op));
                    n.turn(cx);
                }
            });
            self.invoked(client, op, input, target);
            return;
        }
        let data = Command { client, op, input }.encode();
        let accepted = self.with_node(target, |n, cx| {
            let accepted = n.raw.as_mut().is_some_and(|raw| raw.propose(data).is_ok());
            n.turn(cx);
            accepted
        });
        if accepted == Some(true) {
            self.invoked(client, op, input, target);
        } else {
            self.workload.refused();
            self.wake_client_later(client, true);
        }
    }

    fn invoked(&mut self, client: ClientId, op: OpId, input: KvInput, target: NodeId) {
        self.workload.invoked(client, op, input, target, self.now);
        let timeout = self.now.after_us(self.config.settings.client_timeout_us);
        self.queue
            .schedule(timeout, Event::ClientTimeout(client, op));
    }

    fn wake_client_later(&mut self, client: ClientId, refused: bool) {
        let delay_us = if refused {
            self.workload.backoff_us()
        } else {
            self.workload.think_time_us()
        };
        self.queue
            .schedule(self.now.after_us(delay_us), Event::ClientWake(client));
    }

    /// A random up node, or the leader it names (most of the time), as clients find one.
    fn pick_target(&mut self) -> Option<NodeId> {
        let up: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.is_up())
            .map(|(&id, _)| id)
            .collect();
        if up.is_empty() {
            return None;
        }
        let asked = up[self.workload.below(up.len() as u64) as usize];
        let hint = self.nodes[&asked]
            .raw
            .as_ref()
            .and_then(|raw| raw.status().leader_id);
        let follow_hint = self.workload.below(100) < 85;
        match hint {
            Some(leader) if follow_hint && up.contains(&leader) => Some(leader),
            _ => Some(asked),
        }
    }

    /// Routes what the nodes produced until nothing is left.
    pub(crate) fn flush(&mut self) {
        for _ in 0..FLUSH_ROUNDS_MAX {
            let out = std::mem::take(&mut self.outbox);
            if out.messages.is_empty()
                && out.syncs.is_empty()
                && out.applied.is_empty()
                && out.reads.is_empty()
                && out.conf_changes.is_empty()
            {
                return;
            }
            for m in out.messages {
                self.send(m);
            }
            for (node, incarnation, records) in out.syncs {
                self.schedule_sync(node, incarnation, records);
            }
            for (node, index, command, output) in out.applied {
                self.on_command_applied(node, index, command, output);
            }
            for (node, ctx) in out.reads {
                self.on_read_ready(node, &ctx);
            }
            for (index, cc) in out.conf_changes {
                self.on_conf_change_applied(index, &cc);
            }
        }
        self.checkers.fail(
            Property::ServerLoop,
            format!("node output did not settle in {FLUSH_ROUNDS_MAX} rounds"),
        );
    }

    fn send(&mut self, mut m: Message) {
        if m.kind == MessageKind::Snapshot {
            self.snapshots_sent += 1;
            let fresh = self.nodes.get(&m.from).and_then(SimNode::fresh_snapshot);
            if let (Some(fresh), Some(stored)) = (fresh, &m.snapshot) {
                if fresh.meta.index >= stored.meta.index {
                    m.snapshot = Some(fresh);
                }
            }
        }
        let delays = self.network.route(&m);
        if delays.is_empty() && m.kind == MessageKind::Snapshot {
            self.report_snapshot(m.from, m.to, SnapshotStatus::Failure);
        }
        for delay_us in delays {
            let at = self.now.after_us(delay_us);
            self.queue.schedule(at, Event::Deliver(Box::new(m.clone())));
        }
    }

    fn schedule_sync(&mut self, node: NodeId, incarnation: u64, records: u64) {
        let latency_us = self.disk_rng.between(
            FSYNC_US_MIN,
            self.config.settings.fsync_us_max.max(FSYNC_US_MIN),
        );
        // One device: fsyncs of a node complete in the order they were issued.
        let previous = self.sync_done_at.get(&node).copied().unwrap_or_default();
        let at = self.now.after_us(latency_us).max(previous);
        self.sync_done_at.insert(node, at);
        let per_mille = self.config.settings.crash_during_sync_per_mille;
        if self.chaos_on && self.disk_rng.chance_per_mille(per_mille) {
            let crash_at = self
                .now
                .after_us(self.disk_rng.below(at.since_us(self.now).max(1)));
            self.queue.schedule(crash_at, Event::CrashDuringSync(node));
        }
        self.queue.schedule(
            at,
            Event::SyncDone {
                node,
                incarnation,
                records,
            },
        );
    }

    fn on_command_applied(
        &mut self,
        node: NodeId,
        index: LogIndex,
        command: Command,
        output: Option<KvOutput>,
    ) {
        let Some(output) = output else { return };
        self.workload
            .executed(command.client, command.op, output, self.now);
        if self
            .workload
            .answered(command.client, command.op, node, output, self.now)
        {
            self.checkers.on_acknowledged(index);
            self.wake_client_later(command.client, false);
        }
    }

    fn on_read_ready(&mut self, node: NodeId, ctx: &bytes::Bytes) {
        let Some((client, op)) = decode_read_context(ctx) else {
            return;
        };
        let Some((asked, key)) = self.workload.outstanding_read(client, op) else {
            return;
        };
        if asked != node {
            return;
        }
        let value = self.nodes.get(&node).and_then(|n| n.app.kv.get(key));
        if self
            .workload
            .answered(client, op, node, KvOutput::Get(value), self.now)
        {
            self.wake_client_later(client, false);
        }
    }

    fn on_conf_change_applied(&mut self, index: LogIndex, cc: &ConfChange) {
        if index.0 > self.config.nodes as u64 {
            // Bootstrap entries are not membership changes.
            self.conf_indexes_applied.insert(index);
        }
        if cc.kind != ConfChangeKind::RemoveNode || !self.removed.insert(cc.node_id) {
            return;
        }
        // etcd's peers refuse a removed member, which then stops: shut it down for good.
        let now = self.now;
        if let Some(node) = self.nodes.get_mut(&cc.node_id) {
            node.shut_down();
            self.trace.note(
                now,
                &format!("{} removed at {index}: shut down", cc.node_id),
            );
        }
    }

    /// The leader with the highest term among up nodes, as of their last Ready.
    pub(crate) fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.is_up() && n.role == Role::Leader)
            .max_by_key(|n| n.term)
            .map(|n| n.id)
    }

    /// Feeds every leader's commit index to the commit log.
    fn observe_leaders(&mut self) {
        for node in self.nodes.values() {
            if !node.is_up() || node.role != Role::Leader {
                continue;
            }
            let Some(raw) = node.raw.as_ref() else {
                continue;
            };
            let status = raw.status();
            if status.role == Role::Leader {
                self.checkers
                    .on_leader_commit(node.id, status.term, status.commit, &node.shadow);
            }
        }
    }

    /// Restarts a crashed node from its disk.
    pub(crate) fn restart(&mut self, id: NodeId) {
        if self.removed.contains(&id) {
            return;
        }
        if self.nodes.get(&id).map(|n| n.state) != Some(NodeState::Crashed) {
            return;
        }
        self.faults.restarts += 1;
        self.trace.note(self.now, &format!("restart {id}"));
        let result = self.with_node(id, |n, cx| {
            let result = n.restart(cx);
            if result.is_ok() {
                n.turn(cx);
            }
            result
        });
        if let Some(Err(detail)) = result {
            self.checkers.fail(Property::Recovery, detail);
        }
    }

    /// The report of the run so far.
    pub(crate) fn report(&mut self) -> RunReport {
        let (leader_terms, max_term) = self.checkers.leader_summary();
        let voters_final = self
            .leader()
            .and_then(|l| self.nodes[&l].raw.as_ref())
            .map_or(0, |raw| raw.conf_state().voters.len());
        RunReport {
            config: self.config.clone(),
            events: self.events,
            time: self.now,
            digest: self.trace.digest(),
            faults: self.faults,
            network: self.network.stats,
            workload: self.workload.stats,
            cluster: ClusterStats {
                leader_terms,
                max_term: max_term.0,
                applied_max: self.checkers.state_machine.applied_max().0,
                acknowledged_max: self.checkers.durability.acknowledged_max().0,
                snapshots_sent: self.snapshots_sent,
                conf_changes_applied: self.conf_indexes_applied.len() as u64,
                voters_final,
            },
            linearizability: None,
            violation: self.checkers.violation().cloned(),
            trace: self.trace.take_lines(),
            history: self.workload.history().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A server finishes bootstrapping (durably) before it serves; an outage at time zero
    // must not erase the group. (The first version wrote the bootstrap Ready but left it
    // waiting for a normal fsync, and an early outage lost the cluster.)
    #[test]
    fn bootstrap_is_durable_before_the_first_event() {
        let sim = Simulator::new(SimConfig::new(3, 5, 100));
        for id in 1..=5 {
            let image = sim.nodes[&NodeId(id)].disk.image();
            assert_eq!(image.last_index(), LogIndex(5), "n{id}");
            assert_eq!(image.hard_state.commit, LogIndex(5), "n{id}");
        }
        for spare in 6..=7 {
            assert_eq!(
                sim.nodes[&NodeId(spare)].disk.image().last_index(),
                LogIndex(0)
            );
        }
    }
}
