//! The one error type of the fault harness: every way a scenario can fail,
//! each naming the member, key, revision or deadline involved.

use std::fmt;
use std::io;

use super::checker::CheckFailure;

/// Why a fault scenario failed (or could not be run).
#[derive(Debug, thiserror::Error)]
pub(crate) enum FaultError {
    /// A harness setting from the environment is unusable.
    #[error("{name}={value:?}: {reason}")]
    Config {
        name: &'static str,
        value: String,
        reason: String,
    },
    /// The member binary could not be started.
    #[error("starting member {member} with {program}: {source}")]
    Spawn {
        member: String,
        program: String,
        source: io::Error,
    },
    /// A local file, socket or process operation failed.
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    /// A member we started and did not stop has exited on its own.
    #[error("member {member} exited unexpectedly ({status})")]
    MemberExited { member: String, status: String },
    /// A member did not stop on SIGTERM in time (it was then killed).
    #[error("member {member} ignored SIGTERM for {waited_ms} ms; killed it")]
    StopTimeout { member: String, waited_ms: u128 },
    /// A state the scenario waits for did not arrive before its deadline.
    #[error("{what}: not reached within {waited_ms} ms (last observation: {last})")]
    Deadline {
        what: String,
        waited_ms: u128,
        last: String,
    },
    /// A client call the checks depend on failed.
    #[error("member {member}: {operation}: {source}")]
    Client {
        member: String,
        operation: String,
        source: Box<etcd_client::Error>,
    },
    /// A member answered with something the etcd API does not allow.
    #[error("member {member}: {detail}")]
    Protocol { member: String, detail: String },
    /// An acknowledged write is not on some member after recovery.
    #[error("acknowledged write lost: {0}")]
    AcknowledgedWriteMissing(Box<LostWrite>),
    /// A member answers Maintenance.HashKV with gRPC `Unimplemented`, so
    /// the HashKV agreement check cannot run (the other checks still do).
    #[error(
        "member {member} does not implement Maintenance.HashKV (gRPC Unimplemented: \
         {message:?}), so HashKV agreement across members could not be checked"
    )]
    HashKvUnsupported { member: String, message: String },
    /// Members disagree on their stores' contents.
    #[error("HashKV at revision {revision} differs across members: {hashes}")]
    HashMismatch { revision: i64, hashes: String },
    /// One written value was seen with two different revisions.
    #[error("key {key:?} value {value:?} was seen at two revisions: {first}, and {second}")]
    RevisionMismatch {
        key: String,
        value: String,
        first: String,
        second: String,
    },
    /// Members disagree on the final contents of the workload's keys.
    #[error("members disagree on the keys under {prefix:?}: {detail}")]
    ContentMismatch { prefix: String, detail: String },
    /// An isolated member answered as if it still had a quorum.
    #[error("split brain on member {member}: {detail}")]
    SplitBrain { member: String, detail: String },
    /// The stale-read probe saw something its script rules out.
    #[error("stale-read probe, member {member}: {detail}")]
    ProbeFailed { member: String, detail: String },
    /// A key's history failed the linearizability check.
    #[error("key {key:?} ({ops} ops): {source}")]
    NotLinearizable {
        key: String,
        ops: usize,
        source: CheckFailure,
    },
    /// A fault cycle ran to the end and at least one check failed;
    /// `report` is the whole cycle report (every check's outcome).
    #[error("{fault}: {} of the checks failed: {}\n{report}", failed.len(), failed.join(", "))]
    ChecksFailed {
        fault: String,
        failed: Vec<&'static str>,
        report: String,
    },
    /// A fault cycle stopped before its checks; `context` has the history
    /// recorded until then.
    #[error("{source}\n{context}")]
    CycleAborted {
        source: Box<FaultError>,
        context: String,
    },
    /// The linearizability checker's thread panicked.
    #[error("the linearizability checker panicked: {source}")]
    CheckerPanicked { source: tokio::task::JoinError },
    /// A workload task panicked or was cancelled.
    #[error("workload worker {worker}: {source}")]
    Worker {
        worker: usize,
        source: tokio::task::JoinError,
    },
}

impl FaultError {
    /// An `Io` error with what was being done.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> FaultError {
        FaultError::Io {
            context: context.into(),
            source,
        }
    }

    /// A `Client` error: `operation` on `member` failed.
    pub(crate) fn client(
        member: impl ToString,
        operation: impl Into<String>,
        source: etcd_client::Error,
    ) -> FaultError {
        FaultError::Client {
            member: member.to_string(),
            operation: operation.into(),
            source: Box::new(source),
        }
    }
}

/// An acknowledged write some member does not have.
#[derive(Debug)]
pub(crate) struct LostWrite {
    /// The member missing it.
    pub member: String,
    pub key: String,
    pub value: String,
    pub revision: i64,
    /// The member that acknowledged it.
    pub acknowledged_by: String,
    /// What the member has at that key and revision instead.
    pub found: String,
}

impl fmt::Display for LostWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "member {} lacks key {:?} = {:?} at revision {} (acknowledged by member {}); it has {}",
            self.member, self.key, self.value, self.revision, self.acknowledged_by, self.found
        )
    }
}
