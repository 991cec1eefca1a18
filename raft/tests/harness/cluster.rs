//! A cluster of in-memory nodes driven through the crate docs' server loop, with crash and
//! restart, plus the safety checks (election safety, state machine safety).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use keel_raft::{
    ConfChange, ConfState, Config, EntryKind, HardState, LogIndex, LogStorage, MemStorage, Message,
    MessageKind, NodeId, RawNode, ReadState, Ready, Role, Snapshot, SnapshotMeta, SnapshotStatus,
    Term,
};

use super::format;
use super::network::Network;

/// The application: applied payloads by index. It is durable at apply time (as if the
/// server checkpointed after every apply), so a restart resumes from `applied_index`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct App {
    pub applied: Vec<(LogIndex, Bytes)>,
    pub applied_index: LogIndex,
}

impl App {
    fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_u64_le(self.applied_index.0);
        for (index, data) in &self.applied {
            buf.put_u64_le(index.0);
            buf.put_u32_le(data.len() as u32);
            buf.put_slice(data);
        }
        buf.freeze()
    }

    fn decode(mut data: Bytes) -> App {
        let mut app = App {
            applied_index: LogIndex(data.get_u64_le()),
            ..App::default()
        };
        while data.has_remaining() {
            let index = LogIndex(data.get_u64_le());
            let len = data.get_u32_le() as usize;
            app.applied.push((index, data.split_to(len)));
        }
        app
    }
}

/// One member.
pub struct TestNode {
    pub raw: RawNode<MemStorage>,
    pub config: Config,
    pub app: App,
    pub conf_state: ConfState,
    /// Readies handed out, not yet persisted.
    pub unpersisted: VecDeque<Ready>,
    pub read_states: Vec<ReadState>,
    pub crashed: bool,
}

/// Nodes plus network.
pub struct Cluster {
    pub nodes: BTreeMap<NodeId, TestNode>,
    pub net: Network,
    /// Trace of what happened (interaction tests print it).
    pub out: String,
    /// Leader seen per term, for election safety.
    pub leaders_by_term: BTreeMap<Term, NodeId>,
    /// Errors returned by `step` (peers sending invalid messages would show up here).
    pub step_errors: Vec<String>,
    /// Delivered messages by kind (shows what a randomized run exercised).
    pub delivered: BTreeMap<MessageKind, u64>,
}

impl Cluster {
    pub fn new(seed: u64) -> Cluster {
        Cluster {
            nodes: BTreeMap::new(),
            net: Network::new(seed),
            out: String::new(),
            leaders_by_term: BTreeMap::new(),
            step_errors: Vec::new(),
            delivered: BTreeMap::new(),
        }
    }

    /// Adds a node whose storage starts with a snapshot at `index` (term 1) holding
    /// `conf_state` (etcd interaction tests' add-nodes).
    pub fn add_node(&mut self, config: Config, conf_state: ConfState, index: u64) {
        let mut storage = MemStorage::new();
        if index > 0 {
            let snapshot = Snapshot {
                meta: SnapshotMeta {
                    index: LogIndex(index),
                    term: Term(1),
                    conf_state: conf_state.clone(),
                },
                data: App {
                    applied_index: LogIndex(index),
                    ..App::default()
                }
                .encode(),
            };
            storage.apply_snapshot(snapshot).expect("fresh storage");
            storage.set_hard_state(HardState {
                term: Term(1),
                vote: None,
                commit: LogIndex(index),
            });
        }
        storage.set_conf_state(conf_state.clone());
        let config = Config {
            applied: LogIndex(index),
            ..config
        };
        let raw = RawNode::new(&config, storage).expect("valid node");
        let app = App {
            applied_index: LogIndex(index),
            ..App::default()
        };
        let node = TestNode {
            raw,
            config,
            app,
            conf_state,
            unpersisted: VecDeque::new(),
            read_states: Vec::new(),
            crashed: false,
        };
        self.nodes.insert(node.config.id, node);
    }

    pub fn node(&mut self, id: NodeId) -> &mut TestNode {
        self.nodes
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Hands out one Ready, sends its immediate messages. Returns false if none.
    pub fn handout(&mut self, id: NodeId) -> bool {
        let node = self.node(id);
        if node.crashed || !node.raw.has_ready() {
            return false;
        }
        let rd = node.raw.ready();
        let description = format::ready(&rd);
        self.net.send(rd.messages.clone());
        self.node(id).unpersisted.push_back(rd);
        let _ = write!(self.out, "> {} handling Ready\n{}", id.0, description);
        self.observe_leader(id);
        true
    }

    /// Persists the oldest handed-out Ready, sends its persisted messages, applies.
    pub fn persist_one(&mut self, id: NodeId) -> bool {
        let node = self.node(id);
        let Some(rd) = node.unpersisted.pop_front() else {
            return false;
        };
        let storage = node.raw.storage_mut();
        if let Some(snapshot) = &rd.snapshot {
            storage
                .apply_snapshot(snapshot.clone())
                .expect("newer snapshot");
            node.app = App::decode(snapshot.data.clone());
            node.conf_state = snapshot.meta.conf_state.clone();
        }
        storage.append(&rd.entries).expect("contiguous entries");
        if let Some(hs) = rd.hard_state {
            storage.set_hard_state(hs);
        }
        node.raw.on_persisted(rd.number);
        let persisted_messages = rd.persisted_messages.clone();
        self.apply(id, &rd);
        self.net.send(persisted_messages);
        true
    }

    fn apply(&mut self, id: NodeId, rd: &Ready) {
        let node = self.node(id);
        for entry in &rd.committed_entries {
            assert_eq!(
                entry.index,
                node.app.applied_index.next(),
                "node {id} applies in order"
            );
            match entry.kind {
                EntryKind::ConfChange => {
                    let cc = ConfChange::decode(&entry.data).expect("we encoded it");
                    if let Ok(cs) = node.raw.apply_conf_change(&cc) {
                        node.raw.storage_mut().set_conf_state(cs.clone());
                        node.conf_state = cs;
                    }
                }
                EntryKind::Normal if !entry.data.is_empty() => {
                    node.app.applied.push((entry.index, entry.data.clone()));
                }
                EntryKind::Normal => {}
            }
            node.app.applied_index = entry.index;
        }
        if let Some(last) = rd.committed_entries.last() {
            node.raw.advance_apply_to(last.index);
        }
        node.read_states.extend(rd.read_states.iter().cloned());
    }

    /// Hands out and persists one Ready (the synchronous server loop).
    pub fn process_ready(&mut self, id: NodeId) -> bool {
        if !self.handout(id) {
            return false;
        }
        self.persist_one(id)
    }

    /// Delivers one message from the network (per its faults). Returns false if empty.
    pub fn deliver_one(&mut self) -> bool {
        match self.net.next() {
            None => false,
            Some(Ok(m)) => {
                self.step(m);
                true
            }
            Some(Err(lost)) => {
                self.report_lost(&lost);
                true
            }
        }
    }

    fn report_lost(&mut self, m: &Message) {
        if m.kind == MessageKind::Snapshot && !self.node(m.from).crashed {
            self.node(m.from)
                .raw
                .report_snapshot(m.to, SnapshotStatus::Failure);
        }
    }

    /// Steps `m` into its addressee (a crashed or unknown one loses it).
    pub fn step(&mut self, m: Message) {
        let Some(node) = self.nodes.get_mut(&m.to) else {
            return;
        };
        if node.crashed {
            self.report_lost(&m);
            return;
        }
        let (from, to, is_snapshot) = (m.from, m.to, m.kind == MessageKind::Snapshot);
        *self.delivered.entry(m.kind).or_default() += 1;
        if let Err(e) = node.raw.step(m) {
            let _ = writeln!(self.out, "  error: {e}");
            self.step_errors.push(e.to_string());
        }
        if is_snapshot && !self.node(from).crashed {
            self.node(from)
                .raw
                .report_snapshot(to, SnapshotStatus::Finish);
        }
        self.observe_leader(to);
    }

    /// Delivers every queued message addressed to `id`, tracing each.
    pub fn deliver_to(&mut self, id: NodeId) -> usize {
        let messages = self.net.take_for(id);
        if messages.is_empty() {
            return 0;
        }
        let _ = writeln!(self.out, "> {} receiving messages", id.0);
        let count = messages.len();
        for m in messages {
            let _ = writeln!(self.out, "  {}", format::message(&m));
            self.step(m);
        }
        count
    }

    /// Runs process-ready / deliver rounds over `ids` until nothing moves.
    pub fn stabilize(&mut self, ids: &[NodeId]) {
        for _round in 0..10_000 {
            let mut moved = false;
            for &id in ids {
                while self.process_ready(id) {
                    moved = true;
                }
            }
            for &id in ids {
                moved |= self.deliver_to(id) > 0;
            }
            if !moved {
                return;
            }
        }
        panic!("stabilize did not converge in 10000 rounds");
    }

    /// Crash: unpersisted Readies and in-flight messages are lost; storage and the applied
    /// application state survive.
    pub fn crash(&mut self, id: NodeId) {
        let node = self.node(id);
        node.crashed = true;
        node.unpersisted.clear();
        self.drop_messages_of(id);
    }

    fn drop_messages_of(&mut self, id: NodeId) {
        for lost in self.net.drop_node(id) {
            if lost.from != id {
                self.report_lost(&lost);
            }
        }
    }

    /// Restarts a crashed node from its storage.
    pub fn restart(&mut self, id: NodeId) {
        let node = self.node(id);
        let storage = std::mem::take(node.raw.storage_mut());
        let config = Config {
            applied: node.app.applied_index,
            ..node.config.clone()
        };
        node.raw = RawNode::new(&config, storage).expect("restart from durable state");
        node.crashed = false;
        node.read_states.clear();
        // Whatever was sent to it while it was down is lost.
        self.drop_messages_of(id);
    }

    /// Takes a snapshot of `id`'s applied state and releases its log up to it.
    pub fn compact(&mut self, id: NodeId) {
        let node = self.node(id);
        let index = node.app.applied_index;
        let data = node.app.encode();
        let conf_state = node.conf_state.clone();
        let storage = node.raw.storage_mut();
        if storage.snapshot(LogIndex(0)).expect("mem").meta.index >= index {
            return;
        }
        storage
            .create_snapshot(index, conf_state, data)
            .expect("applied index is stored");
        storage.compact(index.next()).expect("within the log");
    }

    fn observe_leader(&mut self, id: NodeId) {
        let status = self.node(id).raw.status();
        if status.role != Role::Leader {
            return;
        }
        let previous = self.leaders_by_term.insert(status.term, id);
        if let Some(previous) = previous {
            assert_eq!(
                previous, id,
                "election safety: two leaders in {}",
                status.term
            );
        }
    }

    /// The current leader with the highest term, if any live node leads.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| !n.crashed)
            .map(|(&id, n)| (n.raw.status(), id))
            .filter(|(s, _)| s.role == Role::Leader)
            .max_by_key(|(s, _)| s.term)
            .map(|(_, id)| id)
    }

    /// State machine safety: applied sequences of any two nodes agree where they overlap.
    pub fn check_applied_prefixes(&self) {
        let views: Vec<(NodeId, BTreeMap<LogIndex, Bytes>, LogIndex)> = self
            .nodes
            .iter()
            .map(|(&id, n)| {
                (
                    id,
                    n.app.applied.iter().cloned().collect(),
                    n.app.applied_index,
                )
            })
            .collect();
        for (a, view_a, applied_a) in &views {
            for (b, view_b, applied_b) in &views {
                let common = (*applied_a).min(*applied_b);
                let left: Vec<_> = view_a.range(..=common).collect();
                let right: Vec<_> = view_b.range(..=common).collect();
                assert_eq!(
                    left, right,
                    "nodes {a} and {b} applied different entries up to {common}"
                );
            }
        }
    }
}
