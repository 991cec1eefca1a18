//! `Record`: what the record tree stores under a revision (etcd's key bucket value): a put's
//! key-value, or a delete's tombstone.

use bytes::Bytes;

use super::event::EventKind;
use super::key_value::KeyValue;

/// One stored change. Its revision is its key in the record tree, so `mod_revision` is not
/// stored again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) key: Bytes,
    /// Empty for a tombstone.
    pub(crate) value: Bytes,
    /// Main revision that created the key's generation; 0 for a tombstone.
    pub(crate) create_revision: i64,
    /// 1 for the creating put, +1 per later put in the generation; 0 for a tombstone.
    pub(crate) version: i64,
    /// Lease id; 0 for none and for a tombstone.
    pub(crate) lease: i64,
    pub(crate) kind: EventKind,
}

impl Record {
    pub(crate) fn put(
        key: Bytes,
        value: Bytes,
        create_revision: i64,
        version: i64,
        lease: i64,
    ) -> Self {
        assert!(version >= 1, "a put writes version {version} >= 1");
        Record {
            key,
            value,
            create_revision,
            version,
            lease,
            kind: EventKind::Put,
        }
    }

    pub(crate) fn tombstone(key: Bytes) -> Self {
        Record {
            key,
            value: Bytes::new(),
            create_revision: 0,
            version: 0,
            lease: 0,
            kind: EventKind::Delete,
        }
    }

    pub(crate) fn is_tombstone(&self) -> bool {
        self.kind == EventKind::Delete
    }

    /// The record as readers see it, written at main revision `mod_revision`. A tombstone gives
    /// etcd's delete event form: key and `mod_revision` only.
    pub(crate) fn to_key_value(&self, mod_revision: i64) -> KeyValue {
        KeyValue {
            key: self.key.clone(),
            create_revision: self.create_revision,
            mod_revision,
            version: self.version,
            value: self.value.clone(),
            lease: self.lease,
        }
    }
}
