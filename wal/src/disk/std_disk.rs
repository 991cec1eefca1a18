//! `StdDisk`: the WAL over plain `std::fs` files (`pwrite` + `fdatasync`), for kernels or
//! sandboxes without io_uring. Its futures complete immediately (the calls block).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use super::{Disk, DiskFile};

/// Blocking `std::fs` backend. Same on-disk format as [`super::GlommioDisk`].
#[derive(Debug, Clone, Copy, Default)]
pub struct StdDisk;

/// An open [`StdDisk`] file.
#[derive(Debug)]
pub struct StdDiskFile {
    file: File,
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
        Ok(StdDiskFile { file })
    }

    async fn open_file(&self, path: &Path) -> io::Result<StdDiskFile> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(StdDiskFile { file })
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
        self.file.write_all_at(&buf, offset_bytes)
    }

    async fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    async fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.file.set_len(len_bytes)
    }

    async fn allocate(&self, len_bytes: u64) -> io::Result<()> {
        let len = libc::off_t::try_from(len_bytes)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length exceeds off_t"))?;
        // SAFETY: fallocate only reads its integer arguments; the fd is open for the lifetime
        // of `self.file`, which outlives the call.
        let rc = unsafe { libc::fallocate(self.file.as_raw_fd(), 0, 0, len) };
        if rc == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::EOPNOTSUPP) {
            // File systems without fallocate: extend sparsely; appends then grow blocks lazily.
            if self.file.metadata()?.len() < len_bytes {
                self.file.set_len(len_bytes)?;
            }
            return Ok(());
        }
        Err(error)
    }

    async fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    async fn close(self) -> io::Result<()> {
        drop(self.file);
        Ok(())
    }
}
