//! The checks after a fault scenario, once the cluster has healed: every
//! acknowledged write is on every member with its value and revision
//! (serializable reads of each member's own store), the members hold the
//! same keys and the same HashKV at a common revision, and the history is
//! linearizable key by key.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use futures::stream::{self, TryStreamExt};

use super::checker::{check_register, show_value, SearchBudget};
use super::cluster::{Cluster, KeyRow, MemberReader};
use super::error::{FaultError, LostWrite};
use super::history::{AcknowledgedWrite, Answer, History, Outcome};

/// Serializable reads in flight per member while checking writes, max.
const READS_IN_FLIGHT_MAX: usize = 16;

/// One check after a cycle: what it verified, or why it failed.
#[derive(Debug)]
pub(crate) struct CheckResult {
    pub name: &'static str,
    pub outcome: Result<String, FaultError>,
}

impl CheckResult {
    pub(crate) fn new(name: &'static str, outcome: Result<String, FaultError>) -> CheckResult {
        CheckResult { name, outcome }
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Ok(found) => write!(f, "ok   {}: {found}", self.name),
            Err(e) => write!(f, "FAIL {}: {e}", self.name),
        }
    }
}

/// Every check's outcome. All checks run even when one fails, so a report
/// shows everything a cycle found.
#[derive(Debug, Default)]
pub(crate) struct VerifyReport {
    /// The common revision the members converged on.
    pub revision: i64,
    pub members: usize,
    pub checks: Vec<CheckResult>,
}

impl VerifyReport {
    /// Names of the checks that failed.
    pub(crate) fn failed_checks(&self) -> Vec<&'static str> {
        failed_checks(&self.checks)
    }
}

/// Names of the checks in `checks` that failed.
pub(crate) fn failed_checks(checks: &[CheckResult]) -> Vec<&'static str> {
    checks
        .iter()
        .filter(|c| c.outcome.is_err())
        .map(|c| c.name)
        .collect()
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "all {} members converged at revision {}",
            self.members, self.revision
        )?;
        for check in &self.checks {
            write!(f, "\n    {check}")?;
        }
        Ok(())
    }
}

/// What the linearizability check looked at.
#[derive(Clone, Debug, Default)]
pub(crate) struct LinearizabilityReport {
    pub keys: usize,
    /// Ops checked (failed reads and unsent ops carry no information).
    pub ops: usize,
    /// Of them, writes of unknown fate.
    pub indeterminate_ops: usize,
    /// The largest single-key history.
    pub ops_per_key_max: usize,
    /// Search configurations over all keys.
    pub configurations: usize,
    pub check_ms: u128,
}

impl fmt::Display for LinearizabilityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "linearizable: {} ops ({} indeterminate) on {} keys, <= {} per key, {} configurations, \
             {} ms",
            self.ops,
            self.indeterminate_ops,
            self.keys,
            self.ops_per_key_max,
            self.configurations,
            self.check_ms
        )
    }
}

/// Waits for the members to converge (the one failure that stops the
/// checks: without it they would compare members mid-catch-up), then runs
/// every check and reports each outcome.
pub(crate) async fn verify_cluster(
    cluster: &mut Cluster,
    history: &History,
    key_prefix: &str,
    converge_deadline: Duration,
) -> Result<VerifyReport, FaultError> {
    let revision = cluster.wait_converged(converge_deadline).await?;
    let members = cluster.member_count();
    let writes = history.acknowledged_writes();
    let mut checks = vec![CheckResult::new(
        "revisions",
        check_revisions_agree(history)
            .map(|sightings| format!("{sightings} sightings of written values, one revision each")),
    )];
    checks.push(CheckResult::new(
        "acknowledged writes",
        check_acknowledged_writes(cluster, &writes).await.map(|()| {
            format!(
                "{} acknowledged writes on all {members} members, each with its value at its \
                 revision",
                writes.len()
            )
        }),
    ));
    checks.push(CheckResult::new(
        "same contents",
        check_same_contents(cluster, key_prefix, revision)
            .await
            .map(|keys| {
                format!("{keys} workload keys identical on all {members} members at revision {revision}")
            }),
    ));
    checks.push(CheckResult::new(
        "HashKV",
        check_hash_kv(cluster, revision)
            .await
            .map(|hash| format!("{hash:#010x} at revision {revision} on every member")),
    ));
    checks.push(CheckResult::new(
        "linearizable",
        check_linearizable(history.clone())
            .await
            .map(|report| report.to_string()),
    ));
    Ok(VerifyReport {
        revision,
        members,
        checks,
    })
}

/// Every sighting of a written value names one revision: the revision its
/// put or CAS was acknowledged at, and the mod revision of every read that
/// returned it. Values are unique per write, so a second revision means a
/// write was applied twice or a read invented a revision. Returns how many
/// sightings it compared.
pub(crate) fn check_revisions_agree(history: &History) -> Result<usize, FaultError> {
    // (key, value) -> (revision, how it was seen first)
    type Seen<'a> = BTreeMap<(&'a [u8], &'a [u8]), (i64, String)>;
    let mut seen: Seen = BTreeMap::new();
    let writes = history.acknowledged_writes();
    let sightings = writes
        .iter()
        .map(|w| {
            (
                &w.key[..],
                &w.value[..],
                w.revision,
                format!("acknowledged by {} at revision {}", w.member, w.revision),
            )
        })
        .chain(history.ops.iter().filter_map(|op| match &op.outcome {
            Outcome::Answered {
                answer:
                    Answer::Get {
                        value: Some(value),
                        mod_revision,
                    },
                ..
            } => Some((
                &op.key[..],
                &value[..],
                *mod_revision,
                format!(
                    "read by op {} from {} with mod revision {mod_revision}",
                    op.id, op.member
                ),
            )),
            _ => None,
        }));
    let mut count = 0;
    for (key, value, revision, how) in sightings {
        count += 1;
        match seen.get(&(key, value)) {
            None => {
                seen.insert((key, value), (revision, how));
            }
            Some((first_revision, first_how)) if *first_revision != revision => {
                return Err(FaultError::RevisionMismatch {
                    key: String::from_utf8_lossy(key).into_owned(),
                    value: String::from_utf8_lossy(value).into_owned(),
                    first: first_how.clone(),
                    second: how,
                });
            }
            Some(_) => {}
        }
    }
    Ok(count)
}

/// Every write in `writes` is on every member: key at its revision has its
/// value with exactly that mod revision. Revisions are unique per write.
pub(crate) async fn check_acknowledged_writes(
    cluster: &Cluster,
    writes: &[AcknowledgedWrite],
) -> Result<(), FaultError> {
    let mut by_revision: BTreeMap<i64, &AcknowledgedWrite> = BTreeMap::new();
    for write in writes {
        if let Some(first) = by_revision.insert(write.revision, write) {
            return Err(FaultError::ContentMismatch {
                prefix: String::from_utf8_lossy(&write.key).into_owned(),
                detail: format!(
                    "two acknowledged writes share revision {}: {:?}={:?} (by {}) and {:?}={:?} \
                     (by {})",
                    write.revision,
                    String::from_utf8_lossy(&first.key),
                    String::from_utf8_lossy(&first.value),
                    first.member,
                    String::from_utf8_lossy(&write.key),
                    String::from_utf8_lossy(&write.value),
                    write.member
                ),
            });
        }
    }
    for member in cluster.all_members() {
        let reader = cluster.reader(member).await?;
        stream::iter(writes.iter().map(Ok))
            .try_for_each_concurrent(READS_IN_FLIGHT_MAX, |write| {
                let mut reader = reader.clone();
                async move { check_one_write(&mut reader, write).await }
            })
            .await?;
    }
    Ok(())
}

async fn check_one_write(
    reader: &mut MemberReader,
    write: &AcknowledgedWrite,
) -> Result<(), FaultError> {
    let found = reader.get_at(&write.key, write.revision).await?;
    if found.as_ref().is_some_and(|(value, mod_revision)| {
        *value == write.value && *mod_revision == write.revision
    }) {
        return Ok(());
    }
    Err(FaultError::AcknowledgedWriteMissing(Box::new(LostWrite {
        member: reader.member.to_string(),
        key: String::from_utf8_lossy(&write.key).into_owned(),
        value: String::from_utf8_lossy(&write.value).into_owned(),
        revision: write.revision,
        acknowledged_by: write.member.to_string(),
        found: match found {
            None => "no such key at that revision".to_string(),
            Some((value, mod_revision)) => format!(
                "{} with mod revision {mod_revision} there",
                show_value(&Some(value))
            ),
        },
    })))
}

/// Every member holds the same keys, values and mod revisions under
/// `key_prefix` at `revision`. Returns how many keys that is.
async fn check_same_contents(
    cluster: &Cluster,
    key_prefix: &str,
    revision: i64,
) -> Result<usize, FaultError> {
    let mut first: Option<(String, Vec<KeyRow>)> = None;
    for member in cluster.all_members() {
        let contents = cluster
            .reader(member)
            .await?
            .prefix_at(key_prefix.as_bytes(), revision)
            .await?;
        match &first {
            None => first = Some((member.to_string(), contents)),
            Some((first_member, expected)) if *expected != contents => {
                return Err(FaultError::ContentMismatch {
                    prefix: key_prefix.to_string(),
                    detail: format!(
                        "at revision {revision}, {first_member} has {} keys and {member} {}; \
                         first difference: {first_member} {} vs {member} {}",
                        expected.len(),
                        contents.len(),
                        first_difference(expected, &contents).0,
                        first_difference(expected, &contents).1,
                    ),
                });
            }
            Some(_) => {}
        }
    }
    Ok(first.map_or(0, |(_, contents)| contents.len()))
}

/// The first row where `a` and `b` differ, each shown as `key = value @
/// mod revision` (or `<none>` past the end).
fn first_difference(a: &[KeyRow], b: &[KeyRow]) -> (String, String) {
    let show = |row: Option<&KeyRow>| match row {
        None => "<none>".to_string(),
        Some((key, value, mod_revision)) => format!(
            "{:?} = {:?} @ {mod_revision}",
            String::from_utf8_lossy(key),
            String::from_utf8_lossy(value)
        ),
    };
    let at = (0..a.len().max(b.len()))
        .find(|&i| a.get(i) != b.get(i))
        .unwrap_or(0);
    (show(a.get(at)), show(b.get(at)))
}

/// Maintenance.HashKV at `revision` is the same on every member (and so is
/// the compact revision it covers from).
pub(crate) async fn check_hash_kv(cluster: &Cluster, revision: i64) -> Result<u32, FaultError> {
    let mut hashes = Vec::new();
    for member in cluster.all_members() {
        hashes.push((member, cluster.hash_kv(member, revision).await?));
    }
    let (_, first) = hashes[0];
    if hashes.iter().any(|&(_, hash)| hash != first) {
        let shown: Vec<String> = hashes
            .iter()
            .map(|(member, (hash, compacted))| {
                format!("{member}: {hash:#010x} (compact revision {compacted})")
            })
            .collect();
        return Err(FaultError::HashMismatch {
            revision,
            hashes: shown.join(", "),
        });
    }
    Ok(first.0)
}

/// Checks each key's sub-history on a blocking thread (the search is CPU
/// work; the runtime's threads stay free).
pub(crate) async fn check_linearizable(
    history: History,
) -> Result<LinearizabilityReport, FaultError> {
    let check = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut report = LinearizabilityReport::default();
        for (key, ops) in history.register_histories() {
            let stats = check_register(&ops, SearchBudget::default()).map_err(|source| {
                FaultError::NotLinearizable {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    ops: ops.len(),
                    source,
                }
            })?;
            report.keys += 1;
            report.ops += stats.ops;
            report.indeterminate_ops += stats.indeterminate_ops;
            report.ops_per_key_max = report.ops_per_key_max.max(stats.ops);
            report.configurations += stats.configurations;
        }
        report.check_ms = started.elapsed().as_millis();
        Ok(report)
    });
    check
        .await
        .map_err(|source| FaultError::CheckerPanicked { source })?
}
