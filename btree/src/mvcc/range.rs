//! Range reads: what a caller asks for (`RangeOptions`) and gets (`RangeResult`).

use super::key_value::KeyValue;

/// How to read a range (etcd's `mvcc.RangeOptions`). `Default` reads every key at the current
/// revision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RangeOptions {
    /// Most key-values to return; 0 = no limit. Does not affect `count`.
    pub limit: usize,
    /// Revision to read at; `<= 0` = the current revision.
    pub revision: i64,
    /// Return only `count`, no key-values.
    pub count_only: bool,
}

/// What a range read found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeResult {
    /// Matching key-values at the revision read, ascending by key, at most `limit`.
    pub kvs: Vec<KeyValue>,
    /// Number of keys matching at the revision read, regardless of `limit` and `count_only`.
    pub count: usize,
    /// The current revision of the store (or write transaction) read, not the revision read at.
    pub revision: i64,
}
