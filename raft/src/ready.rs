//! [`Ready`]: everything the state machine asks the server to do, as data.

use crate::message::Message;
use crate::types::{Entry, HardState, ReadState, Snapshot, SoftState};

/// The output of one `RawNode::ready` call. Handle it as the crate docs' server loop
/// describes; then call `RawNode::on_persisted(number)`.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Ready {
    /// Sequence number (1, 2, ...) to pass to `RawNode::on_persisted` once persisted.
    pub number: u64,
    /// New leader/role, if changed since the previous Ready.
    pub soft_state: Option<SoftState>,
    /// Hard state to persist, if changed since the previous Ready.
    pub hard_state: Option<HardState>,
    /// Entries to append to the durable log. They may start at or below the last stored
    /// index: the stored suffix from `entries[0].index` on must then be replaced.
    pub entries: Vec<Entry>,
    /// Snapshot to install in the application and persist (replacing the whole log).
    /// Installing it counts as applying up to its index.
    pub snapshot: Option<Snapshot>,
    /// Messages that may be sent at once, before persisting (leader Appends, heartbeats).
    pub messages: Vec<Message>,
    /// Messages to send only after this Ready is persisted (votes, Append acknowledgements).
    pub persisted_messages: Vec<Message>,
    /// Committed entries to apply in order. Each is already durable locally.
    pub committed_entries: Vec<Entry>,
    /// Linearizable reads now safe once applied up to their index.
    pub read_states: Vec<ReadState>,
    /// True when `hard_state` (term or vote), `entries` or `snapshot` must be synced to
    /// disk before `persisted_messages` go out; false when only the commit index changed.
    pub must_sync: bool,
}
