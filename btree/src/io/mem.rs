//! `MemPageIo`: a directory of files in memory that remembers what is durable, for crash and
//! fault tests. Power loss is modelled by [`MemPageIo::crash_image`]: the durable contents plus
//! any subset of the writes made since the last sync (in order), the last kept write possibly
//! torn at any byte, and any prefix of the directory operations made since the last directory
//! sync. [`Faults`] makes chosen calls fail: an fsync, a write, or every call from some point on
//! (the power went out).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{range_within, FileMap, PageFile, PageIo};

/// Calls to make fail. Counts are 0-based and count calls since [`MemPageIo::set_faults`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// The power goes out just before this mutating call (write, set_len, sync, create, rename,
    /// remove, directory sync): it and every later mutating call fail and change nothing.
    pub power_loss_at_op: Option<u64>,
    /// This sync (file or directory) fails; nothing becomes durable by it.
    pub failed_sync: Option<u64>,
    /// This write fails without writing.
    pub failed_write: Option<u64>,
}

/// Calls made, for choosing fault points.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemIoCounts {
    /// Mutating calls (what [`Faults::power_loss_at_op`] counts).
    pub ops: u64,
    /// Syncs (what [`Faults::failed_sync`] counts).
    pub syncs: u64,
    /// Writes (what [`Faults::failed_write`] counts).
    pub writes: u64,
}

/// An in-memory directory; clones share it.
#[derive(Clone)]
pub struct MemPageIo {
    state: Arc<Mutex<MemState>>,
    path: PathBuf,
}

impl std::fmt::Debug for MemPageIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemPageIo")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct MemState {
    next_file_id: u64,
    /// Names as the process sees them.
    names: BTreeMap<String, u64>,
    /// Names as of the last directory sync.
    durable_names: BTreeMap<String, u64>,
    /// Directory operations since the last directory sync, oldest first.
    dir_ops: Vec<DirOp>,
    /// Every file ever created, by id (a removed file lives on while handles exist).
    files: BTreeMap<u64, MemFileState>,
    faults: Faults,
    counts: MemIoCounts,
    powered_off: bool,
}

#[derive(Clone)]
enum DirOp {
    Link { name: String, file_id: u64 },
    Rename { source: String, target: String },
    Remove { name: String },
}

#[derive(Clone, Default)]
struct MemFileState {
    current: Vec<u8>,
    durable: Vec<u8>,
    /// Changes since the last sync, oldest first.
    unsynced: Vec<FileOp>,
}

#[derive(Clone)]
enum FileOp {
    Write { offset_bytes: u64, data: Vec<u8> },
    SetLen { len_bytes: u64 },
}

/// splitmix64: a tiny seeded generator, so crash images need no RNG dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next() % bound
        }
    }
}

fn apply_op(content: &mut Vec<u8>, op: &FileOp, torn_len: Option<usize>) {
    match op {
        FileOp::Write { offset_bytes, data } => {
            let data = &data[..torn_len.unwrap_or(data.len()).min(data.len())];
            let start = usize::try_from(*offset_bytes).expect("in-memory offsets fit usize");
            let end = start + data.len();
            if content.len() < end {
                content.resize(end, 0);
            }
            content[start..end].copy_from_slice(data);
        }
        FileOp::SetLen { len_bytes } => {
            content.resize(usize::try_from(*len_bytes).expect("fits usize"), 0);
        }
    }
}

fn powered_off_error() -> io::Error {
    io::Error::other("injected power loss: the machine is off")
}

impl MemPageIo {
    /// An empty directory; `path` only names it in messages.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        MemPageIo {
            state: Arc::new(Mutex::new(MemState::default())),
            path: path.into(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, MemState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the faults to inject and restarts the counts.
    pub fn set_faults(&self, faults: Faults) {
        let mut state = self.lock();
        state.faults = faults;
        state.counts = MemIoCounts::default();
    }

    /// Calls made since the last [`MemPageIo::set_faults`].
    pub fn counts(&self) -> MemIoCounts {
        self.lock().counts
    }

    /// Whether an injected power loss has happened.
    pub fn powered_off(&self) -> bool {
        self.lock().powered_off
    }

    /// The directory as a restarted machine finds it after a power loss, chosen by `seed`:
    /// durable contents plus a random subset of the unsynced writes (in order, the last kept
    /// one possibly torn), and a random prefix of the unsynced directory operations. A new,
    /// independent directory without faults.
    pub fn crash_image(&self, seed: u64) -> MemPageIo {
        let state = self.lock();
        let mut rng = SplitMix(seed);
        let mut names = state.durable_names.clone();
        let kept_dir_ops = rng.below(state.dir_ops.len() as u64 + 1) as usize;
        for op in &state.dir_ops[..kept_dir_ops] {
            apply_dir_op(&mut names, op);
        }
        let mut image = MemState::default();
        for (name, file_id) in names {
            let file = &state.files[&file_id];
            let mut content = file.durable.clone();
            let kept: Vec<&FileOp> = file.unsynced.iter().filter(|_| rng.below(2) == 0).collect();
            for (i, op) in kept.iter().enumerate() {
                let last = i + 1 == kept.len();
                let torn = match op {
                    FileOp::Write { data, .. } if last && rng.below(4) == 0 => {
                        Some(rng.below(data.len() as u64) as usize)
                    }
                    _ => None,
                };
                apply_op(&mut content, op, torn);
            }
            image.insert_file(name, content);
        }
        MemPageIo {
            state: Arc::new(Mutex::new(image)),
            path: self.path.clone(),
        }
    }

    /// The directory as a restarted process finds it without a power loss: everything written
    /// so far (the page cache survives). A new, independent directory without faults.
    pub fn restart_image(&self) -> MemPageIo {
        let state = self.lock();
        let mut image = MemState::default();
        for (name, file_id) in &state.names {
            image.insert_file(name.clone(), state.files[file_id].current.clone());
        }
        MemPageIo {
            state: Arc::new(Mutex::new(image)),
            path: self.path.clone(),
        }
    }

    /// The current bytes of `name`, if it exists (for tests that damage files on purpose).
    pub fn file_bytes(&self, name: &str) -> Option<Vec<u8>> {
        let state = self.lock();
        let id = state.names.get(name)?;
        Some(state.files[id].current.clone())
    }

    /// Replaces the bytes of `name` (creating it), durably: for tests that build a damaged or
    /// arbitrary file.
    pub fn put_file(&self, name: &str, bytes: Vec<u8>) {
        let mut state = self.lock();
        state.names.remove(name);
        state.durable_names.remove(name);
        state.insert_file(name.to_string(), bytes);
    }

    /// Names of the files, sorted.
    pub fn file_names(&self) -> Vec<String> {
        self.lock().names.keys().cloned().collect()
    }
}

fn apply_dir_op(names: &mut BTreeMap<String, u64>, op: &DirOp) {
    match op {
        DirOp::Link { name, file_id } => {
            names.insert(name.clone(), *file_id);
        }
        DirOp::Rename { source, target } => {
            if let Some(id) = names.remove(source) {
                names.insert(target.clone(), id);
            }
        }
        DirOp::Remove { name } => {
            names.remove(name);
        }
    }
}

impl MemState {
    fn insert_file(&mut self, name: String, content: Vec<u8>) {
        let id = self.next_file_id;
        self.next_file_id += 1;
        self.files.insert(
            id,
            MemFileState {
                current: content.clone(),
                durable: content,
                unsynced: Vec::new(),
            },
        );
        self.names.insert(name.clone(), id);
        self.durable_names.insert(name, id);
    }

    /// Counts a mutating call and fails it if the power is (now) out.
    fn mutating_call(&mut self) -> io::Result<()> {
        if self.faults.power_loss_at_op == Some(self.counts.ops) {
            self.powered_off = true;
        }
        self.counts.ops += 1;
        if self.powered_off {
            return Err(powered_off_error());
        }
        Ok(())
    }

    fn dir_op(&mut self, op: DirOp) -> io::Result<()> {
        self.mutating_call()?;
        apply_dir_op(&mut self.names, &op);
        self.dir_ops.push(op);
        Ok(())
    }

    fn file_id(&self, name: &str) -> io::Result<u64> {
        self.names
            .get(name)
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no file {name}")))
    }

    /// Counts a sync and says whether it is the one to fail.
    fn sync_call(&mut self) -> io::Result<()> {
        self.mutating_call()?;
        let n = self.counts.syncs;
        self.counts.syncs += 1;
        if self.faults.failed_sync == Some(n) {
            return Err(io::Error::other("injected fsync failure"));
        }
        Ok(())
    }
}

impl PageIo for MemPageIo {
    fn dir_path(&self) -> &Path {
        &self.path
    }

    fn exists(&self, name: &str) -> io::Result<bool> {
        Ok(self.lock().names.contains_key(name))
    }

    fn create_file(&self, name: &str) -> io::Result<Arc<dyn PageFile>> {
        let mut state = self.lock();
        state.mutating_call()?;
        let file_id = state.next_file_id;
        state.next_file_id += 1;
        state.files.insert(file_id, MemFileState::default());
        let op = DirOp::Link {
            name: name.to_string(),
            file_id,
        };
        apply_dir_op(&mut state.names, &op);
        state.dir_ops.push(op);
        Ok(Arc::new(MemFile {
            io: self.clone(),
            file_id,
        }))
    }

    fn open_file(&self, name: &str) -> io::Result<Arc<dyn PageFile>> {
        let file_id = self.lock().file_id(name)?;
        Ok(Arc::new(MemFile {
            io: self.clone(),
            file_id,
        }))
    }

    fn rename(&self, source: &str, target: &str) -> io::Result<()> {
        let mut state = self.lock();
        state.file_id(source)?;
        state.dir_op(DirOp::Rename {
            source: source.to_string(),
            target: target.to_string(),
        })
    }

    fn remove_file(&self, name: &str) -> io::Result<()> {
        let mut state = self.lock();
        state.file_id(name)?;
        state.dir_op(DirOp::Remove {
            name: name.to_string(),
        })
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut state = self.lock();
        state.sync_call()?;
        state.durable_names = state.names.clone();
        state.dir_ops.clear();
        Ok(())
    }
}

/// A handle on one in-memory file.
#[derive(Debug)]
struct MemFile {
    io: MemPageIo,
    file_id: u64,
}

impl MemFile {
    fn with_file<R>(&self, f: impl FnOnce(&mut MemFileState) -> R) -> R {
        let mut state = self.io.lock();
        let file = state
            .files
            .get_mut(&self.file_id)
            .expect("files are never dropped from a MemPageIo");
        f(file)
    }
}

impl PageFile for MemFile {
    fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.with_file(|file| file.current.len() as u64))
    }

    fn read_at(&self, offset_bytes: u64, buf: &mut [u8]) -> io::Result<()> {
        self.with_file(|file| {
            let range = range_within(offset_bytes, buf.len(), file.current.len() as u64)
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            buf.copy_from_slice(&file.current[range]);
            Ok(())
        })
    }

    fn write_at(&self, offset_bytes: u64, data: &[u8]) -> io::Result<()> {
        let mut state = self.io.lock();
        state.mutating_call()?;
        let n = state.counts.writes;
        state.counts.writes += 1;
        if state.faults.failed_write == Some(n) {
            return Err(io::Error::other("injected write failure"));
        }
        let file = state
            .files
            .get_mut(&self.file_id)
            .expect("files are never dropped from a MemPageIo");
        let op = FileOp::Write {
            offset_bytes,
            data: data.to_vec(),
        };
        apply_op(&mut file.current, &op, None);
        file.unsynced.push(op);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let mut state = self.io.lock();
        state.sync_call()?;
        let file = state
            .files
            .get_mut(&self.file_id)
            .expect("files are never dropped from a MemPageIo");
        file.durable = file.current.clone();
        file.unsynced.clear();
        Ok(())
    }

    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        let mut state = self.io.lock();
        state.mutating_call()?;
        let file = state
            .files
            .get_mut(&self.file_id)
            .expect("files are never dropped from a MemPageIo");
        let op = FileOp::SetLen { len_bytes };
        apply_op(&mut file.current, &op, None);
        file.unsynced.push(op);
        Ok(())
    }

    fn map(&self) -> io::Result<Arc<dyn FileMap>> {
        Ok(self.with_file(|file| Arc::new(MemMap::copy_of(&file.current)) as Arc<dyn FileMap>))
    }
}

/// A copy of a file's bytes in 8-byte-aligned memory (values in pages are 8-aligned).
struct MemMap {
    words: Vec<u64>,
    len_bytes: usize,
}

impl MemMap {
    fn copy_of(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        for (word, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
            let mut raw = [0u8; 8];
            raw[..chunk.len()].copy_from_slice(chunk);
            *word = u64::from_ne_bytes(raw);
        }
        MemMap {
            words,
            len_bytes: bytes.len(),
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `words` owns `words.len() * 8 >= len_bytes` initialized bytes; u8 has no
        // alignment or validity requirements, and the slice borrows `self`.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len_bytes) }
    }
}

impl FileMap for MemMap {
    fn len_bytes(&self) -> u64 {
        self.len_bytes as u64
    }

    fn slice(&self, offset_bytes: u64, len_bytes: usize) -> Option<&[u8]> {
        let range = range_within(offset_bytes, len_bytes, self.len_bytes as u64)?;
        Some(&self.bytes()[range])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(io: &MemPageIo) -> Arc<dyn PageFile> {
        let file = io.create_file("f").expect("create");
        io.sync_dir().expect("sync dir");
        file.write_at(0, &[1; 8]).expect("write");
        file.sync().expect("sync");
        file.write_at(0, &[2; 8]).expect("write");
        file
    }

    // Guards the power-loss model: synced bytes always survive; unsynced ones may or may not,
    // and across seeds both happen.
    #[test]
    fn crash_images_keep_synced_bytes_and_sometimes_unsynced_ones() {
        let io = MemPageIo::new("/mem");
        let _file = written(&io);
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let image = io.crash_image(seed).file_bytes("f").expect("file survives");
            assert_eq!(image.len(), 8);
            assert!(image.iter().all(|&b| b == 1 || b == 2), "{image:?}");
            seen.insert(image);
        }
        assert!(seen.contains(&vec![1; 8]), "unsynced write dropped");
        assert!(seen.contains(&vec![2; 8]), "unsynced write kept");
        assert!(seen.len() > 2, "some write torn");
    }

    #[test]
    fn power_loss_fails_that_call_and_every_later_one() {
        let io = MemPageIo::new("/mem");
        let file = io.create_file("f").expect("create");
        io.set_faults(Faults {
            power_loss_at_op: Some(1),
            ..Faults::default()
        });
        file.write_at(0, &[1]).expect("op 0 runs");
        assert!(file.sync().is_err(), "op 1 is lost");
        assert!(file.write_at(0, &[2]).is_err(), "and everything after");
        assert!(io.powered_off());
        for seed in 0..16 {
            let image = io.crash_image(seed).file_bytes("f");
            assert!(
                matches!(image.as_deref(), None | Some([] | [1])),
                "the lost write never lands: {image:?}"
            );
        }
    }

    #[test]
    fn a_failed_sync_makes_nothing_durable() {
        let io = MemPageIo::new("/mem");
        let file = io.create_file("f").expect("create");
        io.sync_dir().expect("sync dir");
        io.set_faults(Faults {
            failed_sync: Some(0),
            ..Faults::default()
        });
        file.write_at(0, &[7; 4]).expect("write");
        assert!(file.sync().is_err());
        let survivors: Vec<Vec<u8>> = (0..32)
            .filter_map(|seed| io.crash_image(seed).file_bytes("f"))
            .collect();
        assert!(survivors.iter().any(Vec::is_empty), "the write may be lost");
    }

    #[test]
    fn unsynced_renames_may_be_lost() {
        let io = MemPageIo::new("/mem");
        io.create_file("a").expect("create");
        io.sync_dir().expect("sync");
        io.rename("a", "b").expect("rename");
        let names: std::collections::BTreeSet<Vec<String>> = (0..32)
            .map(|seed| io.crash_image(seed).file_names())
            .collect();
        assert!(names.contains(&vec!["a".to_string()]));
        assert!(names.contains(&vec!["b".to_string()]));
    }
}
