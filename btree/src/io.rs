//! The I/O seam: the page file does all its I/O through [`PageIo`] (the files of one
//! directory), [`PageFile`] (positional I/O on one file) and [`FileMap`] (a read-only view of a
//! file, for readers). Two implementations: [`StdPageIo`] (`pwrite` + `fdatasync`, reads
//! through a `memmap2` mapping) and [`MemPageIo`] (in memory, with power-loss images and fault
//! injection, for tests).
//!
//! The calls are blocking. The store never calls them from `commit`; a checkpoint's I/O runs in
//! [`crate::CheckpointJob::run`], which the caller may run on any thread.

mod mem;
mod std_file;

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

pub use mem::{Faults, MemIoCounts, MemPageIo};
pub use std_file::StdPageIo;

/// The files of one directory. Cheap to clone behind an `Arc`.
pub trait PageIo: Send + Sync + fmt::Debug {
    /// The directory, for messages.
    fn dir_path(&self) -> &Path;
    /// Whether `name` exists.
    fn exists(&self, name: &str) -> io::Result<bool>;
    /// Creates `name` empty (truncating it if it exists), for reading and writing. The name is
    /// durable after [`PageIo::sync_dir`].
    fn create_file(&self, name: &str) -> io::Result<Arc<dyn PageFile>>;
    /// Opens the existing `name` for reading and writing.
    fn open_file(&self, name: &str) -> io::Result<Arc<dyn PageFile>>;
    /// Renames `source` to `target`, replacing `target`; durable after [`PageIo::sync_dir`].
    fn rename(&self, source: &str, target: &str) -> io::Result<()>;
    /// Removes `name`; durable after [`PageIo::sync_dir`].
    fn remove_file(&self, name: &str) -> io::Result<()>;
    /// Makes creations, renames and removals durable (fsync of the directory).
    fn sync_dir(&self) -> io::Result<()>;
}

/// Positional I/O on one open file.
pub trait PageFile: Send + Sync + fmt::Debug {
    /// Current length in bytes.
    fn len_bytes(&self) -> io::Result<u64>;
    /// Fills `buf` from `offset_bytes`; `UnexpectedEof` if the file is shorter.
    fn read_at(&self, offset_bytes: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes all of `data` at `offset_bytes`; durable after [`PageFile::sync`].
    fn write_at(&self, offset_bytes: u64, data: &[u8]) -> io::Result<()>;
    /// `fdatasync`: the data written so far, and the length, survive a power loss.
    fn sync(&self) -> io::Result<()>;
    /// A hint: start writing `[offset_bytes, offset_bytes + len_bytes)` back to the device
    /// now, without waiting for it, so that a later [`PageFile::sync`] has less to flush at
    /// once (and other files' syncs on the same device do not queue behind one large flush).
    /// Durability is unchanged: only `sync` makes data durable. The default does nothing.
    fn start_writeback(&self, offset_bytes: u64, len_bytes: u64) -> io::Result<()> {
        let _ = (offset_bytes, len_bytes);
        Ok(())
    }
    /// Truncates or extends (with zeros) to `len_bytes`; durable after [`PageFile::sync`].
    fn set_len(&self, len_bytes: u64) -> io::Result<()>;
    /// A read-only view of the whole file as it is now. The store maps again after every
    /// checkpoint; a view must stay readable while held, even after the file grew, was renamed
    /// over or removed.
    fn map(&self) -> io::Result<Arc<dyn FileMap>>;
}

/// A read-only view of a file, shared by readers on any thread.
///
/// Contract with the store: a range the store reads is never written while a reader can reach
/// it (the reclamation rule, crate invariant 6), so a returned slice never changes under its
/// reader.
pub trait FileMap: Send + Sync {
    /// Bytes the view covers.
    fn len_bytes(&self) -> u64;
    /// `len_bytes` bytes at `offset_bytes`, or `None` if that is beyond the view. The slice's
    /// start is aligned to 8 bytes whenever `offset_bytes` is.
    fn slice(&self, offset_bytes: u64, len_bytes: usize) -> Option<&[u8]>;
}

/// `offset..offset + len` inside `total`, as a `usize` range, or `None` when it does not fit.
pub(crate) fn range_within(
    offset_bytes: u64,
    len_bytes: usize,
    total_bytes: u64,
) -> Option<std::ops::Range<usize>> {
    let end = offset_bytes.checked_add(len_bytes as u64)?;
    if end > total_bytes {
        return None;
    }
    let start = usize::try_from(offset_bytes).ok()?;
    Some(start..start + len_bytes)
}
