//! The simulated network: per-message loss, duplication and delay (variable delay reorders
//! messages), plus directed link cuts for partitions. A message is lost if its link is cut
//! when it is sent or when it arrives; the caller drops messages to a crashed node.

use std::collections::BTreeSet;

use crate::message::Message;
use crate::sim::rng::{SimRng, Stream};
use crate::sim::settings::RunSettings;
use crate::types::NodeId;

/// Lower bound of a one-way delay (µs).
const DELAY_US_MIN: u64 = 100;

/// Message counts for the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// Messages handed to the network.
    pub sent: u64,
    /// Messages lost at random.
    pub lost: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Messages lost to a cut link.
    pub cut: u64,
}

/// Links and fault rates.
pub(crate) struct Network {
    loss_per_mille: u64,
    duplicate_per_mille: u64,
    long_delay_per_mille: u64,
    delay_us_max: u64,
    long_delay_us_max: u64,
    /// Cut directed links (from, to).
    cut: BTreeSet<(NodeId, NodeId)>,
    rng: SimRng,
    pub(crate) stats: NetworkStats,
}

impl Network {
    pub(crate) fn new(seed: u64, settings: &RunSettings) -> Network {
        Network {
            loss_per_mille: settings.loss_per_mille,
            duplicate_per_mille: settings.duplicate_per_mille,
            long_delay_per_mille: settings.long_delay_per_mille,
            delay_us_max: settings.delay_us_max.max(DELAY_US_MIN),
            long_delay_us_max: settings.long_delay_us_max.max(DELAY_US_MIN),
            cut: BTreeSet::new(),
            rng: SimRng::new(seed, Stream::Network),
            stats: NetworkStats::default(),
        }
    }

    /// Decides the fate of `m`: the delays (µs) of the copies that will arrive (none if
    /// lost, two if duplicated).
    pub(crate) fn route(&mut self, m: &Message) -> Vec<u64> {
        self.stats.sent += 1;
        if self.is_cut(m.from, m.to) {
            self.stats.cut += 1;
            return Vec::new();
        }
        if self.rng.chance_per_mille(self.loss_per_mille) {
            self.stats.lost += 1;
            return Vec::new();
        }
        let mut delays = vec![self.delay_us()];
        if self.rng.chance_per_mille(self.duplicate_per_mille) {
            self.stats.duplicated += 1;
            delays.push(self.delay_us());
        }
        delays
    }

    fn delay_us(&mut self) -> u64 {
        let max = if self.rng.chance_per_mille(self.long_delay_per_mille) {
            self.long_delay_us_max
        } else {
            self.delay_us_max
        };
        self.rng.between(DELAY_US_MIN, max)
    }

    pub(crate) fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.cut.contains(&(from, to))
    }

    /// A message that was in flight when its link got cut is lost on arrival.
    pub(crate) fn note_cut_on_arrival(&mut self) {
        self.stats.cut += 1;
    }

    /// Cuts every link from a node of `from` to a node of `to`.
    pub(crate) fn cut_links(&mut self, from: &[NodeId], to: &[NodeId]) {
        for &a in from {
            for &b in to {
                if a != b {
                    self.cut.insert((a, b));
                }
            }
        }
    }

    pub(crate) fn heal(&mut self) {
        self.cut.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::MessageKind;

    fn settings() -> RunSettings {
        RunSettings {
            loss_per_mille: 0,
            duplicate_per_mille: 0,
            long_delay_per_mille: 0,
            ..RunSettings::from_seed(1)
        }
    }

    // Asymmetric partitions: cutting one direction leaves the other working.
    #[test]
    fn cut_links_are_directed() {
        let mut network = Network::new(1, &settings());
        network.cut_links(&[NodeId(1)], &[NodeId(2), NodeId(3)]);
        let out = Message::new(MessageKind::Heartbeat, NodeId(1), NodeId(2));
        let back = Message::new(MessageKind::HeartbeatResponse, NodeId(2), NodeId(1));
        assert!(network.route(&out).is_empty());
        assert_eq!(network.route(&back).len(), 1);
        network.heal();
        assert_eq!(network.route(&out).len(), 1);
        assert_eq!(network.stats.cut, 1);
    }

    // Loss and duplication happen at their configured rates (roughly) and only then.
    #[test]
    fn loss_and_duplication_follow_the_settings() {
        let mut lossy = Network::new(
            2,
            &RunSettings {
                loss_per_mille: 500,
                duplicate_per_mille: 500,
                ..settings()
            },
        );
        let m = Message::new(MessageKind::Append, NodeId(1), NodeId(2));
        let copies: usize = (0..1000).map(|_| lossy.route(&m).len()).sum();
        assert!((500..1000).contains(&copies), "copies {copies}");
        assert!(lossy.stats.lost > 300 && lossy.stats.duplicated > 100);
    }
}
