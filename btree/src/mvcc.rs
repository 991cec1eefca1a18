//! etcd's MVCC revision model (etcd 3.4 `mvcc/`) over the page file's trees: a record tree
//! (revision -> record, etcd's key bucket), a persisted revision index (key -> generations,
//! etcd's treeIndex), write transactions, read views, watch history and compaction.

mod compact;
mod event;
mod export;
mod key_index;
mod key_range;
mod key_value;
mod range;
mod read_view;
mod record;
mod revision;
pub(crate) mod state;
mod store;
mod write_txn;

pub use compact::{CompactOutcome, CompactProgress};
pub use event::{Event, EventKind};
pub use export::ExportStats;
pub use key_range::KeyRange;
pub use key_value::KeyValue;
pub use range::{RangeOptions, RangeResult};
pub use read_view::ReadView;
pub use revision::Revision;
pub use store::MvccStore;
pub use write_txn::{Committed, WriteTxn};
