//! One 4 KiB write + `fdatasync` at queue depth 1: latency percentiles of the raw syscalls and
//! of `Wal::append` (one 256 B entry + hard state, as one single-client put), per backend.
//!
//! ```sh
//! CARGO_TARGET_DIR=/work/target-wal cargo run --release -p keel-wal --example fsync_latency \
//!     -- [DIR] [WRITES]
//! ```
//!
//! DIR (default: a temporary directory under /tmp) must be on the disk to measure; WRITES
//! (default 2000) per case. Cases, each into a fresh 64 MiB file:
//! - `std/fallocated`: `pwrite` (page cache) + `fdatasync` into a `fallocate`d file (unwritten
//!   extents: every first write to a block also commits an extent conversion to the journal);
//! - `std/overwrite`: the same into a file whose blocks were already written and synced;
//! - `std-dsync/…`: one `pwritev2(RWF_DSYNC)` instead of `pwrite` + `fdatasync`;
//! - `odirect/fallocated`: blocking `pwrite` with `O_DIRECT` + `fdatasync`;
//! - `odirect-dsync/overwr`: `O_DIRECT` + `RWF_DSYNC` into written blocks (FUA, if the device has it);
//! - `glommio/fallocated`, `glommio/overwrite`: `DmaFile::write_at` + `fdatasync` via io_uring;
//! - `wal-std/…`, `wal-glommio/…`: `Wal::append` of one entry + state (what the core does per
//!   put) with `Preallocation::Fallocate` and `Preallocation::Zeroed` (after 500 warm-up
//!   appends), in `SyncMode::Fdatasync`;
//! - `wal-std-dsync/…`: the same `Wal::append` on `StdDisk` in `SyncMode::Dsync` (one
//!   `pwritev2(RWF_DSYNC)` per append; `--wal-sync dsync`);
//! - `pair-fdatasync/zeroed`, `pair-dsync/zeroed`: two zeroed WALs on `StdDisk`, one per sync
//!   mode, appended to alternately (which one goes first alternates too), so that both modes
//!   see the same disk conditions: the fairest comparison of the two on a shared disk.
//!
//! Prints `case p50 p90 p99 mean` in microseconds.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::io::OpenOptions as DmaOpenOptions;
use glommio::{LocalExecutorBuilder, Placement};
use keel_wal::{
    Disk, GlommioDisk, Preallocation, StdDisk, SyncMode, Wal, WalEntry, WalOptions, WalState,
};

const FILE_BYTES: u64 = 64 << 20;
const WRITE_BYTES: usize = 4096;
const ENTRY_DATA_BYTES: usize = 256;
/// glommio's locked I/O memory; 2 MiB works without CAP_IPC_LOCK too.
const GLOMMIO_IO_MEMORY_BYTES: usize = 2 << 20;

/// Latencies of one case, sorted.
struct Samples {
    name: String,
    sorted: Vec<Duration>,
}

impl Samples {
    fn new(name: &str, mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Samples {
            name: name.to_string(),
            sorted: samples,
        }
    }

    /// Nearest-rank percentile in microseconds.
    fn percentile_us(&self, p: f64) -> f64 {
        let rank = ((p / 100.0) * self.sorted.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.sorted.len()) - 1;
        self.sorted[index].as_secs_f64() * 1e6
    }

    fn print(&self) {
        let mean_us = self.sorted.iter().map(Duration::as_secs_f64).sum::<f64>() * 1e6
            / self.sorted.len() as f64;
        println!(
            "{:<20} p50 {:>7.1} us  p90 {:>7.1} us  p99 {:>7.1} us  mean {:>7.1} us",
            self.name,
            self.percentile_us(50.0),
            self.percentile_us(90.0),
            self.percentile_us(99.0),
            mean_us
        );
    }
}

fn fallocate(file: &File, len_bytes: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len_bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length exceeds off_t"))?;
    // SAFETY: fallocate reads only its integer arguments; `file` keeps the fd open for the call.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A fresh file of FILE_BYTES, either `fallocate`d or fully written (zeros) and synced. Its
/// first block is always written: glommio probes the device with a read at offset 0 on the
/// first open, which must reach the device (see `GlommioDisk::create_file`). Cases write from
/// the second block on.
fn prepare(path: &Path, overwrite: bool) -> io::Result<()> {
    let file = File::create(path)?;
    fallocate(&file, FILE_BYTES)?;
    file.write_all_at(&[0x11u8; WRITE_BYTES], 0)?;
    file.sync_all()?;
    if overwrite {
        let zeros = vec![0u8; 1 << 20];
        for chunk in 0..FILE_BYTES / zeros.len() as u64 {
            file.write_all_at(&zeros, chunk * zeros.len() as u64)?;
        }
        file.sync_all()?;
    }
    Ok(())
}

/// How a blocking case makes its write durable.
#[derive(Clone, Copy)]
enum Durability {
    /// `pwrite`, then `fdatasync`.
    Fdatasync,
    /// One `pwritev2(RWF_DSYNC)`: the write and its sync in one call.
    DsyncWrite,
}

fn write_dsync(file: &File, buffer: &[u8], offset_bytes: u64) -> io::Result<()> {
    let iov = libc::iovec {
        iov_base: buffer.as_ptr() as *mut libc::c_void,
        iov_len: buffer.len(),
    };
    let offset = libc::off_t::try_from(offset_bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset exceeds off_t"))?;
    // SAFETY: `iov` points at `buffer`, which lives across the call and is only read; the fd
    // stays open (borrowed from `file`) for the duration of the call.
    let written = unsafe { libc::pwritev2(file.as_raw_fd(), &iov, 1, offset, libc::RWF_DSYNC) };
    match usize::try_from(written) {
        Ok(n) if n == buffer.len() => Ok(()),
        Ok(n) => Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short write: {n} of {} bytes", buffer.len()),
        )),
        Err(_) => Err(io::Error::last_os_error()),
    }
}

fn std_case(
    path: &Path,
    writes: usize,
    direct: bool,
    durability: Durability,
) -> io::Result<Vec<Duration>> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    if direct {
        options.custom_flags(libc::O_DIRECT);
    }
    let file = options.open(path)?;
    // O_DIRECT needs an aligned buffer: carve a 4 KiB-aligned window out of a larger one.
    let backing = vec![0xA5u8; 2 * WRITE_BYTES];
    let skip = backing.as_ptr().align_offset(WRITE_BYTES);
    let buffer = &backing[skip..skip + WRITE_BYTES];
    let mut samples = Vec::with_capacity(writes);
    for n in 0..writes {
        let started = Instant::now();
        let offset_bytes = ((n + 1) * WRITE_BYTES) as u64;
        match durability {
            Durability::Fdatasync => {
                file.write_all_at(buffer, offset_bytes)?;
                file.sync_data()?;
            }
            Durability::DsyncWrite => write_dsync(&file, buffer, offset_bytes)?,
        }
        samples.push(started.elapsed());
    }
    Ok(samples)
}

async fn glommio_case(path: PathBuf, writes: usize) -> io::Result<Vec<Duration>> {
    let file = DmaOpenOptions::new()
        .read(true)
        .write(true)
        .dma_open(&path)
        .await
        .map_err(io::Error::from)?;
    let mut samples = Vec::with_capacity(writes);
    for n in 0..writes {
        let mut buffer = file.alloc_dma_buffer(WRITE_BYTES);
        buffer.as_bytes_mut().fill(0xA5);
        let started = Instant::now();
        file.write_at(buffer, ((n + 1) * WRITE_BYTES) as u64)
            .await
            .map_err(io::Error::from)?;
        file.fdatasync().await.map_err(io::Error::from)?;
        samples.push(started.elapsed());
    }
    file.close().await.map_err(io::Error::from)?;
    Ok(samples)
}

/// Appends before the measured ones: the next segment's background zero-fill runs meanwhile.
const WAL_WARM_UP_APPENDS: u64 = 500;

/// `writes` appends of one entry + hard state into a fresh WAL in `dir`.
async fn wal_case<D: Disk>(
    disk: D,
    dir: &Path,
    preallocation: Preallocation,
    sync_mode: SyncMode,
    writes: usize,
) -> Vec<Duration> {
    let options = WalOptions {
        preallocation,
        sync_mode,
        ..WalOptions::default()
    };
    let (mut wal, _) = Wal::open(disk, dir, options, 0)
        .await
        .expect("opening the WAL");
    let data = Bytes::from(vec![0x5Au8; ENTRY_DATA_BYTES]);
    let mut samples = Vec::with_capacity(writes);
    for n in 1..=writes as u64 + WAL_WARM_UP_APPENDS {
        let elapsed = append_timed(&mut wal, n, &data).await;
        if n > WAL_WARM_UP_APPENDS {
            samples.push(elapsed);
        }
    }
    wal.close().await.expect("closing the WAL");
    samples
}

/// One append of one entry + state at `index`, timed.
async fn append_timed<D: Disk>(wal: &mut Wal<D>, index: u64, data: &Bytes) -> Duration {
    let entry = WalEntry {
        index,
        term: 1,
        kind: 0,
        data: data.clone(),
    };
    let state = WalState {
        term: 1,
        vote: 1,
        commit: index - 1,
    };
    let started = Instant::now();
    wal.append(&[entry], Some(&state)).await.expect("append");
    started.elapsed()
}

/// `writes` appends into each of two zeroed StdDisk WALs, one per durable sync mode,
/// interleaved (the first of each pair alternates). Samples of (Fdatasync, Dsync).
async fn wal_pair_case(dir: &Path, writes: usize) -> (Vec<Duration>, Vec<Duration>) {
    let options = |sync_mode| WalOptions {
        sync_mode,
        ..WalOptions::default()
    };
    let (fdatasync_dir, dsync_dir) = (dir.join("pair-fdatasync"), dir.join("pair-dsync"));
    let (mut fdatasync, _) = Wal::open(StdDisk, &fdatasync_dir, options(SyncMode::Fdatasync), 0)
        .await
        .expect("opening the WAL");
    let (mut dsync, _) = Wal::open(StdDisk, &dsync_dir, options(SyncMode::Dsync), 0)
        .await
        .expect("opening the WAL");
    let data = Bytes::from(vec![0x5Au8; ENTRY_DATA_BYTES]);
    let (mut fdatasync_samples, mut dsync_samples) = (Vec::new(), Vec::new());
    for n in 1..=writes as u64 + WAL_WARM_UP_APPENDS {
        let (first, second) = if n % 2 == 0 {
            let first = append_timed(&mut fdatasync, n, &data).await;
            (first, append_timed(&mut dsync, n, &data).await)
        } else {
            let second = append_timed(&mut dsync, n, &data).await;
            (append_timed(&mut fdatasync, n, &data).await, second)
        };
        if n > WAL_WARM_UP_APPENDS {
            fdatasync_samples.push(first);
            dsync_samples.push(second);
        }
    }
    fdatasync.close().await.expect("closing the WAL");
    dsync.close().await.expect("closing the WAL");
    (fdatasync_samples, dsync_samples)
}

fn glommio_run<T: Send + 'static>(
    future: impl std::future::Future<Output = T> + 'static,
) -> io::Result<T> {
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(GLOMMIO_IO_MEMORY_BYTES)
        .make()
        .map_err(|e| io::Error::other(e.to_string()))
        .map(|executor| executor.run(future))
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let temp = tempfile::tempdir_in(args.next().unwrap_or_else(|| "/tmp".into()))?;
    let writes: usize = match args.next() {
        Some(text) => text
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("WRITES: {e}")))?,
        None => 2000,
    };
    let path = temp.path().join("data");
    let mut results = Vec::new();
    for (name, overwrite, direct, durability) in [
        ("std/fallocated", false, false, Durability::Fdatasync),
        ("std/overwrite", true, false, Durability::Fdatasync),
        ("std-dsync/fallocated", false, false, Durability::DsyncWrite),
        ("std-dsync/overwrite", true, false, Durability::DsyncWrite),
        ("odirect/fallocated", false, true, Durability::Fdatasync),
        ("odirect-dsync/overwr", true, true, Durability::DsyncWrite),
    ] {
        prepare(&path, overwrite)?;
        let samples = std_case(&path, writes, direct, durability)?;
        results.push(Samples::new(name, samples));
    }
    for (name, overwrite) in [("glommio/fallocated", false), ("glommio/overwrite", true)] {
        prepare(&path, overwrite)?;
        let target = path.clone();
        let samples = glommio_run(async move { glommio_case(target, writes).await })??;
        results.push(Samples::new(name, samples));
    }
    for (name, preallocation) in [
        ("fallocated", Preallocation::Fallocate),
        ("zeroed", Preallocation::Zeroed),
    ] {
        for (mode_name, sync_mode) in [("", SyncMode::Fdatasync), ("-dsync", SyncMode::Dsync)] {
            let std_dir = temp.path().join(format!("wal-std{mode_name}-{name}"));
            let samples = futures::executor::block_on(wal_case(
                StdDisk,
                &std_dir,
                preallocation,
                sync_mode,
                writes,
            ));
            results.push(Samples::new(&format!("wal-std{mode_name}/{name}"), samples));
        }
        let glommio_dir = temp.path().join(format!("wal-glommio-{name}"));
        let samples = glommio_run(async move {
            wal_case(
                GlommioDisk,
                &glommio_dir,
                preallocation,
                SyncMode::Fdatasync,
                writes,
            )
            .await
        })?;
        results.push(Samples::new(&format!("wal-glommio/{name}"), samples));
    }
    let (fdatasync, dsync) = futures::executor::block_on(wal_pair_case(temp.path(), writes));
    results.push(Samples::new("pair-fdatasync/zeroed", fdatasync));
    results.push(Samples::new("pair-dsync/zeroed", dsync));
    for samples in &results {
        samples.print();
    }
    Ok(())
}
