//! The log-position rules shared by replay and the writer: where the log ends, where it
//! starts, how suffix overwrites and snapshot markers move those, and per-segment facts that
//! `release_before` needs. Replay and writer use the same code so they cannot disagree.

use crate::entry::{SnapshotMarker, WalEntry, WalState};
use crate::record::Record;

/// Where the log is, as a sequence of records has left it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LogPosition {
    /// Index of the last entry, or of the last snapshot marker that jumped past the entries.
    /// `None` before any entry or marker.
    pub last: Option<u64>,
    /// Whether `last` came from an entry (then the next entry must be <= last + 1).
    pub last_from_entry: bool,
    /// Smallest live entry index; `None` when there are no live entries.
    pub first: Option<u64>,
}

/// What a marker did to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MarkerEffect {
    /// The marker is behind the log end: entries stay.
    Noted,
    /// The marker is past the log end (a snapshot was installed): all entries are dropped and
    /// the log continues after the marker.
    Jumped,
}

impl LogPosition {
    pub fn last_index(&self) -> u64 {
        self.last.unwrap_or(0)
    }

    pub fn first_index(&self) -> u64 {
        self.first.unwrap_or(0)
    }

    /// Replay's check: the largest index allowed next, if constrained. After a marker (or at
    /// the start of a replay that began mid-history) any index is accepted.
    pub fn entry_index_max(&self) -> Option<u64> {
        match self.last {
            Some(last) if self.last_from_entry => Some(last + 1),
            _ => None,
        }
    }

    /// Records an entry that passed the check: it replaces every entry >= `index`.
    pub fn entry(&mut self, index: u64) {
        self.last = Some(index);
        self.last_from_entry = true;
        self.first = Some(self.first.map_or(index, |first| first.min(index)));
    }

    pub fn marker(&mut self, marker_index: u64) -> MarkerEffect {
        match self.last {
            None => {
                self.last = Some(marker_index);
                self.last_from_entry = false;
                MarkerEffect::Noted
            }
            Some(last) if marker_index > last => {
                self.last = Some(marker_index);
                self.last_from_entry = false;
                self.first = None;
                MarkerEffect::Jumped
            }
            Some(_) => MarkerEffect::Noted,
        }
    }
}

/// Facts about one segment's entry records, kept for `release_before` and `first_index`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SegmentStats {
    /// Largest index of any entry record in the segment.
    pub entry_index_max: Option<u64>,
    /// Smallest index of the entry records after the segment's last snapshot jump.
    pub entry_index_min: Option<u64>,
    /// Whether a snapshot marker in this segment jumped past the log end.
    pub jumped: bool,
}

impl SegmentStats {
    pub fn entry(&mut self, index: u64) {
        self.entry_index_max = Some(self.entry_index_max.map_or(index, |max| max.max(index)));
        self.entry_index_min = Some(self.entry_index_min.map_or(index, |min| min.min(index)));
    }

    pub fn jump(&mut self) {
        self.jumped = true;
        self.entry_index_min = None;
    }
}

/// The first live entry index of the log made of `segments` (oldest first). Every live entry
/// was written after the last jump, and an overwrite at i writes i itself, so the first live
/// index is the smallest entry index written since the last jump.
pub(crate) fn first_index_fold<'a>(
    segments: impl Iterator<Item = &'a SegmentStats>,
) -> Option<u64> {
    segments.fold(None, |first, stats| {
        if stats.jumped {
            stats.entry_index_min
        } else {
            match (first, stats.entry_index_min) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
    })
}

/// A replay in progress: the caller feeds verified records in log order.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    replay_from: u64,
    pub position: LogPosition,
    pub entries: Vec<WalEntry>,
    pub state: Option<WalState>,
    pub marker: Option<SnapshotMarker>,
}

/// A record that does not continue the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotContiguous {
    pub expected: u64,
    pub got: u64,
}

impl Replay {
    pub fn new(replay_from: u64) -> Replay {
        Replay {
            replay_from,
            ..Replay::default()
        }
    }

    /// Applies one record; on success reports whether it was an entry (its index) or a jump.
    pub fn apply(&mut self, record: Record, stats: &mut SegmentStats) -> Result<(), NotContiguous> {
        match record {
            Record::Entry(entry) => {
                if entry.index == 0 {
                    return Err(NotContiguous {
                        expected: 1,
                        got: 0,
                    });
                }
                if let Some(max) = self.position.entry_index_max() {
                    if entry.index > max {
                        return Err(NotContiguous {
                            expected: max,
                            got: entry.index,
                        });
                    }
                }
                let keep = self
                    .entries
                    .partition_point(|kept| kept.index < entry.index);
                self.entries.truncate(keep);
                self.position.entry(entry.index);
                stats.entry(entry.index);
                if entry.index >= self.replay_from {
                    debug_assert!(
                        self.entries
                            .last()
                            .is_none_or(|e| e.index + 1 == entry.index),
                        "replayed entries stay contiguous"
                    );
                    self.entries.push(entry);
                }
            }
            Record::State(state) => self.state = Some(state),
            Record::SnapshotMarker(marker) => {
                self.marker = Some(marker);
                if self.position.marker(marker.index) == MarkerEffect::Jumped {
                    self.entries.clear();
                    stats.jump();
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn entry(index: u64, term: u64) -> Record {
        Record::Entry(WalEntry {
            index,
            term,
            kind: 0,
            data: Bytes::new(),
        })
    }

    fn indexes_terms(replay: &Replay) -> Vec<(u64, u64)> {
        replay.entries.iter().map(|e| (e.index, e.term)).collect()
    }

    // Guards Raft conflict resolution on replay: a later record for index i replaces i and
    // everything after it, and first/last follow.
    #[test]
    fn a_later_entry_record_replaces_the_suffix_from_its_index() {
        let mut replay = Replay::new(0);
        let mut stats = SegmentStats::default();
        for index in 1..=5 {
            replay.apply(entry(index, 1), &mut stats).unwrap();
        }
        replay.apply(entry(3, 2), &mut stats).unwrap();
        assert_eq!(indexes_terms(&replay), vec![(1, 1), (2, 1), (3, 2)]);
        assert_eq!(replay.position.last_index(), 3);
        assert_eq!(replay.position.first_index(), 1);
        assert_eq!(stats.entry_index_max, Some(5));
    }

    // Guards the contiguity rule: a gap is refused with the expected and found index.
    #[test]
    fn a_gap_between_entries_is_refused() {
        let mut replay = Replay::new(0);
        let mut stats = SegmentStats::default();
        replay.apply(entry(10, 1), &mut stats).unwrap();
        assert_eq!(
            replay.apply(entry(12, 1), &mut stats),
            Err(NotContiguous {
                expected: 11,
                got: 12
            })
        );
        assert_eq!(
            replay.apply(entry(0, 1), &mut stats),
            Err(NotContiguous {
                expected: 1,
                got: 0
            })
        );
    }

    // Guards snapshot installs: a marker past the log end drops the entries and lets the log
    // continue after it; a marker behind the end changes nothing.
    #[test]
    fn a_marker_past_the_end_jumps_and_one_behind_is_only_noted() {
        let mut replay = Replay::new(0);
        let mut stats = SegmentStats::default();
        replay.apply(entry(1, 1), &mut stats).unwrap();
        replay.apply(entry(2, 1), &mut stats).unwrap();
        replay
            .apply(
                Record::SnapshotMarker(SnapshotMarker { index: 2, term: 1 }),
                &mut stats,
            )
            .unwrap();
        assert_eq!(replay.entries.len(), 2);
        replay
            .apply(
                Record::SnapshotMarker(SnapshotMarker {
                    index: 100,
                    term: 3,
                }),
                &mut stats,
            )
            .unwrap();
        assert!(replay.entries.is_empty());
        assert_eq!(replay.position.last_index(), 100);
        assert_eq!(replay.position.first_index(), 0);
        replay.apply(entry(101, 3), &mut stats).unwrap();
        assert_eq!(replay.position.first_index(), 101);
        assert_eq!(first_index_fold([stats].iter()), Some(101));
    }

    // Guards replay_from: earlier entries are verified and tracked but not returned.
    #[test]
    fn entries_before_replay_from_are_tracked_but_not_returned() {
        let mut replay = Replay::new(3);
        let mut stats = SegmentStats::default();
        for index in 1..=5 {
            replay.apply(entry(index, 1), &mut stats).unwrap();
        }
        assert_eq!(indexes_terms(&replay), vec![(3, 1), (4, 1), (5, 1)]);
        replay.apply(entry(2, 2), &mut stats).unwrap();
        assert!(replay.entries.is_empty());
        assert_eq!(replay.position.last_index(), 2);
    }
}
