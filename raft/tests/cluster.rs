//! Randomized in-memory cluster runs (3 and 5 nodes): message loss, duplication and
//! reordering, crashes and restarts, pipelined (late) persistence, log compaction with
//! snapshots, reads and leader transfers, all decided by one printed seed. Safety is checked
//! throughout (one leader per term, applied sequences agree); at the end the network heals
//! and every node must converge on the same applied sequence.
//!
//! `KEEL_SEED=N` replays one seed; `KEEL_LONG_TESTS=1` runs many more seeds and steps.

mod harness;

use bytes::Bytes;
use harness::cluster::Cluster;
use harness::network::Faults;
use harness::rng::{seed_from_env, TestRng};
use keel_raft::{ConfState, Config, NodeId};

/// Readies a node may have handed out and not persisted before the driver persists.
const UNPERSISTED_READIES_MAX: usize = 3;

fn new_cluster(seed: u64, size: u64, faults: Faults) -> Cluster {
    let mut cluster = Cluster::new(seed);
    let voters: Vec<NodeId> = (1..=size).map(NodeId).collect();
    for id in 1..=size {
        let mut config = Config::new(NodeId(id));
        config.seed = seed;
        config.inflight_msgs_max = 4;
        config.msg_size_bytes_max = 256;
        config.pre_vote = !seed.is_multiple_of(3);
        config.check_quorum = !seed.is_multiple_of(4);
        let conf_state = ConfState {
            voters: voters.clone(),
            learners: Vec::new(),
        };
        cluster.add_node(config, conf_state, 1);
    }
    cluster.net.faults = faults;
    cluster
}

fn random_live(cluster: &Cluster, rng: &mut TestRng) -> Option<NodeId> {
    let live: Vec<NodeId> = cluster
        .nodes
        .iter()
        .filter(|(_, n)| !n.crashed)
        .map(|(&id, _)| id)
        .collect();
    (!live.is_empty()).then(|| live[rng.below(live.len() as u64) as usize])
}

/// One random action.
fn step_randomly(cluster: &mut Cluster, rng: &mut TestRng, proposals: &mut u64, chaos: bool) {
    let size = cluster.nodes.len();
    let crashed = cluster.nodes.values().filter(|n| n.crashed).count();
    let Some(id) = random_live(cluster, rng) else {
        return;
    };
    match rng.below(100) {
        0..=34 => {
            cluster.deliver_one();
        }
        35..=49 => cluster.node(id).raw.tick(),
        50..=62 => {
            if cluster.node(id).unpersisted.len() < UNPERSISTED_READIES_MAX {
                cluster.handout(id);
            }
        }
        63..=76 => {
            cluster.persist_one(id);
        }
        77..=86 => {
            *proposals += 1;
            let data = Bytes::from(format!("p{proposals}"));
            if let Err(e) = cluster.node(id).raw.propose(data) {
                if std::env::var_os("KEEL_DEBUG").is_some() {
                    println!("propose at {id}: {e}");
                }
            }
        }
        87 if chaos && crashed < (size - 1) / 2 && rng.chance(40) => cluster.crash(id),
        88..=89 => {
            if let Some((&down, _)) = cluster.nodes.iter().find(|(_, n)| n.crashed) {
                cluster.restart(down);
            }
        }
        90..=91 => cluster.compact(id),
        92..=93 => cluster.node(id).raw.read_index(Bytes::from_static(b"read")),
        94 if chaos && rng.chance(25) => {
            let target = NodeId(rng.below(size as u64) + 1);
            cluster.node(id).raw.transfer_leader(target);
        }
        _ => while cluster.process_ready(id) {},
    }
}

/// Heals everything and runs fault-free until all nodes applied the same, non-empty log.
fn converge(cluster: &mut Cluster, seed: u64) {
    cluster.net.faults = Faults::default();
    cluster.net.heal();
    for id in cluster.ids() {
        if cluster.node(id).crashed {
            cluster.restart(id);
        }
    }
    let mut final_proposed = false;
    for _round in 0..2_000 {
        for id in cluster.ids() {
            cluster.node(id).raw.tick();
            while cluster.persist_one(id) {}
            while cluster.process_ready(id) {}
        }
        while cluster.deliver_one() {}
        if let Some(leader) = cluster.leader() {
            if !final_proposed {
                final_proposed = cluster
                    .node(leader)
                    .raw
                    .propose(Bytes::from_static(b"final"))
                    .is_ok();
            }
            if final_proposed && all_applied_final(cluster) {
                return;
            }
        }
    }
    for (id, node) in &cluster.nodes {
        println!(
            "{id}: {:?} app={:?}",
            node.raw.status(),
            node.app.applied_index
        );
    }
    panic!("seed {seed}: cluster did not converge after healing");
}

fn all_applied_final(cluster: &Cluster) -> bool {
    let apps: Vec<_> = cluster.nodes.values().map(|n| &n.app).collect();
    let has_final = apps[0]
        .applied
        .last()
        .is_some_and(|(_, d)| d.as_ref() == b"final");
    has_final && apps.iter().all(|a| *a == apps[0])
}

fn run(seed: u64, size: u64, steps: u64, faults: Faults) {
    let mut cluster = new_cluster(seed, size, faults);
    let mut rng = TestRng::new(seed ^ 0xC1A5_7E12);
    let mut proposals = 0u64;
    for step in 0..steps {
        step_randomly(&mut cluster, &mut rng, &mut proposals, true);
        if step % 64 == 0 {
            cluster.check_applied_prefixes();
        }
    }
    cluster.check_applied_prefixes();
    converge(&mut cluster, seed);
    cluster.check_applied_prefixes();
    assert!(
        cluster.step_errors.is_empty(),
        "seed {seed}: {:?}",
        cluster.step_errors
    );
    let applied = cluster
        .nodes
        .values()
        .next()
        .map_or(0, |n| n.app.applied.len());
    assert!(applied > 0, "seed {seed}: nothing was applied");
    println!(
        "seed {seed}: applied {applied} of {proposals} proposals; delivered {:?}",
        cluster.delivered
    );
}

fn seeds(default_count: u64, long_count: u64) -> Vec<u64> {
    if std::env::var_os("KEEL_SEED").is_some() {
        return vec![seed_from_env(0)];
    }
    let count = if std::env::var_os("KEEL_LONG_TESTS").is_some() {
        long_count
    } else {
        default_count
    };
    (1..=count).collect()
}

fn steps() -> u64 {
    if std::env::var_os("KEEL_LONG_TESTS").is_some() {
        20_000
    } else {
        3_000
    }
}

fn lossy() -> Faults {
    Faults {
        drop_percent: 10,
        duplicate_percent: 5,
        reorder: true,
    }
}

// State machine safety under loss, duplication, reordering, crashes and late persistence:
// three nodes apply identical committed sequences, and converge once healed.
#[test]
fn three_nodes_apply_the_same_sequence_under_faults() {
    for seed in seeds(12, 300) {
        println!("seed = {seed} (replay with KEEL_SEED={seed})");
        run(seed, 3, steps(), lossy());
    }
}

// The same with five nodes (two may be down at once).
#[test]
fn five_nodes_apply_the_same_sequence_under_faults() {
    for seed in seeds(6, 150) {
        println!("seed = {seed} (replay with KEEL_SEED={seed})");
        run(seed, 5, steps(), lossy());
    }
}

// Without faults, progress must be steady: most proposals commit.
#[test]
fn fault_free_cluster_commits_most_proposals() {
    let seed = seed_from_env(7);
    let mut cluster = new_cluster(seed, 3, Faults::default());
    let mut rng = TestRng::new(seed);
    let mut proposals = 0u64;
    for _ in 0..3_000 {
        step_randomly(&mut cluster, &mut rng, &mut proposals, false);
    }
    converge(&mut cluster, seed);
    let applied = cluster
        .nodes
        .values()
        .next()
        .map_or(0, |n| n.app.applied.len());
    assert!(
        applied as u64 > proposals / 4,
        "applied {applied} of {proposals} proposals"
    );
}
