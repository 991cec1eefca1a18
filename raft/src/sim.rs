//! The deterministic cluster simulator (feature `sim`): from one `u64` seed it runs a
//! cluster of 3 or 5 keel-raft nodes, driven exactly as keel's server drives `RawNode`,
//! through crashes (including between "written" and "synced"), partitions, message loss,
//! duplication, reordering and delay, snapshots, membership changes and leader transfers,
//! with clients running a small KV workload. Safety checkers run on every step; at the end
//! the client history is checked for linearizability. Same seed, same run: every random
//! choice comes from the seed and time is simulated.
//!
//! What it is NOT: a benchmark (time is simulated) or a model checker (it samples
//! executions; more seeds, more coverage). See docs/design/sim.md for how to run it, the
//! output legend and what each checker proves.
//!
//! # Example
//! ```
//! use keel_raft::sim::{run, SimConfig};
//!
//! let report = run(SimConfig::new(7, 3, 2_000));
//! assert!(report.passed(), "{report}");
//! // Same seed, same run.
//! assert_eq!(report.digest, run(SimConfig::new(7, 3, 2_000)).digest);
//! ```

mod chaos;
mod checkers;
mod commit_log;
mod digest;
mod disk;
mod event;
mod finale;
mod history;
mod kv;
mod network;
mod node;
mod report;
mod rng;
mod settings;
mod shadow;
mod simulator;
mod time;
mod trace;
mod violation;
mod workload;

pub use checkers::linearizability;
pub use history::Operation;
pub use kv::{ClientId, Key, KvDecodeError, KvInput, KvOutput, OpId, KEY_COUNT};
pub use network::NetworkStats;
pub use report::{ClusterStats, FaultStats, RunReport};
pub use settings::{InjectedBugs, RunSettings, SimConfig};
pub use time::SimTime;
pub use violation::{Property, Violation};
pub use workload::WorkloadStats;

/// Runs one simulation to the end and reports what happened and what the checkers found.
pub fn run(config: SimConfig) -> RunReport {
    simulator::Simulator::new(config).run()
}
