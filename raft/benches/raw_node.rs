//! Proposal throughput through the pure state machine (no disk, no network): one voter, and
//! a 3-voter in-memory cluster driven by the crate docs' server loop. Storage is released
//! behind the applied index so memory stays flat however long criterion runs.

use std::collections::VecDeque;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use keel_raft::{
    ConfChange, ConfState, Config, EntryKind, LogIndex, MemStorage, Message, NodeId, RawNode, Role,
};

/// Entries kept in storage behind the applied index before releasing them.
const RETAINED_ENTRIES_MAX: u64 = 4096;
/// Payload of each proposal (bytes).
const PAYLOAD_SIZE_BYTES: usize = 128;

struct BenchNode {
    raw: RawNode<MemStorage>,
    applied: LogIndex,
}

impl BenchNode {
    fn new(id: u64, voters: &[NodeId]) -> BenchNode {
        let mut config = Config::new(NodeId(id));
        config.seed = id;
        let storage = MemStorage::new_with_conf_state(ConfState {
            voters: voters.to_vec(),
            learners: vec![],
        });
        BenchNode {
            raw: RawNode::new(&config, storage).expect("valid"),
            applied: LogIndex(0),
        }
    }

    /// One pass of the server loop; returns the messages to send.
    fn drive(&mut self, outbox: &mut VecDeque<Message>) {
        while self.raw.has_ready() {
            let rd = self.raw.ready();
            outbox.extend(rd.messages);
            let storage = self.raw.storage_mut();
            storage.append(&rd.entries).expect("contiguous");
            if let Some(hs) = rd.hard_state {
                storage.set_hard_state(hs);
            }
            self.raw.on_persisted(rd.number);
            outbox.extend(rd.persisted_messages);
            for entry in &rd.committed_entries {
                if entry.kind == EntryKind::ConfChange {
                    let cc = ConfChange::decode(&entry.data).expect("ours");
                    self.raw.apply_conf_change(&cc).expect("valid");
                }
            }
            if let Some(last) = rd.committed_entries.last() {
                self.applied = last.index;
                self.raw.advance_apply_to(last.index);
                if last.index.0 % RETAINED_ENTRIES_MAX == 0 {
                    let release = LogIndex(last.index.0 - RETAINED_ENTRIES_MAX / 2);
                    self.raw
                        .storage_mut()
                        .compact(release)
                        .expect("within the log");
                }
            }
        }
    }
}

struct BenchCluster {
    nodes: Vec<BenchNode>,
    net: VecDeque<Message>,
}

impl BenchCluster {
    fn new(size: u64) -> BenchCluster {
        let voters: Vec<NodeId> = (1..=size).map(NodeId).collect();
        let nodes = (1..=size).map(|id| BenchNode::new(id, &voters)).collect();
        let mut cluster = BenchCluster {
            nodes,
            net: VecDeque::new(),
        };
        cluster.nodes[0].raw.campaign().expect("voter");
        cluster.stabilize();
        assert_eq!(cluster.nodes[0].raw.status().role, Role::Leader);
        cluster
    }

    fn stabilize(&mut self) {
        loop {
            for node in &mut self.nodes {
                node.drive(&mut self.net);
            }
            if self.net.is_empty() {
                return;
            }
            while let Some(m) = self.net.pop_front() {
                let to = (m.to.0 - 1) as usize;
                self.nodes[to].raw.step(m).expect("valid peer message");
            }
        }
    }

    fn propose_batch(&mut self, batch: usize, payload: &Bytes) {
        let target = self.nodes[0].applied.0 + batch as u64;
        for _ in 0..batch {
            self.nodes[0]
                .raw
                .propose(payload.clone())
                .expect("leader accepts");
        }
        self.stabilize();
        assert!(
            self.nodes[0].applied.0 >= target,
            "batch committed and applied"
        );
    }
}

fn bench_proposals(c: &mut Criterion) {
    let payload = Bytes::from(vec![7u8; PAYLOAD_SIZE_BYTES]);
    let mut group = c.benchmark_group("raw_node_propose");
    group.sample_size(20);
    group.measurement_time(std::time::Duration::from_secs(3));
    for size in [1u64, 3] {
        for batch in [1usize, 64] {
            let mut cluster = BenchCluster::new(size);
            group.throughput(Throughput::Elements(batch as u64));
            let id = BenchmarkId::new(format!("{size}_voters"), format!("batch_{batch}"));
            group.bench_function(id, |b| b.iter(|| cluster.propose_batch(batch, &payload)));
        }
    }
    group.finish();
}

criterion_group!(benches, bench_proposals);
criterion_main!(benches);
