//! [`Violation`]: what a checker found, where and when — the simulator's error type.

use std::fmt;

use thiserror::Error;

use super::time::SimTime;

/// The property a violation breaks (one per checker, plus the run-level ones).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Property {
    /// At most one leader per term (checkers/election.rs).
    ElectionSafety,
    /// Equal (index, term) means equal entries and prefixes (checkers/log_matching.rs).
    LogMatching,
    /// Committed entries are in every later leader's log (checkers/leader_completeness.rs).
    LeaderCompleteness,
    /// No two nodes apply different entries at an index (checkers/state_machine.rs).
    StateMachineSafety,
    /// An acknowledged entry is durable on enough voters (checkers/durability.rs).
    Durability,
    /// The client history is linearizable (checkers/linearizability.rs).
    Linearizability,
    /// After faults stop, the cluster elects a leader and every member catches up.
    Liveness,
    /// A node restarts from what its disk kept (keel-raft accepts its own durable state).
    Recovery,
    /// The server loop's own contract (apply order, decodable entries, storage writes).
    ServerLoop,
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Property::ElectionSafety => "election-safety",
            Property::LogMatching => "log-matching",
            Property::LeaderCompleteness => "leader-completeness",
            Property::StateMachineSafety => "state-machine-safety",
            Property::Durability => "durability",
            Property::Linearizability => "linearizability",
            Property::Liveness => "liveness",
            Property::Recovery => "recovery",
            Property::ServerLoop => "server-loop",
        };
        f.write_str(name)
    }
}

/// A broken property, found at `step` (simulated time `time`).
#[derive(Clone, PartialEq, Eq, Debug, Error)]
#[error("{property} violated at step {step} ({time}): {detail}")]
pub struct Violation {
    /// What broke.
    pub property: Property,
    /// Number of events processed when it was found.
    pub step: u64,
    /// Simulated time when it was found.
    pub time: SimTime,
    /// What the checker saw.
    pub detail: String,
}
