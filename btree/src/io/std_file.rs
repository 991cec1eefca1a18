//! `StdPageIo`: plain files (`pwrite` + `fdatasync`), read through `memmap2` mappings.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{range_within, FileMap, PageFile, PageIo};

/// Files of one directory on the local file system.
#[derive(Debug, Clone)]
pub struct StdPageIo {
    dir: PathBuf,
}

impl StdPageIo {
    /// The files of `dir` (which must exist).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StdPageIo { dir: dir.into() }
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl PageIo for StdPageIo {
    fn dir_path(&self) -> &Path {
        &self.dir
    }

    fn exists(&self, name: &str) -> io::Result<bool> {
        self.path_of(name).try_exists()
    }

    fn create_file(&self, name: &str) -> io::Result<Arc<dyn PageFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.path_of(name))?;
        Ok(Arc::new(StdFile::new(file)))
    }

    fn open_file(&self, name: &str) -> io::Result<Arc<dyn PageFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.path_of(name))?;
        Ok(Arc::new(StdFile::new(file)))
    }

    fn rename(&self, source: &str, target: &str) -> io::Result<()> {
        std::fs::rename(self.path_of(source), self.path_of(target))
    }

    fn remove_file(&self, name: &str) -> io::Result<()> {
        std::fs::remove_file(self.path_of(name))
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

/// One open file and the mapping last handed out (reused while the length is unchanged: a
/// shared mapping sees later writes through the page cache).
#[derive(Debug)]
struct StdFile {
    file: File,
    mapped: Mutex<Option<Arc<MmapView>>>,
}

impl StdFile {
    fn new(file: File) -> Self {
        StdFile {
            file,
            mapped: Mutex::new(None),
        }
    }
}

impl PageFile for StdFile {
    fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_at(&self, offset_bytes: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset_bytes)
    }

    fn write_at(&self, offset_bytes: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, offset_bytes)
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// `sync_file_range(SYNC_FILE_RANGE_WRITE)` over the range: queues writeback of its dirty
    /// pages and returns (it waits only if the device's queue is full).
    fn start_writeback(&self, offset_bytes: u64, len_bytes: u64) -> io::Result<()> {
        use std::os::unix::io::AsRawFd;
        let too_far = || io::Error::new(io::ErrorKind::InvalidInput, "range exceeds off64_t");
        let offset = libc::off64_t::try_from(offset_bytes).map_err(|_| too_far())?;
        let len = libc::off64_t::try_from(len_bytes).map_err(|_| too_far())?;
        // SAFETY: the fd is open for the whole call (`self.file` is borrowed);
        // SYNC_FILE_RANGE_WRITE only starts writeback of the file's pages and touches no
        // memory of this process.
        let rc = unsafe {
            libc::sync_file_range(
                self.file.as_raw_fd(),
                offset,
                len,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.file.set_len(len_bytes)
    }

    fn map(&self) -> io::Result<Arc<dyn FileMap>> {
        let len = self.len_bytes()?;
        let mut mapped = self
            .mapped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(view) = mapped.as_ref().filter(|view| view.len == len) {
            return Ok(Arc::clone(view) as Arc<dyn FileMap>);
        }
        let map = if len == 0 {
            None
        } else {
            let len_usize = usize::try_from(len)
                .map_err(|_| io::Error::other("file larger than the address space"))?;
            // SAFETY: the mapping is read-only and lives as long as the `MmapView` (readers hold
            // it by `Arc`). keel never shrinks a file it has mapped: a page file only grows, and
            // defragmentation writes a new file. Bytes of the mapping that a reader can reach
            // are never written while it can (crate invariant 6); other processes must not
            // modify the file (crate contract 7).
            Some(unsafe { memmap2::MmapOptions::new().len(len_usize).map(&self.file)? })
        };
        let view = Arc::new(MmapView { map, len });
        *mapped = Some(Arc::clone(&view));
        Ok(view)
    }
}

/// A read-only `mmap` of a file's first `len` bytes.
#[derive(Debug)]
struct MmapView {
    /// `None` for an empty file (an empty mapping cannot be made).
    map: Option<memmap2::Mmap>,
    len: u64,
}

impl FileMap for MmapView {
    fn len_bytes(&self) -> u64 {
        self.len
    }

    fn slice(&self, offset_bytes: u64, len_bytes: usize) -> Option<&[u8]> {
        let range = range_within(offset_bytes, len_bytes, self.len)?;
        let map = self.map.as_ref()?;
        // SAFETY: `range` lies inside the mapping (checked against its length above), which
        // stays mapped while `self` is borrowed. Only this range is turned into a shared slice,
        // and crate invariant 6 guarantees it is not written while a reader can reach it.
        Some(unsafe { std::slice::from_raw_parts(map.as_ptr().add(range.start), len_bytes) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Guards the writeback hint: the kernel takes it on a written file (the call does not
    // fail or block on this file system), and it changes nothing a reader sees.
    #[test]
    fn start_writeback_is_taken_and_leaves_the_data_as_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let io = StdPageIo::new(dir.path());
        let file = io.create_file("pages").expect("create");
        let data = vec![0xA5u8; 1 << 20];
        file.write_at(0, &data).expect("write");
        file.start_writeback(0, data.len() as u64)
            .expect("sync_file_range");
        let mut back = vec![0u8; data.len()];
        file.read_at(0, &mut back).expect("read");
        assert_eq!(back, data);
        file.sync().expect("sync");
    }
}
