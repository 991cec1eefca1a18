//! The recorded history of a workload: every client operation with its
//! invocation and completion times on one monotonic clock, what it asked and
//! what came back. Reads and writes that got an error stay in the history:
//! a write whose fate is unknown must be allowed to have happened.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use super::checker::{show_value, RegisterOp, RegisterOpKind, RegisterValue};
use super::cluster::MemberIndex;
use super::error::FaultError;

/// A monotonic clock shared by every worker of one workload.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    origin: Instant,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            origin: Instant::now(),
        }
    }

    /// Nanoseconds since the clock was made (monotonic, shared across threads).
    pub(crate) fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).expect("a test runs for < 584 years")
    }
}

/// What a client asked for.
#[derive(Clone, Debug)]
pub(crate) enum Call {
    /// `Put(key, value)`.
    Put { value: Vec<u8> },
    /// A linearizable `Range` of the key.
    Get,
    /// A `Txn`: if the key holds `expected` (`None`: key absent), put `new`.
    Cas {
        expected: RegisterValue,
        new: Vec<u8>,
    },
}

/// What a server said to a call it answered.
#[derive(Clone, Debug)]
pub(crate) enum Answer {
    /// The put's revision.
    Put { revision: i64 },
    /// The value read, and its mod revision (0 when the key was absent).
    Get {
        value: RegisterValue,
        mod_revision: i64,
    },
    /// Whether the compare held; the txn's revision.
    Cas { succeeded: bool, revision: i64 },
}

/// How a call ended.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// The server answered at `complete_ns`.
    Answered { complete_ns: u64, answer: Answer },
    /// The request provably never reached a server (the connection was
    /// refused), so it had no effect.
    NotSent { error: String },
    /// The client gave up (timeout, broken connection, or an error from a
    /// server that may already have proposed it): a write may take effect
    /// at any time after its invocation, or never.
    Unknown { error: String },
}

/// One client operation.
#[derive(Clone, Debug)]
pub(crate) struct HistoryOp {
    /// Unique within a history: the worker (one client connection) in the
    /// high 32 bits, its op sequence number below.
    pub id: u64,
    /// The member the worker talks to.
    pub member: MemberIndex,
    pub key: Vec<u8>,
    /// When the request was sent, ns on the workload's `Clock`.
    pub invoke_ns: u64,
    pub call: Call,
    pub outcome: Outcome,
}

impl fmt::Display for HistoryOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |ns: u64| ns as f64 / 1e6;
        let complete = match &self.outcome {
            Outcome::Answered { complete_ns, .. } => format!("{:.3}", ms(*complete_ns)),
            Outcome::NotSent { .. } | Outcome::Unknown { .. } => "-".to_string(),
        };
        write!(
            f,
            "{:#x} {} {} [{:.3}, {complete}] ",
            self.id,
            self.member,
            String::from_utf8_lossy(&self.key),
            ms(self.invoke_ns)
        )?;
        match &self.call {
            Call::Put { value } => write!(f, "put {}", show_value(&Some(value.clone())))?,
            Call::Get => write!(f, "get")?,
            Call::Cas { expected, new } => write!(
                f,
                "cas {} -> {}",
                show_value(expected),
                show_value(&Some(new.clone()))
            )?,
        }
        match &self.outcome {
            Outcome::Answered { answer, .. } => match answer {
                Answer::Put { revision } => write!(f, " -> ok at revision {revision}"),
                Answer::Get {
                    value,
                    mod_revision,
                } => write!(f, " -> {} (mod revision {mod_revision})", show_value(value)),
                Answer::Cas {
                    succeeded,
                    revision,
                } => write!(
                    f,
                    " -> {} at revision {revision}",
                    if *succeeded {
                        "swapped"
                    } else {
                        "compare failed"
                    }
                ),
            },
            Outcome::NotSent { error } => write!(f, " -> not sent: {error}"),
            Outcome::Unknown { error } => write!(f, " -> unknown: {error}"),
        }
    }
}

/// An acknowledged write: a put, or a CAS whose compare held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AcknowledgedWrite {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub revision: i64,
    /// The member that acknowledged it.
    pub member: MemberIndex,
}

/// The merged history of one workload run.
#[derive(Clone, Debug, Default)]
pub(crate) struct History {
    pub ops: Vec<HistoryOp>,
}

impl History {
    /// Every acknowledged write with its revision.
    pub(crate) fn acknowledged_writes(&self) -> Vec<AcknowledgedWrite> {
        self.ops
            .iter()
            .filter_map(|op| {
                let Outcome::Answered { answer, .. } = &op.outcome else {
                    return None;
                };
                let (value, revision) = match (&op.call, answer) {
                    (Call::Put { value }, Answer::Put { revision }) => (value, *revision),
                    (
                        Call::Cas { new, .. },
                        Answer::Cas {
                            succeeded: true,
                            revision,
                        },
                    ) => (new, *revision),
                    _ => return None,
                };
                Some(AcknowledgedWrite {
                    key: op.key.clone(),
                    value: value.clone(),
                    revision,
                    member: op.member,
                })
            })
            .collect()
    }

    /// Each key's sub-history for the register checker. Ops that provably
    /// had no effect (not sent, failed reads) carry no information and are
    /// left out; writes of unknown fate become `*Maybe` ops.
    pub(crate) fn register_histories(&self) -> BTreeMap<Vec<u8>, Vec<RegisterOp>> {
        let mut by_key: BTreeMap<Vec<u8>, Vec<RegisterOp>> = BTreeMap::new();
        for op in &self.ops {
            if let Some(kind) = register_op_kind(op) {
                by_key.entry(op.key.clone()).or_default().push(RegisterOp {
                    id: op.id,
                    invoke_ns: op.invoke_ns,
                    kind,
                });
            }
        }
        by_key
    }

    /// Writes the history, one op per line in invocation order, to a new
    /// file under the system temp dir that outlives the test (evidence for
    /// a failed cycle); returns its path.
    pub(crate) fn save(&self, name: &str) -> Result<PathBuf, FaultError> {
        let file = tempfile::Builder::new()
            .prefix(&format!("keel-faults-history-{name}-"))
            .suffix(".txt")
            .tempfile()
            .map_err(|e| FaultError::io("creating a history file", e))?;
        let mut writer = std::io::BufWriter::new(file.as_file());
        writeln!(
            writer,
            "# {}\n# op id (worker << 32 | seq), member, key, [invoke ms, complete ms], call -> \
             outcome",
            self.summary().to_string().replace('\n', "\n# ")
        )
        .and_then(|()| self.ops.iter().try_for_each(|op| writeln!(writer, "{op}")))
        .and_then(|()| writer.flush())
        .map_err(|e| FaultError::io("writing a history file", e))?;
        drop(writer);
        let (_, path) = file
            .keep()
            .map_err(|e| FaultError::io("keeping a history file", e.error))?;
        Ok(path)
    }

    /// Counts by kind and outcome, and the errors seen.
    pub(crate) fn summary(&self) -> HistorySummary {
        let mut summary = HistorySummary::default();
        for op in &self.ops {
            summary.ops += 1;
            match op.call {
                Call::Put { .. } => summary.puts += 1,
                Call::Get => summary.gets += 1,
                Call::Cas { .. } => summary.cas += 1,
            }
            match &op.outcome {
                Outcome::Answered {
                    answer:
                        Answer::Cas {
                            succeeded: false, ..
                        },
                    ..
                } => {
                    summary.answered += 1;
                    summary.cas_failed += 1;
                }
                Outcome::Answered { .. } => summary.answered += 1,
                Outcome::NotSent { error, .. } => {
                    summary.not_sent += 1;
                    *summary.errors.entry(error.clone()).or_default() += 1;
                }
                Outcome::Unknown { error, .. } => {
                    summary.unknown += 1;
                    if !matches!(op.call, Call::Get) {
                        summary.unknown_writes += 1;
                    }
                    *summary.errors.entry(error.clone()).or_default() += 1;
                }
            }
        }
        summary
    }
}

fn register_op_kind(op: &HistoryOp) -> Option<RegisterOpKind> {
    match (&op.call, &op.outcome) {
        (_, Outcome::NotSent { .. }) | (Call::Get, Outcome::Unknown { .. }) => None,
        (Call::Put { value }, Outcome::Unknown { .. }) => Some(RegisterOpKind::WriteMaybe {
            value: value.clone(),
        }),
        (Call::Cas { expected, new }, Outcome::Unknown { .. }) => Some(RegisterOpKind::CasMaybe {
            expected: expected.clone(),
            new: new.clone(),
        }),
        (
            call,
            Outcome::Answered {
                complete_ns,
                answer,
            },
        ) => {
            let complete_ns = *complete_ns;
            Some(match (call, answer) {
                (Call::Put { value }, Answer::Put { .. }) => RegisterOpKind::Write {
                    value: value.clone(),
                    complete_ns,
                },
                (Call::Get, Answer::Get { value, .. }) => RegisterOpKind::Read {
                    observed: value.clone(),
                    complete_ns,
                },
                (Call::Cas { expected, new }, Answer::Cas { succeeded, .. }) => {
                    RegisterOpKind::Cas {
                        expected: expected.clone(),
                        new: new.clone(),
                        succeeded: *succeeded,
                        complete_ns,
                    }
                }
                (call, answer) => {
                    panic!("bug in the workload: {call:?} recorded with answer {answer:?}")
                }
            })
        }
    }
}

/// Counts over a history, for reports.
#[derive(Clone, Debug, Default)]
pub(crate) struct HistorySummary {
    pub ops: usize,
    pub puts: usize,
    pub gets: usize,
    pub cas: usize,
    /// Ops the server answered (including CAS whose compare failed).
    pub answered: usize,
    pub cas_failed: usize,
    /// Ops with an unknown fate; `unknown_writes` of them were writes.
    pub unknown: usize,
    pub unknown_writes: usize,
    /// Ops refused before they reached a server.
    pub not_sent: usize,
    /// Error text -> how often it was seen.
    pub errors: BTreeMap<String, usize>,
}

impl fmt::Display for HistorySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ops ({} put, {} get, {} cas): {} answered ({} cas compare failed), {} unknown \
             ({} writes), {} not sent",
            self.ops,
            self.puts,
            self.gets,
            self.cas,
            self.answered,
            self.cas_failed,
            self.unknown,
            self.unknown_writes,
            self.not_sent
        )?;
        for (error, count) in &self.errors {
            write!(f, "\n    {count:>5} x {error}")?;
        }
        Ok(())
    }
}
