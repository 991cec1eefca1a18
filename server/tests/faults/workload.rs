//! Concurrent clients doing puts, linearizable gets and compare-and-swap
//! txns on a few keys, each worker pinned to one member, recording every op
//! into the history. Bounded by op count and by time; stoppable.

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, Txn, TxnOp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;

use super::checker::RegisterValue;
use super::cluster::MemberIndex;
use super::error::FaultError;
use super::history::{Answer, Call, Clock, History, HistoryOp, Outcome};

/// Between two polls of the answered-op counter.
const PROGRESS_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Share of ops (out of 100) that are puts, and gets; the rest are CAS.
const PUT_PERCENT: u32 = 40;
const GET_PERCENT: u32 = 35;

/// The shape and bounds of a workload.
#[derive(Clone, Debug)]
pub(crate) struct WorkloadConfig {
    /// Concurrent clients; worker `w` talks to member `w % members`.
    pub workers: usize,
    /// Keys `{key_prefix}k0 .. k{keys-1}`.
    pub keys: usize,
    /// Unique per run, so every key starts absent.
    pub key_prefix: String,
    /// Ops per worker, max.
    pub ops_per_worker_max: usize,
    /// Wall time of the whole run, max.
    pub duration_max: Duration,
    /// One op, from send to answer, max; past it the op's fate is unknown.
    pub op_timeout: Duration,
    /// Pause between a worker's ops, drawn from [0, think_time_max).
    pub think_time_max: Duration,
    /// Pause after an error before the next op (on a fresh connection).
    pub error_backoff: Duration,
    pub seed: u64,
}

/// A running workload.
pub(crate) struct Workload {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    workers: Vec<JoinHandle<Vec<HistoryOp>>>,
}

impl Workload {
    /// Starts the workers against `endpoints` (member, `host:port`).
    pub(crate) fn start(endpoints: &[(MemberIndex, String)], config: &WorkloadConfig) -> Workload {
        assert!(
            !endpoints.is_empty(),
            "a workload needs a member to talk to"
        );
        assert!(config.keys >= 1, "a workload needs a key");
        let clock = Clock::new();
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let workers = (0..config.workers)
            .map(|worker| {
                let (member, endpoint) = endpoints[worker % endpoints.len()].clone();
                let state = WorkerState {
                    worker,
                    member,
                    endpoint,
                    config: config.clone(),
                    clock,
                    stop: stop.clone(),
                    answered: answered.clone(),
                    rng: StdRng::seed_from_u64(
                        config.seed ^ (worker as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    ),
                    known: HashMap::new(),
                    ops: Vec::new(),
                };
                tokio::spawn(state.run())
            })
            .collect();
        Workload {
            stop,
            answered,
            workers,
        }
    }

    /// Ops answered by a server so far (any kind).
    pub(crate) fn answered_ops(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// Polls until `more` ops beyond `since` have been answered: proof that
    /// the cluster serves clients in the current phase.
    pub(crate) async fn wait_for_answers(
        &self,
        since: u64,
        more: u64,
        deadline: Duration,
        phase: &str,
    ) -> Result<(), FaultError> {
        let started = Instant::now();
        loop {
            let answered = self.answered_ops() - since;
            if answered >= more {
                return Ok(());
            }
            let finished = self.workers.iter().all(|w| w.is_finished());
            if started.elapsed() > deadline || finished {
                return Err(FaultError::Deadline {
                    what: format!("{more} answered client ops {phase}"),
                    waited_ms: started.elapsed().as_millis(),
                    last: format!(
                        "{answered} answered{}",
                        if finished {
                            "; every worker hit its op or time bound"
                        } else {
                            ""
                        }
                    ),
                });
            }
            tokio::time::sleep(PROGRESS_POLL_INTERVAL).await;
        }
    }

    /// Stops the workers (each finishes or abandons its current op, within
    /// `op_timeout`) and returns the merged history.
    pub(crate) async fn stop(self) -> Result<History, FaultError> {
        self.stop.store(true, Ordering::Relaxed);
        let mut history = History::default();
        for (worker, handle) in self.workers.into_iter().enumerate() {
            let ops = handle
                .await
                .map_err(|source| FaultError::Worker { worker, source })?;
            history.ops.extend(ops);
        }
        history.ops.sort_by_key(|op| (op.invoke_ns, op.id));
        Ok(history)
    }
}

/// One worker's connection, bounds and memory.
struct WorkerState {
    worker: usize,
    member: MemberIndex,
    endpoint: String,
    config: WorkloadConfig,
    clock: Clock,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    rng: StdRng,
    /// The last value this worker saw per key: CAS expects it.
    known: HashMap<usize, RegisterValue>,
    ops: Vec<HistoryOp>,
}

impl WorkerState {
    async fn run(mut self) -> Vec<HistoryOp> {
        let started = Instant::now();
        let mut client: Option<Client> = None;
        for seq in 0..self.config.ops_per_worker_max {
            if self.stop.load(Ordering::Relaxed) || started.elapsed() > self.config.duration_max {
                break;
            }
            let connection = match client.take() {
                Some(connection) => connection,
                None => match self.connect().await {
                    Some(connection) => connection,
                    None => {
                        tokio::time::sleep(self.config.error_backoff).await;
                        continue;
                    }
                },
            };
            let (op, connection) = self.one_op(seq, connection).await;
            let failed = !matches!(op.outcome, Outcome::Answered { .. });
            self.ops.push(op);
            if failed {
                // A fresh connection after any error: the old one may be
                // wedged on a dead or partitioned server.
                tokio::time::sleep(self.config.error_backoff).await;
            } else {
                client = Some(connection);
                let think_ns = self
                    .rng
                    .random_range(0..=self.config.think_time_max.as_nanos() as u64);
                tokio::time::sleep(Duration::from_nanos(think_ns)).await;
            }
        }
        self.ops
    }

    async fn connect(&self) -> Option<Client> {
        let options = ConnectOptions::new().with_connect_timeout(self.config.op_timeout);
        Client::connect([self.endpoint.as_str()], Some(options))
            .await
            .ok()
    }

    fn key(&self, index: usize) -> Vec<u8> {
        format!("{}k{index}", self.config.key_prefix).into_bytes()
    }

    /// Runs one random op and records it.
    async fn one_op(&mut self, seq: usize, mut client: Client) -> (HistoryOp, Client) {
        let key_index = self.rng.random_range(0..self.config.keys);
        let key = self.key(key_index);
        let value = format!("w{}-{seq}", self.worker).into_bytes();
        let roll = self.rng.random_range(0..100);
        let call = if roll < PUT_PERCENT {
            Call::Put { value }
        } else if roll < PUT_PERCENT + GET_PERCENT {
            Call::Get
        } else {
            let expected = self.known.get(&key_index).cloned().unwrap_or(None);
            Call::Cas {
                expected,
                new: value,
            }
        };
        let invoke_ns = self.clock.now_ns();
        let result =
            tokio::time::timeout(self.config.op_timeout, execute(&mut client, &key, &call)).await;
        let end_ns = self.clock.now_ns();
        let outcome = match result {
            Ok(Ok(answer)) => {
                self.answered.fetch_add(1, Ordering::Relaxed);
                self.remember(key_index, &call, &answer);
                Outcome::Answered {
                    complete_ns: end_ns,
                    answer,
                }
            }
            Ok(Err(error)) => classify(&error),
            Err(_) => Outcome::Unknown {
                error: format!(
                    "no answer within the client's {} ms op timeout",
                    self.config.op_timeout.as_millis()
                ),
            },
        };
        let id = ((self.worker as u64) << 32) | seq as u64;
        (
            HistoryOp {
                id,
                member: self.member,
                key,
                invoke_ns,
                call,
                outcome,
            },
            client,
        )
    }

    fn remember(&mut self, key_index: usize, call: &Call, answer: &Answer) {
        match (call, answer) {
            (Call::Put { value }, _)
            | (
                Call::Cas { new: value, .. },
                Answer::Cas {
                    succeeded: true, ..
                },
            ) => {
                self.known.insert(key_index, Some(value.clone()));
            }
            (_, Answer::Get { value, .. }) => {
                self.known.insert(key_index, value.clone());
            }
            _ => {}
        }
    }
}

async fn execute(
    client: &mut Client,
    key: &[u8],
    call: &Call,
) -> Result<Answer, etcd_client::Error> {
    match call {
        Call::Put { value } => {
            let response = client.put(key, value.clone(), None).await?;
            Ok(Answer::Put {
                revision: header_revision(response.header())?,
            })
        }
        Call::Get => {
            let response = client.get(key, None).await?;
            let found = response.kvs().first();
            Ok(Answer::Get {
                value: found.map(|kv| kv.value().to_vec()),
                mod_revision: found.map_or(0, |kv| kv.mod_revision()),
            })
        }
        Call::Cas { expected, new } => {
            let compare = match expected {
                Some(value) => Compare::value(key, CompareOp::Equal, value.clone()),
                None => Compare::version(key, CompareOp::Equal, 0),
            };
            let txn = Txn::new()
                .when([compare])
                .and_then([TxnOp::put(key, new.clone(), None)]);
            let response = client.txn(txn).await?;
            Ok(Answer::Cas {
                succeeded: response.succeeded(),
                revision: header_revision(response.header())?,
            })
        }
    }
}

fn header_revision(
    header: Option<&etcd_client::ResponseHeader>,
) -> Result<i64, etcd_client::Error> {
    header.map(|h| h.revision()).ok_or_else(|| {
        etcd_client::Error::InvalidArgs("answer without a response header".to_string())
    })
}

/// A failed call is `NotSent` only when the connection was refused, so the
/// request never left this process; any other error (a timeout, a reset
/// connection, "leader changed", "request timed out") leaves its fate open.
fn classify(error: &etcd_client::Error) -> Outcome {
    // etcd_client::Error does not chain its causes; its variants' payloads do.
    let (mut text, mut source): (String, Option<&(dyn std::error::Error + 'static)>) = match error {
        etcd_client::Error::GRpcStatus(status) => (
            format!("{:?}: {}", status.code(), status.message()),
            status.source(),
        ),
        etcd_client::Error::TransportError(transport) => (error.to_string(), transport.source()),
        etcd_client::Error::IoError(io) => (
            error.to_string(),
            Some(io as &(dyn std::error::Error + 'static)),
        ),
        other => (other.to_string(), None),
    };
    let mut refused = false;
    while let Some(cause) = source {
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            refused = true;
        }
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(&format!(" / {cause_text}"));
        }
        source = cause.source();
    }
    if refused {
        Outcome::NotSent { error: text }
    } else {
        Outcome::Unknown { error: text }
    }
}
