//! `StdDisk`: the WAL over plain `std::fs` files (`pwrite` + `fdatasync`, or one
//! `pwritev2(.., RWF_DSYNC)` for [`DiskFile::write_durable_at`]). Its futures complete
//! immediately (the calls block), except that [`DiskFile::zero_fill`] runs on a thread of its
//! own, which the file's next operation joins.
//!
//! `write_durable_at` falls back to `pwrite` + `fdatasync` for a file whose kernel or file
//! system refuses `RWF_DSYNC` (`EOPNOTSUPP`, `EINVAL`, `ENOSYS`: Linux before 4.7, seccomp
//! filters), remembers that for the file and warns once per process. A short durable write
//! (its written prefix is durable) is finished with plain writes and one `fdatasync`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

use super::{Disk, DiskFile};

/// Blocking `std::fs` backend. Same on-disk format as [`super::GlommioDisk`].
#[derive(Debug, Clone, Copy, Default)]
pub struct StdDisk;

/// Zeros are written in pieces of this size.
const ZERO_CHUNK_BYTES: usize = 1 << 20;

/// Set once a file refused `RWF_DSYNC`, so the warning is logged once per process.
static DSYNC_REFUSAL_WARNED: AtomicBool = AtomicBool::new(false);

/// An open [`StdDisk`] file.
#[derive(Debug)]
pub struct StdDiskFile {
    file: File,
    /// A background zero-fill, joined by the next operation on the file.
    filling: Mutex<Option<JoinHandle<io::Result<()>>>>,
    /// The `pwritev2` flags of a durable write: `RWF_DSYNC` (tests add an unknown bit to
    /// see the kernel refuse it).
    dsync_flags: libc::c_int,
    /// Set when the kernel refused `dsync_flags` for this file: durable writes are then
    /// `pwrite` + `fdatasync`.
    dsync_refused: AtomicBool,
}

impl StdDiskFile {
    fn new(file: File) -> Self {
        StdDiskFile {
            file,
            filling: Mutex::new(None),
            dsync_flags: libc::RWF_DSYNC,
            dsync_refused: AtomicBool::new(false),
        }
    }

    /// `write_all_at` + `fdatasync`: the durable write without `RWF_DSYNC`.
    fn write_then_sync(&self, buf: &[u8], offset_bytes: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset_bytes)?;
        self.file.sync_data()
    }

    /// A durable write whose `RWF_DSYNC` attempts are `attempt` (tests pass a fake to
    /// reach the short-write path), with the fallbacks of the module docs.
    fn write_durable_blocking(
        &self,
        buf: &[u8],
        offset_bytes: u64,
        attempt: impl FnMut(&[u8], u64) -> io::Result<usize>,
    ) -> io::Result<()> {
        if self.dsync_refused.load(Ordering::Relaxed) {
            return self.write_then_sync(buf, offset_bytes);
        }
        match dsync_write(buf, offset_bytes, attempt)? {
            DsyncOutcome::Done => Ok(()),
            DsyncOutcome::Short { written_bytes } => {
                // The written prefix is durable (RWF_DSYNC syncs what it wrote); the rest
                // gets the classic path, whose fdatasync covers it.
                self.write_then_sync(&buf[written_bytes..], offset_bytes + written_bytes as u64)
            }
            DsyncOutcome::Refused(error) => {
                self.dsync_refused_note(&error);
                self.write_then_sync(buf, offset_bytes)
            }
        }
    }

    /// Remembers that this file refuses `RWF_DSYNC` and warns (once per process).
    fn dsync_refused_note(&self, error: &io::Error) {
        self.dsync_refused.store(true, Ordering::Relaxed);
        if !DSYNC_REFUSAL_WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                %error,
                "wal: pwritev2(RWF_DSYNC) is refused here; durable writes fall back to \
                 pwrite + fdatasync"
            );
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

/// How far a durable write got with `RWF_DSYNC`.
#[derive(Debug)]
enum DsyncOutcome {
    /// All of it is written and durable.
    Done,
    /// The first `written_bytes` (fewer than all) are written and durable; the rest is not
    /// written.
    Short { written_bytes: usize },
    /// The kernel refused the flag before writing anything (the error says why).
    Refused(io::Error),
}

/// Whether `error` from `pwritev2` means "no `RWF_DSYNC` here" rather than an I/O failure:
/// `EOPNOTSUPP` (unknown flag), `EINVAL` (flags on an old kernel or file type), `ENOSYS`
/// (no `pwritev2`; glibc also maps a missing system call with flags to `EOPNOTSUPP`).
fn dsync_refusal(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ENOSYS)
    )
}

/// One durable write: `attempt(buf, offset_bytes)` is `pwritev2` with the durable flag,
/// returning the bytes written. Retries `EINTR`; a refusal becomes [`DsyncOutcome::Refused`],
/// any other error (or an impossible count) is returned.
fn dsync_write(
    buf: &[u8],
    offset_bytes: u64,
    mut attempt: impl FnMut(&[u8], u64) -> io::Result<usize>,
) -> io::Result<DsyncOutcome> {
    loop {
        match attempt(buf, offset_bytes) {
            Ok(written) if written == buf.len() => return Ok(DsyncOutcome::Done),
            // As write_all: a regular file that takes no byte of a non-empty write is full.
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("a durable write of {} bytes wrote nothing", buf.len()),
                ))
            }
            Ok(written) if written < buf.len() => {
                return Ok(DsyncOutcome::Short {
                    written_bytes: written,
                })
            }
            Ok(written) => {
                return Err(io::Error::other(format!(
                    "pwritev2 reported {written} bytes written of {}",
                    buf.len()
                )))
            }
            // EINTR: nothing was written. Retried without a bound, as std's write_all does.
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) if dsync_refusal(&error) => return Ok(DsyncOutcome::Refused(error)),
            Err(error) => return Err(error),
        }
    }
}

/// `pwritev2(fd, [buf], offset_bytes, flags)`: bytes written, or the OS error.
fn pwritev2(file: &File, buf: &[u8], offset_bytes: u64, flags: libc::c_int) -> io::Result<usize> {
    let offset = libc::off_t::try_from(offset_bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset exceeds off_t"))?;
    let iov = libc::iovec {
        iov_base: buf.as_ptr().cast_mut().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: `iov` points at `buf`, which is valid for reads of `buf.len()` bytes for the
    // whole call (the kernel only reads through it for a write); the iovec array of length 1
    // lives on this stack frame; the fd stays open because `file` is borrowed for the call.
    let written = unsafe { libc::pwritev2(file.as_raw_fd(), &iov, 1, offset, flags) };
    // A negative return is the error flag; any other value is a byte count <= buf.len().
    usize::try_from(written).map_err(|_| io::Error::last_os_error())
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

    /// One `pwritev2(.., RWF_DSYNC)` (see the module docs for the fallbacks).
    async fn write_durable_at(&self, buf: Vec<u8>, offset_bytes: u64) -> io::Result<()> {
        self.settle()?;
        self.write_durable_blocking(&buf, offset_bytes, |rest, at| {
            pwritev2(&self.file, rest, at, self.dsync_flags)
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    fn errno(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    fn temp_file(dir: &tempfile::TempDir) -> StdDiskFile {
        block_on(StdDisk.create_file(&dir.path().join("f"))).expect("create file")
    }

    fn read_all(file: &StdDiskFile) -> Vec<u8> {
        let mut bytes = vec![0u8; 64 * 1024];
        let read = block_on(file.read_at(0, &mut bytes)).expect("read");
        bytes.truncate(read);
        bytes
    }

    // Guards the attempt loop's reading of pwritev2's answers: EINTR is retried, a short
    // write reports how much landed, the three refusals become a fallback, and a real I/O
    // error or a write of nothing is an error (never a silent success).
    #[test]
    fn dsync_attempts_retry_interrupts_and_classify_short_writes_refusals_and_errors() {
        let buf = [7u8; 100];
        let mut answers = vec![Ok(100), Err(errno(libc::EINTR)), Err(errno(libc::EINTR))];
        let outcome = dsync_write(&buf, 0, |_, _| answers.pop().expect("an answer"));
        assert!(matches!(outcome, Ok(DsyncOutcome::Done)), "{outcome:?}");
        assert!(answers.is_empty(), "both interrupts were retried");

        let outcome = dsync_write(&buf, 0, |_, _| Ok(40));
        assert!(
            matches!(outcome, Ok(DsyncOutcome::Short { written_bytes: 40 })),
            "{outcome:?}"
        );

        for code in [libc::EOPNOTSUPP, libc::EINVAL, libc::ENOSYS] {
            match dsync_write(&buf, 0, |_, _| Err(errno(code))) {
                Ok(DsyncOutcome::Refused(error)) => assert_eq!(error.raw_os_error(), Some(code)),
                other => panic!("errno {code}: expected a refusal, got {other:?}"),
            }
        }
        let error = dsync_write(&buf, 0, |_, _| Err(errno(libc::EIO))).expect_err("EIO");
        assert_eq!(error.raw_os_error(), Some(libc::EIO));
        let error = dsync_write(&buf, 0, |_, _| Ok(0)).expect_err("nothing written");
        assert_eq!(error.kind(), io::ErrorKind::WriteZero);
    }

    // Guards the real RWF_DSYNC path: the bytes land where asked, extend the file, and the
    // file is not marked as refusing the flag (this kernel, Linux >= 4.7, supports it).
    #[test]
    fn durable_writes_land_with_rwf_dsync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = temp_file(&dir);
        block_on(file.write_durable_at(vec![1; 4096], 0)).expect("first");
        block_on(file.write_durable_at(vec![2; 8192], 4096)).expect("second");
        assert!(!file.dsync_refused.load(Ordering::Relaxed));
        let mut want = vec![1u8; 4096];
        want.extend([2u8; 8192]);
        assert_eq!(read_all(&file), want);
    }

    // Guards the fallback: a kernel that refuses the flag (forced here with an unknown flag
    // bit, which Linux answers with EOPNOTSUPP) still gets every byte written, and the file
    // remembers the refusal so later durable writes skip the failing call.
    #[test]
    fn durable_writes_fall_back_to_pwrite_and_fdatasync_when_the_flag_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut file = temp_file(&dir);
        file.dsync_flags = libc::RWF_DSYNC | (1 << 30);
        block_on(file.write_durable_at(vec![3; 4096], 0)).expect("first, refused then fallback");
        assert!(
            file.dsync_refused.load(Ordering::Relaxed),
            "refusal remembered"
        );
        block_on(file.write_durable_at(vec![4; 4096], 4096)).expect("second, fallback at once");
        let mut want = vec![3u8; 4096];
        want.extend([4u8; 4096]);
        assert_eq!(read_all(&file), want);
    }

    // Guards the short-write path: when RWF_DSYNC writes only a prefix, the rest is written
    // after it (not over it, not missing) and synced.
    #[test]
    fn a_short_durable_write_is_finished_with_plain_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = temp_file(&dir);
        let buf: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
        let mut calls = 0;
        file.write_durable_blocking(&buf, 4096, |rest, at| {
            calls += 1;
            // A prefix of 1000 bytes lands, as a real short write would leave it.
            file.file.write_all_at(&rest[..1000], at)?;
            Ok(1000)
        })
        .expect("short, then finished");
        assert_eq!(calls, 1, "the rest is not retried with RWF_DSYNC");
        let bytes = read_all(&file);
        assert_eq!(bytes.len(), 4096 + 8192);
        assert!(
            bytes[..4096].iter().all(|&b| b == 0),
            "nothing before the offset"
        );
        assert_eq!(&bytes[4096..], &buf[..]);
    }
}
