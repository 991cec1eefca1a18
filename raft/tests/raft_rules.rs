//! One test per Raft rule, driven through the public API (RawNode + the harness cluster).

mod harness;

use bytes::Bytes;
use harness::cluster::Cluster;
use keel_raft::{
    ConfChange, ConfChangeKind, ConfState, Config, Entry, LogIndex, MemStorage, Message,
    MessageKind, NodeId, ProposeError, RaftError, RawNode, Role, Snapshot, SnapshotMeta, Term,
};
use proptest::prelude::*;

fn cluster_of(size: u64, tweak: impl Fn(&mut Config)) -> Cluster {
    let mut cluster = Cluster::new(1);
    let voters: Vec<NodeId> = (1..=size).map(NodeId).collect();
    for id in 1..=size {
        let mut config = Config::new(NodeId(id));
        config.seed = id;
        tweak(&mut config);
        cluster.add_node(
            config,
            ConfState {
                voters: voters.clone(),
                learners: vec![],
            },
            2,
        );
    }
    cluster
}

fn elect(cluster: &mut Cluster, id: u64) {
    cluster
        .node(NodeId(id))
        .raw
        .campaign()
        .expect("voter may campaign");
    let ids = cluster.ids();
    cluster.stabilize(&ids);
    assert_eq!(cluster.node(NodeId(id)).raw.status().role, Role::Leader);
}

fn message(kind: MessageKind, from: u64, to: u64, term: u64) -> Message {
    Message {
        kind,
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        ..Message::default()
    }
}

fn take_messages(cluster: &mut Cluster, id: u64) -> Vec<Message> {
    let node = cluster.node(NodeId(id));
    let mut out = Vec::new();
    while node.raw.has_ready() {
        let rd = node.raw.ready();
        node.raw
            .storage_mut()
            .append(&rd.entries)
            .expect("contiguous");
        if let Some(hs) = rd.hard_state {
            node.raw.storage_mut().set_hard_state(hs);
        }
        node.raw.on_persisted(rd.number);
        out.extend(rd.messages);
        out.extend(rd.persisted_messages);
    }
    out
}

// §5.2: a node votes at most once per term (first come, first served).
#[test]
fn a_node_grants_one_vote_per_term() {
    let mut cluster = cluster_of(3, |c| c.pre_vote = false);
    let mut vote = message(MessageKind::Vote, 2, 1, 5);
    vote.index = LogIndex(2);
    vote.log_term = Term(1);
    cluster
        .node(NodeId(1))
        .raw
        .step(vote.clone())
        .expect("valid");
    vote.from = NodeId(3);
    cluster.node(NodeId(1)).raw.step(vote).expect("valid");
    let responses = take_messages(&mut cluster, 1);
    let rejects: Vec<bool> = responses.iter().map(|m| m.reject).collect();
    assert_eq!(rejects, vec![false, true]);
    assert_eq!(cluster.node(NodeId(1)).raw.status().vote, Some(NodeId(2)));
}

// §5.4.1: a vote goes only to a candidate whose log is at least as up to date.
#[test]
fn a_node_refuses_votes_to_candidates_with_stale_logs() {
    let mut cluster = cluster_of(3, |c| c.pre_vote = false);
    elect(&mut cluster, 1);
    let mut vote = message(MessageKind::Vote, 3, 2, 9);
    vote.index = LogIndex(2);
    vote.log_term = Term(1);
    cluster.node(NodeId(2)).raw.tick(); // no lease impact: check-quorum ignores only while in lease
    for _ in 0..20 {
        cluster.node(NodeId(2)).raw.tick();
    }
    take_messages(&mut cluster, 2);
    cluster.node(NodeId(2)).raw.step(vote).expect("valid");
    let responses = take_messages(&mut cluster, 2);
    let response = responses
        .iter()
        .find(|m| m.kind == MessageKind::VoteResponse)
        .expect("answered");
    assert!(response.reject, "log 1/2 is behind our 2/3");
}

// Pre-vote: granting a pre-vote changes neither term nor vote of the voter.
#[test]
fn granting_a_pre_vote_changes_no_state() {
    let mut cluster = cluster_of(3, |_| {});
    let mut pre_vote = message(MessageKind::PreVote, 2, 1, 5);
    pre_vote.index = LogIndex(2);
    pre_vote.log_term = Term(1);
    cluster.node(NodeId(1)).raw.step(pre_vote).expect("valid");
    let responses = take_messages(&mut cluster, 1);
    assert_eq!(responses.len(), 1);
    assert!(!responses[0].reject);
    assert_eq!(
        responses[0].term,
        Term(5),
        "a grant carries the asked-for term"
    );
    let status = cluster.node(NodeId(1)).raw.status();
    assert_eq!((status.term, status.vote), (Term(1), None));
}

// Check-quorum lease: while hearing from a leader, vote requests are ignored, unless a
// leader transfer forces them.
#[test]
fn vote_requests_are_ignored_during_the_leader_lease_unless_forced() {
    let mut cluster = cluster_of(3, |_| {});
    elect(&mut cluster, 1);
    let term = cluster.node(NodeId(2)).raw.status().term.0;
    let mut vote = message(MessageKind::Vote, 3, 2, term + 1);
    vote.index = LogIndex(10);
    vote.log_term = Term(term);
    cluster
        .node(NodeId(2))
        .raw
        .step(vote.clone())
        .expect("valid");
    assert!(take_messages(&mut cluster, 2).is_empty());
    assert_eq!(cluster.node(NodeId(2)).raw.status().term, Term(term));
    vote.context = Bytes::from_static(keel_raft::CAMPAIGN_TRANSFER_CONTEXT);
    cluster.node(NodeId(2)).raw.step(vote).expect("valid");
    assert_eq!(cluster.node(NodeId(2)).raw.status().term, Term(term + 1));
}

// A message with a higher term turns a leader into a follower of that term.
#[test]
fn a_higher_term_deposes_the_leader() {
    let mut cluster = cluster_of(3, |_| {});
    elect(&mut cluster, 1);
    let term = cluster.node(NodeId(1)).raw.status().term.0;
    let mut append = message(MessageKind::Append, 2, 1, term + 3);
    append.index = LogIndex(0);
    cluster.node(NodeId(1)).raw.step(append).expect("valid");
    let status = cluster.node(NodeId(1)).raw.status();
    assert_eq!(
        (status.role, status.term, status.leader_id),
        (Role::Follower, Term(term + 3), Some(NodeId(2)))
    );
}

// A stale leader is told about the newer term (so it stops disrupting).
#[test]
fn appends_from_a_stale_term_are_answered_with_the_current_term() {
    let mut cluster = cluster_of(3, |_| {});
    elect(&mut cluster, 1);
    let term = cluster.node(NodeId(2)).raw.status().term.0;
    cluster
        .node(NodeId(2))
        .raw
        .step(message(MessageKind::Append, 3, 2, term - 1))
        .expect("valid");
    let responses = take_messages(&mut cluster, 2);
    assert_eq!(responses.len(), 1);
    assert_eq!(
        (responses[0].kind, responses[0].term),
        (MessageKind::AppendResponse, Term(term))
    );
}

// §5.4.2: a new leader does not commit old-term entries by counting replicas; its no-op
// entry of the current term commits them.
#[test]
fn a_leader_commits_only_through_an_entry_of_its_term() {
    let mut cluster = cluster_of(3, |c| c.pre_vote = false);
    elect(&mut cluster, 1);
    let status = cluster.node(NodeId(1)).raw.status();
    assert_eq!(status.commit, status.last_index, "the no-op committed");
    assert_eq!(status.commit, LogIndex(3));
}

// Check-quorum: a leader that hears from no quorum for an election timeout steps down.
#[test]
fn an_isolated_leader_steps_down_after_an_election_timeout() {
    let mut cluster = cluster_of(3, |_| {});
    elect(&mut cluster, 1);
    for _ in 0..20 {
        cluster.node(NodeId(1)).raw.tick();
    }
    assert_eq!(cluster.node(NodeId(1)).raw.status().role, Role::Follower);
}

// Proposals are dropped without a leader and during a leadership transfer.
#[test]
fn proposals_are_dropped_without_a_leader_or_during_transfer() {
    let mut cluster = cluster_of(3, |_| {});
    let err = cluster
        .node(NodeId(1))
        .raw
        .propose(Bytes::from_static(b"x"));
    assert_eq!(err, Err(ProposeError::NoLeader));
    elect(&mut cluster, 1);
    cluster.crash(NodeId(3));
    cluster
        .node(NodeId(1))
        .raw
        .propose(Bytes::from_static(b"y"))
        .expect("leader");
    cluster.stabilize(&[NodeId(1), NodeId(2)]);
    cluster.node(NodeId(1)).raw.transfer_leader(NodeId(3));
    let err = cluster
        .node(NodeId(1))
        .raw
        .propose(Bytes::from_static(b"z"));
    assert_eq!(
        err,
        Err(ProposeError::LeaderTransferring {
            transferee: NodeId(3)
        })
    );
}

// Learners replicate but never campaign.
#[test]
fn a_learner_refuses_to_campaign() {
    let mut cluster = Cluster::new(1);
    let conf_state = ConfState {
        voters: vec![NodeId(1)],
        learners: vec![NodeId(2)],
    };
    cluster.add_node(Config::new(NodeId(1)), conf_state.clone(), 2);
    cluster.add_node(Config::new(NodeId(2)), conf_state, 2);
    assert!(matches!(
        cluster.node(NodeId(2)).raw.campaign(),
        Err(RaftError::CampaignRefused { .. })
    ));
    for _ in 0..100 {
        cluster.node(NodeId(2)).raw.tick();
    }
    assert_eq!(cluster.node(NodeId(2)).raw.status().role, Role::Follower);
}

// One membership change at a time; invalid changes are refused at proposal time.
#[test]
fn conf_changes_are_refused_while_one_is_pending_or_when_invalid() {
    let mut cluster = cluster_of(1, |_| {});
    elect(&mut cluster, 1);
    let remove_last = ConfChange::new(ConfChangeKind::RemoveNode, NodeId(1));
    assert!(matches!(
        cluster.node(NodeId(1)).raw.propose_conf_change(remove_last),
        Err(ProposeError::ConfChangeInvalid { .. })
    ));
    let add = ConfChange::new(ConfChangeKind::AddNode, NodeId(2));
    cluster
        .node(NodeId(1))
        .raw
        .propose_conf_change(add.clone())
        .expect("valid");
    assert!(matches!(
        cluster.node(NodeId(1)).raw.propose_conf_change(add),
        Err(ProposeError::ConfChangePending { .. })
    ));
}

// A follower refuses a snapshot that does not include it, or is older than its commit.
#[test]
fn a_follower_ignores_stale_or_foreign_snapshots() {
    let mut cluster = cluster_of(3, |_| {});
    elect(&mut cluster, 1);
    let term = cluster.node(NodeId(2)).raw.status().term;
    let snapshot = |index: u64, voters: Vec<NodeId>| Snapshot {
        meta: SnapshotMeta {
            index: LogIndex(index),
            term,
            conf_state: ConfState {
                voters,
                learners: vec![],
            },
        },
        data: Bytes::new(),
    };
    for snap in [
        snapshot(2, vec![NodeId(2)]),
        snapshot(50, vec![NodeId(1), NodeId(3)]),
    ] {
        let mut m = message(MessageKind::Snapshot, 1, 2, term.0);
        m.snapshot = Some(snap);
        cluster.node(NodeId(2)).raw.step(m).expect("valid");
        let responses = take_messages(&mut cluster, 2);
        assert_eq!(
            responses[0].index,
            LogIndex(3),
            "answers with its commit index"
        );
    }
    assert_eq!(cluster.node(NodeId(2)).raw.status().last_index, LogIndex(3));
}

// Messages for another node, or with impossible shapes, are errors and change nothing.
#[test]
fn malformed_messages_are_refused_with_errors() {
    let mut cluster = cluster_of(3, |_| {});
    let raw = &mut cluster.node(NodeId(1)).raw;
    let foreign = message(MessageKind::Heartbeat, 2, 3, 1);
    assert!(matches!(
        raw.step(foreign),
        Err(RaftError::NotAddressedToMe { .. })
    ));
    let mut gap = message(MessageKind::Append, 2, 1, 4);
    gap.index = LogIndex(2);
    gap.log_term = Term(1);
    gap.entries = vec![Entry {
        term: Term(4),
        index: LogIndex(4),
        ..Entry::default()
    }];
    assert!(matches!(
        raw.step(gap),
        Err(RaftError::InvalidMessage { .. })
    ));
    let no_term = message(MessageKind::Heartbeat, 2, 1, 0);
    assert!(matches!(
        raw.step(no_term),
        Err(RaftError::InvalidMessage { .. })
    ));
    let empty_snapshot = message(MessageKind::Snapshot, 2, 1, 4);
    assert!(matches!(
        raw.step(empty_snapshot),
        Err(RaftError::InvalidMessage { .. })
    ));
    assert_eq!(raw.status().term, Term(1));
}

// A leader refuses acknowledgements beyond its log (a buggy or malicious peer).
#[test]
fn a_leader_refuses_acknowledgements_beyond_its_log() {
    let mut cluster = cluster_of(3, |_| {});
    elect(&mut cluster, 1);
    let term = cluster.node(NodeId(1)).raw.status().term.0;
    let mut ack = message(MessageKind::AppendResponse, 2, 1, term);
    ack.index = LogIndex(1_000);
    assert!(cluster.node(NodeId(1)).raw.step(ack).is_err());
    assert_eq!(cluster.node(NodeId(1)).raw.status().commit, LogIndex(3));
}

// Restart validation: stored state that contradicts itself is an error, not a panic.
#[test]
fn inconsistent_stored_state_is_an_error_at_restart() {
    let mut storage = MemStorage::new();
    storage.set_hard_state(keel_raft::HardState {
        term: Term(1),
        vote: None,
        commit: LogIndex(5),
    });
    assert!(matches!(
        RawNode::new(&Config::new(NodeId(1)), storage),
        Err(RaftError::InconsistentState { .. })
    ));
    let mut node = RawNode::new(&Config::new(NodeId(1)), MemStorage::new()).expect("empty");
    assert_eq!(node.bootstrap(&[]), Err(RaftError::NoPeers));
    node.bootstrap(&[NodeId(1)]).expect("empty storage");
    let rd = node.ready();
    node.storage_mut().append(&rd.entries).expect("contiguous");
    node.on_persisted(rd.number);
    assert!(matches!(
        node.bootstrap(&[NodeId(1)]),
        Err(RaftError::NotEmpty { .. })
    ));
}

fn arbitrary_kind() -> impl Strategy<Value = MessageKind> {
    prop_oneof![
        Just(MessageKind::Append),
        Just(MessageKind::AppendResponse),
        Just(MessageKind::Vote),
        Just(MessageKind::VoteResponse),
        Just(MessageKind::PreVote),
        Just(MessageKind::PreVoteResponse),
        Just(MessageKind::Heartbeat),
        Just(MessageKind::HeartbeatResponse),
        Just(MessageKind::Snapshot),
        Just(MessageKind::ReadIndex),
        Just(MessageKind::ReadIndexResponse),
        Just(MessageKind::TimeoutNow),
        Just(MessageKind::TransferLeader),
        Just(MessageKind::Propose),
    ]
}

fn arbitrary_message() -> impl Strategy<Value = Message> {
    (
        arbitrary_kind(),
        0u64..6,
        0u64..8,
        0u64..8,
        0u64..12,
        0u64..12,
        proptest::collection::vec((0u64..8, 0u64..14), 0..4),
        any::<bool>(),
        proptest::option::of((0u64..12, 0u64..8, proptest::collection::vec(0u64..6, 0..3))),
        proptest::collection::vec(any::<u8>(), 0..9),
    )
        .prop_map(
            |(kind, from, term, log_term, index, commit, entries, reject, snap, ctx)| Message {
                kind,
                from: NodeId(from),
                to: NodeId(1),
                term: Term(term),
                log_term: Term(log_term),
                index: LogIndex(index),
                entries: entries
                    .into_iter()
                    .map(|(t, i)| Entry {
                        term: Term(t),
                        index: LogIndex(i),
                        ..Entry::default()
                    })
                    .collect(),
                commit: LogIndex(commit),
                reject,
                reject_hint: LogIndex(index / 2),
                snapshot: snap.map(|(i, t, voters)| Snapshot {
                    meta: SnapshotMeta {
                        index: LogIndex(i),
                        term: Term(t),
                        conf_state: ConfState {
                            voters: voters.into_iter().map(NodeId).collect(),
                            learners: vec![],
                        },
                    },
                    data: Bytes::new(),
                }),
                context: Bytes::from(ctx),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    // Invariant 7: no sequence of arbitrary peer messages panics a leader or a follower.
    #[test]
    fn arbitrary_peer_messages_never_panic(messages in proptest::collection::vec(arbitrary_message(), 1..40), lead in any::<bool>()) {
        let mut cluster = cluster_of(3, |_| {});
        if lead {
            elect(&mut cluster, 1);
        }
        for m in messages {
            let _ = cluster.node(NodeId(1)).raw.step(m);
            let _ = take_messages(&mut cluster, 1);
            cluster.node(NodeId(1)).raw.tick();
        }
    }
}

// A commit-only hard state is not synced, so after a crash the stored commit may lag the
// application's durable applied index: restart must accept that and commit up to applied.
#[test]
fn restart_with_applied_beyond_stored_commit_recommits() {
    let mut storage = MemStorage::new();
    let entries: Vec<Entry> = (1..=4)
        .map(|i| Entry {
            term: Term(1),
            index: LogIndex(i),
            ..Entry::default()
        })
        .collect();
    storage.append(&entries).expect("contiguous");
    storage.set_hard_state(keel_raft::HardState {
        term: Term(1),
        vote: None,
        commit: LogIndex(2),
    });
    storage.set_conf_state(ConfState {
        voters: vec![NodeId(1)],
        learners: vec![],
    });
    let config = Config {
        applied: LogIndex(3),
        ..Config::new(NodeId(1))
    };
    let mut node = RawNode::new(&config, storage.clone()).expect("applied <= last index");
    assert_eq!(node.status().commit, LogIndex(3));
    assert_eq!(node.status().applied, LogIndex(3));
    assert!(
        node.ready().committed_entries.is_empty(),
        "applied entries are not redelivered"
    );
    let too_far = Config {
        applied: LogIndex(9),
        ..Config::new(NodeId(1))
    };
    assert!(matches!(
        RawNode::new(&too_far, storage),
        Err(RaftError::InconsistentState { .. })
    ));
}
