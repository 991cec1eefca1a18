//! `SegmentPipeline`: prepares the next segment file ahead of need (as etcd's file_pipeline),
//! so that rolling to a new segment costs one write, one fdatasync, one rename and one
//! directory fsync instead of also a file creation and a 64 MiB `fallocate`. With
//! [`Preallocation::Zeroed`] the prepared file is also zero-filled in the background, so that
//! appends into it overwrite written blocks (cheaper `fdatasync`s).
//!
//! A prepared segment lives under a `.tmp` name and never holds acknowledged data: it is
//! renamed to its final name only after its first batch is durable. Recovery deletes `.tmp`s.

use std::path::{Path, PathBuf};

use crate::disk::{write_in_sync_mode, Disk, DiskFile};
use crate::error::WalError;
use crate::options::{Preallocation, SyncMode, WalOptions};
use crate::segment::{header_encode, tmp_file_name, SegmentId, SEGMENT_HEADER_BYTES};

/// A created (and preallocated) segment file waiting under its temporary name.
#[derive(Debug)]
pub(crate) struct PreparedSegment<F> {
    pub file: F,
    pub tmp_path: PathBuf,
    /// Sequence number it was prepared for.
    pub seq: u64,
}

#[derive(Debug)]
pub(crate) struct SegmentPipeline<F> {
    prepared: Option<PreparedSegment<F>>,
}

impl<F: DiskFile> SegmentPipeline<F> {
    pub fn new() -> Self {
        SegmentPipeline { prepared: None }
    }

    /// Makes sure a segment for sequence `seq` is prepared.
    pub async fn prepare<D: Disk<File = F>>(
        &mut self,
        disk: &D,
        dir: &Path,
        seq: u64,
        options: &WalOptions,
    ) -> Result<(), WalError> {
        if self
            .prepared
            .as_ref()
            .is_some_and(|prepared| prepared.seq == seq)
        {
            return Ok(());
        }
        if let Some(stale) = self.prepared.take() {
            discard(disk, stale).await?;
        }
        let tmp_path = dir.join(tmp_file_name(seq));
        let file = disk
            .create_file(&tmp_path)
            .await
            .map_err(WalError::io(&tmp_path))?;
        let size = options.segment_size_bytes;
        let allocated = match options.preallocation {
            Preallocation::Grow => Ok(()),
            Preallocation::Fallocate => file.allocate(size).await,
            // Returns at once; the file's next operation (the roll's write) waits for it.
            Preallocation::Zeroed if options.sync_mode.is_durable() => file.zero_fill(size).await,
            // Without syncs written blocks buy nothing, and the fill would sync.
            Preallocation::Zeroed => file.allocate(size).await,
        };
        allocated.map_err(WalError::io(&tmp_path))?;
        self.prepared = Some(PreparedSegment {
            file,
            tmp_path,
            seq,
        });
        Ok(())
    }

    /// The prepared segment for `seq`, preparing it now if the pipeline has none.
    pub async fn take<D: Disk<File = F>>(
        &mut self,
        disk: &D,
        dir: &Path,
        seq: u64,
        options: &WalOptions,
    ) -> Result<PreparedSegment<F>, WalError> {
        self.prepare(disk, dir, seq, options).await?;
        Ok(self
            .prepared
            .take()
            .expect("prepare leaves a prepared segment"))
    }

    /// Removes the prepared segment, if any (on close).
    pub async fn shutdown<D: Disk<File = F>>(&mut self, disk: &D) -> Result<(), WalError> {
        match self.prepared.take() {
            Some(prepared) => discard(disk, prepared).await,
            None => Ok(()),
        }
    }
}

async fn discard<D: Disk>(disk: &D, prepared: PreparedSegment<D::File>) -> Result<(), WalError> {
    let path = prepared.tmp_path;
    prepared.file.close().await.map_err(WalError::io(&path))?;
    disk.remove_file(&path).await.map_err(WalError::io(&path))
}

/// Turns a prepared segment into segment `id`: writes the header block followed by
/// `batch` (already encoded for block 1), syncs, renames it to its final name and syncs the
/// directory (the syncs as `sync_mode` says; none with `SyncMode::None`). Only then is the
/// segment (and the batch in it) part of the log.
///
/// Invariant 8: header and batch are one buffer, so with `SyncMode::Dsync` its one durable
/// write covers every byte the segment's first batch relies on. The file's preallocated size
/// is not among them: a segment cut short by a power loss ends cleanly after its last batch.
pub(crate) async fn segment_install<D: Disk>(
    disk: &D,
    dir: &Path,
    prepared: &PreparedSegment<D::File>,
    id: SegmentId,
    batch: impl FnOnce(&mut [u8]),
    batch_bytes: u64,
    sync_mode: SyncMode,
) -> Result<PathBuf, WalError> {
    let header_bytes = usize::try_from(SEGMENT_HEADER_BYTES).expect("one block");
    let total_bytes = usize::try_from(SEGMENT_HEADER_BYTES + batch_bytes).map_err(|_| {
        WalError::InvalidOptions {
            reason: "batch exceeds memory".to_string(),
        }
    })?;
    let mut buffer = prepared.file.alloc_buffer(total_bytes);
    let (header, rest) = buffer.as_mut().split_at_mut(header_bytes);
    header_encode(id, header);
    batch(rest);
    let tmp = &prepared.tmp_path;
    write_in_sync_mode(&prepared.file, buffer, 0, sync_mode)
        .await
        .map_err(WalError::io(tmp))?;
    let path = dir.join(id.file_name());
    disk.rename(tmp, &path).await.map_err(WalError::io(&path))?;
    if sync_mode.is_durable() {
        disk.sync_dir(dir).await.map_err(WalError::io(dir))?;
    }
    Ok(path)
}
