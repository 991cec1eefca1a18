//! In-memory test harness: nodes with `MemStorage`, a lossy/reordering network and the
//! server loop of the crate docs. Shared by the interaction tests, the cluster tests and
//! the bench; shaped to grow into `src/sim/` (cluster, network, checkers).
#![allow(dead_code)]

pub mod cluster;
pub mod format;
pub mod network;
pub mod rng;
