//! One fault cycle on a running cluster: writers start, a fault hits (kill
//! -9 of the leader or of a follower, or a partition isolating the leader),
//! the cluster must keep serving through the majority, the fault is undone
//! (restart, heal), the writers stop, and `verify` checks the outcome.

use std::fmt;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::cluster::{Cluster, MemberIndex};
use super::error::FaultError;
use super::history::{History, HistorySummary};
use super::verify::{verify_cluster, VerifyReport};
use super::workload::{Workload, WorkloadConfig};

/// The faults a cycle can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// SIGKILL the leader under load, later restart it.
    KillLeader,
    /// SIGKILL a follower under load, later restart it.
    KillFollower,
    /// SIGTERM the leader under load (a clean shutdown), later restart it.
    StopLeader,
    /// Cut the leader off from every other member (both directions) while
    /// its own clients keep talking to it; later heal.
    IsolateLeader,
}

impl Fault {
    pub(crate) const ALL: [Fault; 4] = [
        Fault::KillLeader,
        Fault::KillFollower,
        Fault::StopLeader,
        Fault::IsolateLeader,
    ];
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fault::KillLeader => "kill -9 leader",
            Fault::KillFollower => "kill -9 follower",
            Fault::StopLeader => "SIGTERM leader",
            Fault::IsolateLeader => "isolate leader",
        })
    }
}

/// Bounds of one cycle.
#[derive(Clone, Debug)]
pub(crate) struct ScenarioConfig {
    pub workload: WorkloadConfig,
    /// Answered client ops each phase must see (before, during, after the
    /// fault): proof that the majority keeps serving.
    pub answered_ops_per_phase: u64,
    /// How long the fault lasts at least (the schedule, not a wait for a
    /// state): long enough for a cut-off leader to notice and step down,
    /// and for its clients to run into that.
    pub fault_duration_min: Duration,
    /// How long the phases before and after the fault last at least.
    pub calm_duration_min: Duration,
    /// One phase, max.
    pub phase_deadline: Duration,
    /// A new leader, a healthy cluster, or convergence, max.
    pub recovery_deadline: Duration,
}

/// One phase's length and progress.
#[derive(Clone, Debug)]
pub(crate) struct PhaseReport {
    pub name: String,
    pub duration_ms: u128,
    /// Client ops answered during the phase.
    pub answered_ops: u64,
}

/// What happened around the fault.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeline {
    /// The member killed, stopped or isolated.
    pub victim: MemberIndex,
    /// The leader the other members elected or kept during the fault.
    pub leader_during: MemberIndex,
    /// The leader once the fault was undone and every member was healthy.
    pub leader_after: MemberIndex,
    /// Injecting the fault: ~0 but for SIGTERM, where it is the time the
    /// member took to exit.
    pub injection_ms: u128,
    /// From injecting the fault until the majority agreed on a leader
    /// (`injection_ms` included).
    pub failover_ms: u128,
    /// From undoing the fault until every member served linearizable reads.
    pub recovery_ms: u128,
}

/// What a cycle did and found.
#[derive(Debug)]
pub(crate) struct CycleReport {
    pub fault: Fault,
    pub leader_before: MemberIndex,
    pub timeline: Timeline,
    pub phases: Vec<PhaseReport>,
    pub duration_ms: u128,
    pub history: HistorySummary,
    pub verify: VerifyReport,
}

impl fmt::Display for CycleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} ({}): leader {} -> {} during -> {} after; injection {} ms, failover {} ms, \
             recovery {} ms, cycle {} ms",
            self.fault,
            self.timeline.victim,
            self.leader_before,
            self.timeline.leader_during,
            self.timeline.leader_after,
            self.timeline.injection_ms,
            self.timeline.failover_ms,
            self.timeline.recovery_ms,
            self.duration_ms
        )?;
        let phases: Vec<String> = self
            .phases
            .iter()
            .map(|p| {
                format!(
                    "{} {} ms ({} answered)",
                    p.name, p.duration_ms, p.answered_ops
                )
            })
            .collect();
        writeln!(f, "  phases: {}", phases.join(", "))?;
        writeln!(f, "  history: {}", self.history)?;
        write!(f, "  checks: {}", self.verify)
    }
}

/// Runs one fault cycle. The cluster must be whole and healthy; it is
/// whole again (all members running, links healed) when this returns `Ok`.
/// Fails with `ChecksFailed` (every check's outcome, and the saved history)
/// if any check fails, and with `CycleAborted` if the cycle could not run
/// to its checks.
pub(crate) async fn run_cycle(
    cluster: &mut Cluster,
    fault: Fault,
    config: &ScenarioConfig,
) -> Result<(CycleReport, History), FaultError> {
    let started = Instant::now();
    let leader_before = cluster.wait_healthy(config.recovery_deadline).await?;
    let endpoints: Vec<(MemberIndex, String)> = cluster
        .all_members()
        .into_iter()
        .map(|m| (m, cluster.client_endpoint(m)))
        .collect();
    let workload = Workload::start(&endpoints, &config.workload);
    let mut rng = StdRng::seed_from_u64(config.workload.seed);
    let mut phases = Vec::new();
    // Stop the workload whatever happens, so its tasks never outlive us.
    let outcome = inject(
        cluster,
        fault,
        config,
        &workload,
        leader_before,
        &mut rng,
        &mut phases,
    )
    .await;
    let history = workload.stop().await?;
    let aborted = |source: FaultError, phases: &[PhaseReport]| FaultError::CycleAborted {
        source: Box::new(source),
        context: format!(
            "{fault} cycle aborted after phases [{}]; history until then: {}\n  {}",
            phases
                .iter()
                .map(|p| format!("{} ({} answered)", p.name, p.answered_ops))
                .collect::<Vec<_>>()
                .join(", "),
            history.summary(),
            saved(&history, &config.workload)
        ),
    };
    let timeline = outcome.map_err(|e| aborted(e, &phases))?;
    let verify = verify_cluster(
        cluster,
        &history,
        &config.workload.key_prefix,
        config.recovery_deadline,
    )
    .await
    .map_err(|e| aborted(e, &phases))?;
    let report = CycleReport {
        fault,
        leader_before,
        timeline,
        phases,
        duration_ms: started.elapsed().as_millis(),
        history: history.summary(),
        verify,
    };
    let failed = report.verify.failed_checks();
    if !failed.is_empty() {
        return Err(FaultError::ChecksFailed {
            fault: fault.to_string(),
            failed,
            report: format!("{report}\n  {}", saved(&history, &config.workload)),
        });
    }
    Ok((report, history))
}

/// Saves `history` for a post-mortem; says where (or why it could not).
fn saved(history: &History, workload: &WorkloadConfig) -> String {
    let name = format!("{:x}", workload.seed);
    match history.save(&name) {
        Ok(path) => format!(
            "history ({} ops) saved to {}",
            history.ops.len(),
            path.display()
        ),
        Err(e) => format!("history could not be saved: {e}"),
    }
}

/// Runs the phases around the fault: before, during (after the majority
/// has a leader), after (once every member is healthy again).
async fn inject(
    cluster: &mut Cluster,
    fault: Fault,
    config: &ScenarioConfig,
    workload: &Workload,
    leader: MemberIndex,
    rng: &mut StdRng,
    phases: &mut Vec<PhaseReport>,
) -> Result<Timeline, FaultError> {
    let calm = config.calm_duration_min;
    phase(workload, config, "before the fault", calm, phases).await?;
    let victim = match fault {
        Fault::KillLeader | Fault::StopLeader | Fault::IsolateLeader => leader,
        Fault::KillFollower => {
            let followers: Vec<MemberIndex> = cluster
                .all_members()
                .into_iter()
                .filter(|&m| m != leader)
                .collect();
            followers[rng.random_range(0..followers.len())]
        }
    };
    let majority: Vec<MemberIndex> = cluster
        .all_members()
        .into_iter()
        .filter(|&m| m != victim)
        .collect();
    let fault_started = Instant::now();
    match fault {
        Fault::KillLeader | Fault::KillFollower => cluster.kill9(victim)?,
        Fault::StopLeader => cluster.terminate(victim).await?,
        Fault::IsolateLeader => cluster.network().isolate(victim),
    }
    let injection_ms = fault_started.elapsed().as_millis();
    let leader_during = cluster
        .wait_for_leader(&majority, config.recovery_deadline)
        .await?;
    let failover_ms = fault_started.elapsed().as_millis();
    let during = match fault {
        Fault::KillLeader | Fault::KillFollower => format!("with {victim} killed"),
        Fault::StopLeader => format!("with {victim} stopped"),
        Fault::IsolateLeader => format!("with {victim} isolated"),
    };
    phase(workload, config, &during, config.fault_duration_min, phases).await?;
    let recovery_started = Instant::now();
    match fault {
        Fault::KillLeader | Fault::KillFollower | Fault::StopLeader => cluster.restart(victim)?,
        Fault::IsolateLeader => cluster.network().heal_all(),
    }
    let leader_after = cluster.wait_healthy(config.recovery_deadline).await?;
    let recovery_ms = recovery_started.elapsed().as_millis();
    phase(workload, config, "after recovery", calm, phases).await?;
    Ok(Timeline {
        victim,
        leader_during,
        leader_after,
        injection_ms,
        failover_ms,
        recovery_ms,
    })
}

/// Lets the workload run until it has `answered_ops_per_phase` more
/// answers and at least `duration_min` has passed.
async fn phase(
    workload: &Workload,
    config: &ScenarioConfig,
    name: &str,
    duration_min: Duration,
    phases: &mut Vec<PhaseReport>,
) -> Result<(), FaultError> {
    let started = Instant::now();
    let since = workload.answered_ops();
    workload
        .wait_for_answers(
            since,
            config.answered_ops_per_phase,
            config.phase_deadline,
            name,
        )
        .await?;
    tokio::time::sleep(duration_min.saturating_sub(started.elapsed())).await;
    phases.push(PhaseReport {
        name: name.to_string(),
        duration_ms: started.elapsed().as_millis(),
        answered_ops: workload.answered_ops() - since,
    });
    Ok(())
}
