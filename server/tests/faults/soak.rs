//! Random sequences of fault cycles on one long-lived cluster, so faults
//! compound (a member killed twice, a partition after a restart). Faults
//! come in shuffled rounds of every kind, so n cycles cover min(n, kinds)
//! kinds. Each
//! cycle is checked on its own; at the end every write acknowledged in any
//! cycle is checked again on every member, with HashKV.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::cluster::Cluster;
use super::error::FaultError;
use super::scenario::{run_cycle, Fault, ScenarioConfig};
use super::verify::{check_acknowledged_writes, check_hash_kv, failed_checks, CheckResult};

/// Bounds of a soak run: it stops after `cycles_max` cycles or once
/// `duration_max` has passed (checked between cycles, so the last cycle may
/// overrun it by one cycle's length).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SoakConfig {
    pub cycles_max: u64,
    pub duration_max: Duration,
    pub seed: u64,
}

/// What a soak run did.
#[derive(Debug, Default)]
pub(crate) struct SoakReport {
    pub cycles: u64,
    pub cycles_by_fault: BTreeMap<String, u64>,
    pub ops: usize,
    pub acknowledged_writes: usize,
    pub duration_ms: u128,
    /// The revision every member converged on at the end.
    pub final_revision: i64,
    /// The checks over the whole run, at `final_revision`.
    pub final_checks: Vec<CheckResult>,
}

impl fmt::Display for SoakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let by_fault: Vec<String> = self
            .cycles_by_fault
            .iter()
            .map(|(fault, n)| format!("{n} x {fault}"))
            .collect();
        write!(
            f,
            "cycles run: {} ({}) in {} ms; {} ops, {} acknowledged writes; all members converged \
             at revision {}",
            self.cycles,
            by_fault.join(", "),
            self.duration_ms,
            self.ops,
            self.acknowledged_writes,
            self.final_revision
        )?;
        for check in &self.final_checks {
            write!(f, "\n    {check}")?;
        }
        Ok(())
    }
}

/// Runs random fault cycles, each with `template`'s bounds and its own
/// key prefix and seed. Prints every cycle's report as it completes.
pub(crate) async fn run_soak(
    cluster: &mut Cluster,
    config: SoakConfig,
    template: &ScenarioConfig,
) -> Result<SoakReport, FaultError> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut report = SoakReport::default();
    let mut all_writes = Vec::new();
    let mut round: Vec<Fault> = Vec::new();
    while report.cycles < config.cycles_max && started.elapsed() < config.duration_max {
        if round.is_empty() {
            round = Fault::ALL.to_vec();
            round.shuffle(&mut rng);
        }
        let fault = round.pop().expect("refilled above");
        let cycle_seed: u64 = rng.random();
        let mut scenario = template.clone();
        scenario.workload.key_prefix =
            format!("{}c{}/", template.workload.key_prefix, report.cycles);
        scenario.workload.seed = cycle_seed;
        let (cycle, history) = run_cycle(cluster, fault, &scenario).await?;
        println!("cycle {} (seed {cycle_seed}): {cycle}", report.cycles);
        report.cycles += 1;
        *report.cycles_by_fault.entry(fault.to_string()).or_default() += 1;
        report.ops += history.ops.len();
        all_writes.extend(history.acknowledged_writes());
    }
    let revision = cluster.wait_converged(template.recovery_deadline).await?;
    report.final_revision = revision;
    report.acknowledged_writes = all_writes.len();
    let members = cluster.member_count();
    report.final_checks = vec![
        CheckResult::new(
            "acknowledged writes of every cycle",
            check_acknowledged_writes(cluster, &all_writes)
                .await
                .map(|()| {
                    format!(
                        "{} acknowledged writes on all {members} members, each with its value at \
                         its revision",
                        all_writes.len()
                    )
                }),
        ),
        CheckResult::new(
            "HashKV",
            check_hash_kv(cluster, revision)
                .await
                .map(|hash| format!("{hash:#010x} at revision {revision} on every member")),
        ),
    ];
    report.duration_ms = started.elapsed().as_millis();
    let failed = failed_checks(&report.final_checks);
    if !failed.is_empty() {
        return Err(FaultError::ChecksFailed {
            fault: "the soak's final checks".to_string(),
            failed,
            report: report.to_string(),
        });
    }
    Ok(report)
}
