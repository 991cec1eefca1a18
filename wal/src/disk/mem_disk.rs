//! `MemDisk`: an in-memory [`Disk`] for crash and fault tests, public so that other crates'
//! tests can use it.
//!
//! It keeps, per file, the bytes as written and the bytes as of the last `sync`, and per
//! directory the names as they are and as of the last `sync_dir`. [`MemDisk::crash`] builds the
//! image a power loss would leave: unsynced writes and unsynced name changes are gone,
//! optionally with the most recent unsynced write torn (some of its 512-byte sectors landed,
//! or one of them holds garbage). A [`DiskFile::write_durable_at`] makes its own range
//! durable at once (as Linux `RWF_DSYNC`), not the file's other unsynced writes. Faults:
//! [`MemDisk::cut_power_at_sync`] (the n-th sync fails and every operation after it fails too,
//! freezing the image; a durable write counts as a sync), [`MemDisk::fail_next_sync`],
//! [`MemDisk::fail_next_sync_dir`], [`MemDisk::fail_next_write`].
//!
//! ```
//! use keel_wal::{Disk, DiskFile, MemDisk, TornWrite};
//! use std::path::Path;
//! futures::executor::block_on(async {
//!     let disk = MemDisk::new();
//!     let file = disk.create_file(Path::new("/d/a")).await.unwrap();
//!     disk.sync_dir(Path::new("/d")).await.unwrap();
//!     file.write_at(vec![1; 4096], 0).await.unwrap();
//!     file.sync().await.unwrap();
//!     file.write_at(vec![2; 4096], 4096).await.unwrap(); // never synced
//!     let after = disk.crash(TornWrite::None);
//!     assert_eq!(after.file_bytes(Path::new("/d/a")).unwrap(), vec![1; 4096]);
//! });
//! ```

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Disk, DiskFile};

/// Sector size of the simulated device: the unit in which a torn write lands or not.
pub const MEM_SECTOR_BYTES: usize = 512;

/// What happens to the most recent unsynced write in a [`MemDisk::crash`] image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TornWrite {
    /// It is lost like every other unsynced write.
    None,
    /// Its first `sector_count` sectors landed (all of it if it is shorter).
    KeepSectors {
        /// Sectors that landed, from the start of the write.
        sector_count: usize,
    },
    /// It landed whole except sector `sector_index` (modulo its sector count), which holds
    /// pseudo-random garbage derived from `seed`.
    Garbage {
        /// Which sector is garbage.
        sector_index: usize,
        /// Seed of the garbage bytes.
        seed: u64,
    },
    /// Each of its sectors landed or not, chosen by a generator seeded with `seed`: models a
    /// device persisting the sectors of one write out of order.
    Scatter {
        /// Seed of the choice.
        seed: u64,
    },
}

#[derive(Debug, Clone)]
enum PendingOp {
    Write {
        write_seq: u64,
        offset_bytes: u64,
        bytes: Vec<u8>,
        /// A durable write: already in `Inode::synced`, kept here only so that a later
        /// `sync` replays the operations in their order. Never torn by a crash.
        durable: bool,
    },
    SetLen {
        len_bytes: u64,
    },
}

#[derive(Debug, Clone, Default)]
struct Inode {
    /// Contents as written (what reads see).
    data: Vec<u8>,
    /// Contents as of the last sync (what a power loss keeps).
    synced: Vec<u8>,
    /// Operations since the last sync, oldest first.
    pending: Vec<PendingOp>,
}

#[derive(Debug, Default)]
struct MemState {
    inodes: HashMap<u64, Inode>,
    names: BTreeMap<PathBuf, u64>,
    names_durable: BTreeMap<PathBuf, u64>,
    inode_next: u64,
    write_seq_next: u64,
    sync_count: u64,
    power_cut_at_sync: Option<u64>,
    powered_off: bool,
    fail_next_sync: bool,
    fail_next_sync_dir: bool,
    fail_next_write: bool,
}

/// In-memory disk; clones are handles to the same disk.
#[derive(Debug, Clone, Default)]
pub struct MemDisk {
    state: Arc<Mutex<MemState>>,
}

/// An open [`MemDisk`] file (a handle to its inode: it stays usable after removal).
#[derive(Debug, Clone)]
pub struct MemDiskFile {
    disk: MemDisk,
    inode: u64,
}

fn power_off_error() -> io::Error {
    io::Error::other("MemDisk: power is off")
}

fn apply_write(data: &mut Vec<u8>, offset_bytes: u64, bytes: &[u8]) {
    let start = usize::try_from(offset_bytes).expect("MemDisk offsets fit in memory");
    let end = start + bytes.len();
    if data.len() < end {
        data.resize(end, 0);
    }
    data[start..end].copy_from_slice(bytes);
}

fn apply_op(data: &mut Vec<u8>, op: &PendingOp) {
    match op {
        PendingOp::Write {
            offset_bytes,
            bytes,
            ..
        } => apply_write(data, *offset_bytes, bytes),
        PendingOp::SetLen { len_bytes } => {
            data.resize(
                usize::try_from(*len_bytes).expect("MemDisk sizes fit in memory"),
                0,
            );
        }
    }
}

/// splitmix64: a tiny deterministic generator, enough for garbage and sector choices.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn apply_torn(data: &mut Vec<u8>, offset_bytes: u64, bytes: &[u8], torn: TornWrite) {
    let sectors: Vec<(usize, &[u8])> = bytes
        .chunks(MEM_SECTOR_BYTES)
        .enumerate()
        .map(|(i, s)| (i * MEM_SECTOR_BYTES, s))
        .collect();
    match torn {
        TornWrite::None => {}
        TornWrite::KeepSectors { sector_count } => {
            for (at, sector) in sectors.iter().take(sector_count) {
                apply_write(data, offset_bytes + *at as u64, sector);
            }
        }
        TornWrite::Garbage { sector_index, seed } => {
            apply_write(data, offset_bytes, bytes);
            if let Some(&(at, sector)) = sectors.get(sector_index % sectors.len().max(1)) {
                let mut rng = seed;
                let garbage: Vec<u8> = (0..sector.len())
                    .map(|_| splitmix64(&mut rng) as u8)
                    .collect();
                apply_write(data, offset_bytes + at as u64, &garbage);
            }
        }
        TornWrite::Scatter { seed } => {
            let mut rng = seed;
            for (at, sector) in &sectors {
                if splitmix64(&mut rng) & 1 == 1 {
                    apply_write(data, offset_bytes + *at as u64, sector);
                }
            }
        }
    }
}

impl MemDisk {
    /// An empty disk.
    pub fn new() -> MemDisk {
        MemDisk::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemState> {
        // A panic while holding the lock can only come from a bug in this file or a test
        // assertion; the state is still usable for reporting, so take it either way.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn live(&self) -> io::Result<MutexGuard<'_, MemState>> {
        let state = self.lock();
        if state.powered_off {
            return Err(power_off_error());
        }
        Ok(state)
    }

    /// The image this disk would leave after a power loss now (see [`TornWrite`]). The result
    /// is an independent, powered-on disk; `self` is unchanged.
    pub fn crash(&self, torn: TornWrite) -> MemDisk {
        let state = self.lock();
        let mut image = MemState::default();
        let last_write = state
            .inodes
            .iter()
            .flat_map(|(&inode, node)| node.pending.iter().map(move |op| (inode, op)))
            .filter_map(|(inode, op)| match op {
                PendingOp::Write {
                    write_seq,
                    offset_bytes,
                    bytes,
                    // A completed durable write is not in flight: it cannot tear.
                    durable: false,
                } => Some((*write_seq, inode, *offset_bytes, bytes)),
                PendingOp::Write { durable: true, .. } | PendingOp::SetLen { .. } => None,
            })
            .max_by_key(|(write_seq, ..)| *write_seq);
        for (path, &inode) in &state.names_durable {
            image.names.insert(path.clone(), inode);
            image.names_durable.insert(path.clone(), inode);
            if image.inodes.contains_key(&inode) {
                continue;
            }
            let mut data = state
                .inodes
                .get(&inode)
                .map(|n| n.synced.clone())
                .unwrap_or_default();
            if let Some((_, torn_inode, offset_bytes, bytes)) = last_write {
                if torn_inode == inode {
                    apply_torn(&mut data, offset_bytes, bytes, torn);
                }
            }
            image.inodes.insert(
                inode,
                Inode {
                    synced: data.clone(),
                    data,
                    pending: Vec::new(),
                },
            );
        }
        image.inode_next = state.inode_next;
        image.write_seq_next = state.write_seq_next;
        MemDisk {
            state: Arc::new(Mutex::new(image)),
        }
    }

    /// The `n`-th sync from now on (file or directory, counting from 1) fails, and so does
    /// every operation after it: the image is frozen for [`MemDisk::crash`].
    pub fn cut_power_at_sync(&self, n: u64) {
        let mut state = self.lock();
        state.power_cut_at_sync = Some(state.sync_count + n);
    }

    /// Whether the power has been cut.
    pub fn is_powered_off(&self) -> bool {
        self.lock().powered_off
    }

    /// Syncs (file and directory) performed or attempted so far.
    pub fn sync_count(&self) -> u64 {
        self.lock().sync_count
    }

    /// The next file sync fails with an I/O error; its writes stay unsynced.
    pub fn fail_next_sync(&self) {
        self.lock().fail_next_sync = true;
    }

    /// The next directory sync fails with an I/O error; the directory's name changes stay
    /// unsynced (models a process killed between a rename and its `fsync` of the directory).
    pub fn fail_next_sync_dir(&self) {
        self.lock().fail_next_sync_dir = true;
    }

    /// The next write fails with an I/O error and writes nothing.
    pub fn fail_next_write(&self) {
        self.lock().fail_next_write = true;
    }

    /// Current contents of the file at `path` (as reads see them), if it exists.
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        let inode = state.names.get(path)?;
        state.inodes.get(inode).map(|node| node.data.clone())
    }

    /// Paths of all files, sorted.
    pub fn file_paths(&self) -> Vec<PathBuf> {
        self.lock().names.keys().cloned().collect()
    }

    /// XORs `mask` into the byte at `offset_bytes` of `path`, as written and as synced (bit
    /// rot on the medium). Returns false if the file or byte does not exist.
    pub fn corrupt_byte(&self, path: &Path, offset_bytes: u64, mask: u8) -> bool {
        let mut state = self.lock();
        let Some(&inode) = state.names.get(path) else {
            return false;
        };
        let Some(node) = state.inodes.get_mut(&inode) else {
            return false;
        };
        let Ok(at) = usize::try_from(offset_bytes) else {
            return false;
        };
        if at >= node.data.len() {
            return false;
        }
        node.data[at] ^= mask;
        if let Some(byte) = node.synced.get_mut(at) {
            *byte ^= mask;
        }
        true
    }

    fn count_sync(state: &mut MemState) -> io::Result<()> {
        state.sync_count += 1;
        if state.power_cut_at_sync == Some(state.sync_count) {
            state.powered_off = true;
            return Err(power_off_error());
        }
        Ok(())
    }

    fn inode_op<T>(
        &self,
        inode: u64,
        op: impl FnOnce(&mut MemState, u64) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut state = self.live()?;
        if !state.inodes.contains_key(&inode) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "MemDisk: inode vanished",
            ));
        }
        op(&mut state, inode)
    }
}

impl Disk for MemDisk {
    type File = MemDiskFile;

    async fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        self.live().map(drop)
    }

    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.live()?;
        Ok(state
            .names
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .filter_map(|path| path.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    async fn create_file(&self, path: &Path) -> io::Result<MemDiskFile> {
        let mut state = self.live()?;
        let inode = state.inode_next;
        state.inode_next += 1;
        state.inodes.insert(inode, Inode::default());
        state.names.insert(path.to_path_buf(), inode);
        Ok(MemDiskFile {
            disk: self.clone(),
            inode,
        })
    }

    async fn open_file(&self, path: &Path) -> io::Result<MemDiskFile> {
        let state = self.live()?;
        match state.names.get(path) {
            Some(&inode) => Ok(MemDiskFile {
                disk: self.clone(),
                inode,
            }),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}", path.display()),
            )),
        }
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.live()?;
        match state.names.remove(path) {
            Some(_) => Ok(()),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}", path.display()),
            )),
        }
    }

    async fn rename(&self, source: &Path, target: &Path) -> io::Result<()> {
        let mut state = self.live()?;
        let Some(inode) = state.names.remove(source) else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}", source.display()),
            ));
        };
        state.names.insert(target.to_path_buf(), inode);
        Ok(())
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.live()?;
        MemDisk::count_sync(&mut state)?;
        if std::mem::take(&mut state.fail_next_sync_dir) {
            return Err(io::Error::other("MemDisk: injected directory sync failure"));
        }
        state
            .names_durable
            .retain(|path, _| path.parent() != Some(dir));
        let current: Vec<(PathBuf, u64)> = state
            .names
            .iter()
            .filter(|(path, _)| path.parent() == Some(dir))
            .map(|(path, &inode)| (path.clone(), inode))
            .collect();
        state.names_durable.extend(current);
        Ok(())
    }
}

impl DiskFile for MemDiskFile {
    type Buffer = Vec<u8>;

    fn alloc_buffer(&self, len_bytes: usize) -> Vec<u8> {
        vec![0; len_bytes]
    }

    async fn read_at(&self, offset_bytes: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.disk.inode_op(self.inode, |state, inode| {
            let data = &state.inodes[&inode].data;
            let start = usize::try_from(offset_bytes)
                .unwrap_or(usize::MAX)
                .min(data.len());
            let count = buf.len().min(data.len() - start);
            buf[..count].copy_from_slice(&data[start..start + count]);
            Ok(count)
        })
    }

    async fn write_at(&self, buf: Vec<u8>, offset_bytes: u64) -> io::Result<()> {
        self.disk.inode_op(self.inode, |state, inode| {
            if std::mem::take(&mut state.fail_next_write) {
                return Err(io::Error::other("MemDisk: injected write failure"));
            }
            let write_seq = state.write_seq_next;
            state.write_seq_next += 1;
            let node = state.inodes.get_mut(&inode).expect("checked by inode_op");
            apply_write(&mut node.data, offset_bytes, &buf);
            node.pending.push(PendingOp::Write {
                write_seq,
                offset_bytes,
                bytes: buf,
                durable: false,
            });
            Ok(())
        })
    }

    /// The write, counted as a sync point. On success its range (and the length it needs)
    /// is durable, the file's other unsynced operations are not. A power cut or injected
    /// sync failure at it leaves it written but unsynced: lost or torn by a crash.
    async fn write_durable_at(&self, buf: Vec<u8>, offset_bytes: u64) -> io::Result<()> {
        self.disk.inode_op(self.inode, |state, inode| {
            if std::mem::take(&mut state.fail_next_write) {
                return Err(io::Error::other("MemDisk: injected write failure"));
            }
            let write_seq = state.write_seq_next;
            state.write_seq_next += 1;
            let synced = MemDisk::count_sync(state).and_then(|()| {
                if std::mem::take(&mut state.fail_next_sync) {
                    return Err(io::Error::other("MemDisk: injected sync failure"));
                }
                Ok(())
            });
            let node = state.inodes.get_mut(&inode).expect("checked by inode_op");
            apply_write(&mut node.data, offset_bytes, &buf);
            if synced.is_ok() {
                apply_write(&mut node.synced, offset_bytes, &buf);
                if node.pending.is_empty() {
                    // `synced` equals `data` now: nothing for a later sync to replay.
                    return Ok(());
                }
            }
            node.pending.push(PendingOp::Write {
                write_seq,
                offset_bytes,
                bytes: buf,
                durable: synced.is_ok(),
            });
            synced
        })
    }

    async fn sync(&self) -> io::Result<()> {
        self.disk.inode_op(self.inode, |state, inode| {
            MemDisk::count_sync(state)?;
            if std::mem::take(&mut state.fail_next_sync) {
                return Err(io::Error::other("MemDisk: injected sync failure"));
            }
            let node = state.inodes.get_mut(&inode).expect("checked by inode_op");
            for op in std::mem::take(&mut node.pending) {
                apply_op(&mut node.synced, &op);
            }
            Ok(())
        })
    }

    async fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.disk.inode_op(self.inode, |state, inode| {
            let node = state.inodes.get_mut(&inode).expect("checked by inode_op");
            let op = PendingOp::SetLen { len_bytes };
            apply_op(&mut node.data, &op);
            node.pending.push(op);
            Ok(())
        })
    }

    async fn allocate(&self, len_bytes: u64) -> io::Result<()> {
        self.disk.inode_op(self.inode, |state, inode| {
            let node = state.inodes.get_mut(&inode).expect("checked by inode_op");
            if (node.data.len() as u64) < len_bytes {
                let op = PendingOp::SetLen { len_bytes };
                apply_op(&mut node.data, &op);
                node.pending.push(op);
            }
            Ok(())
        })
    }

    /// Done at once (no background work to model): the file becomes `len_bytes` of zeros,
    /// unsynced, like any other change until `sync`.
    async fn zero_fill(&self, len_bytes: u64) -> io::Result<()> {
        self.disk.inode_op(self.inode, |state, inode| {
            let node = state.inodes.get_mut(&inode).expect("checked by inode_op");
            for op in [
                PendingOp::SetLen { len_bytes: 0 },
                PendingOp::SetLen { len_bytes },
            ] {
                apply_op(&mut node.data, &op);
                node.pending.push(op);
            }
            Ok(())
        })
    }

    async fn len_bytes(&self) -> io::Result<u64> {
        self.disk.inode_op(self.inode, |state, inode| {
            Ok(state.inodes[&inode].data.len() as u64)
        })
    }

    async fn close(self) -> io::Result<()> {
        self.disk.live().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    // Guards the power-loss model the crash tests rely on: unsynced writes and unsynced name
    // changes vanish, synced ones stay, and a torn write lands only the sectors it says.
    #[test]
    fn crash_keeps_only_synced_bytes_and_durable_names() {
        block_on(async {
            let disk = MemDisk::new();
            let dir = Path::new("/w");
            let a = disk.create_file(&dir.join("a")).await.unwrap();
            a.write_at(vec![1; 1024], 0).await.unwrap();
            a.sync().await.unwrap();
            let _b = disk.create_file(&dir.join("b")).await.unwrap(); // name never synced
            let image = disk.crash(TornWrite::None);
            assert!(
                image.file_paths().is_empty(),
                "a's name was never made durable"
            );

            disk.sync_dir(dir).await.unwrap();
            a.write_at(vec![2; 1024], 0).await.unwrap();
            let image = disk.crash(TornWrite::None);
            assert_eq!(image.file_bytes(&dir.join("a")).unwrap(), vec![1; 1024]);
            assert_eq!(image.file_bytes(&dir.join("b")).unwrap(), Vec::<u8>::new());

            let image = disk.crash(TornWrite::KeepSectors { sector_count: 1 });
            let bytes = image.file_bytes(&dir.join("a")).unwrap();
            assert_eq!(&bytes[..512], &[2; 512][..]);
            assert_eq!(&bytes[512..], &[1; 512][..]);

            let image = disk.crash(TornWrite::Garbage {
                sector_index: 1,
                seed: 7,
            });
            let bytes = image.file_bytes(&dir.join("a")).unwrap();
            assert_eq!(&bytes[..512], &[2; 512][..]);
            assert_ne!(&bytes[512..], &[2; 512][..]);
        });
    }

    // Guards the RWF_DSYNC model the Dsync crash tests rely on: a durable write survives a
    // power loss by itself, without making the file's earlier unsynced writes durable (Linux
    // syncs only the written range), is never the torn write, and a later sync replays the
    // operations in order (an older pending truncate must not erase the durable bytes).
    #[test]
    fn a_durable_write_survives_a_crash_alone_and_syncs_keep_the_operation_order() {
        block_on(async {
            let disk = MemDisk::new();
            let dir = Path::new("/w");
            let file = disk.create_file(&dir.join("a")).await.unwrap();
            disk.sync_dir(dir).await.unwrap();
            file.write_at(vec![1; 1024], 0).await.unwrap(); // never synced
            file.write_durable_at(vec![2; 1024], 1024).await.unwrap();
            assert_eq!(disk.sync_count(), 2, "a durable write is a sync point");
            let image = disk.crash(TornWrite::Garbage {
                sector_index: 0,
                seed: 3,
            });
            let bytes = image.file_bytes(&dir.join("a")).unwrap();
            assert_eq!(bytes.len(), 2048);
            assert_eq!(
                &bytes[1024..],
                &[2; 1024][..],
                "the durable write is intact"
            );
            assert_ne!(
                &bytes[..1024],
                &[1; 1024][..],
                "the unsynced write tore instead"
            );
            let image = disk.crash(TornWrite::None);
            let bytes = image.file_bytes(&dir.join("a")).unwrap();
            assert_eq!(&bytes[..1024], &[0; 1024][..], "the unsynced write is lost");

            file.set_len(0).await.unwrap();
            file.write_durable_at(vec![3; 512], 0).await.unwrap();
            file.sync().await.unwrap();
            let image = disk.crash(TornWrite::None);
            assert_eq!(image.file_bytes(&dir.join("a")).unwrap(), vec![3; 512]);

            disk.cut_power_at_sync(1);
            assert!(file.write_durable_at(vec![4; 512], 512).await.is_err());
            let image = disk.crash(TornWrite::None);
            assert_eq!(
                image.file_bytes(&dir.join("a")).unwrap(),
                vec![3; 512],
                "a durable write cut by the power is not durable"
            );
        });
    }

    // Guards the fault switches: a cut at sync n fails that sync and everything after it.
    #[test]
    fn power_cut_fails_the_chosen_sync_and_all_later_operations() {
        block_on(async {
            let disk = MemDisk::new();
            let file = disk.create_file(Path::new("/w/a")).await.unwrap();
            disk.cut_power_at_sync(2);
            file.sync().await.unwrap();
            assert!(file.sync().await.is_err());
            assert!(disk.is_powered_off());
            assert!(file.write_at(vec![0; 512], 0).await.is_err());
            let disk = MemDisk::new();
            let file = disk.create_file(Path::new("/w/a")).await.unwrap();
            disk.fail_next_write();
            assert!(file.write_at(vec![0; 512], 0).await.is_err());
            file.write_at(vec![0; 512], 0).await.unwrap();
            disk.fail_next_sync();
            assert!(file.sync().await.is_err());
            file.sync().await.unwrap();
        });
    }
}
