//! Shared test helpers: a dumb model of what the WAL must recover, entry builders, and the
//! comparison of a recovery against the model.
#![allow(dead_code)] // Each test binary uses a different subset.

pub mod scenario;

use bytes::Bytes;
use keel_wal::{Recovered, SnapshotMarker, SyncMode, WalEntry, WalOptions, WalState};

/// The sync modes that promise durability: every scenario and crash test runs in each.
pub const DURABLE_SYNC_MODES: [SyncMode; 2] = [SyncMode::Fdatasync, SyncMode::Dsync];

/// Options with tiny segments so that tests roll often.
pub fn small_options(segment_size_bytes: u64) -> WalOptions {
    WalOptions {
        segment_size_bytes,
        ..WalOptions::default()
    }
}

/// [`small_options`] in `sync_mode`.
pub fn small_options_in(sync_mode: SyncMode, segment_size_bytes: u64) -> WalOptions {
    WalOptions {
        sync_mode,
        ..small_options(segment_size_bytes)
    }
}

/// A deterministic entry whose data depends on index and term (so overwrites differ).
pub fn entry(index: u64, term: u64, data_bytes: usize) -> WalEntry {
    let seed = index.wrapping_mul(31).wrapping_add(term.wrapping_mul(17));
    let data: Vec<u8> = (0..data_bytes)
        .map(|i| (seed.wrapping_add(i as u64) % 251) as u8)
        .collect();
    WalEntry {
        index,
        term,
        kind: (index % 3) as u8,
        data: Bytes::from(data),
    }
}

pub fn entries(first: u64, count: u64, term: u64, data_bytes: usize) -> Vec<WalEntry> {
    (first..first + count)
        .map(|index| entry(index, term, data_bytes))
        .collect()
}

/// The model: a plain vector of live entries plus the last state and marker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    pub entries: Vec<WalEntry>,
    pub state: Option<WalState>,
    pub marker: Option<SnapshotMarker>,
    /// Last log position: last entry, or a marker that jumped past the entries.
    pub last_index: u64,
    /// Largest index ever passed to release_before: entries below may be gone.
    pub release_floor: u64,
}

impl Model {
    pub fn append(&mut self, new: &[WalEntry], state: Option<&WalState>) {
        if let Some(first) = new.first() {
            self.entries.retain(|e| e.index < first.index);
            self.entries.extend_from_slice(new);
            self.last_index = new.last().expect("non-empty").index;
        }
        if let Some(state) = state {
            self.state = Some(*state);
        }
    }

    pub fn marker(&mut self, marker: SnapshotMarker) {
        self.marker = Some(marker);
        if marker.index > self.last_index {
            self.entries.clear();
            self.last_index = marker.index;
        }
    }

    pub fn release(&mut self, index: u64) {
        self.release_floor = self.release_floor.max(index);
    }

    /// Where the next append may start: just after the log, never at or below the marker.
    pub fn next_index(&self) -> u64 {
        self.last_index + 1
    }

    pub fn first_allowed_index(&self) -> u64 {
        self.marker.map_or(1, |m| m.index + 1)
    }

    /// Checks a recovery (opened with `replay_from`) against the model. Returns a message
    /// describing the first difference.
    pub fn check(&self, recovered: &Recovered, replay_from: u64) -> Result<(), String> {
        if recovered.state != self.state {
            return Err(format!(
                "state {:?} != model {:?}",
                recovered.state, self.state
            ));
        }
        if recovered.snapshot != self.marker {
            return Err(format!(
                "marker {:?} != model {:?}",
                recovered.snapshot, self.marker
            ));
        }
        let floor = replay_from.max(self.release_floor);
        let got: Vec<&WalEntry> = recovered
            .entries
            .iter()
            .filter(|e| e.index >= floor)
            .collect();
        let want: Vec<&WalEntry> = self.entries.iter().filter(|e| e.index >= floor).collect();
        if got != want {
            return Err(format!(
                "entries >= {floor}: got {:?}, model {:?}",
                got.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(),
                want.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>()
            ));
        }
        for pair in recovered.entries.windows(2) {
            if pair[1].index != pair[0].index + 1 {
                return Err(format!(
                    "gap between {} and {}",
                    pair[0].index, pair[1].index
                ));
            }
        }
        for got in &recovered.entries {
            if got.index < replay_from {
                return Err(format!(
                    "entry {} is below replay_from {replay_from}",
                    got.index
                ));
            }
            if !self.entries.contains(got) {
                return Err(format!(
                    "entry {} (term {}) is not in the model",
                    got.index, got.term
                ));
            }
        }
        Ok(())
    }
}

/// splitmix64, for seeded randomness in tests that print their seed.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
