//! Page allocation and the free list: free runs, pages released but maybe still visible
//! (pending, tagged with the checkpoint that stops referencing them and the version readers
//! may hold), and the free-list pages a checkpoint writes. Reclaiming (moving pending to free)
//! follows crate invariant 6. Layout: docs/design/btree-format.md, "Free list".

use std::collections::BTreeMap;

use crate::error::Corruption;
use crate::page::{self, Header, PageId, PageKind, TxnId, HEADER_BYTES};

/// Bytes of one run in a free-list page: first page u64, page count u64.
const RUN_BYTES: usize = 16;

/// Runs one free-list page holds.
pub(crate) fn runs_per_page(page_size_bytes: usize) -> usize {
    (page_size_bytes - HEADER_BYTES) / RUN_BYTES
}

/// Pages released by a change, not yet reusable.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Pending {
    first: u64,
    count: u64,
    /// The first checkpoint whose tree no longer references the pages.
    freed_before: TxnId,
    /// Readers of versions `<= freed_at_seq` may still reach the pages; `None` for pages no
    /// reader ever reads (old free-list pages).
    freed_at_seq: Option<u64>,
}

/// The writer's page accounting for one file.
#[derive(Debug)]
pub(crate) struct Allocator {
    /// Pages `[0, page_count)` are in use or free; the file may be longer (preallocated).
    page_count: u64,
    /// Free runs, first page -> page count; coalesced (no two runs touch).
    free: BTreeMap<u64, u64>,
    pending: Vec<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}+{}@{}", self.first, self.count, self.freed_before)
    }
}

/// How many first-fit candidates an allocation of a run inspects before it extends the file
/// instead: bounds the work of one allocation.
const RUN_SEARCH_MAX: usize = 4096;

impl Allocator {
    /// A file whose pages `[0, page_count)` are all in use except the runs in `free`.
    pub(crate) fn new(page_count: u64, free: impl IntoIterator<Item = (u64, u64)>) -> Self {
        let mut allocator = Allocator {
            page_count,
            free: BTreeMap::new(),
            pending: Vec::new(),
        };
        for (first, count) in free {
            allocator.insert_free(first, count);
        }
        allocator
    }

    pub(crate) fn page_count(&self) -> u64 {
        self.page_count
    }

    /// Pages free now or pending.
    pub(crate) fn unused_page_count(&self) -> u64 {
        self.free.values().sum::<u64>() + self.pending.iter().map(|p| p.count).sum::<u64>()
    }

    fn insert_free(&mut self, first: u64, count: u64) {
        assert!(count > 0, "a free run has pages");
        let mut first = first;
        let mut count = count;
        if let Some((&before, &before_count)) = self.free.range(..first).next_back() {
            assert!(
                before + before_count <= first,
                "run {first}+{count} overlaps free run {before}+{before_count}"
            );
            if before + before_count == first {
                self.free.remove(&before);
                first = before;
                count += before_count;
            }
        }
        if let Some(&after_count) = self.free.get(&(first + count)) {
            self.free.remove(&(first + count));
            count += after_count;
        }
        if let Some((&after, _)) = self.free.range(first..).next() {
            assert!(
                first + count <= after,
                "run {first}+{count} overlaps free run {after}"
            );
        }
        self.free.insert(first, count);
    }

    /// `count` contiguous pages: the lowest free run that fits, else new pages at the end.
    pub(crate) fn allocate(&mut self, count: u64) -> PageId {
        assert!(count > 0, "allocate at least one page");
        let found = self
            .free
            .iter()
            .take(RUN_SEARCH_MAX)
            .find(|(_, &run)| run >= count)
            .map(|(&first, &run)| (first, run));
        if let Some((first, run)) = found {
            self.free.remove(&first);
            if run > count {
                self.free.insert(first + count, run - count);
            }
            return PageId(first);
        }
        let first = self.page_count;
        self.page_count += count;
        PageId(first)
    }

    /// Releases `count` pages from `first`: unreferenced from checkpoint `freed_before` on,
    /// reachable by readers of versions up to `freed_at_seq`.
    pub(crate) fn release(
        &mut self,
        first: PageId,
        count: u64,
        freed_before: TxnId,
        freed_at_seq: Option<u64>,
    ) {
        assert!(
            first >= PageId::FIRST_DATA && first.0 + count <= self.page_count,
            "release of {first}+{count} outside the data pages of {}",
            self.page_count
        );
        self.pending.push(Pending {
            first: first.0,
            count,
            freed_before,
            freed_at_seq,
        });
    }

    /// Crate invariant 6: pending pages become free once the checkpoint that stopped
    /// referencing them is durable (it is before `checkpoint`) and no reader holds a version
    /// that could reach them (`oldest_reader` is the oldest version held). Returns pages moved.
    pub(crate) fn reclaim(&mut self, checkpoint: TxnId, oldest_reader: Option<u64>) -> u64 {
        let (ready, waiting): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| {
                let durable = p.freed_before < checkpoint;
                let unseen = match (p.freed_at_seq, oldest_reader) {
                    (None, _) | (_, None) => true,
                    (Some(seq), Some(oldest)) => seq < oldest,
                };
                durable && unseen
            });
        self.pending = waiting;
        let mut moved = 0;
        for run in ready {
            moved += run.count;
            self.insert_free(run.first, run.count);
        }
        moved
    }

    /// Free and pending runs, sorted and coalesced: what a checkpoint records as free (on
    /// reopen no reader exists, so pending pages are free).
    pub(crate) fn unused_runs(&self) -> Vec<(u64, u64)> {
        // The free runs are sorted already (and usually far more numerous than the pending
        // ones, which are about what changed since the last checkpoint): sort only the
        // pending runs and merge, so a checkpoint's cost follows its changes.
        let mut pending: Vec<(u64, u64)> =
            self.pending.iter().map(|p| (p.first, p.count)).collect();
        pending.sort_unstable();
        let mut free = self
            .free
            .iter()
            .map(|(&first, &count)| (first, count))
            .peekable();
        let mut pending = pending.into_iter().peekable();
        let runs = std::iter::from_fn(|| match (free.peek(), pending.peek()) {
            (Some(a), Some(b)) if a <= b => free.next(),
            (Some(_), Some(_)) | (None, Some(_)) => pending.next(),
            (Some(_), None) => free.next(),
            (None, None) => None,
        });
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.free.len() + self.pending.len());
        for (first, count) in runs {
            match merged.last_mut() {
                Some((last_first, last_count)) if *last_first + *last_count == first => {
                    *last_count += count;
                }
                Some((last_first, last_count)) => {
                    assert!(
                        *last_first + *last_count < first,
                        "unused runs overlap at {first}"
                    );
                    merged.push((first, count));
                }
                None => merged.push((first, count)),
            }
        }
        merged
    }
}

/// Encodes free-list page `page` holding `runs` (at most [`runs_per_page`]), chained to `next`.
pub(crate) fn page_encode(
    page_size_bytes: usize,
    page: PageId,
    txn: TxnId,
    runs: &[(u64, u64)],
    next: PageId,
) -> Vec<u8> {
    assert!(
        runs.len() <= runs_per_page(page_size_bytes),
        "free-list page overfull"
    );
    let mut bytes = vec![0u8; page_size_bytes];
    let header = Header {
        kind: PageKind::FreeList,
        count: u16::try_from(runs.len()).expect("runs per page fit u16"),
        page,
        txn,
        aux: next.0,
    };
    page::header_encode(&mut bytes, &header);
    for (i, &(first, count)) in runs.iter().enumerate() {
        let at = HEADER_BYTES + i * RUN_BYTES;
        page::write_u64(&mut bytes, at, first);
        page::write_u64(&mut bytes, at + 8, count);
    }
    page::seal(&mut bytes);
    bytes
}

/// Decodes a verified free-list page: its runs and the next page (0 = last).
pub(crate) fn page_decode(
    bytes: &[u8],
    page_count: u64,
) -> Result<(Vec<(u64, u64)>, PageId), Corruption> {
    let header = page::header_decode(bytes)?;
    let count = usize::from(header.count);
    if count > runs_per_page(bytes.len()) {
        return Err(Corruption::Layout("free-list run count beyond the page"));
    }
    let mut runs = Vec::with_capacity(count);
    for i in 0..count {
        let at = HEADER_BYTES + i * RUN_BYTES;
        let first = page::read_u64(bytes, at)?;
        let run = page::read_u64(bytes, at + 8)?;
        let inside = first >= PageId::FIRST_DATA.0
            && run > 0
            && first.checked_add(run).is_some_and(|end| end <= page_count);
        if !inside {
            return Err(Corruption::Layout("free run outside the file's pages"));
        }
        runs.push((first, run));
    }
    Ok((runs, PageId(header.aux)))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Guards invariant 6: a page is reusable only after the checkpoint that dropped it is
    // durable and once no reader of a version that could see it remains.
    #[test]
    fn pending_pages_wait_for_their_checkpoint_and_their_readers() {
        let mut allocator = Allocator::new(10, []);
        allocator.release(PageId(4), 1, TxnId(5), Some(7));
        assert_eq!(
            allocator.reclaim(TxnId(5), None),
            0,
            "checkpoint 5 not durable"
        );
        assert_eq!(
            allocator.reclaim(TxnId(6), Some(7)),
            0,
            "a reader of version 7 may see it"
        );
        assert_eq!(allocator.reclaim(TxnId(6), Some(8)), 1);
        assert_eq!(allocator.allocate(1), PageId(4));
    }

    #[test]
    fn runs_coalesce_and_allocation_takes_the_lowest_fit() {
        let mut allocator = Allocator::new(20, [(3, 2), (5, 1), (10, 4)]);
        assert_eq!(allocator.unused_runs(), vec![(3, 3), (10, 4)]);
        assert_eq!(allocator.allocate(4), PageId(10));
        assert_eq!(allocator.allocate(2), PageId(3));
        assert_eq!(
            allocator.allocate(2),
            PageId(20),
            "no run fits: the file grows"
        );
        assert_eq!(allocator.page_count(), 22);
        assert_eq!(allocator.unused_runs(), vec![(5, 1)]);
    }

    // Guards the merge in `unused_runs`: free and pending runs interleaved, adjacent across
    // the two sets and pending released out of order, come out sorted and coalesced.
    #[test]
    fn unused_runs_merge_free_and_pending_sorted_and_coalesced() {
        let mut allocator = Allocator::new(100, [(10, 2), (30, 5), (60, 1)]);
        for (first, count) in [(50, 3), (12, 3), (2, 1), (35, 1), (80, 4), (20, 2)] {
            allocator.release(PageId(first), count, TxnId(3), Some(1));
        }
        assert_eq!(
            allocator.unused_runs(),
            vec![(2, 1), (10, 5), (20, 2), (30, 6), (50, 3), (60, 1), (80, 4)]
        );
    }

    #[test]
    fn free_list_pages_round_trip_and_reject_runs_outside_the_file() {
        let runs = vec![(2, 1), (7, 30)];
        let bytes = page_encode(512, PageId(40), TxnId(3), &runs, PageId(41));
        page::verify(&bytes, PageKind::FreeList, PageId(40)).expect("valid");
        assert_eq!(page_decode(&bytes, 100), Ok((runs, PageId(41))));
        assert!(page_decode(&bytes, 36).is_err(), "7+30 is beyond 36 pages");
    }
}
