//! `IndexKey`: a key as the revision index tree holds it. A binary search in a tree node
//! compares the search key with several node keys; a `Bytes` key lives in its own allocation,
//! so each comparison costs a cache miss (measured: most of a point read at 1M keys). Keys up to
//! [`INLINE_LEN_BYTES_MAX`] bytes are therefore kept inline in the node; longer keys keep their
//! `Bytes`. Same size as `Bytes` (32 bytes).

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;

use bytes::Bytes;

/// Longest key stored inline. With the length byte and the enum tag the inline form fits in the
/// 32 bytes of the `Bytes` form.
pub(crate) const INLINE_LEN_BYTES_MAX: usize = 23;

/// A key of the revision index; ordered and compared as its bytes.
#[derive(Clone)]
pub(crate) enum IndexKey {
    /// `bytes[..len]` is the key.
    Inline {
        len: u8,
        bytes: [u8; INLINE_LEN_BYTES_MAX],
    },
    /// A key longer than [`INLINE_LEN_BYTES_MAX`].
    Shared(Bytes),
}

const _: () = assert!(std::mem::size_of::<IndexKey>() == std::mem::size_of::<Bytes>());
const _: () = assert!(
    INLINE_LEN_BYTES_MAX <= u8::MAX as usize,
    "length fits the u8"
);

impl IndexKey {
    pub(crate) fn new(key: &Bytes) -> Self {
        if key.len() > INLINE_LEN_BYTES_MAX {
            return IndexKey::Shared(key.clone());
        }
        let mut bytes = [0u8; INLINE_LEN_BYTES_MAX];
        bytes[..key.len()].copy_from_slice(key);
        let len = u8::try_from(key.len()).expect("an inline key fits u8");
        IndexKey::Inline { len, bytes }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            IndexKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            IndexKey::Shared(bytes) => bytes,
        }
    }
}

impl Borrow<[u8]> for IndexKey {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for IndexKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for IndexKey {}

impl PartialOrd for IndexKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for IndexKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl fmt::Debug for IndexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&Bytes::copy_from_slice(self.as_slice()), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The tree relies on IndexKey ordering exactly as the key bytes (Borrow<[u8]> contract),
    // across the inline/shared boundary and for prefixes.
    #[test]
    fn index_keys_order_as_their_bytes_across_both_forms() {
        let long = "k".repeat(INLINE_LEN_BYTES_MAX + 1);
        let at_max = "k".repeat(INLINE_LEN_BYTES_MAX);
        let texts = [
            "",
            "\0",
            "a",
            "a\0",
            "ab",
            "k",
            at_max.as_str(),
            long.as_str(),
            "l",
        ];
        let keys: Vec<IndexKey> = texts
            .iter()
            .map(|t| IndexKey::new(&Bytes::copy_from_slice(t.as_bytes())))
            .collect();
        assert!(matches!(keys[6], IndexKey::Inline { .. }));
        assert!(matches!(keys[7], IndexKey::Shared(_)));
        for (i, a) in keys.iter().enumerate() {
            assert_eq!(a.as_slice(), texts[i].as_bytes());
            for (j, b) in keys.iter().enumerate() {
                assert_eq!(
                    a.cmp(b),
                    texts[i].as_bytes().cmp(texts[j].as_bytes()),
                    "{i} vs {j}"
                );
            }
        }
    }
}
