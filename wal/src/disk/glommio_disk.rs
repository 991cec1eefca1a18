//! `GlommioDisk`: the WAL over glommio 0.9 `DmaFile`s (O_DIRECT, io_uring). Only usable on a
//! thread running a glommio `LocalExecutor`. Directory listing and creation use blocking std
//! calls: they happen only at open.
//!
//! glommio locks the memory of its I/O buffers. As root (CAP_IPC_LOCK) the defaults work;
//! without it, build the executor with `io_memory` <= 2 MiB (below 512 KiB glommio fails with
//! `MemLockLimit`). Buffers beyond that pool fall back to ordinary aligned heap memory.
//! [`DiskFile::zero_fill`] runs as a glommio task of its own, which the file's next operation
//! awaits.

use std::cell::RefCell;
use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::rc::Rc;

use glommio::io::{DmaBuffer, DmaFile, OpenOptions};
use glommio::Task;

use super::{Disk, DiskFile};
use crate::segment::BLOCK_SIZE_BYTES;

/// Largest single read issued to the device; bigger reads are split.
const READ_CHUNK_BYTES: usize = 1024 * 1024;
/// Zeros are written in pieces of this size (see [`DiskFile::zero_fill`]).
const ZERO_CHUNK_BYTES: u64 = 1024 * 1024;

/// glommio DMA backend. Same on-disk format as [`super::StdDisk`].
#[derive(Debug, Clone, Copy, Default)]
pub struct GlommioDisk;

/// An open [`GlommioDisk`] file.
#[derive(Debug)]
pub struct GlommioDiskFile {
    file: Rc<DmaFile>,
    /// A background zero-fill task, awaited by the next operation on the file.
    filling: RefCell<Option<Task<io::Result<()>>>>,
}

impl GlommioDiskFile {
    fn new(file: DmaFile) -> Self {
        GlommioDiskFile {
            file: Rc::new(file),
            filling: RefCell::new(None),
        }
    }

    /// Waits for a background zero-fill, if one runs, and reports how it went.
    async fn settle(&self) -> io::Result<()> {
        let filling = self.filling.borrow_mut().take();
        match filling {
            None => Ok(()),
            Some(task) => task.await,
        }
    }
}

/// `fallocate` + zeros over `[0, len_bytes)` by DMA + `fdatasync`.
async fn zero_fill_dma(file: &DmaFile, len_bytes: u64) -> io::Result<()> {
    file.pre_allocate(len_bytes, false)
        .await
        .map_err(glommio_error)?;
    let mut offset_bytes = 0u64;
    while offset_bytes < len_bytes {
        let chunk = usize::try_from((len_bytes - offset_bytes).min(ZERO_CHUNK_BYTES))
            .expect("a chunk is at most ZERO_CHUNK_BYTES");
        let mut zeros = file.alloc_dma_buffer(chunk);
        zeros.as_bytes_mut().fill(0);
        let written = file
            .write_at(zeros, offset_bytes)
            .await
            .map_err(glommio_error)?;
        if written != chunk {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short zero-fill write: {written} of {chunk} bytes at {offset_bytes}"),
            ));
        }
        offset_bytes += chunk as u64;
    }
    file.fdatasync().await.map_err(glommio_error)
}

/// A DMA write buffer (aligned for O_DIRECT), allocated by the file's reactor.
#[derive(Debug)]
pub struct GlommioBuffer(DmaBuffer);

impl AsRef<[u8]> for GlommioBuffer {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl AsMut<[u8]> for GlommioBuffer {
    fn as_mut(&mut self) -> &mut [u8] {
        self.0.as_bytes_mut()
    }
}

fn glommio_error(error: glommio::GlommioError<()>) -> io::Error {
    io::Error::from(error)
}

/// glommio's io_uring `openat`/`statx` calls fail with EBADF on relative
/// paths (no AT_FDCWD), so every path handed to glommio is made absolute.
fn absolute(path: &Path) -> io::Result<std::path::PathBuf> {
    std::path::absolute(path)
}

async fn dma_open(path: &Path) -> io::Result<GlommioDiskFile> {
    let path = absolute(path)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .dma_open(&path)
        .await
        .map_err(glommio_error)?;
    if !BLOCK_SIZE_BYTES.is_multiple_of(file.alignment()) {
        let alignment = file.alignment();
        // Best effort: the open itself succeeded, the device is what we cannot use.
        let _closed = file.close().await;
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("device O_DIRECT alignment {alignment} does not divide {BLOCK_SIZE_BYTES}"),
        ));
    }
    Ok(GlommioDiskFile::new(file))
}

impl Disk for GlommioDisk {
    type File = GlommioDiskFile;

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

    async fn create_file(&self, path: &Path) -> io::Result<GlommioDiskFile> {
        // glommio 0.9 probes io_uring IOPOLL support once per device, on the first DmaFile
        // opened, by reading 512 bytes at offset 0. On an empty file that read "succeeds" at
        // EOF (or in a hole), glommio caches "IOPOLL works" for the whole device, and every
        // later read on a device without IOPOLL fails with EOPNOTSUPP. So a new file first
        // gets one real block (written and synced via std, so the probe reaches the device),
        // and is truncated back to empty after the DMA open. Segment creation is rare and
        // off the append path (pipeline.rs), so the extra sync is cheap.
        let mut file = fs::File::create(path)?;
        file.write_all(&[0u8; BLOCK_SIZE_BYTES as usize])?;
        file.sync_data()?;
        drop(file);
        let opened = dma_open(path).await?;
        opened.file.truncate(0).await.map_err(glommio_error)?;
        Ok(opened)
    }

    async fn open_file(&self, path: &Path) -> io::Result<GlommioDiskFile> {
        dma_open(path).await
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        glommio::io::remove(absolute(path)?)
            .await
            .map_err(glommio_error)
    }

    async fn rename(&self, source: &Path, target: &Path) -> io::Result<()> {
        glommio::io::rename(absolute(source)?, absolute(target)?)
            .await
            .map_err(glommio_error)
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let directory = glommio::io::Directory::open(absolute(dir)?)
            .await
            .map_err(glommio_error)?;
        let synced = directory.sync().await.map_err(glommio_error);
        let closed = directory.close().await.map_err(glommio_error);
        synced.and(closed)
    }
}

impl DiskFile for GlommioDiskFile {
    type Buffer = GlommioBuffer;

    fn alloc_buffer(&self, len_bytes: usize) -> GlommioBuffer {
        GlommioBuffer(self.file.alloc_dma_buffer(len_bytes))
    }

    async fn read_at(&self, offset_bytes: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.settle().await?;
        let mut read = 0usize;
        while read < buf.len() {
            let want = (buf.len() - read).min(READ_CHUNK_BYTES);
            let result = self
                .file
                .read_at(offset_bytes + read as u64, want)
                .await
                .map_err(glommio_error)?;
            let got = result.len().min(want);
            buf[read..read + got].copy_from_slice(&result[..got]);
            read += got;
            if got < want {
                break;
            }
        }
        Ok(read)
    }

    async fn write_at(&self, buf: GlommioBuffer, offset_bytes: u64) -> io::Result<()> {
        self.settle().await?;
        let len = buf.0.len();
        let written = self
            .file
            .write_at(buf.0, offset_bytes)
            .await
            .map_err(glommio_error)?;
        if written == len {
            return Ok(());
        }
        // A short O_DIRECT write (e.g. ENOSPC midway). Retrying the remainder would need an
        // aligned remainder; report it instead, the WAL poisons itself and recovery decides.
        Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short write: {written} of {len} bytes at offset {offset_bytes}"),
        ))
    }

    async fn sync(&self) -> io::Result<()> {
        self.settle().await?;
        self.file.fdatasync().await.map_err(glommio_error)
    }

    async fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.settle().await?;
        self.file.truncate(len_bytes).await.map_err(glommio_error)
    }

    async fn allocate(&self, len_bytes: u64) -> io::Result<()> {
        self.settle().await?;
        self.file
            .pre_allocate(len_bytes, false)
            .await
            .map_err(glommio_error)
    }

    async fn zero_fill(&self, len_bytes: u64) -> io::Result<()> {
        self.settle().await?;
        let file = Rc::clone(&self.file);
        let task = glommio::spawn_local(async move { zero_fill_dma(&file, len_bytes).await });
        *self.filling.borrow_mut() = Some(task);
        Ok(())
    }

    async fn len_bytes(&self) -> io::Result<u64> {
        self.settle().await?;
        self.file.file_size().await.map_err(glommio_error)
    }

    async fn close(self) -> io::Result<()> {
        self.settle().await?;
        // The zero-fill task (settled above) held the only other reference.
        self.file.close_rc().await.map_err(glommio_error).map(drop)
    }
}
