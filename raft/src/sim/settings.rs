//! [`SimConfig`] (what the caller fixes: seed, size, length, injected bugs) and
//! [`RunSettings`] (what the seed decides: fault rates, timings, which features a run
//! exercises). Every field of `RunSettings` is drawn from the seed, so `--seed N` alone
//! reproduces a run; tests may override fields after [`SimConfig::new`].

use super::rng::{SimRng, Stream};

/// Per-run knobs drawn from the seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSettings {
    /// Raft pre-vote on every node.
    pub pre_vote: bool,
    /// Raft check-quorum on every node.
    pub check_quorum: bool,
    /// Heartbeat interval (ticks); the election timeout is 10 ticks.
    pub heartbeat_ticks: u32,
    /// Append window per follower (small, to exercise flow control).
    pub inflight_msgs_max: usize,
    /// Append size limit (bytes; small, to split batches).
    pub msg_size_bytes_max: u64,
    /// Concurrent clients (each a sequential process).
    pub clients: usize,
    /// Nodes take snapshots and release their log (leaders then send snapshots).
    pub compaction: bool,
    /// Membership changes (add/remove voters, learners, promotions) happen.
    pub membership: bool,
    /// Messages lost at random (per mille).
    pub loss_per_mille: u64,
    /// Messages delivered twice (per mille).
    pub duplicate_per_mille: u64,
    /// Messages delayed up to `long_delay_us_max` instead of `delay_us_max` (per mille):
    /// they arrive after later messages (reordering).
    pub long_delay_per_mille: u64,
    /// Normal one-way message delay upper bound (µs; the lower bound is 100 µs).
    pub delay_us_max: u64,
    /// Long delay upper bound (µs).
    pub long_delay_us_max: u64,
    /// fsync latency upper bound (µs; the lower bound is 50 µs).
    pub fsync_us_max: u64,
    /// Mean time between fault actions (µs).
    pub chaos_interval_us: u64,
    /// Crashes that keep a torn prefix of the unsynced writes (per mille of crashes).
    pub torn_per_mille: u64,
    /// fsyncs interrupted by a power loss (per mille of fsyncs): the crash lands between
    /// "written" and "synced" of whatever the Ready held (entries, a vote, a snapshot); 30%
    /// of them hit every node at once.
    pub crash_during_sync_per_mille: u64,
    /// The application checkpoints its state every this many applied entries.
    pub checkpoint_every_applies: u64,
    /// A client gives up on an operation after this long (µs): it becomes indeterminate.
    pub client_timeout_us: u64,
}

impl RunSettings {
    /// Draws every knob from `seed`.
    pub fn from_seed(seed: u64) -> RunSettings {
        let mut rng = SimRng::new(seed, Stream::Settings);
        RunSettings {
            pre_vote: rng.chance_per_mille(750),
            check_quorum: rng.chance_per_mille(750),
            heartbeat_ticks: rng.between(1, 3) as u32,
            inflight_msgs_max: rng.between(1, 8) as usize,
            msg_size_bytes_max: rng.between(64, 1024),
            clients: rng.between(2, 8) as usize,
            compaction: rng.chance_per_mille(600),
            membership: rng.chance_per_mille(500),
            loss_per_mille: rng.pick(&[0, 10, 30, 80]).unwrap_or(0),
            duplicate_per_mille: rng.pick(&[0, 10, 40]).unwrap_or(0),
            long_delay_per_mille: rng.pick(&[0, 20, 100]).unwrap_or(0),
            delay_us_max: rng.between(500, 8_000),
            long_delay_us_max: rng.between(20_000, 150_000),
            fsync_us_max: rng.between(200, 8_000),
            chaos_interval_us: rng.between(50_000, 500_000),
            torn_per_mille: rng.pick(&[0, 300, 700]).unwrap_or(0),
            crash_during_sync_per_mille: rng.pick(&[0, 2, 5, 10]).unwrap_or(0),
            checkpoint_every_applies: rng.between(1, 64),
            client_timeout_us: rng.between(150_000, 600_000),
        }
    }
}

/// Bugs the simulator can inject into its own server loop, to prove the checkers catch
/// them. Never set outside tests and experiments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InjectedBugs {
    /// Treat every Ready as persisted as soon as it is written: call `on_persisted` and send
    /// `persisted_messages` (acknowledgements, votes) before the fsync completes.
    pub ack_before_sync: bool,
    /// Answer reads from the local state at once, skipping ReadIndex.
    pub read_without_read_index: bool,
}

/// Everything that defines one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// The seed every random choice derives from.
    pub seed: u64,
    /// Initial voters (3 or 5); two more nodes stand by for membership changes.
    pub nodes: usize,
    /// Events to process with faults on; then faults stop and the cluster must converge.
    pub steps: u64,
    /// Knobs drawn from the seed.
    pub settings: RunSettings,
    /// Injected bugs (none by default).
    pub bugs: InjectedBugs,
    /// Run the per-step safety checkers (election safety, log matching, leader
    /// completeness, state machine safety, durability). Tests turn them off to show that
    /// the end-of-run linearizability check alone also catches lost writes.
    pub step_checks: bool,
    /// Keep a human-readable line per event (for `--trace`; slows the run down).
    pub trace: bool,
}

impl SimConfig {
    /// A run of `nodes` voters for `steps` events, everything else from `seed`.
    pub fn new(seed: u64, nodes: usize, steps: u64) -> SimConfig {
        SimConfig {
            seed,
            nodes,
            steps,
            settings: RunSettings::from_seed(seed),
            bugs: InjectedBugs::default(),
            step_checks: true,
            trace: false,
        }
    }

    /// The command that replays this run with the `sim` binary. Settings a caller changed
    /// after `SimConfig::new` cannot be passed on the command line: the command then says
    /// so, and the run must be replayed the way it was made (e.g. its test with KEEL_SEED).
    pub fn reproduction_command(&self) -> String {
        let c = self;
        let mut command = format!(
            "cargo run -p keel-raft --features sim --bin sim -- --seed {} --steps {} --nodes {}",
            c.seed, c.steps, c.nodes
        );
        if c.bugs.ack_before_sync {
            command.push_str(" --bug ack-before-sync");
        }
        if c.bugs.read_without_read_index {
            command.push_str(" --bug read-without-read-index");
        }
        if !c.step_checks {
            command.push_str(" --no-step-checks");
        }
        if c.settings != RunSettings::from_seed(c.seed) {
            command.push_str("  (the caller also overrode settings: replay it the same way)");
        }
        command
    }
}
