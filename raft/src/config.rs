//! Configuration of one Raft node; validated before use.

use crate::errors::ConfigError;
use crate::types::{LogIndex, NodeId};

/// Settings of one [`crate::RawNode`]. Build with [`Config::new`] and adjust fields.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Config {
    /// This node's id (non-zero).
    pub id: NodeId,
    /// Election timeout (ticks). A follower that hears from no leader for a randomized
    /// timeout in `[election_ticks, 2 * election_ticks)` starts an election. Default 10.
    pub election_ticks: u32,
    /// Leader heartbeat interval (ticks). Default 1.
    pub heartbeat_ticks: u32,
    /// Last index the application applied before a restart (inclusive). Entries up to it are
    /// not delivered again. 0 for a new node.
    pub applied: LogIndex,
    /// Maximum bytes of entries in one Append message (entries count `Entry::size_bytes`); a
    /// message always carries at least one entry if any is due. Default 1 MiB.
    pub msg_size_bytes_max: u64,
    /// Maximum Append messages in flight to one follower in replicate state. Default 256.
    pub inflight_msgs_max: usize,
    /// Maximum payload bytes the leader keeps uncommitted before dropping proposals.
    /// Default `u64::MAX` (no limit).
    pub uncommitted_size_bytes_max: u64,
    /// Maximum bytes of committed entries handed out in one Ready (at least one entry is
    /// handed out if any is due). Default `u64::MAX`.
    pub ready_committed_size_bytes_max: u64,
    /// Run a pre-vote round before bumping the term (avoids disruption by partitioned nodes).
    pub pre_vote: bool,
    /// Leader steps down when it has not heard from a quorum for an election timeout; nodes
    /// ignore vote requests while they hear from a leader.
    pub check_quorum: bool,
    /// Seed of the RNG that randomizes election timeouts (mixed with `id`).
    pub seed: u64,
}

impl Config {
    /// Defaults from etcd (election 1000 ms / heartbeat 100 ms at a 100 ms tick), with
    /// pre-vote and check-quorum on, as etcd v3.6 runs.
    pub fn new(id: NodeId) -> Config {
        Config {
            id,
            election_ticks: 10,
            heartbeat_ticks: 1,
            applied: LogIndex(0),
            msg_size_bytes_max: 1024 * 1024,
            inflight_msgs_max: 256,
            uncommitted_size_bytes_max: u64::MAX,
            ready_committed_size_bytes_max: u64::MAX,
            pre_vote: true,
            check_quorum: true,
            seed: 0,
        }
    }

    /// Checks the invariants the state machine relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == NodeId(0) {
            return Err(ConfigError::ZeroId);
        }
        if self.heartbeat_ticks == 0 {
            return Err(ConfigError::ZeroHeartbeatTicks);
        }
        if self.election_ticks <= self.heartbeat_ticks {
            return Err(ConfigError::ElectionNotAboveHeartbeat {
                election_ticks: self.election_ticks,
                heartbeat_ticks: self.heartbeat_ticks,
            });
        }
        if self.inflight_msgs_max == 0 {
            return Err(ConfigError::ZeroInflightMsgs);
        }
        if self.msg_size_bytes_max == 0 {
            return Err(ConfigError::ZeroMsgSize);
        }
        if self.uncommitted_size_bytes_max == 0 {
            return Err(ConfigError::ZeroUncommittedSize);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The defaults must always be valid: the server builds on Config::new.
    #[test]
    fn default_config_is_valid() {
        assert_eq!(Config::new(NodeId(1)).validate(), Ok(()));
    }

    // Each rule of validate() rejects its bad value.
    #[test]
    fn validate_rejects_each_bad_value() {
        let base = Config::new(NodeId(1));
        let cases: Vec<(Config, ConfigError)> = vec![
            (
                Config {
                    id: NodeId(0),
                    ..base.clone()
                },
                ConfigError::ZeroId,
            ),
            (
                Config {
                    heartbeat_ticks: 0,
                    ..base.clone()
                },
                ConfigError::ZeroHeartbeatTicks,
            ),
            (
                Config {
                    election_ticks: 1,
                    ..base.clone()
                },
                ConfigError::ElectionNotAboveHeartbeat {
                    election_ticks: 1,
                    heartbeat_ticks: 1,
                },
            ),
            (
                Config {
                    inflight_msgs_max: 0,
                    ..base.clone()
                },
                ConfigError::ZeroInflightMsgs,
            ),
            (
                Config {
                    msg_size_bytes_max: 0,
                    ..base.clone()
                },
                ConfigError::ZeroMsgSize,
            ),
            (
                Config {
                    uncommitted_size_bytes_max: 0,
                    ..base.clone()
                },
                ConfigError::ZeroUncommittedSize,
            ),
        ];
        for (config, expected) in cases {
            assert_eq!(config.validate(), Err(expected));
        }
    }
}
