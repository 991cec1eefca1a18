//! What one watcher wants: a key range and filters.

use keel_btree::{Event, EventKind, KeyRange};

/// A watcher's selection (etcd's create request, normalized).
#[derive(Debug, Clone)]
pub(crate) struct Selection {
    pub(crate) range: KeyRange,
    pub(crate) no_put: bool,
    pub(crate) no_delete: bool,
    pub(crate) prev_kv: bool,
}

impl Selection {
    /// Whether `event` goes to this watcher.
    pub(crate) fn wants(&self, event: &Event) -> bool {
        if !self.range.contains(&event.kv.key) {
            return false;
        }
        match event.kind {
            EventKind::Put => !self.no_put,
            EventKind::Delete => !self.no_delete,
        }
    }

    /// The single key this watcher is on, if it watches exactly one key.
    pub(crate) fn single_key(&self) -> Option<&bytes::Bytes> {
        match &self.range {
            KeyRange::Key(k) => Some(k),
            _ => None,
        }
    }
}
