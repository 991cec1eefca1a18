//! The durable Raft log: keel-wal under keel-raft's in-memory log storage.
//!
//! Raft's `MemStorage` holds the entries Raft may still need to read (to
//! send to followers, to check terms); the WAL holds what survives a crash.
//! Every Ready's entries and hard state are appended to the WAL (one write
//! and one fdatasync, or one durable `RWF_DSYNC` write with `--wal-sync
//! dsync`) and only then to `MemStorage`.

use std::path::Path;

use keel_raft::{Entry, EntryKind, HardState, LogIndex, NodeId, Term};
use keel_wal::{GlommioDisk, Recovered, StdDisk, Wal, WalEntry, WalError, WalOptions, WalState};

use crate::config::StorageIo;

const ENTRY_KIND_NORMAL: u8 = 0;
const ENTRY_KIND_CONF_CHANGE: u8 = 1;

/// The WAL on the chosen I/O backend.
pub(crate) enum WalBackend {
    Glommio(Box<Wal<GlommioDisk>>),
    Std(Box<Wal<StdDisk>>),
}

impl WalBackend {
    /// Opens (creating if empty) the WAL in `dir` and recovers it.
    pub(crate) async fn open(
        io: StorageIo,
        dir: &Path,
        options: WalOptions,
        replay_from: u64,
    ) -> Result<(Self, Recovered), WalError> {
        match io {
            StorageIo::Glommio => {
                let (wal, recovered) = Wal::open(GlommioDisk, dir, options, replay_from).await?;
                Ok((WalBackend::Glommio(Box::new(wal)), recovered))
            }
            StorageIo::Std => {
                let (wal, recovered) = Wal::open(StdDisk, dir, options, replay_from).await?;
                Ok((WalBackend::Std(Box::new(wal)), recovered))
            }
        }
    }

    /// One write + one sync for the whole batch.
    pub(crate) async fn append(
        &mut self,
        entries: &[WalEntry],
        state: Option<&WalState>,
    ) -> Result<(), WalError> {
        match self {
            WalBackend::Glommio(wal) => wal.append(entries, state).await,
            WalBackend::Std(wal) => wal.append(entries, state).await,
        }
    }

    /// Durably records that the log continues after a snapshot at `index`.
    pub(crate) async fn save_snapshot_marker(
        &mut self,
        index: u64,
        term: u64,
    ) -> Result<(), WalError> {
        let marker = keel_wal::SnapshotMarker { index, term };
        match self {
            WalBackend::Glommio(wal) => wal.save_snapshot_marker(marker).await,
            WalBackend::Std(wal) => wal.save_snapshot_marker(marker).await,
        }
    }

    /// Deletes whole segments whose entries are all below `index`.
    pub(crate) async fn release_before(&mut self, index: u64) -> Result<(), WalError> {
        match self {
            WalBackend::Glommio(wal) => wal.release_before(index).await,
            WalBackend::Std(wal) => wal.release_before(index).await,
        }
    }

    pub(crate) async fn close(self) -> Result<(), WalError> {
        match self {
            WalBackend::Glommio(wal) => wal.close().await,
            WalBackend::Std(wal) => wal.close().await,
        }
    }
}

pub(crate) fn to_wal_entry(entry: &Entry) -> WalEntry {
    WalEntry {
        index: entry.index.0,
        term: entry.term.0,
        kind: match entry.kind {
            EntryKind::Normal => ENTRY_KIND_NORMAL,
            EntryKind::ConfChange => ENTRY_KIND_CONF_CHANGE,
        },
        data: entry.data.clone(),
    }
}

/// A recovered WAL record back into a Raft entry; an unknown kind byte means
/// the WAL was written by a newer keel (or is damaged past its checksums).
pub(crate) fn from_wal_entry(entry: WalEntry) -> Result<Entry, String> {
    let kind = match entry.kind {
        ENTRY_KIND_NORMAL => EntryKind::Normal,
        ENTRY_KIND_CONF_CHANGE => EntryKind::ConfChange,
        other => {
            return Err(format!(
                "WAL entry {} has unknown kind {other}",
                entry.index
            ))
        }
    };
    Ok(Entry {
        term: Term(entry.term),
        index: LogIndex(entry.index),
        kind,
        data: entry.data,
    })
}

pub(crate) fn to_wal_state(state: &HardState) -> WalState {
    WalState {
        term: state.term.0,
        vote: state.vote.map_or(0, |v| v.0),
        commit: state.commit.0,
    }
}

pub(crate) fn from_wal_state(state: &WalState) -> HardState {
    HardState {
        term: Term(state.term),
        vote: (state.vote != 0).then_some(NodeId(state.vote)),
        commit: LogIndex(state.commit),
    }
}
