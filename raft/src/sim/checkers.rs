//! The safety checkers, one per file, and [`Checkers`], which feeds them from the node loop
//! and keeps the first violation. Hooks fire at the exact points where the checked state
//! changes (a Ready's log, a role change, an application); the durability check runs after
//! every step. Linearizability is checked once, on the whole history, at the end of a run.

pub(crate) mod durability;
pub(crate) mod election;
pub(crate) mod leader_completeness;
pub mod linearizability;
pub(crate) mod log_matching;
pub(crate) mod state_machine;

use durability::Durability;
use election::ElectionSafety;
use leader_completeness::LeaderCompleteness;
use log_matching::LogMatching;
use state_machine::StateMachineSafety;

use super::commit_log::CommitLog;
use super::disk::SimDisk;
use super::shadow::{EntryId, ShadowLog};
use super::time::SimTime;
use super::violation::{Property, Violation};
use crate::types::{ConfState, LogIndex, NodeId, Term};

/// All per-step checkers and the shared commit log.
#[derive(Debug)]
pub(crate) struct Checkers {
    pub(crate) election: ElectionSafety,
    pub(crate) log_matching: LogMatching,
    pub(crate) leader_completeness: LeaderCompleteness,
    pub(crate) state_machine: StateMachineSafety,
    pub(crate) durability: Durability,
    pub(crate) commit_log: CommitLog,
    /// Report what the per-step checkers find (off only in tests that show what the
    /// linearizability checker catches on its own).
    pub(crate) step_checks_enabled: bool,
    step: u64,
    time: SimTime,
    violation: Option<Violation>,
}

impl Checkers {
    pub(crate) fn new(voters: &[NodeId]) -> Checkers {
        Checkers {
            election: ElectionSafety::default(),
            log_matching: LogMatching::default(),
            leader_completeness: LeaderCompleteness::default(),
            state_machine: StateMachineSafety::default(),
            durability: Durability::new(voters),
            commit_log: CommitLog::default(),
            step_checks_enabled: true,
            step: 0,
            time: SimTime::default(),
            violation: None,
        }
    }

    /// Where the run is, for violation reports.
    pub(crate) fn set_clock(&mut self, step: u64, time: SimTime) {
        self.step = step;
        self.time = time;
    }

    pub(crate) fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    /// Records a violation (the first one wins: later ones are often its consequences).
    pub(crate) fn fail(&mut self, property: Property, detail: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation {
                property,
                step: self.step,
                time: self.time,
                detail,
            });
        }
    }

    fn check(&mut self, property: Property, result: Result<(), String>) {
        if let Err(detail) = result {
            if self.step_checks_enabled {
                self.fail(property, detail);
            }
        }
    }

    /// A Ready showed `node` as leader of `term`, with `shadow` as its log.
    pub(crate) fn on_leader(&mut self, node: NodeId, term: Term, shadow: &ShadowLog) {
        let result = self.election.on_leader(node, term);
        self.check(Property::ElectionSafety, result);
        let result = self
            .leader_completeness
            .on_elected(node, term, shadow, &self.commit_log);
        self.check(Property::LeaderCompleteness, result);
    }

    /// `node` appended entries from `from` on.
    pub(crate) fn on_appended(&mut self, node: NodeId, shadow: &ShadowLog, from: LogIndex) {
        let result = self.log_matching.on_appended(node, shadow, from);
        self.check(Property::LogMatching, result);
    }

    /// The leader `node` of `term` has commit index `commit`.
    pub(crate) fn on_leader_commit(
        &mut self,
        node: NodeId,
        term: Term,
        commit: LogIndex,
        shadow: &ShadowLog,
    ) {
        let result = self.commit_log.observe(node, term, commit, shadow);
        self.check(Property::LeaderCompleteness, result);
    }

    /// The bootstrap entries (committed by construction).
    pub(crate) fn on_bootstrap(&mut self, ids: &[EntryId]) {
        self.commit_log.record_bootstrap(ids);
    }

    /// `node` applied `id` at `index`.
    pub(crate) fn on_applied(&mut self, node: NodeId, index: LogIndex, id: EntryId, kv: u64) {
        let result = self
            .state_machine
            .on_applied(node, index, id, kv, &self.commit_log);
        self.check(Property::StateMachineSafety, result);
    }

    /// `node` restored its application state at `index`.
    pub(crate) fn on_restored(&mut self, node: NodeId, index: LogIndex, kv: u64) {
        let result = self.state_machine.on_restored(node, index, kv);
        self.check(Property::StateMachineSafety, result);
    }

    pub(crate) fn on_conf_applied(&mut self, index: LogIndex, conf_state: &ConfState) {
        self.durability.on_conf_applied(index, conf_state);
    }

    pub(crate) fn on_acknowledged(&mut self, index: LogIndex) {
        self.durability.on_acknowledged(index);
    }

    /// The per-step checks.
    pub(crate) fn after_step<'a>(
        &mut self,
        disks: impl Iterator<Item = (NodeId, &'a mut SimDisk)>,
    ) {
        let result = self.durability.check(disks, &self.commit_log);
        self.check(Property::Durability, result);
    }

    /// Terms that had a leader and the highest one.
    pub(crate) fn leader_summary(&self) -> (usize, Term) {
        (self.election.leader_terms(), self.election.max_term())
    }
}
