//! The end of a run: faults stop, the network heals and crashed nodes restart; the clients
//! keep going for a while, then stop, and client 0 reads every key. Every member must then
//! converge (liveness): one leader, every entry committed, and every voter and learner
//! applied up to the leader's commit index with identical KV state. Last, the recorded
//! history is checked for linearizability.

use crate::sim::checkers::linearizability::check_history;
use crate::sim::event::Event;
use crate::sim::node::NodeState;
use crate::sim::report::RunReport;
use crate::sim::simulator::Simulator;
use crate::sim::time::SimTime;
use crate::sim::violation::{Property, Violation};
use crate::types::NodeId;

/// Simulated time the healed cluster runs with clients before they stop (µs).
const SETTLE_US: u64 = 2_000_000;
/// Simulated time allowed for the clients to finish, final reads included (µs).
const CLIENTS_DONE_US_MAX: u64 = 60_000_000;
/// Simulated time allowed for every member to catch up (µs).
const CONVERGE_US_MAX: u64 = 30_000_000;
/// Events the whole finale may take (a bound against message storms: a healthy finale
/// takes a few tens of thousands).
const FINALE_EVENTS_MAX: u64 = 300_000;

impl Simulator {
    /// Runs the faulty phase, then the finale; returns the report.
    pub(crate) fn run(mut self) -> RunReport {
        while self.events < self.config.steps && !self.violated() {
            if !self.step() {
                break;
            }
        }
        if !self.violated() {
            self.finale();
        }
        let mut report = self.report();
        // The history is checked after a liveness failure too: a cluster that stalls may
        // also have answered wrongly, and a safety violation is the more important finding.
        let liveness_only = report
            .violation
            .as_ref()
            .is_none_or(|v| v.property == Property::Liveness);
        if liveness_only {
            report.history = self.workload.history_to_check();
            report.workload = self.workload.stats;
            match check_history(&report.history) {
                Ok(stats) => report.linearizability = Some(stats),
                Err(e) => {
                    report.violation = Some(Violation {
                        property: Property::Linearizability,
                        step: self.events,
                        time: self.now,
                        detail: e.to_string(),
                    });
                }
            }
        }
        report
    }

    fn finale(&mut self) {
        self.chaos_on = false;
        self.network.heal();
        self.trace
            .note(self.now, "finale: faults off, links healed");
        let crashed: Vec<NodeId> = self
            .nodes
            .values()
            .filter(|n| n.state == NodeState::Crashed)
            .map(|n| n.id)
            .collect();
        for id in crashed {
            self.restart(id);
        }
        self.flush();
        let settle_end = self.now.after_us(SETTLE_US);
        self.run_until(settle_end, |_| false);
        self.workload.start_final_reads();
        for client in self.workload.client_ids() {
            self.queue.schedule(self.now, Event::ClientWake(client));
        }
        let deadline = self.now.after_us(CLIENTS_DONE_US_MAX);
        if !self.run_until(deadline, |sim| sim.workload.is_done()) {
            let detail = format!(
                "clients could not finish within {}s after faults stopped; {}",
                CLIENTS_DONE_US_MAX / 1_000_000,
                self.describe_nodes()
            );
            self.checkers.fail(Property::Liveness, detail);
            return;
        }
        let deadline = self.now.after_us(CONVERGE_US_MAX);
        if !self.run_until(deadline, Simulator::converged) {
            let detail = format!(
                "members did not converge within {}s; {}",
                CONVERGE_US_MAX / 1_000_000,
                self.describe_nodes()
            );
            self.checkers.fail(Property::Liveness, detail);
        }
    }

    /// Steps until `done` holds (true), a violation, `deadline`, or the finale's event
    /// budget (false).
    fn run_until(&mut self, deadline: SimTime, done: impl Fn(&Simulator) -> bool) -> bool {
        let events_max = self.config.steps.saturating_add(FINALE_EVENTS_MAX);
        loop {
            if done(self) {
                return true;
            }
            if self.events >= events_max {
                let detail = format!(
                    "the finale took {FINALE_EVENTS_MAX} events by {} without settling \
                     (a message storm?); {}",
                    self.now,
                    self.describe_nodes()
                );
                self.checkers.fail(Property::Liveness, detail);
                return false;
            }
            if self.violated() || self.now >= deadline || !self.step() {
                return false;
            }
        }
    }

    /// One leader whose log is fully committed; every member up and applied to its commit
    /// index with the same KV state.
    fn converged(&self) -> bool {
        let Some(leader) = self.leader() else {
            return false;
        };
        let Some(raw) = self.nodes[&leader].raw.as_ref() else {
            return false;
        };
        let status = raw.status();
        if status.commit != status.last_index || self.workload.has_outstanding() {
            return false;
        }
        let conf_state = raw.conf_state();
        let digest = self.nodes[&leader].app.kv.digest();
        conf_state
            .voters
            .iter()
            .chain(conf_state.learners.iter())
            .all(|id| {
                self.nodes.get(id).is_some_and(|n| {
                    n.is_up()
                        && n.unsynced_readies() == 0
                        && n.app.applied == status.commit
                        && n.app.kv.digest() == digest
                })
            })
    }

    /// One line per node, for liveness failures.
    fn describe_nodes(&self) -> String {
        self.nodes
            .values()
            .map(|n| {
                let status = n.raw.as_ref().map(|raw| raw.status());
                match status {
                    Some(s) => format!(
                        "{}: {:?} {} {} commit={} applied={} last={} leader={:?}",
                        n.id,
                        n.state,
                        s.role,
                        s.term,
                        s.commit,
                        n.app.applied,
                        s.last_index,
                        s.leader_id
                    ),
                    None => format!("{}: {:?}", n.id, n.state),
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}
