//! `ReadView`: an immutable snapshot of the committed store, for readers on any thread.

use super::event::Event;
use super::key_range::KeyRange;
use super::range::{RangeOptions, RangeResult};
use super::state::StoreState;
use crate::error::MvccError;

/// An immutable snapshot of the store as of one committed revision. Taking and cloning one is
/// O(1) (two `Arc` increments); it never blocks the writer and stays unchanged by later commits
/// and compactions, whose node copies it does not see.
#[derive(Clone)]
pub struct ReadView {
    state: StoreState,
}

impl ReadView {
    pub(crate) fn new(state: StoreState) -> Self {
        ReadView { state }
    }

    /// The store's revision when the view was taken.
    pub fn revision(&self) -> i64 {
        self.state.revision
    }

    /// The store's compacted revision when the view was taken (0 if never compacted).
    pub fn compacted_revision(&self) -> i64 {
        self.state.compacted_revision()
    }

    /// Keys in `range` at revision `opts.revision` (`<= 0`: the view's revision). Errors:
    /// above the view's revision, `FutureRevision`; below its compacted revision, `Compacted`
    /// (a read at exactly the compacted revision is allowed).
    pub fn range(&self, range: &KeyRange, opts: &RangeOptions) -> Result<RangeResult, MvccError> {
        self.state.range(range, opts, self.state.revision)
    }

    /// Watch history: changes with `start_revision <= main revision < end_revision` to keys in
    /// `range`, in revision order, at most `max_events` (0 = no limit). `end_revision` beyond
    /// the view is cut to `revision() + 1`; a start above it gives no events (not an error: a
    /// watch may start in the future). `start_revision` below the compacted revision is
    /// `Compacted`. With `with_prev_kv`, each event carries the version it replaced when that
    /// is still stored (compaction at `c` keeps it for every event above `c`).
    pub fn events(
        &self,
        range: &KeyRange,
        start_revision: i64,
        end_revision: i64,
        max_events: usize,
        with_prev_kv: bool,
    ) -> Result<Vec<Event>, MvccError> {
        self.state.events(
            range,
            start_revision,
            end_revision,
            max_events,
            with_prev_kv,
        )
    }
}

impl std::fmt::Debug for ReadView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadView")
            .field("revision", &self.state.revision)
            .field("compacted_revision", &self.state.compacted_revision())
            .field("records", &self.state.records.len())
            .finish()
    }
}
