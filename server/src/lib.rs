//! keel-server: the `keel` binary's library — etcd's v3 API on keel's own
//! storage and Raft.
//!
//! What it is: one member of a keel cluster. The **edge** (a tokio runtime)
//! serves etcd's gRPC API with tonic; the **core** (one glommio thread) runs
//! Raft (keel-raft), the write-ahead log (keel-wal) and the MVCC store
//! (keel-btree). What it is not: a proxy to etcd, or a library to embed.
//!
//! The path of one Put:
//! 1. `api::kv` checks the request (etcd's rules) and hands it to
//!    `node::NodeHandle::propose`, which encodes it as a Raft entry payload
//!    and sends it over a bounded channel to the core.
//! 2. The core's turn (`node::core`) drains every pending request into one
//!    Raft batch; Raft's `Ready` is persisted with one WAL write + fdatasync.
//! 3. Committed entries are applied (`apply`, `mvcc`) into the store, a new
//!    read view is published, and the waiting client's reply is sent.
//!
//! Invariants:
//! 1. A write is acknowledged only after its entry is durable in the WAL and
//!    applied (unless `--unsafe-no-fsync`).
//! 2. Applying is deterministic: the same log gives the same store.
//! 3. The published read view is never older than any acknowledged write.

pub mod api;
mod apply;
mod batched_io;
mod cluster;
mod compactor;
mod concurrency;
pub mod config;
mod lease;
mod mvcc;
mod node;
pub mod proto;
mod serve;
mod transport;
mod watch;

pub use serve::run;

/// The etcd release whose v3 API keel implements and is tested against;
/// reported as the server version in Status (clients gate features on it).
pub const ETCD_API_VERSION: &str = "3.4.23";
