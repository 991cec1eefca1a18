//! One test per bug the simulator found in keel-raft (docs/design/sim.md, "Findings"). Each
//! reproduces the state the simulator reached through the public API alone, so it keeps
//! guarding the fix however the simulator's random choices change.

use bytes::Bytes;
use keel_raft::{
    ConfState, Config, HardState, LogIndex, LogStorage, MemStorage, NodeId, RawNode, Snapshot,
    SnapshotMeta, Term,
};

fn conf_state(voters: &[u64]) -> ConfState {
    ConfState {
        voters: voters.iter().map(|&v| NodeId(v)).collect(),
        learners: Vec::new(),
    }
}

// Found by the simulator (3 nodes, compaction on): a node snapshots its applied state at 72
// and releases its log; the last *synced* hard state still says commit 71, because a
// commit-only hard state is written without fsync and the crash lost the newer one. On
// restart RawNode::new refused the disk with "hard state commit i71 outside the log [i72,
// i72]" and the node could never come back. A snapshot only holds committed entries, so
// the commit index is at least the snapshot's: restart must succeed with commit 72.
#[test]
fn restart_with_a_snapshot_newer_than_the_stored_commit_succeeds() {
    let mut storage = MemStorage::new();
    storage
        .apply_snapshot(Snapshot {
            meta: SnapshotMeta {
                index: LogIndex(72),
                term: Term(31),
                conf_state: conf_state(&[1, 2, 3]),
            },
            data: Bytes::new(),
        })
        .expect("fresh storage");
    storage.set_hard_state(HardState {
        term: Term(31),
        vote: Some(NodeId(1)),
        commit: LogIndex(71),
    });
    let config = Config {
        applied: LogIndex(72),
        ..Config::new(NodeId(3))
    };
    let mut node = RawNode::new(&config, storage).expect("a stale commit is not corruption");
    let status = node.status();
    assert_eq!(status.commit, LogIndex(72));
    assert_eq!(status.applied, LogIndex(72));
    assert_eq!(status.term, Term(31));
    assert_eq!(status.vote, Some(NodeId(1)), "the vote survives");
    assert!(node.ready().committed_entries.is_empty());
    assert_eq!(node.storage().first_index(), Ok(LogIndex(73)));
}

// The other direction stays an error: a commit index beyond the stored log is corruption
// (it would hand out entries the node does not have).
#[test]
fn restart_with_a_commit_beyond_the_log_is_still_refused() {
    let mut storage = MemStorage::new_with_conf_state(conf_state(&[1]));
    storage.set_hard_state(HardState {
        term: Term(2),
        vote: None,
        commit: LogIndex(3),
    });
    assert!(RawNode::new(&Config::new(NodeId(1)), storage).is_err());
}
