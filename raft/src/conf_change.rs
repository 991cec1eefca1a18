//! A single membership change and its byte encoding (the `data` of a `ConfChange` entry).
//!
//! Encoding (version 1), all integers little-endian:
//! `version: u8 = 1 | kind: u8 | node_id: u64 | context_len: u32 | context: [u8; context_len]`.
//! Kind codes: 0 = AddNode, 1 = RemoveNode, 2 = AddLearner. Decoding verifies every field and
//! returns [`ConfChangeDecodeError`]; it never panics on any input.

use bytes::{BufMut, Bytes, BytesMut};

use crate::errors::ConfChangeDecodeError;
use crate::types::NodeId;

/// Encoding version written by [`ConfChange::encode`].
const CONF_CHANGE_VERSION: u8 = 1;
/// Bytes before the context: version, kind, node id, context length.
const CONF_CHANGE_HEADER_BYTES: usize = 1 + 1 + 8 + 4;

/// What a [`ConfChange`] does to the membership.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ConfChangeKind {
    /// Add a voter, or promote a learner to voter.
    AddNode,
    /// Remove a voter or learner.
    RemoveNode,
    /// Add a learner, or demote a voter to learner.
    AddLearner,
}

impl ConfChangeKind {
    fn code(self) -> u8 {
        match self {
            ConfChangeKind::AddNode => 0,
            ConfChangeKind::RemoveNode => 1,
            ConfChangeKind::AddLearner => 2,
        }
    }

    fn from_code(code: u8) -> Option<ConfChangeKind> {
        match code {
            0 => Some(ConfChangeKind::AddNode),
            1 => Some(ConfChangeKind::RemoveNode),
            2 => Some(ConfChangeKind::AddLearner),
            _ => None,
        }
    }
}

/// One membership change (one node at a time).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ConfChange {
    /// The change.
    pub kind: ConfChangeKind,
    /// The node it applies to.
    pub node_id: NodeId,
    /// Opaque application data (etcd puts the member's peer URLs here).
    pub context: Bytes,
}

impl ConfChange {
    /// Builds a change with an empty context.
    pub fn new(kind: ConfChangeKind, node_id: NodeId) -> ConfChange {
        ConfChange {
            kind,
            node_id,
            context: Bytes::new(),
        }
    }

    /// Encodes for the `data` of an `EntryKind::ConfChange` entry.
    pub fn encode(&self) -> Bytes {
        let context_len = u32::try_from(self.context.len())
            .expect("conf change context is below 4 GiB: it travels inside one Raft entry");
        let mut buf = BytesMut::with_capacity(CONF_CHANGE_HEADER_BYTES + self.context.len());
        buf.put_u8(CONF_CHANGE_VERSION);
        buf.put_u8(self.kind.code());
        buf.put_u64_le(self.node_id.0);
        buf.put_u32_le(context_len);
        buf.put_slice(&self.context);
        buf.freeze()
    }

    /// Decodes what [`ConfChange::encode`] produced. Never panics.
    pub fn decode(data: &Bytes) -> Result<ConfChange, ConfChangeDecodeError> {
        if data.len() < CONF_CHANGE_HEADER_BYTES {
            return Err(ConfChangeDecodeError::Truncated {
                len_bytes: data.len(),
            });
        }
        let version = data[0];
        if version != CONF_CHANGE_VERSION {
            return Err(ConfChangeDecodeError::UnknownVersion { version });
        }
        let kind = ConfChangeKind::from_code(data[1])
            .ok_or(ConfChangeDecodeError::UnknownKind { code: data[1] })?;
        let node_id = u64::from_le_bytes(data[2..10].try_into().expect("slice has 8 bytes"));
        let context_len = u32::from_le_bytes(data[10..14].try_into().expect("slice has 4 bytes"));
        let context_len = context_len as usize;
        let actual = data.len() - CONF_CHANGE_HEADER_BYTES;
        if actual != context_len {
            return Err(ConfChangeDecodeError::ContextLength {
                expected: context_len,
                actual,
            });
        }
        if node_id == 0 {
            return Err(ConfChangeDecodeError::ZeroNodeId);
        }
        let context = data.slice(CONF_CHANGE_HEADER_BYTES..);
        Ok(ConfChange {
            kind,
            node_id: NodeId(node_id),
            context,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    // Round trip: what one node encodes, every node must decode to the same change.
    #[test]
    fn encode_then_decode_returns_the_same_change() {
        let cc = ConfChange {
            kind: ConfChangeKind::AddLearner,
            node_id: NodeId(42),
            context: Bytes::from_static(b"http://peer:2380"),
        };
        assert_eq!(ConfChange::decode(&cc.encode()), Ok(cc));
    }

    // Corrupt or foreign bytes are errors, not panics (STYLE §4: never assert on peer bytes).
    #[test]
    fn decode_reports_each_kind_of_corruption() {
        let good = ConfChange::new(ConfChangeKind::AddNode, NodeId(1)).encode();
        assert!(matches!(
            ConfChange::decode(&good.slice(..5)),
            Err(ConfChangeDecodeError::Truncated { .. })
        ));
        let mut bad_version = good.to_vec();
        bad_version[0] = 9;
        assert!(matches!(
            ConfChange::decode(&Bytes::from(bad_version)),
            Err(ConfChangeDecodeError::UnknownVersion { version: 9 })
        ));
        let mut bad_kind = good.to_vec();
        bad_kind[1] = 7;
        assert!(matches!(
            ConfChange::decode(&Bytes::from(bad_kind)),
            Err(ConfChangeDecodeError::UnknownKind { code: 7 })
        ));
        let mut long = good.to_vec();
        long.push(0);
        assert!(matches!(
            ConfChange::decode(&Bytes::from(long)),
            Err(ConfChangeDecodeError::ContextLength { .. })
        ));
        let zero = ConfChange::new(ConfChangeKind::AddNode, NodeId(0)).encode();
        assert_eq!(
            ConfChange::decode(&zero),
            Err(ConfChangeDecodeError::ZeroNodeId)
        );
    }

    proptest! {
        // Fuzz-style: arbitrary bytes never panic the decoder.
        #[test]
        fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = ConfChange::decode(&Bytes::from(bytes));
        }

        // Any valid change survives the round trip.
        #[test]
        fn any_change_round_trips(kind in 0u8..3, id in 1u64.., ctx in proptest::collection::vec(any::<u8>(), 0..32)) {
            let cc = ConfChange {
                kind: ConfChangeKind::from_code(kind).expect("0..3 are valid codes"),
                node_id: NodeId(id),
                context: Bytes::from(ctx),
            };
            prop_assert_eq!(ConfChange::decode(&cc.encode()), Ok(cc));
        }
    }
}
