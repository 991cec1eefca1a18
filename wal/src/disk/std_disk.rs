//! `StdDisk`: the WAL over plain `std::fs` files (`pwrite` + `fdatasync`), for kernels or
//! sandboxes without io_uring. Its futures complete immediately (the calls block), except that
//! [`DiskFile::zero_fill`] runs on a thread of its own, which the file's next operation joins.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

use super::{Disk, DiskFile};

/// Blocking `std::fs` backend. Same on-disk format as [`super::GlommioDisk`].
#[derive(Debug, Clone, Copy, Default)]
pub struct StdDisk;

/// Zeros are written in pieces of this size.
const ZERO_CHUNK_BYTES: usize = 1 << 20;

/// An open [`StdDisk`] file.
#[derive(Debug)]
pub struct StdDiskFile {
    file: File,
    /// A background zero-fill, joined by the next operation on the file.
    filling: Mutex<Option<JoinHandle<io::Result<()>>>>,
}

impl StdDiskFile {
    fn new(file: File) -> Self {
        StdDiskFile {
            file,
            filling: Mutex::new(None),
        }
    }

    /// Waits for a background zero-fill, if one runs, and reports how it went.
    fn settle(&self) -> io::Result<()> {
        // The lock is never held across anything that can panic: a poisoned one is fine.
        let filling = self
            .filling
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match filling {
            None => Ok(()),
            Some(thread) => thread
                .join()
                .map_err(|_| io::Error::other("the WAL zero-fill thread panicked"))?,
        }
    }
}

/// `fallocate` (best effort) + zeros over `[0, len_bytes)` + `fdatasync`.
fn zero_fill_blocking(file: &File, len_bytes: u64) -> io::Result<()> {
    allocate_blocking(file, len_bytes)?;
    let zeros = vec![0u8; ZERO_CHUNK_BYTES];
    let mut offset_bytes = 0u64;
    while offset_bytes < len_bytes {
        let chunk = usize::try_from(len_bytes - offset_bytes)
            .map_or(ZERO_CHUNK_BYTES, |left| left.min(ZERO_CHUNK_BYTES));
        file.write_all_at(&zeros[..chunk], offset_bytes)?;
        offset_bytes += chunk as u64;
    }
    file.sync_data()
}

fn allocate_blocking(file: &File, len_bytes: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len_bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length exceeds off_t"))?;
    // SAFETY: fallocate only reads its integer arguments; the fd is open for the lifetime
    // of `file`, which outlives the call.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
    if rc == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::EOPNOTSUPP) {
        // File systems without fallocate: extend sparsely; appends then grow blocks lazily.
        if file.metadata()?.len() < len_bytes {
            file.set_len(len_bytes)?;
        }
        return Ok(());
    }
    Err(error)
}

impl Disk for StdDisk {
    type File = StdDiskFile;

    async fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Ok(name) = entry.file_name().into_string() {
                    names.push(name);
                }
            }
        }
        Ok(names)
    }

    async fn create_file(&self, path: &Path) -> io::Result<StdDiskFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(StdDiskFile::new(file))
    }

    async fn open_file(&self, path: &Path) -> io::Result<StdDiskFile> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(StdDiskFile::new(file))
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    async fn rename(&self, source: &Path, target: &Path) -> io::Result<()> {
        fs::rename(source, target)
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

impl DiskFile for StdDiskFile {
    type Buffer = Vec<u8>;

    fn alloc_buffer(&self, len_bytes: usize) -> Vec<u8> {
        vec![0; len_bytes]
    }

    async fn read_at(&self, offset_bytes: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.settle()?;
        let mut read = 0;
        while read < buf.len() {
            match self
                .file
                .read_at(&mut buf[read..], offset_bytes + read as u64)
            {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(read)
    }

    async fn write_at(&self, buf: Vec<u8>, offset_bytes: u64) -> io::Result<()> {
        self.settle()?;
        self.file.write_all_at(&buf, offset_bytes)
    }

    async fn sync(&self) -> io::Result<()> {
        self.settle()?;
        self.file.sync_data()
    }

    async fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.settle()?;
        self.file.set_len(len_bytes)
    }

    async fn allocate(&self, len_bytes: u64) -> io::Result<()> {
        self.settle()?;
        allocate_blocking(&self.file, len_bytes)
    }

    async fn zero_fill(&self, len_bytes: u64) -> io::Result<()> {
        self.settle()?;
        let file = self.file.try_clone()?;
        let thread = std::thread::Builder::new()
            .name("keel-wal-zero".into())
            .spawn(move || zero_fill_blocking(&file, len_bytes))?;
        *self.filling.lock().unwrap_or_else(PoisonError::into_inner) = Some(thread);
        Ok(())
    }

    async fn len_bytes(&self) -> io::Result<u64> {
        self.settle()?;
        Ok(self.file.metadata()?.len())
    }

    async fn close(self) -> io::Result<()> {
        self.settle()?;
        drop(self.file);
        Ok(())
    }
}
