//! keel_raft messages <-> the peer wire format (keelpb.RaftMessage).

use keel_raft::{
    ConfState, Entry, EntryKind, LogIndex, Message, MessageKind, NodeId, Snapshot, SnapshotMeta,
    Term,
};

use crate::proto::keelpb::{RaftConfState, RaftEntry, RaftMessage, RaftSnapshot};

const KINDS: [MessageKind; 14] = [
    MessageKind::Append,
    MessageKind::AppendResponse,
    MessageKind::Vote,
    MessageKind::VoteResponse,
    MessageKind::PreVote,
    MessageKind::PreVoteResponse,
    MessageKind::Heartbeat,
    MessageKind::HeartbeatResponse,
    MessageKind::Snapshot,
    MessageKind::ReadIndex,
    MessageKind::ReadIndexResponse,
    MessageKind::TimeoutNow,
    MessageKind::TransferLeader,
    MessageKind::Propose,
];

fn kind_code(kind: MessageKind) -> u32 {
    KINDS
        .iter()
        .position(|k| *k == kind)
        .expect("every kind is in KINDS") as u32
}

fn entry_to_wire(e: &Entry) -> RaftEntry {
    RaftEntry {
        term: e.term.0,
        index: e.index.0,
        kind: match e.kind {
            EntryKind::Normal => 0,
            EntryKind::ConfChange => 1,
        },
        data: e.data.clone(),
    }
}

fn entry_from_wire(e: RaftEntry) -> Result<Entry, String> {
    let kind = match e.kind {
        0 => EntryKind::Normal,
        1 => EntryKind::ConfChange,
        other => return Err(format!("unknown entry kind {other}")),
    };
    Ok(Entry {
        term: Term(e.term),
        index: LogIndex(e.index),
        kind,
        data: e.data,
    })
}

fn ids(ids: &[NodeId]) -> Vec<u64> {
    ids.iter().map(|n| n.0).collect()
}

fn node_ids(ids: Vec<u64>) -> Vec<NodeId> {
    ids.into_iter().map(NodeId).collect()
}

pub(crate) fn snapshot_to_wire(s: &Snapshot) -> RaftSnapshot {
    RaftSnapshot {
        index: s.meta.index.0,
        term: s.meta.term.0,
        conf_state: Some(RaftConfState {
            voters: ids(&s.meta.conf_state.voters),
            learners: ids(&s.meta.conf_state.learners),
        }),
        data: s.data.clone(),
    }
}

pub(crate) fn snapshot_from_wire(s: RaftSnapshot) -> Snapshot {
    let conf = s.conf_state.unwrap_or_default();
    Snapshot {
        meta: SnapshotMeta {
            index: LogIndex(s.index),
            term: Term(s.term),
            conf_state: ConfState {
                voters: node_ids(conf.voters),
                learners: node_ids(conf.learners),
            },
        },
        data: s.data,
    }
}

pub(crate) fn to_wire(m: &Message) -> RaftMessage {
    RaftMessage {
        kind: kind_code(m.kind),
        from: m.from.0,
        to: m.to.0,
        term: m.term.0,
        log_term: m.log_term.0,
        index: m.index.0,
        entries: m.entries.iter().map(entry_to_wire).collect(),
        commit: m.commit.0,
        reject: m.reject,
        reject_hint: m.reject_hint.0,
        snapshot: m.snapshot.as_ref().map(snapshot_to_wire),
        context: m.context.clone(),
    }
}

/// A peer's message; an unknown kind or entry kind is an error (a peer of
/// another version), never a panic.
pub(crate) fn from_wire(m: RaftMessage) -> Result<Message, String> {
    let kind = *KINDS
        .get(m.kind as usize)
        .ok_or_else(|| format!("unknown message kind {}", m.kind))?;
    Ok(Message {
        kind,
        from: NodeId(m.from),
        to: NodeId(m.to),
        term: Term(m.term),
        log_term: Term(m.log_term),
        index: LogIndex(m.index),
        entries: m
            .entries
            .into_iter()
            .map(entry_from_wire)
            .collect::<Result<_, _>>()?,
        commit: LogIndex(m.commit),
        reject: m.reject,
        reject_hint: LogIndex(m.reject_hint),
        snapshot: m.snapshot.map(snapshot_from_wire),
        context: m.context,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Guards the wire format: every kind and every field survives a round trip.
    #[test]
    fn messages_round_trip_through_the_wire_format() {
        for kind in KINDS {
            let m = Message {
                kind,
                from: NodeId(1),
                to: NodeId(2),
                term: Term(3),
                log_term: Term(4),
                index: LogIndex(5),
                entries: vec![Entry {
                    term: Term(3),
                    index: LogIndex(6),
                    kind: EntryKind::ConfChange,
                    data: bytes::Bytes::from_static(b"x"),
                }],
                commit: LogIndex(7),
                reject: true,
                reject_hint: LogIndex(8),
                snapshot: Some(Snapshot {
                    meta: SnapshotMeta {
                        index: LogIndex(9),
                        term: Term(2),
                        conf_state: ConfState {
                            voters: vec![NodeId(1)],
                            learners: vec![NodeId(2)],
                        },
                    },
                    data: bytes::Bytes::from_static(b"s"),
                }),
                context: bytes::Bytes::from_static(b"c"),
            };
            assert_eq!(from_wire(to_wire(&m)), Ok(m));
        }
    }

    #[test]
    fn unknown_kinds_are_errors() {
        assert!(from_wire(RaftMessage {
            kind: 99,
            ..Default::default()
        })
        .is_err());
        let bad_entry = RaftMessage {
            entries: vec![RaftEntry {
                kind: 7,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(from_wire(bad_entry).is_err());
    }
}
