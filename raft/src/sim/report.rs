//! [`RunReport`]: what one run did and found, printed by the `sim` binary (the legend is in
//! docs/design/sim.md).

use std::fmt;

use super::checkers::linearizability::LinearizabilityStats;
use super::history::Operation;
use super::network::NetworkStats;
use super::settings::{RunSettings, SimConfig};
use super::time::SimTime;
use super::violation::Violation;
use super::workload::WorkloadStats;

/// Fault actions taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Node crashes (all kinds).
    pub crashes: u64,
    /// Crashes of a node with written but unsynced records.
    pub crashes_unsynced: u64,
    /// Crashes that kept a torn prefix of the unsynced records.
    pub crashes_torn: u64,
    /// Crashes that interrupted an fsync in flight (also counted in `crashes`).
    pub crashes_during_sync: u64,
    /// Power outages of the whole cluster (each node's crash also counted in `crashes`).
    pub outages: u64,
    /// Restarts.
    pub restarts: u64,
    /// Partitions started (symmetric, asymmetric, leader isolation, random cuts).
    pub partitions: u64,
    /// Leader transfers requested.
    pub transfers: u64,
    /// Membership changes proposed (accepted by the leader).
    pub conf_changes_proposed: u64,
    /// Local snapshots with log release.
    pub compactions: u64,
}

/// Cluster-level counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// Terms that had a leader.
    pub leader_terms: usize,
    /// Highest term with a leader.
    pub max_term: u64,
    /// Highest index applied anywhere.
    pub applied_max: u64,
    /// Highest index acknowledged to a client.
    pub acknowledged_max: u64,
    /// Snapshots sent by leaders.
    pub snapshots_sent: u64,
    /// Membership changes applied (distinct indexes).
    pub conf_changes_applied: u64,
    /// Voters at the end.
    pub voters_final: usize,
}

/// The outcome of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunReport {
    /// The run's configuration (seed, nodes, steps, settings).
    pub config: SimConfig,
    /// Events processed in total (faulty phase plus convergence).
    pub events: u64,
    /// Simulated time at the end.
    pub time: SimTime,
    /// Digest of the event trace (equal for equal seeds and configs).
    pub digest: u64,
    /// Fault actions.
    pub faults: FaultStats,
    /// Message counts.
    pub network: NetworkStats,
    /// Client operation counts.
    pub workload: WorkloadStats,
    /// Cluster counts.
    pub cluster: ClusterStats,
    /// What the linearizability search explored (None if it did not run).
    pub linearizability: Option<LinearizabilityStats>,
    /// The first violation found, if any.
    pub violation: Option<Violation>,
    /// Trace lines (only with `SimConfig::trace`).
    pub trace: Vec<String>,
    /// The client history; after the finale, as the linearizability checker read it (see
    /// the workload docs: unanswered writes resolved by what the nodes executed).
    pub history: Vec<Operation>,
}

impl RunReport {
    /// True when no checker found anything.
    pub fn passed(&self) -> bool {
        self.violation.is_none()
    }

    /// The command that replays this run (see [`SimConfig::reproduction_command`]).
    pub fn reproduction_command(&self) -> String {
        self.config.reproduction_command()
    }

    fn fmt_faults(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fl = &self.faults;
        writeln!(
            f,
            "  faults: crashes={} (unsynced={} during-sync={} torn={} outages={}) restarts={} \
             partitions={} transfers={} conf-changes={} compactions={}",
            fl.crashes,
            fl.crashes_unsynced,
            fl.crashes_during_sync,
            fl.crashes_torn,
            fl.outages,
            fl.restarts,
            fl.partitions,
            fl.transfers,
            fl.conf_changes_proposed,
            fl.compactions
        )
    }

    fn fmt_cluster(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cl = &self.cluster;
        writeln!(
            f,
            "  raft: leader-terms={} max-term={} applied={} acknowledged={} snapshots-sent={} \
             conf-applied={} voters-final={}",
            cl.leader_terms,
            cl.max_term,
            cl.applied_max,
            cl.acknowledged_max,
            cl.snapshots_sent,
            cl.conf_changes_applied,
            cl.voters_final
        )
    }
}

fn features(settings: &RunSettings) -> String {
    let mut on = Vec::new();
    for (enabled, name) in [
        (settings.pre_vote, "pre-vote"),
        (settings.check_quorum, "check-quorum"),
        (settings.compaction, "compaction"),
        (settings.membership, "membership"),
    ] {
        if enabled {
            on.push(name);
        }
    }
    on.join(",")
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let s = &c.settings;
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        writeln!(
            f,
            "{verdict} seed={} nodes={} steps={} events={} time={} digest={:016x}",
            c.seed, c.nodes, c.steps, self.events, self.time, self.digest
        )?;
        writeln!(
            f,
            "  run: clients={} features=[{}] loss={}‰ dup={}‰ long-delay={}‰ torn={}‰ \
             crash-in-fsync={}‰",
            s.clients,
            features(s),
            s.loss_per_mille,
            s.duplicate_per_mille,
            s.long_delay_per_mille,
            s.torn_per_mille,
            s.crash_during_sync_per_mille
        )?;
        self.fmt_faults(f)?;
        let n = &self.network;
        writeln!(
            f,
            "  network: sent={} lost={} cut={} duplicated={}",
            n.sent, n.lost, n.cut, n.duplicated
        )?;
        self.fmt_cluster(f)?;
        let w = &self.workload;
        write!(
            f,
            "  clients: invoked={} completed={} indeterminate={} (writes executed={} never={}) \
             refused={}",
            w.invoked,
            w.completed,
            w.indeterminate,
            w.executed_unanswered,
            w.never_applied,
            w.refused
        )?;
        if let Some(lin) = &self.linearizability {
            write!(
                f,
                "\n  linearizability: keys={} ops={} search-steps={}",
                lin.keys, lin.operations, lin.search_steps
            )?;
        }
        if let Some(violation) = &self.violation {
            write!(f, "\n  VIOLATION {violation}")?;
        }
        Ok(())
    }
}
