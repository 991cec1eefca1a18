//! The same scenarios against every backend: MemDisk, StdDisk (tempfile dirs) and
//! GlommioDisk (inside a glommio LocalExecutor), each in every durable sync mode
//! (`<scenario>::<backend>::{fdatasync,dsync}`), plus a check that StdDisk and GlommioDisk
//! read each other's files (one on-disk format).

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::scenario::{self, ByteFlip};
use common::{entries, small_options_in, DURABLE_SYNC_MODES};
use futures::executor::block_on;
use glommio::{LocalExecutorBuilder, Placement};
use keel_wal::{Disk, DiskFile, GlommioDisk, MemDisk, StdDisk, SyncMode, Wal};

/// glommio's locked I/O memory; 2 MiB works without CAP_IPC_LOCK too (see the crate docs).
const GLOMMIO_IO_MEMORY_BYTES: usize = 2 << 20;

fn std_flip(path: &Path, offset_bytes: u64, mask: u8) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open segment");
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, offset_bytes)
        .expect("read byte");
    byte[0] ^= mask;
    file.write_all_at(&byte, offset_bytes).expect("write byte");
    file.sync_all().expect("sync");
}

fn on_glommio<T: 'static>(future: impl std::future::Future<Output = T> + 'static) -> T {
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(GLOMMIO_IO_MEMORY_BYTES)
        .make()
        .expect("glommio executor")
        .run(future)
}

/// One test per durable sync mode, named after it, each calling `$run(mode)`.
macro_rules! in_every_sync_mode {
    ($run:expr) => {
        #[test]
        fn fdatasync() {
            ($run)(SyncMode::Fdatasync);
        }

        #[test]
        fn dsync() {
            ($run)(SyncMode::Dsync);
        }
    };
}

macro_rules! on_every_backend {
    ($name:ident, $scenario:ident) => {
        mod $name {
            use super::*;

            mod on_mem_disk {
                use super::*;
                in_every_sync_mode!(|mode| {
                    let disk = MemDisk::new();
                    block_on(scenario::$scenario(disk, Path::new("/wal"), mode)).unwrap();
                });
            }

            mod on_std_disk {
                use super::*;
                in_every_sync_mode!(|mode| {
                    let dir = tempfile::tempdir().expect("tempdir");
                    block_on(scenario::$scenario(StdDisk, &dir.path().join("wal"), mode)).unwrap();
                });
            }

            mod on_glommio_disk {
                use super::*;
                in_every_sync_mode!(|mode| {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let path = dir.path().join("wal");
                    on_glommio(async move { scenario::$scenario(GlommioDisk, &path, mode).await })
                        .unwrap();
                });
            }
        }
    };
}

macro_rules! on_every_backend_with_flip {
    ($name:ident, $scenario:ident) => {
        mod $name {
            use super::*;

            mod on_mem_disk {
                use super::*;
                in_every_sync_mode!(|mode| {
                    let disk = MemDisk::new();
                    let flipper = disk.clone();
                    let flip: ByteFlip<'_> = &move |path, offset, mask| {
                        assert!(flipper.corrupt_byte(path, offset, mask), "no byte to flip");
                    };
                    block_on(scenario::$scenario(disk, Path::new("/wal"), flip, mode)).unwrap();
                });
            }

            mod on_std_disk {
                use super::*;
                in_every_sync_mode!(|mode| {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let path = dir.path().join("wal");
                    block_on(scenario::$scenario(StdDisk, &path, &std_flip, mode)).unwrap();
                });
            }

            mod on_glommio_disk {
                use super::*;
                in_every_sync_mode!(|mode| {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let path = dir.path().join("wal");
                    on_glommio(async move {
                        scenario::$scenario(GlommioDisk, &path, &std_flip, mode).await
                    })
                    .unwrap();
                });
            }
        }
    };
}

on_every_backend!(append_roll_overwrite_reopen, append_roll_overwrite_reopen);
on_every_backend!(
    release_before_removes_only_old_segments,
    release_before_removes_only_old_segments
);
on_every_backend_with_flip!(
    torn_last_batch_is_cut_and_reported,
    torn_last_batch_is_cut_and_reported
);
on_every_backend_with_flip!(
    flipped_byte_before_valid_records_is_a_hard_error,
    flipped_byte_before_valid_records_is_a_hard_error
);
on_every_backend_with_flip!(
    flipped_byte_in_an_earlier_segment_is_a_hard_error,
    flipped_byte_in_an_earlier_segment_is_a_hard_error
);

// Guards "one on-disk format": a log written with StdDisk must open with GlommioDisk and
// continue there, and the result must open with StdDisk again, whichever sync mode wrote it.
#[test]
fn std_and_glommio_disks_read_each_others_segments() {
    for sync_mode in DURABLE_SYNC_MODES {
        std_and_glommio_round_trip(sync_mode);
    }
}

fn std_and_glommio_round_trip(sync_mode: SyncMode) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wal");
    let options = small_options_in(sync_mode, 16 * 1024);
    let first = entries(1, 20, 1, 1000);
    let second = entries(21, 20, 1, 1000);
    block_on(async {
        let (mut wal, _) = Wal::open(StdDisk, &path, options.clone(), 0).await.unwrap();
        wal.append(&first, None).await.unwrap();
        wal.close().await.unwrap();
    });
    let (glommio_path, glommio_options) = (path.clone(), options.clone());
    let (glommio_first, glommio_second) = (first.clone(), second.clone());
    on_glommio(async move {
        let (mut wal, recovered) = Wal::open(GlommioDisk, &glommio_path, glommio_options, 0)
            .await
            .unwrap();
        assert_eq!(recovered.entries, glommio_first, "{sync_mode:?}");
        wal.append(&glommio_second, None).await.unwrap();
        wal.close().await.unwrap();
    });
    block_on(async {
        let (wal, recovered) = Wal::open(StdDisk, &path, options, 0).await.unwrap();
        let all: Vec<_> = first.iter().chain(&second).cloned().collect();
        assert_eq!(recovered.entries, all, "{sync_mode:?}");
        wal.close().await.unwrap();
    });
}

// Guards the server's default setup: `--data-dir default.keel` gives the WAL
// a relative path, and glommio's io_uring opens used to fail on relative
// paths with EBADF ("Bad file descriptor ... Opening directory").
#[test]
fn glommio_disk_works_with_a_relative_path() {
    let dir = tempfile::tempdir_in(".").expect("tempdir in the working directory");
    let relative = Path::new(".")
        .join(dir.path().file_name().expect("name"))
        .join("wal");
    assert!(relative.is_relative());
    let count = on_glommio(async move {
        let entry = |index: u64| keel_wal::WalEntry {
            index,
            term: 1,
            kind: 0,
            data: bytes::Bytes::from_static(b"x"),
        };
        let (mut wal, _) =
            keel_wal::Wal::open(GlommioDisk, &relative, keel_wal::WalOptions::default(), 0)
                .await
                .expect("open with a relative path");
        wal.append(&[entry(1), entry(2)], None)
            .await
            .expect("append");
        wal.close().await.expect("close");
        let (wal, recovered) =
            keel_wal::Wal::open(GlommioDisk, &relative, keel_wal::WalOptions::default(), 0)
                .await
                .expect("reopen");
        wal.close().await.expect("close");
        recovered.entries.len()
    });
    assert_eq!(count, 2);
}

/// Zero-fills a new 8 MiB file, writes one block at once (while the fill may still run in the
/// background), then checks the block and the zeros around it, and the file's length.
async fn zero_fill_then_write<D: Disk>(disk: D, dir: &Path) {
    const LEN_BYTES: u64 = 8 << 20;
    const BLOCK_BYTES: usize = 4096;
    disk.create_dir_all(dir).await.expect("create dir");
    let file = disk
        .create_file(&dir.join("zeroed"))
        .await
        .expect("create file");
    file.zero_fill(LEN_BYTES)
        .await
        .expect("start the zero-fill");
    // Near the end: the part a background fill reaches last.
    let offset_bytes = LEN_BYTES - 2 * BLOCK_BYTES as u64;
    let mut block = file.alloc_buffer(BLOCK_BYTES);
    block.as_mut().fill(0xC3);
    file.write_at(block, offset_bytes).await.expect("write");
    file.sync().await.expect("sync");
    assert_eq!(file.len_bytes().await.expect("len"), LEN_BYTES);
    let mut back = vec![0u8; 3 * BLOCK_BYTES];
    let read = file
        .read_at(offset_bytes - BLOCK_BYTES as u64, &mut back)
        .await
        .expect("read");
    assert_eq!(read, 3 * BLOCK_BYTES);
    assert!(back[..BLOCK_BYTES].iter().all(|&b| b == 0), "zeros before");
    assert!(
        back[BLOCK_BYTES..2 * BLOCK_BYTES]
            .iter()
            .all(|&b| b == 0xC3),
        "the write survives the zero-fill"
    );
    assert!(
        back[2 * BLOCK_BYTES..].iter().all(|&b| b == 0),
        "zeros after"
    );
    file.close().await.expect("close");
}

// Guards DiskFile::zero_fill's contract: the background fill finishes before the file's next
// operation, so it can never overwrite a write issued right after it (a lost WAL batch).
mod zero_fill_finishes_before_the_next_write {
    use super::*;

    #[test]
    fn on_mem_disk() {
        block_on(zero_fill_then_write(MemDisk::new(), Path::new("/z")));
    }

    #[test]
    fn on_std_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        block_on(zero_fill_then_write(StdDisk, &dir.path().join("z")));
    }

    #[test]
    fn on_glommio_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("z");
        on_glommio(async move { zero_fill_then_write(GlommioDisk, &path).await });
    }
}
