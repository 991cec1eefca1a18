//! keel-raft: a pure Raft consensus state machine, in the style of etcd-io/raft and
//! tikv/raft-rs.
//!
//! It implements leader election with pre-vote and check-quorum, log replication with
//! pipelining and flow control (probe / replicate / snapshot progress, an inflight window),
//! fast log back-off, the current-term commit rule, snapshots, batched ReadIndex, leadership
//! transfer, learners and one-at-a-time membership changes.
//!
//! What it is NOT: it does no I/O, reads no clock, starts no threads and uses no global RNG.
//! Time is [`RawNode::tick`]; randomness comes from [`Config::seed`]; input is calls
//! ([`RawNode::step`], [`RawNode::propose`], ...), output is data ([`Ready`]). It does not
//! persist, send or apply anything itself, and it does not frame messages for the wire.
//!
//! With the `sim` feature, `keel_raft::sim` holds a deterministic simulator that runs whole
//! clusters of `RawNode`s from one seed, with crashes, partitions and a checked client
//! workload (docs/design/sim.md; `cargo run -p keel-raft --features sim --bin sim`).
//!
//! # Contract with the server (the loop)
//!
//! The server drives one [`RawNode`] from one thread and, each turn:
//! 1. calls `tick()` per elapsed tick, `step(msg)` per received message, and `propose`,
//!    `read_index`, `transfer_leader`, ... for client requests;
//! 2. `let rd = node.ready();` (only when `has_ready()`), then sends `rd.messages` at once;
//! 3. persists `rd.hard_state` (if Some), `rd.entries` (replacing any stored suffix from
//!    `rd.entries[0].index` on) and `rd.snapshot` (installing it in the application first),
//!    syncing if `rd.must_sync` (hard state and entries of one Ready become durable
//!    together, in one WAL batch), and puts them into the [`LogStorage`];
//! 4. calls `node.on_persisted(rd.number)`; Readies are persisted in order, and several may
//!    be outstanding (pipelining): `on_persisted(n)` covers every Ready up to `n`;
//! 5. sends `rd.persisted_messages` (votes, Append acknowledgements: never before step 4);
//! 6. applies `rd.committed_entries` in order, calling [`RawNode::apply_conf_change`] for
//!    `EntryKind::ConfChange` entries, and answers `rd.read_states` once applied up to
//!    their index;
//! 7. calls `node.advance_apply_to(last)` with the last applied entry's index (a snapshot in
//!    a Ready counts as applied up to its index once persisted);
//! 8. loops while `has_ready()`.
//!
//! A new group calls [`RawNode::bootstrap`] once on every initial member; a restarted node
//! passes its applied index as [`Config::applied`].
//!
//! # Invariants
//! 1. Determinism: the same calls with the same `Config` produce the same Readies.
//! 2. A committed entry is never overwritten or re-ordered (asserted in `RaftLog::append`).
//! 3. Committed entries are handed out once, in index order, and only when durable locally.
//! 4. A leader counts its own log towards commit only once persisted (`on_persisted`).
//! 5. Term and vote are durable before any vote or Append acknowledgement that depends on
//!    them leaves (`persisted_messages`).
//! 6. A leader commits by counting replicas only entries of its own term (§5.4.2).
//! 7. Nothing a peer sends can panic the node: `step` validates and returns errors.
//!
//! # Example: a single-voter group
//! ```
//! use bytes::Bytes;
//! use keel_raft::{Config, EntryKind, ConfChange, MemStorage, NodeId, RawNode, Role};
//!
//! let config = Config::new(NodeId(1));
//! let mut node = RawNode::new(&config, MemStorage::new()).expect("valid config");
//! node.bootstrap(&[NodeId(1)]).expect("empty storage");
//! let mut applied = Vec::new();
//! let mut turn = |node: &mut RawNode<MemStorage>, applied: &mut Vec<Bytes>| {
//!     while node.has_ready() {
//!         let rd = node.ready();
//!         // (A single voter has nobody to send messages to.)
//!         if let Some(hs) = rd.hard_state {
//!             node.storage_mut().set_hard_state(hs);
//!         }
//!         node.storage_mut().append(&rd.entries).expect("contiguous");
//!         node.on_persisted(rd.number);
//!         for entry in &rd.committed_entries {
//!             match entry.kind {
//!                 EntryKind::ConfChange => {
//!                     let cc = ConfChange::decode(&entry.data).expect("we encoded it");
//!                     let cs = node.apply_conf_change(&cc).expect("valid change");
//!                     node.storage_mut().set_conf_state(cs);
//!                 }
//!                 EntryKind::Normal if !entry.data.is_empty() => applied.push(entry.data.clone()),
//!                 EntryKind::Normal => {}
//!             }
//!         }
//!         if let Some(last) = rd.committed_entries.last() {
//!             node.advance_apply_to(last.index);
//!         }
//!     }
//! };
//! turn(&mut node, &mut applied);
//! node.campaign().expect("bootstrap applied");
//! turn(&mut node, &mut applied);
//! assert_eq!(node.status().role, Role::Leader);
//! node.propose(Bytes::from_static(b"put k v")).expect("leader accepts");
//! turn(&mut node, &mut applied);
//! assert_eq!(applied, vec![Bytes::from_static(b"put k v")]);
//! ```

#![deny(missing_docs)]

mod conf_change;
mod confchange;
mod config;
mod errors;
mod log;
mod log_unstable;
mod message;
mod quorum;
mod raft;
mod raw_node;
mod read_only;
mod ready;
mod rng;
mod role;
#[cfg(feature = "sim")]
pub mod sim;
mod status;
mod storage;
mod tracker;
mod types;

pub use conf_change::{ConfChange, ConfChangeKind};
pub use config::Config;
pub use errors::{ConfChangeDecodeError, ConfigError, ProposeError, RaftError, StorageError};
pub use message::{Message, MessageKind, CAMPAIGN_TRANSFER_CONTEXT};
pub use raw_node::RawNode;
pub use ready::Ready;
pub use status::{ProgressState, ProgressStatus, Status};
pub use storage::{LogStorage, MemStorage};
pub use types::{
    ConfState, Entry, EntryKind, HardState, LogIndex, NodeId, ReadState, Role, Snapshot,
    SnapshotMeta, SnapshotStatus, SoftState, Term, ENTRY_OVERHEAD_BYTES,
};
