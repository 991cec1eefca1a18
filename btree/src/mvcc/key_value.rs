//! `KeyValue`: one version of a key as readers see it (etcd's `mvccpb.KeyValue`).

use bytes::Bytes;

/// One version of a key as readers see it. Revisions are main revisions (`Revision::main`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: Bytes,
    /// Revision of the put that created this generation of the key (the first put after the
    /// key was absent).
    pub create_revision: i64,
    /// Revision of the put that wrote this version.
    pub mod_revision: i64,
    /// 1 for the creating put, +1 per later put; back to 1 after a delete.
    pub version: i64,
    /// The value.
    pub value: Bytes,
    /// Lease id attached by the put that wrote this version; 0 for none.
    pub lease: i64,
}
