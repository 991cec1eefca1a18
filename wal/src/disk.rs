//! The I/O seam: `Disk` (directory operations) and `DiskFile` (positional file I/O). The WAL
//! does all I/O through these traits; three implementations share one on-disk format:
//! [`GlommioDisk`] (O_DIRECT via io_uring), [`StdDisk`] (pwrite + fdatasync, or
//! pwritev2 + RWF_DSYNC) and [`MemDisk`] (in memory, with power-loss images and fault
//! injection for tests).

mod glommio_disk;
mod mem_disk;
mod std_disk;

use std::io;
use std::path::Path;

use crate::options::SyncMode;

pub use glommio_disk::{GlommioBuffer, GlommioDisk, GlommioDiskFile};
pub use mem_disk::{MemDisk, MemDiskFile, TornWrite, MEM_SECTOR_BYTES};
pub use std_disk::{StdDisk, StdDiskFile};

/// Directory-level operations. Implementations are cheap handles (`Clone` is not required by
/// the WAL, but all three provided ones are).
///
/// The futures need not be `Send`: the WAL runs on one glommio core thread, and glommio's own
/// futures are `!Send`.
#[allow(async_fn_in_trait)] // Deliberately no Send bound: see above.
pub trait Disk {
    /// An open file of this disk.
    type File: DiskFile;

    /// Creates `dir` and its parents if missing.
    async fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// File names (not paths) of the regular files in `dir`, in no particular order.
    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates `path` (truncating it if it exists), open for reading and writing. The new
    /// name is durable only after [`Disk::sync_dir`] of its directory.
    async fn create_file(&self, path: &Path) -> io::Result<Self::File>;
    /// Opens an existing file for reading and writing.
    async fn open_file(&self, path: &Path) -> io::Result<Self::File>;
    /// Removes `path`; durable after [`Disk::sync_dir`].
    async fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Renames `source` to `target` (replacing `target`); durable after [`Disk::sync_dir`].
    async fn rename(&self, source: &Path, target: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable: fsync(dir).
    async fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// Positional I/O on one open file.
///
/// Writes are whole, block-aligned buffers handed out by [`DiskFile::alloc_buffer`] (for
/// [`GlommioDisk`] that is DMA memory suitable for O_DIRECT).
#[allow(async_fn_in_trait)] // Deliberately no Send bound: see `Disk`.
pub trait DiskFile {
    /// A write buffer of this file.
    type Buffer: AsRef<[u8]> + AsMut<[u8]>;

    /// A buffer of exactly `len_bytes` bytes (a multiple of 4096) with unspecified contents.
    fn alloc_buffer(&self, len_bytes: usize) -> Self::Buffer;
    /// Reads up to `buf.len()` bytes at `offset_bytes`; returns how many were read, which is
    /// less than `buf.len()` only at the end of the file.
    async fn read_at(&self, offset_bytes: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes the whole buffer at `offset_bytes` (a multiple of 4096).
    async fn write_at(&self, buf: Self::Buffer, offset_bytes: u64) -> io::Result<()>;
    /// `fdatasync`: data written so far, and the file size, survive a power loss.
    async fn sync(&self) -> io::Result<()>;
    /// Writes the whole buffer at `offset_bytes` (a multiple of 4096) *durably*: when it
    /// returns `Ok`, these bytes, and the file size needed to read them back, survive a power
    /// loss. Other unsynced writes of the file need not: only this range is promised (Linux
    /// `RWF_DSYNC` syncs just the written range). On `Err` the bytes may be absent, present
    /// or partly present after a power loss. The default is [`DiskFile::write_at`] then
    /// [`DiskFile::sync`], which makes more durable than promised.
    async fn write_durable_at(&self, buf: Self::Buffer, offset_bytes: u64) -> io::Result<()> {
        self.write_at(buf, offset_bytes).await?;
        self.sync().await
    }
    /// Truncates or extends (with zeros) the file to `len_bytes`; durable after `sync`.
    async fn set_len(&self, len_bytes: u64) -> io::Result<()>;
    /// Preallocates (`fallocate`) the file to at least `len_bytes`; new bytes read as zeros.
    async fn allocate(&self, len_bytes: u64) -> io::Result<()>;
    /// Overwrites `[0, len_bytes)` (a multiple of 4096) with zeros and syncs them, extending
    /// the file, for a new file that holds nothing yet. The work runs in the background: the
    /// call returns once it started, and every later operation on this file first waits for it
    /// to finish (and fails with its error if it failed). What it buys is speed only: later
    /// overwrites of written blocks need no file system metadata update at `sync`.
    async fn zero_fill(&self, len_bytes: u64) -> io::Result<()>;
    /// Current file length in bytes.
    async fn len_bytes(&self) -> io::Result<u64>;
    /// Closes the file.
    async fn close(self) -> io::Result<()>;
}

/// Writes `buf` at `offset_bytes` as `sync_mode` says: durable by a write then a sync
/// (`Fdatasync`), durable by one durable write (`Dsync`), or just written (`None`).
pub(crate) async fn write_in_sync_mode<F: DiskFile>(
    file: &F,
    buf: F::Buffer,
    offset_bytes: u64,
    sync_mode: SyncMode,
) -> io::Result<()> {
    match sync_mode {
        SyncMode::Fdatasync => {
            file.write_at(buf, offset_bytes).await?;
            file.sync().await
        }
        SyncMode::Dsync => file.write_durable_at(buf, offset_bytes).await,
        SyncMode::None => file.write_at(buf, offset_bytes).await,
    }
}
