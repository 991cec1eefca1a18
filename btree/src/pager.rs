//! Reading pages: `PageSource` is one mapping of the page file plus the set of pages already
//! verified; readers and the writer read every page through it. `ReaderTable` tracks which
//! published versions readers still hold, for the reclamation rule (crate invariant 6).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::error::{BtreeError, Corruption, Result};
use crate::io::FileMap;
use crate::page::{self, blob_pages, PageId, PageKind, HEADER_BYTES};

/// One mapping of the page file, shared by the views taken while it was current.
///
/// A page is verified (checksum, kind, own id) the first time it is read through any source
/// of the same file; the bit stays set for the life of the file, because keel only ever
/// writes valid pages and a page is never rewritten while a reader can reach it.
pub(crate) struct PageSource {
    path: Arc<Path>,
    page_size_bytes: usize,
    /// Pages `[0, page_count)` exist; any reference at or beyond is corrupt.
    page_count: u64,
    map: Arc<dyn FileMap>,
    verified: Arc<VerifiedPages>,
}

impl PageSource {
    pub(crate) fn new(
        path: Arc<Path>,
        page_size_bytes: usize,
        page_count: u64,
        map: Arc<dyn FileMap>,
        previous: Option<&PageSource>,
    ) -> Self {
        let verified = match previous {
            Some(previous) if previous.verified.capacity() >= page_count => {
                Arc::clone(&previous.verified)
            }
            Some(previous) => Arc::new(VerifiedPages::grown_from(&previous.verified, page_count)),
            None => Arc::new(VerifiedPages::new(page_count)),
        };
        PageSource {
            path,
            page_size_bytes,
            page_count,
            map,
            verified,
        }
    }

    pub(crate) fn page_count(&self) -> u64 {
        self.page_count
    }

    pub(crate) fn page_size_bytes(&self) -> usize {
        self.page_size_bytes
    }

    /// The page file this maps.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn corrupt(&self, page_id: PageId, reason: Corruption) -> BtreeError {
        BtreeError::Corrupt {
            path: PathBuf::from(&*self.path),
            page_id,
            reason,
        }
    }

    fn bytes_of(&self, first: PageId, page_count: u64) -> Result<&[u8]> {
        let in_file = first.0 >= PageId::FIRST_DATA.0
            && first
                .0
                .checked_add(page_count)
                .is_some_and(|end| end <= self.page_count);
        if !in_file {
            let page_count = self.page_count;
            return Err(self.corrupt(first, Corruption::OutOfFile { page_count }));
        }
        let len = usize::try_from(page_count)
            .ok()
            .and_then(|pages| pages.checked_mul(self.page_size_bytes))
            .ok_or_else(|| self.corrupt(first, Corruption::Layout("run larger than memory")))?;
        self.map
            .slice(first.offset_bytes(self.page_size_bytes), len)
            .ok_or_else(|| {
                let page_count = self.map.len_bytes() / self.page_size_bytes as u64;
                self.corrupt(first, Corruption::OutOfFile { page_count })
            })
    }

    /// The bytes of page `id`, which must be a verified page of one of `kinds`.
    pub(crate) fn page(&self, id: PageId, kinds: &[PageKind]) -> Result<&[u8]> {
        let bytes = self.bytes_of(id, 1)?;
        if !self.verified.contains(id) {
            page::verify_kinds(bytes, kinds, id).map_err(|reason| self.corrupt(id, reason))?;
            self.verified.insert(id);
        } else {
            // Verified before: only the kind the reference expects is left to check (the hot
            // path of every descent, so the byte alone; a page is at least 512 bytes).
            let found = bytes[page::KIND_AT];
            if !kinds.iter().any(|&kind| kind as u8 == found) {
                let reason = Corruption::Kind {
                    expected: kinds[0].name(),
                    found,
                };
                return Err(self.corrupt(id, reason));
            }
        }
        Ok(bytes)
    }

    /// The payload of the blob of `len_bytes` starting at page `first`, verified.
    pub(crate) fn blob(&self, first: PageId, len_bytes: u64) -> Result<&[u8]> {
        let pages = blob_pages(len_bytes, self.page_size_bytes);
        let run = self.bytes_of(first, pages)?;
        let len = usize::try_from(len_bytes)
            .map_err(|_| self.corrupt(first, Corruption::Layout("blob larger than memory")))?;
        let covered = &run[..HEADER_BYTES + len];
        if !self.verified.contains(first) {
            let header = page::verify(covered, PageKind::Blob, first)
                .map_err(|reason| self.corrupt(first, reason))?;
            if header.aux != len_bytes {
                let reason = Corruption::Layout("blob length differs from its reference");
                return Err(self.corrupt(first, reason));
            }
            self.verified.insert(first);
        }
        Ok(&covered[HEADER_BYTES..])
    }
}

/// One bit per page: verified since the file was opened.
pub(crate) struct VerifiedPages {
    words: Vec<AtomicU64>,
}

impl VerifiedPages {
    fn new(page_count: u64) -> Self {
        let words = usize::try_from(page_count.div_ceil(64)).expect("page count fits memory");
        VerifiedPages {
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn grown_from(previous: &VerifiedPages, page_count: u64) -> Self {
        let grown = VerifiedPages::new(page_count);
        for (target, source) in grown.words.iter().zip(&previous.words) {
            target.store(source.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        grown
    }

    fn capacity(&self) -> u64 {
        self.words.len() as u64 * 64
    }

    fn contains(&self, id: PageId) -> bool {
        let Ok(word) = usize::try_from(id.0 / 64) else {
            return false;
        };
        self.words
            .get(word)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (id.0 % 64)) != 0)
    }

    fn insert(&self, id: PageId) {
        if let Some(word) = usize::try_from(id.0 / 64)
            .ok()
            .and_then(|w| self.words.get(w))
        {
            word.fetch_or(1 << (id.0 % 64), Ordering::Relaxed);
        }
    }
}

/// Published versions that readers still hold: sequence number -> live views of it.
#[derive(Default)]
pub(crate) struct ReaderTable {
    counts: Mutex<BTreeMap<u64, usize>>,
}

impl ReaderTable {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, usize>> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a reader of version `seq` until the guard drops.
    pub(crate) fn register(self: &Arc<Self>, seq: u64) -> ReaderGuard {
        *self.lock().entry(seq).or_insert(0) += 1;
        ReaderGuard {
            table: Arc::clone(self),
            seq,
        }
    }

    /// The oldest version a reader holds.
    pub(crate) fn oldest(&self) -> Option<u64> {
        self.lock().keys().next().copied()
    }
}

/// A registered reader; unregisters on drop.
pub(crate) struct ReaderGuard {
    table: Arc<ReaderTable>,
    seq: u64,
}

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        let mut counts = self.table.lock();
        let count = counts
            .get_mut(&self.seq)
            .expect("a registered reader is counted");
        *count -= 1;
        if *count == 0 {
            counts.remove(&self.seq);
        }
    }
}

/// A copy of a page in 8-byte-aligned memory, owned by `Bytes` slices of it (values inside a
/// page sit at 8-aligned offsets, which rkyv needs).
pub(crate) fn aligned_copy(bytes: &[u8]) -> Bytes {
    struct Aligned {
        words: Vec<u64>,
        len_bytes: usize,
    }
    impl AsRef<[u8]> for Aligned {
        fn as_ref(&self) -> &[u8] {
            // SAFETY: `words` owns `words.len() * 8 >= len_bytes` initialized bytes; u8 has no
            // alignment or validity requirements; the slice borrows `self`.
            unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len_bytes) }
        }
    }
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    for (word, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
        let mut raw = [0u8; 8];
        raw[..chunk.len()].copy_from_slice(chunk);
        *word = u64::from_ne_bytes(raw);
    }
    Bytes::from_owner(Aligned {
        words,
        len_bytes: bytes.len(),
    })
}
