//! `WalOptions` and `SyncMode`: the knobs an operator tunes for HDD vs SSD experiments.

use crate::error::WalError;
use crate::segment::{BLOCK_SIZE_BYTES, SEGMENT_HEADER_BYTES};

/// How `append` makes a batch durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// A batch's write, then `fdatasync` of the segment (two system calls per append; also
    /// for segment roll, and `fsync` of the directory for its names).
    Fdatasync,
    /// A batch's write *is* its sync: [`crate::DiskFile::write_durable_at`]. On
    /// [`crate::StdDisk`] that is one `pwritev2(.., RWF_DSYNC)`, which returns once the
    /// written range and the metadata needed to read it back are durable (what `fdatasync`
    /// gives for that range), saving a system call per append. [`crate::GlommioDisk`] has no
    /// such path (the trait's default, write + sync, as `Fdatasync`); [`crate::MemDisk`]
    /// models it (only the written range becomes durable).
    /// Durability is the same as `Fdatasync` (crate docs, invariant 8): every append is a
    /// single buffer holding every byte it relies on that is not durable yet. Directory
    /// changes still use `fsync` of the directory.
    Dsync,
    /// No syncs at all: etcd's `--unsafe-no-fsync`. For benchmarks only: after a power loss,
    /// acknowledged batches may be missing, and since the page cache writes back in any order,
    /// recovery may even report corruption before the tail.
    None,
}

impl SyncMode {
    /// Whether acknowledged batches must survive a power loss (every mode but `None`).
    pub fn is_durable(self) -> bool {
        match self {
            SyncMode::Fdatasync | SyncMode::Dsync => true,
            SyncMode::None => false,
        }
    }
}

/// How new segment files get their space (see `docs/tuning.md` and `docs/benchmarks.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preallocation {
    /// None: the file grows with every append, and every append's `fdatasync` also commits
    /// the new size to the file system journal (about twice as slow).
    Grow,
    /// `fallocate` to the segment size: the space is reserved as *unwritten* extents, so the
    /// first write to each block still changes file system metadata (the extent becomes
    /// written) and its `fdatasync` commits the journal.
    Fallocate,
    /// `fallocate`, then write zeros over the whole segment and sync them, in the background
    /// while the previous segment is in use ([`crate::DiskFile::zero_fill`]): appends then
    /// overwrite written blocks, and their sync (`fdatasync` or `RWF_DSYNC`) flushes data
    /// only. Costs one extra sequential write of the segment size per segment, off the append
    /// path. With [`SyncMode::None`] it is the same as `Fallocate` (nothing to gain without
    /// syncs).
    Zeroed,
}

/// Options fixed at [`crate::Wal::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// Target size of a segment file in bytes, a multiple of 4096 and at least 8192.
    /// A batch larger than a fresh segment is still written whole (that segment grows).
    pub segment_size_bytes: u64,
    /// How new segments get their space. An append into preallocated space costs about half
    /// of an append that grows the file, and into zeroed space less again (measured on an
    /// ext4 VM disk, one entry per append: p50 ~0.19 ms zeroed vs ~0.30 ms fallocated).
    pub preallocation: Preallocation,
    /// See [`SyncMode`].
    pub sync_mode: SyncMode,
}

/// Default segment size: 64 MiB, as etcd.
pub const SEGMENT_SIZE_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size_bytes: SEGMENT_SIZE_BYTES_DEFAULT,
            preallocation: Preallocation::Zeroed,
            sync_mode: SyncMode::Fdatasync,
        }
    }
}

impl WalOptions {
    pub(crate) fn validate(&self) -> Result<(), WalError> {
        let size = self.segment_size_bytes;
        if !size.is_multiple_of(BLOCK_SIZE_BYTES) {
            return Err(WalError::InvalidOptions {
                reason: format!(
                    "segment_size_bytes {size} is not a multiple of {BLOCK_SIZE_BYTES}"
                ),
            });
        }
        if size < SEGMENT_HEADER_BYTES + BLOCK_SIZE_BYTES {
            return Err(WalError::InvalidOptions {
                reason: format!(
                    "segment_size_bytes {size} is below the minimum {}",
                    SEGMENT_HEADER_BYTES + BLOCK_SIZE_BYTES
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Guards the option checks: sizes that cannot hold a header and one batch block, or that
    // would misalign batches, must be refused up front rather than produce odd segments.
    #[test]
    fn segment_size_must_be_block_aligned_and_hold_a_batch() {
        let mut options = WalOptions::default();
        assert!(options.validate().is_ok());
        options.segment_size_bytes = 8192;
        assert!(options.validate().is_ok());
        options.segment_size_bytes = 4096;
        assert!(options.validate().is_err());
        options.segment_size_bytes = 10_000;
        assert!(options.validate().is_err());
    }
}
