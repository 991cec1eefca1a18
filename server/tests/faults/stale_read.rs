//! A scripted split brain that proves the checks can fail on real
//! processes: with the leader isolated and the majority past it, the old
//! leader's local (serializable) read returns the old value. Recorded as if
//! it were a linearizable read — what a server that answers linearizable
//! reads from local state would return — the checker must reject the
//! history; and a write that never happened must be reported missing.
//! Along the way, a real linearizable read on the isolated leader must not
//! return that stale value.

use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

use super::checker::CheckFailure;
use super::cluster::{Cluster, MemberIndex};
use super::error::FaultError;
use super::history::{AcknowledgedWrite, Answer, Call, Clock, History, HistoryOp, Outcome};
use super::verify::{check_acknowledged_writes, check_linearizable};

/// How long the isolated leader gets to (wrongly) answer a linearizable read.
const ISOLATED_READ_TIMEOUT: Duration = Duration::from_millis(1_500);
/// Deadline for elections and health.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(20);

/// What the probe saw.
#[derive(Clone, Debug)]
pub(crate) struct StaleReadReport {
    pub old_leader: MemberIndex,
    pub new_leader: MemberIndex,
    /// What the isolated leader's linearizable read ended with.
    pub isolated_linearizable_read: String,
    /// The checker's rejection.
    pub rejection: String,
    /// The lost-write check's report of a fabricated write.
    pub missing_write: String,
}

/// Runs the probe on a healthy cluster; it is whole again afterwards.
pub(crate) async fn probe_stale_read(cluster: &mut Cluster) -> Result<StaleReadReport, FaultError> {
    let clock = Clock::new();
    let key = b"stale-read-probe/k".to_vec();
    let old_leader = cluster.wait_healthy(RECOVERY_DEADLINE).await?;
    let mut ops = vec![put(cluster, &clock, old_leader, &key, b"v1", 0).await?];

    cluster.network().isolate(old_leader);
    let majority: Vec<MemberIndex> = cluster
        .all_members()
        .into_iter()
        .filter(|&m| m != old_leader)
        .collect();
    let new_leader = cluster
        .wait_for_leader(&majority, RECOVERY_DEADLINE)
        .await?;
    ops.push(put(cluster, &clock, new_leader, &key, b"v2", 1).await?);

    let invoke_ns = clock.now_ns();
    let local = cluster.reader(old_leader).await?.get_at(&key, 0).await?;
    let complete_ns = clock.now_ns();
    let Some((value, mod_revision)) = local else {
        return Err(unexpected(
            old_leader,
            "a serializable read on the isolated leader found no key",
        ));
    };
    if value != b"v1" {
        return Err(unexpected(
            old_leader,
            &format!("isolated leader read {value:?} locally, not v1"),
        ));
    }
    ops.push(HistoryOp {
        id: 2,
        member: old_leader,
        key: key.clone(),
        invoke_ns,
        call: Call::Get,
        outcome: Outcome::Answered {
            complete_ns,
            answer: Answer::Get {
                value: Some(value),
                mod_revision,
            },
        },
    });

    let isolated_linearizable_read =
        linearizable_read_while_isolated(cluster, old_leader, &key).await?;

    let history = History { ops };
    let rejection = match check_linearizable(history.clone()).await {
        Err(FaultError::NotLinearizable {
            source: CheckFailure::NotLinearizable(counterexample),
            ..
        }) => counterexample.to_string(),
        other => {
            return Err(unexpected(
                old_leader,
                &format!("the checker accepted a stale read: {other:?}"),
            ))
        }
    };

    cluster.network().heal_all();
    cluster.wait_healthy(RECOVERY_DEADLINE).await?;
    cluster.wait_converged(RECOVERY_DEADLINE).await?;
    let writes = history.acknowledged_writes();
    check_acknowledged_writes(cluster, &writes).await?;
    let real = writes.last().cloned().expect("two puts above");
    let fabricated = AcknowledgedWrite {
        value: b"never written".to_vec(),
        ..real
    };
    let missing_write = match check_acknowledged_writes(cluster, &[fabricated]).await {
        Err(e @ FaultError::AcknowledgedWriteMissing(_)) => e.to_string(),
        other => {
            return Err(unexpected(
                old_leader,
                &format!("a fabricated write was not reported: {other:?}"),
            ))
        }
    };
    Ok(StaleReadReport {
        old_leader,
        new_leader,
        isolated_linearizable_read,
        rejection,
        missing_write,
    })
}

/// An acknowledged put through `member`, as a history op.
async fn put(
    cluster: &Cluster,
    clock: &Clock,
    member: MemberIndex,
    key: &[u8],
    value: &[u8],
    id: u64,
) -> Result<HistoryOp, FaultError> {
    let mut client = client(cluster, member).await?;
    let invoke_ns = clock.now_ns();
    let response = client
        .put(key, value, None)
        .await
        .map_err(|source| FaultError::client(member.to_string(), "Put".to_string(), source))?;
    let complete_ns = clock.now_ns();
    let revision = response
        .header()
        .map(|h| h.revision())
        .ok_or_else(|| unexpected(member, "Put answered without a response header"))?;
    Ok(HistoryOp {
        id,
        member,
        key: key.to_vec(),
        invoke_ns,
        call: Call::Put {
            value: value.to_vec(),
        },
        outcome: Outcome::Answered {
            complete_ns,
            answer: Answer::Put { revision },
        },
    })
}

/// A linearizable read on the isolated leader must fail or time out; if it
/// answers at all, it must not be the stale value.
async fn linearizable_read_while_isolated(
    cluster: &Cluster,
    member: MemberIndex,
    key: &[u8],
) -> Result<String, FaultError> {
    let mut client = client(cluster, member).await?;
    match tokio::time::timeout(ISOLATED_READ_TIMEOUT, client.get(key, None)).await {
        Err(_) => Ok(format!(
            "no answer within {} ms",
            ISOLATED_READ_TIMEOUT.as_millis()
        )),
        Ok(Err(e)) => Ok(format!("error: {e}")),
        Ok(Ok(response)) => {
            let values: Vec<&[u8]> = response.kvs().iter().map(|kv| kv.value()).collect();
            Err(FaultError::SplitBrain {
                member: member.to_string(),
                detail: format!("an isolated member answered a linearizable read with {values:?}"),
            })
        }
    }
}

async fn client(cluster: &Cluster, member: MemberIndex) -> Result<Client, FaultError> {
    let options = ConnectOptions::new().with_connect_timeout(ISOLATED_READ_TIMEOUT);
    Client::connect([cluster.client_endpoint(member)], Some(options))
        .await
        .map_err(|source| FaultError::client(member.to_string(), "connect".to_string(), source))
}

fn unexpected(member: MemberIndex, detail: &str) -> FaultError {
    FaultError::ProbeFailed {
        member: member.to_string(),
        detail: detail.to_string(),
    }
}
