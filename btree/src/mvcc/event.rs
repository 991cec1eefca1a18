//! `Event`: one change of one key, as a commit reports it and as watch history replays it.

use super::key_value::KeyValue;

/// What a change did to its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The key was created or overwritten.
    Put,
    /// The key was deleted.
    Delete,
}

/// One change of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// For a put, the version written. For a delete, as etcd sends it: only `key`, and
    /// `mod_revision` = the deleting transaction's revision; every other field is 0 or empty.
    pub kv: KeyValue,
    /// The key's version just before this change, if it existed (and, in history read after a
    /// compaction, if compaction kept it).
    pub prev_kv: Option<KeyValue>,
}
