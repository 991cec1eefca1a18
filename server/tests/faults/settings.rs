//! The harness's knobs: defaults sized for CI on a 2-core box, overridden
//! by environment variables (docs/dev/fault-tests.md lists them).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::binary::MemberBinary;
use super::cluster::ClusterConfig;
use super::error::FaultError;
use super::scenario::ScenarioConfig;
use super::soak::SoakConfig;
use super::workload::WorkloadConfig;

/// Fixes the seed of a run (printed by every run that does not set it).
pub(crate) const SEED_ENV: &str = "KEEL_FAULT_SEED";
/// Extra flags for every member, split on whitespace.
pub(crate) const EXTRA_ARGS_ENV: &str = "KEEL_FAULT_EXTRA_ARGS";
/// Soak bounds: cycles and minutes, whichever ends first.
pub(crate) const SOAK_CYCLES_ENV: &str = "KEEL_FAULT_SOAK_CYCLES";
pub(crate) const SOAK_MINUTES_ENV: &str = "KEEL_FAULT_SOAK_MINUTES";
/// `1`: keep a failed run's data dirs and logs (the path is printed).
pub(crate) const KEEP_DIR_ENV: &str = "KEEL_FAULT_KEEP_DIR";

/// Soak cycles when `KEEL_FAULT_SOAK_CYCLES` is unset: the CI run.
const SOAK_CYCLES_DEFAULT: u64 = 2;
/// Soak minutes when `KEEL_FAULT_SOAK_MINUTES` is unset.
const SOAK_MINUTES_DEFAULT: u64 = 10;

/// Everything a fault test reads from its environment.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub binary: MemberBinary,
    pub extra_args: Vec<String>,
    pub seed: u64,
    pub soak_cycles_max: u64,
    pub soak_minutes_max: u64,
    pub keep_dir_on_failure: bool,
}

impl Settings {
    /// Reads the environment; `default_binary` when `KEEL_FAULT_BINARY` is unset.
    pub(crate) fn from_env(default_binary: MemberBinary) -> Result<Settings, FaultError> {
        let seed = match number(SEED_ENV)? {
            Some(seed) => seed,
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        };
        Ok(Settings {
            binary: MemberBinary::from_env(default_binary)?,
            extra_args: std::env::var(EXTRA_ARGS_ENV)
                .map(|flags| flags.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            seed,
            soak_cycles_max: number(SOAK_CYCLES_ENV)?.unwrap_or(SOAK_CYCLES_DEFAULT),
            soak_minutes_max: number(SOAK_MINUTES_ENV)?.unwrap_or(SOAK_MINUTES_DEFAULT),
            keep_dir_on_failure: std::env::var(KEEP_DIR_ENV).is_ok_and(|v| v == "1"),
        })
    }

    /// A 3-member cluster of the chosen binary.
    pub(crate) fn cluster_config(&self) -> ClusterConfig {
        ClusterConfig {
            member_count: 3,
            binary: self.binary.clone(),
            extra_args: self.extra_args.clone(),
            start_deadline: Duration::from_secs(30),
        }
    }

    /// One cycle's bounds: six workers (two per member) on five keys; each
    /// phase lasts until 200 ops were answered and at least 1 s (3 s for
    /// the fault), so a cycle takes ~6-10 s against etcd on the 2-core box.
    pub(crate) fn scenario_config(&self, key_prefix: String, seed: u64) -> ScenarioConfig {
        ScenarioConfig {
            workload: WorkloadConfig {
                workers: 6,
                keys: 5,
                key_prefix,
                ops_per_worker_max: 5_000,
                duration_max: Duration::from_secs(120),
                op_timeout: Duration::from_secs(2),
                think_time_max: Duration::from_millis(10),
                error_backoff: Duration::from_millis(100),
                seed,
            },
            answered_ops_per_phase: 200,
            fault_duration_min: Duration::from_secs(3),
            calm_duration_min: Duration::from_secs(1),
            phase_deadline: Duration::from_secs(20),
            recovery_deadline: Duration::from_secs(20),
        }
    }

    /// The soak's bounds.
    pub(crate) fn soak_config(&self) -> SoakConfig {
        SoakConfig {
            cycles_max: self.soak_cycles_max,
            duration_max: Duration::from_secs(self.soak_minutes_max.saturating_mul(60)),
            seed: self.seed,
        }
    }
}

fn number(name: &'static str) -> Result<Option<u64>, FaultError> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|e: std::num::ParseIntError| FaultError::Config {
                name,
                value: text.clone(),
                reason: e.to_string(),
            }),
    }
}
