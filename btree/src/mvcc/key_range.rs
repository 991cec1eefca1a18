//! `KeyRange`: which keys a read, delete or watch covers.

use std::ops::Bound;

use bytes::Bytes;

/// Lower and upper bound of a key range, as the revision index tree takes them.
pub(crate) type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// Which keys an operation covers. The server maps etcd's `key`/`range_end` pair to this: an
/// empty `range_end` is `Key`, `"\0"` is `FromKey`, anything else is `Range`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyRange {
    /// Exactly this key.
    Key(Bytes),
    /// Keys `k` with `start <= k < end`; nothing when `end <= start`.
    Range {
        /// Inclusive lower bound.
        start: Bytes,
        /// Exclusive upper bound.
        end: Bytes,
    },
    /// Every key `>= start`.
    FromKey(Bytes),
}

impl KeyRange {
    /// Whether `key` is covered.
    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeyRange::Key(k) => key == k.as_ref(),
            KeyRange::Range { start, end } => start.as_ref() <= key && key < end.as_ref(),
            KeyRange::FromKey(start) => start.as_ref() <= key,
        }
    }

    /// The covered keys as tree bounds; `None` when nothing is covered.
    pub(crate) fn bounds(&self) -> Option<KeyBounds<'_>> {
        match self {
            KeyRange::Key(k) => Some((Bound::Included(k.as_ref()), Bound::Included(k.as_ref()))),
            KeyRange::Range { start, end } if end <= start => None,
            KeyRange::Range { start, end } => Some((
                Bound::Included(start.as_ref()),
                Bound::Excluded(end.as_ref()),
            )),
            KeyRange::FromKey(start) => Some((Bound::Included(start.as_ref()), Bound::Unbounded)),
        }
    }
}
