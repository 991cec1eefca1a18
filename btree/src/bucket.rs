//! Buckets: the generic byte-key/byte-value trees beside the MVCC ones, for state the server
//! keeps without history (etcd's meta, lease, auth and membership buckets).

use std::ops::Bound;

use bytes::Bytes;

use crate::error::Result;
use crate::meta::TreeId;
use crate::mvcc::KeyRange;
use crate::pager::PageSource;
use crate::tree::Tree;

/// A non-MVCC tree of the store. Changes made in a [`crate::WriteTxn`] commit atomically with
/// its MVCC changes; they are not versioned (a read view sees the bucket as of its commit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    /// Server metadata (etcd's `meta` bucket: consistent index, term, ...).
    Meta,
    /// Leases (etcd's `lease` bucket).
    Lease,
    /// Users (etcd's `authUsers`).
    AuthUsers,
    /// Roles (etcd's `authRoles`).
    AuthRoles,
    /// Cluster members (etcd's `members`).
    Members,
    /// Alarms (etcd's `alarm`).
    Alarm,
}

impl Bucket {
    /// Every bucket.
    pub const ALL: [Bucket; 6] = [
        Bucket::Meta,
        Bucket::Lease,
        Bucket::AuthUsers,
        Bucket::AuthRoles,
        Bucket::Members,
        Bucket::Alarm,
    ];

    pub(crate) fn tree(self) -> TreeId {
        match self {
            Bucket::Meta => TreeId::Meta,
            Bucket::Lease => TreeId::Lease,
            Bucket::AuthUsers => TreeId::AuthUsers,
            Bucket::AuthRoles => TreeId::AuthRoles,
            Bucket::Members => TreeId::Members,
            Bucket::Alarm => TreeId::Alarm,
        }
    }
}

/// The value under `key` in `tree`, copied out.
pub(crate) fn get(tree: &Tree, src: &PageSource, key: &[u8]) -> Result<Option<Bytes>> {
    Ok(tree
        .get(src, key)?
        .map(|value| Bytes::copy_from_slice(value.bytes)))
}

/// Entries of `tree` in `range`, ascending, at most `limit` (0 = no limit), copied out.
pub(crate) fn range(
    tree: &Tree,
    src: &PageSource,
    range: &KeyRange,
    limit: usize,
) -> Result<Vec<(Bytes, Bytes)>> {
    let limit = if limit == 0 { usize::MAX } else { limit };
    let mut out = Vec::new();
    if let KeyRange::Key(key) = range {
        if let Some(value) = get(tree, src, key)? {
            out.push((key.clone(), value));
        }
        out.truncate(limit);
        return Ok(out);
    }
    let Some((start, end)) = range.bounds() else {
        return Ok(out);
    };
    let end = match end {
        Bound::Included(end) => Bound::Included(Bytes::copy_from_slice(end)),
        Bound::Excluded(end) => Bound::Excluded(Bytes::copy_from_slice(end)),
        Bound::Unbounded => Bound::Unbounded,
    };
    for entry in tree.range(src, start, end) {
        if out.len() == limit {
            break;
        }
        let (key, value) = entry?;
        out.push((
            Bytes::copy_from_slice(key),
            Bytes::copy_from_slice(value.bytes),
        ));
    }
    Ok(out)
}
