//! The client history that the linearizability checker reads: one [`Operation`] per client
//! request that reached a node, with invocation and completion times and the answer.
//! Indeterminate operations (the client timed out, e.g. because its node crashed) have no
//! answer and never complete: they may or may not have taken effect, at any time after
//! their invocation. Requests refused outright (no leader, node down) took no effect and
//! are not recorded.

use std::fmt;

use super::kv::{ClientId, KvInput, KvOutput, OpId};
use super::time::SimTime;

/// One client operation as the client saw it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Operation {
    /// The client (a sequential process: at most one operation outstanding).
    pub client: ClientId,
    /// The client's operation number.
    pub op: OpId,
    /// What was asked.
    pub input: KvInput,
    /// The answer; None while outstanding or when indeterminate.
    pub output: Option<KvOutput>,
    /// When the client sent the request.
    pub invoke: SimTime,
    /// When the answer arrived; None when indeterminate.
    pub complete: Option<SimTime>,
}

impl Operation {
    /// True when the client never learned the outcome.
    pub fn is_indeterminate(&self) -> bool {
        self.complete.is_none()
    }
}

impl fmt::Display for Operation {
    /// E.g. `c2#14 put(k1, 33) -> ok [1.000200s, 1.004100s]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}#{} {} -> ", self.client.0, self.op.0, self.input)?;
        match (self.output, self.complete) {
            (Some(output), Some(complete)) => {
                write!(f, "{output} [{}, {complete}]", self.invoke)
            }
            _ => write!(f, "? [{}, never]", self.invoke),
        }
    }
}
