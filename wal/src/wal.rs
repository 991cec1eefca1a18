//! `Wal`: open (with recovery), append (one write + one sync per batch, or one durable write
//! with [`SyncMode::Dsync`]; rolling segments when full), snapshot markers, release of old
//! segments, close.

use std::path::{Path, PathBuf};

use futures::future::join;

use crate::batch::BatchEncoder;
use crate::disk::{write_in_sync_mode, Disk, DiskFile};
use crate::entry::{Recovered, SnapshotMarker, WalEntry, WalState};
use crate::error::WalError;
use crate::options::{SyncMode, WalOptions};
use crate::pipeline::{segment_install, SegmentPipeline};
use crate::record::{Record, ENTRY_PAYLOAD_OVERHEAD_BYTES_MAX, RECORD_PAYLOAD_BYTES_MAX};
use crate::recovery::{recover, ActiveSegment, SegmentMeta};
use crate::replay::{first_index_fold, LogPosition, MarkerEffect, SegmentStats};
use crate::segment::{SegmentId, BLOCK_SIZE_BYTES, SEGMENT_HEADER_BYTES};

/// The write-ahead log. See the crate docs for the contract and invariants.
pub struct Wal<D: Disk> {
    disk: D,
    dir: PathBuf,
    options: WalOptions,
    /// Oldest first, never empty; the last one is the active segment.
    segments: Vec<SegmentMeta>,
    active: ActiveSegment<D::File>,
    pipeline: SegmentPipeline<D::File>,
    position: LogPosition,
    state: Option<WalState>,
    marker: Option<SnapshotMarker>,
    encoder: BatchEncoder,
    /// Set when a write or sync failed after it may have reached the disk (invariant 7).
    poisoned: bool,
}

impl<D: Disk> std::fmt::Debug for Wal<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .field("write_offset_bytes", &self.active.write_offset_bytes)
            .field("position", &self.position)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

/// The records of one batch besides the entries.
struct BatchExtras<'a> {
    state: Option<&'a WalState>,
    marker: Option<&'a SnapshotMarker>,
}

impl<D: Disk> Wal<D> {
    /// Opens the WAL in `dir` (creating the directory and a first segment if there is none)
    /// and recovers it. Entries with index < `replay_from` are verified but not returned.
    pub async fn open(
        disk: D,
        dir: &Path,
        options: WalOptions,
        replay_from: u64,
    ) -> Result<(Self, Recovered), WalError> {
        options.validate()?;
        disk.create_dir_all(dir).await.map_err(WalError::io(dir))?;
        let mut outcome = recover(&disk, dir, &options, replay_from).await?;
        let recovered = outcome.recovered();
        let mut pipeline = SegmentPipeline::new();
        let (segments, active) = match outcome.active {
            Some(active) => (outcome.segments, active),
            None => {
                let id = SegmentId {
                    seq: 0,
                    first_index: 1,
                };
                let prepared = pipeline.take(&disk, dir, id.seq, &options).await?;
                // The first segment is made durable even without syncs: it costs once.
                let sync_mode = match options.sync_mode {
                    SyncMode::None => SyncMode::Fdatasync,
                    durable => durable,
                };
                let path = segment_install(&disk, dir, &prepared, id, |_| {}, 0, sync_mode).await?;
                let meta = SegmentMeta {
                    id,
                    path,
                    stats: SegmentStats::default(),
                };
                let active = ActiveSegment {
                    file: prepared.file,
                    write_offset_bytes: SEGMENT_HEADER_BYTES,
                };
                (vec![meta], active)
            }
        };
        let seq_next = segments.last().expect("at least one segment").id.seq + 1;
        pipeline.prepare(&disk, dir, seq_next, &options).await?;
        let wal = Wal {
            disk,
            dir: dir.to_path_buf(),
            options,
            segments,
            active,
            pipeline,
            position: outcome.replay.position,
            state: outcome.replay.state,
            marker: outcome.replay.marker,
            encoder: BatchEncoder::default(),
            poisoned: false,
        };
        debug_assert_eq!(
            first_index_fold(wal.segments.iter().map(|s| &s.stats)),
            wal.position.first,
            "segment stats and replay agree on the first index"
        );
        Ok((wal, recovered))
    }

    /// Index of the last entry (or of a snapshot marker past the entries); 0 when empty.
    pub fn last_index(&self) -> u64 {
        self.position.last_index()
    }

    /// Index of the first entry still on disk; 0 if there is none.
    pub fn first_index(&self) -> u64 {
        self.position.first_index()
    }

    /// Appends `entries` (contiguous; `entries[0].index` may be <= `last_index()` to replace
    /// that suffix) and then `state`, with one write and one sync (`SyncMode::Fdatasync`), one
    /// durable write (`SyncMode::Dsync`) or one write (`SyncMode::None`).
    /// When this returns `Ok`, the whole batch survives a power loss; if it returns `Err`, the
    /// batch is either entirely present or entirely absent after recovery (invariant 3).
    pub async fn append(
        &mut self,
        entries: &[WalEntry],
        state: Option<&WalState>,
    ) -> Result<(), WalError> {
        self.writable()?;
        self.entries_check(entries)?;
        if entries.is_empty() && state.is_none() {
            return Ok(());
        }
        self.batch_write(
            entries,
            BatchExtras {
                state,
                marker: None,
            },
        )
        .await?;
        let stats = &mut self.segments.last_mut().expect("active segment").stats;
        for entry in entries {
            self.position.entry(entry.index);
            stats.entry(entry.index);
        }
        if let Some(state) = state {
            self.state = Some(*state);
        }
        Ok(())
    }

    /// Durably records a snapshot marker. A marker past `last_index()` means a snapshot was
    /// installed: all entries are dropped and the log continues at `marker.index + 1`.
    pub async fn save_snapshot_marker(&mut self, marker: SnapshotMarker) -> Result<(), WalError> {
        self.writable()?;
        self.batch_write(
            &[],
            BatchExtras {
                state: None,
                marker: Some(&marker),
            },
        )
        .await?;
        self.marker = Some(marker);
        if self.position.marker(marker.index) == MarkerEffect::Jumped {
            self.segments
                .last_mut()
                .expect("active segment")
                .stats
                .jump();
        }
        Ok(())
    }

    /// Deletes, oldest first, whole segments whose entries are all < `index`, never the
    /// active one. Each removal is made durable before the next (invariant 6).
    pub async fn release_before(&mut self, index: u64) -> Result<(), WalError> {
        self.writable()?;
        // Invariant 6: the segment holding the last entry record stays, even if its entries
        // are all < index, so a reopen still knows where the log ends.
        let keep_from = self
            .segments
            .iter()
            .rposition(|segment| segment.stats.entry_index_max.is_some())
            .unwrap_or(self.segments.len() - 1);
        for _ in 0..keep_from {
            let oldest = &self.segments[0];
            if oldest.stats.entry_index_max.is_some_and(|max| max >= index) {
                break;
            }
            let path = oldest.path.clone();
            self.disk
                .remove_file(&path)
                .await
                .map_err(WalError::io(&path))?;
            self.segments.remove(0);
            self.position.first = first_index_fold(self.segments.iter().map(|s| &s.stats));
            if self.options.sync_mode.is_durable() {
                self.disk
                    .sync_dir(&self.dir)
                    .await
                    .map_err(WalError::io(&self.dir))?;
            }
            tracing::debug!(segment = %path.display(), "wal: released segment");
        }
        Ok(())
    }

    /// Closes the active segment and removes the prepared one.
    pub async fn close(mut self) -> Result<(), WalError> {
        let path = self.active_path().to_path_buf();
        self.pipeline.shutdown(&self.disk).await?;
        self.active.file.close().await.map_err(WalError::io(&path))
    }

    fn writable(&self) -> Result<(), WalError> {
        if self.poisoned {
            return Err(WalError::Poisoned);
        }
        Ok(())
    }

    fn active_path(&self) -> &Path {
        &self.segments.last().expect("active segment").path
    }

    /// Caller-contract checks for an append (errors, not asserts: they come from a peer's log).
    fn entries_check(&self, entries: &[WalEntry]) -> Result<(), WalError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.index == 0 {
            return Err(WalError::NonContiguous {
                expected: 1,
                got: 0,
            });
        }
        let last = self.last_index();
        if last > 0 && first.index > last + 1 {
            return Err(WalError::NonContiguous {
                expected: last + 1,
                got: first.index,
            });
        }
        if let Some(marker) = self.marker {
            // Invariant 2: entries never go at or below the snapshot.
            if first.index <= marker.index {
                return Err(WalError::NonContiguous {
                    expected: marker.index + 1,
                    got: first.index,
                });
            }
        }
        for pair in entries.windows(2) {
            if pair[1].index != pair[0].index + 1 {
                return Err(WalError::NonContiguous {
                    expected: pair[0].index + 1,
                    got: pair[1].index,
                });
            }
        }
        let size_bytes_max = RECORD_PAYLOAD_BYTES_MAX - ENTRY_PAYLOAD_OVERHEAD_BYTES_MAX;
        if let Some(big) = entries
            .iter()
            .find(|e| e.data.len() as u64 > size_bytes_max)
        {
            return Err(WalError::EntryTooLarge {
                index: big.index,
                size_bytes: big.data.len() as u64,
                size_bytes_max,
            });
        }
        Ok(())
    }

    fn batch_encode(&mut self, entries: &[WalEntry], extras: &BatchExtras<'_>, roll: bool) {
        self.encoder.clear();
        if roll {
            // Invariant 6: every segment carries the latest marker and state, so releasing
            // older segments never loses them. Copies go first: any prefix of the batch
            // that survives a crash is a valid log.
            if let Some(marker) = self.marker {
                self.encoder.push(&Record::SnapshotMarker(marker));
            }
            if let Some(state) = self.state {
                self.encoder.push(&Record::State(state));
            }
        }
        for entry in entries {
            self.encoder.push(&Record::Entry(entry.clone()));
        }
        if let Some(state) = extras.state {
            self.encoder.push(&Record::State(*state));
        }
        if let Some(marker) = extras.marker {
            self.encoder.push(&Record::SnapshotMarker(*marker));
        }
    }

    /// Encodes and writes one batch, rolling to a new segment if it does not fit.
    async fn batch_write(
        &mut self,
        entries: &[WalEntry],
        extras: BatchExtras<'_>,
    ) -> Result<(), WalError> {
        self.batch_encode(entries, &extras, false);
        let offset = self.active.write_offset_bytes;
        let fits = offset + self.encoder.batch_bytes() <= self.options.segment_size_bytes;
        if fits || offset == SEGMENT_HEADER_BYTES {
            return self.batch_write_in_place().await;
        }
        self.batch_encode(entries, &extras, true);
        let first_index = entries
            .first()
            .map_or(self.last_index() + 1, |entry| entry.index);
        self.batch_write_roll(first_index).await
    }

    /// Writes the encoded batch at the end of the active segment, while the pipeline prepares
    /// the next segment if it has none (overlapping on io_uring).
    async fn batch_write_in_place(&mut self) -> Result<(), WalError> {
        let offset = self.active.write_offset_bytes;
        let batch_bytes = self.encoder.batch_bytes();
        let batch_block = block_of(offset)?;
        let len = usize::try_from(batch_bytes).map_err(|_| too_large())?;
        let mut buffer = self.active.file.alloc_buffer(len);
        self.encoder.write_into(buffer.as_mut(), batch_block);
        let seq_next = self.segments.last().expect("active segment").id.seq + 1;
        // Invariant 8: the batch is this one buffer; every earlier byte of the segment (its
        // header, earlier batches, a recovered tail cut) was durable before, so a durable
        // write of this range makes exactly what write + fdatasync makes durable.
        let write = write_in_sync_mode(&self.active.file, buffer, offset, self.options.sync_mode);
        let prepare = self
            .pipeline
            .prepare(&self.disk, &self.dir, seq_next, &self.options);
        let (written, prepared) = join(write, prepare).await;
        if let Err(error) = prepared {
            // Not fatal: the roll prepares synchronously and reports it if it fails again.
            tracing::warn!(%error, "wal: preparing the next segment failed");
        }
        if let Err(source) = written {
            self.poisoned = true;
            return Err(WalError::Io {
                path: self.active_path().to_path_buf(),
                source,
            });
        }
        self.active.write_offset_bytes = offset + batch_bytes;
        Ok(())
    }

    /// Moves to a new segment whose first batch is the encoded one.
    async fn batch_write_roll(&mut self, first_index: u64) -> Result<(), WalError> {
        let seq = self.segments.last().expect("active segment").id.seq + 1;
        let id = SegmentId { seq, first_index };
        let prepared = self
            .pipeline
            .take(&self.disk, &self.dir, seq, &self.options)
            .await?;
        let batch_bytes = self.encoder.batch_bytes();
        let encoder = &self.encoder;
        let block = block_of(SEGMENT_HEADER_BYTES)?;
        let installed = segment_install(
            &self.disk,
            &self.dir,
            &prepared,
            id,
            |out| encoder.write_into(out, block),
            batch_bytes,
            self.options.sync_mode,
        )
        .await;
        let path = match installed {
            Ok(path) => path,
            Err(error) => {
                self.poisoned = true;
                return Err(error);
            }
        };
        let previous = std::mem::replace(
            &mut self.active,
            ActiveSegment {
                file: prepared.file,
                write_offset_bytes: SEGMENT_HEADER_BYTES + batch_bytes,
            },
        );
        self.segments.push(SegmentMeta {
            id,
            path,
            stats: SegmentStats::default(),
        });
        tracing::debug!(seq, first_index, "wal: rolled to a new segment");
        if let Err(error) = previous.file.close().await {
            // Its data was synced before the roll; a failed close loses nothing.
            tracing::warn!(%error, "wal: closing the previous segment failed");
        }
        Ok(())
    }
}

fn too_large() -> WalError {
    WalError::InvalidOptions {
        reason: "batch or segment exceeds the addressable size".to_string(),
    }
}

/// The block number recorded in the frames of a batch starting at `offset_bytes`.
fn block_of(offset_bytes: u64) -> Result<u32, WalError> {
    assert_eq!(
        offset_bytes % BLOCK_SIZE_BYTES,
        0,
        "batches start on block boundaries"
    );
    u32::try_from(offset_bytes / BLOCK_SIZE_BYTES).map_err(|_| too_large())
}
