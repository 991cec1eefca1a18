//! Multi-member keel clusters through the real etcdctl: membership,
//! replication, failover, member add/promote/remove, move-leader, and
//! requests served by followers.

mod common;

use std::time::{Duration, Instant};

use common::{err, etcdctl, etcdctl_with_stdin, free_port, json, ok, Cluster, Keel};

/// Polls a serializable read on one member until it returns `expected`.
fn eventually_reads(endpoint: &str, key: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = etcdctl(
            endpoint,
            &["get", key, "--print-value-only", "--consistency=s"],
        );
        if String::from_utf8_lossy(&out.stdout) == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{endpoint} never read {key}={expected:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// Guards the basics: three started members with etcd's ids and names,
// endpoint status --cluster, writes through any member visible on all.
#[test]
fn three_members_replicate_writes_made_through_any_member() {
    let cluster = Cluster::start(3, &[]);
    let list = json(&ok(etcdctl(
        &cluster.endpoints(),
        &["member", "list", "-w", "json"],
    )));
    let members = list["members"].as_array().expect("members");
    assert_eq!(members.len(), 3);
    let mut names: Vec<&str> = members
        .iter()
        .map(|m| m["name"].as_str().expect("started member has a name"))
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["m1", "m2", "m3"]);
    let table = ok(etcdctl(
        &cluster.endpoints(),
        &["endpoint", "status", "--cluster", "-w", "json"],
    ));
    let statuses = json(&table);
    let statuses = statuses.as_array().expect("statuses");
    assert_eq!(statuses.len(), 3);
    let leader = statuses[0]["Status"]["leader"].clone();
    assert!(
        statuses.iter().all(|s| s["Status"]["leader"] == leader),
        "{table}"
    );
    for (i, m) in cluster.members.iter().enumerate() {
        ok(etcdctl(
            &m.endpoint(),
            &["put", &format!("k{i}"), &format!("from-m{}", i + 1)],
        ));
    }
    for m in &cluster.members {
        for i in 0..3 {
            // A linearizable read on a follower goes through ReadIndex.
            assert_eq!(
                ok(etcdctl(
                    &m.endpoint(),
                    &["get", &format!("k{i}"), "--print-value-only"]
                )),
                format!("from-m{}\n", i + 1)
            );
        }
    }
    let h = ok(etcdctl(
        &cluster.endpoints(),
        &["endpoint", "health", "--cluster"],
    ));
    assert_eq!(h, "", "etcdctl prints health on stderr");
}

// Guards failover: the leader is SIGKILLed; the others elect a new one and
// keep accepting writes; the old leader restarts and catches up.
#[test]
fn killing_the_leader_elects_a_new_one_and_the_old_one_catches_up() {
    let mut cluster = Cluster::start(3, &[]);
    ok(etcdctl(&cluster.endpoints(), &["put", "before", "1"]));
    let old = cluster.leader();
    cluster.members[old].kill9();
    let new = cluster.leader();
    assert_ne!(new, old);
    let survivor = cluster.members[new].endpoint();
    for i in 0..20 {
        ok(etcdctl(
            &survivor,
            &["put", &format!("after{i}"), &format!("{i}")],
        ));
    }
    cluster.members[old].restart();
    let restarted = cluster.members[old].endpoint();
    eventually_reads(&restarted, "after19", "19\n");
    eventually_reads(&restarted, "before", "1\n");
    // All three agree on the revision once caught up.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let revisions: Vec<i64> = cluster
            .members
            .iter()
            .map(|m| {
                json(&ok(etcdctl(
                    &m.endpoint(),
                    &["get", "x", "-w", "json", "--consistency=s"],
                )))["header"]["revision"]
                    .as_i64()
                    .unwrap_or(0)
            })
            .collect();
        if revisions.iter().all(|r| *r == revisions[0]) {
            assert_eq!(revisions[0], 22);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "revisions never converged: {revisions:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// Guards etcdctl move-leader (and its error on a follower).
#[test]
fn move_leader_hands_leadership_to_the_chosen_member() {
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.leader();
    let target = (leader + 1) % 3;
    let target_id = json(&ok(etcdctl(
        &cluster.members[target].endpoint(),
        &["endpoint", "status", "-w", "json"],
    )))[0]["Status"]["header"]["member_id"]
        .as_u64()
        .expect("id");
    let hex = format!("{target_id:x}");
    let follower = (leader + 2) % 3;
    // etcdctl itself refuses when none of its endpoints leads...
    let e = err(etcdctl(
        &cluster.members[follower].endpoint(),
        &["move-leader", &hex],
    ));
    assert!(e.contains("no leader endpoint given"), "{e}");
    // ...and the server answers a follower's MoveLeader with etcd's error.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let refused = runtime.block_on(async {
        let mut c = cluster.members[follower].client().await;
        c.move_leader(target_id)
            .await
            .expect_err("a follower cannot move leadership")
    });
    assert!(
        refused.to_string().contains("etcdserver: not leader"),
        "{refused}"
    );
    let out = ok(etcdctl(
        &cluster.members[leader].endpoint(),
        &["move-leader", &hex],
    ));
    assert!(
        out.contains("Leadership transferred from") && out.contains(&hex),
        "{out}"
    );
    assert_eq!(cluster.leader(), target);
}

// Guards membership changes: add a learner, start it with
// --initial-cluster-state existing, promote it, remove a member (which
// stops), and the rest keeps working.
#[test]
fn member_add_promote_and_remove() {
    let mut cluster = Cluster::start(3, &[]);
    let ep = cluster.endpoints();
    ok(etcdctl(&ep, &["put", "seed", "v"]));
    let (client_port, peer_port) = (free_port(), free_port());
    let peer = format!("http://127.0.0.1:{peer_port}");
    let added = ok(etcdctl(
        &ep,
        &[
            "member",
            "add",
            "m4",
            &format!("--peer-urls={peer}"),
            "--learner",
        ],
    ));
    assert!(
        added.contains("Member") && added.contains("added to cluster"),
        "{added}"
    );
    assert!(
        added.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{added}"
    );
    let e = err(etcdctl(
        &ep,
        &["member", "add", "dup", &format!("--peer-urls={peer}")],
    ));
    assert!(e.contains("etcdserver: Peer URLs already exists"), "{e}");
    let root = cluster.members[0]
        .data_dir
        .parent()
        .expect("root")
        .to_path_buf();
    let initial = format!("{},m4={peer}", cluster.initial_cluster);
    let client = format!("http://127.0.0.1:{client_port}");
    let m4 = Keel::start_member(
        root.join("m4.keel"),
        root.join("m4.log"),
        client_port,
        peer_port,
        vec![
            "--name=m4".into(),
            format!("--initial-cluster={initial}"),
            "--initial-cluster-state=existing".into(),
        ],
    );
    assert!(
        m4.log().contains("joining an existing cluster"),
        "{}",
        m4.log()
    );
    eventually_reads(&m4.endpoint(), "seed", "v\n");
    let list = json(&ok(etcdctl(&ep, &["member", "list", "-w", "json"])));
    let learner = list["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["name"] == "m4")
        .expect("m4 listed")
        .clone();
    assert_eq!(learner["isLearner"], true);
    assert_eq!(learner["clientURLs"][0], client);
    let id_number = learner["ID"].as_u64().expect("id");
    let id = format!("{id_number:x}");
    let promoted = ok(etcdctl(&ep, &["member", "promote", &id]));
    // etcdctl prints ids with %16x: space-padded when the top nibble is 0.
    assert!(
        promoted.contains(&format!("Member {id_number:16x} promoted in cluster")),
        "{promoted}"
    );
    let e = err(etcdctl(&ep, &["member", "promote", &id]));
    assert!(
        e.contains("etcdserver: can only promote a learner member"),
        "{e}"
    );
    cluster.members.push(m4);
    // Remove m1; its process stops; the other three keep working.
    let m1_id = format!(
        "{:x}",
        list["members"]
            .as_array()
            .expect("members")
            .iter()
            .find(|m| m["name"] == "m1")
            .expect("m1")["ID"]
            .as_u64()
            .expect("id")
    );
    let removed = ok(etcdctl(
        &cluster.members[1].endpoint(),
        &["member", "remove", &m1_id],
    ));
    assert!(
        removed.contains(&format!("Member {m1_id:>16} removed from cluster")),
        "{removed}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let child = cluster.members[0].child.as_mut().expect("m1 running");
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        assert!(Instant::now() < deadline, "removed member kept running");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    assert!(
        cluster.members[0]
            .log()
            .contains("removed from the cluster"),
        "{}",
        cluster.members[0].log()
    );
    cluster.members[0].child = None;
    let rest = cluster.members[1..]
        .iter()
        .map(|m| m.endpoint())
        .collect::<Vec<_>>()
        .join(",");
    ok(etcdctl(&rest, &["put", "after-remove", "ok"]));
    let list = json(&ok(etcdctl(&rest, &["member", "list", "-w", "json"])));
    assert_eq!(list["members"].as_array().map(Vec::len), Some(3));
    let e = err(etcdctl(&rest, &["member", "remove", &m1_id]));
    assert!(e.contains("etcdserver: member not found"), "{e}");
}

// Guards followers: lease keep-alive and TimeToLive are forwarded to the
// leader; a watch on a follower sees writes made through the leader.
#[test]
fn followers_serve_leases_and_watches() {
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.leader();
    let follower = cluster.members[(leader + 1) % 3].endpoint();
    let granted = ok(etcdctl(&follower, &["lease", "grant", "60"]));
    let id = granted
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_string();
    let kept = ok(etcdctl(&follower, &["lease", "keep-alive", "--once", &id]));
    assert_eq!(kept, format!("lease {id} keepalived with TTL(60)\n"));
    let ttl = ok(etcdctl(&follower, &["lease", "timetolive", &id]));
    assert!(
        ttl.starts_with(&format!("lease {id} granted with TTL(60s), remaining(")),
        "{ttl}"
    );
    let out = etcdctl_with_stdin(&follower, &["txn"], Some("\nput through-txn 1\n\n\n"));
    assert!(out.status.success());
    let mut watch = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            format!("--endpoints={follower}"),
            "watch".into(),
            "w".into(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("watch");
    std::thread::sleep(Duration::from_millis(500));
    ok(etcdctl(
        &cluster.members[leader].endpoint(),
        &["put", "w", "seen"],
    ));
    let mut stdout = watch.stdout.take().expect("stdout");
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 64];
    use std::io::Read;
    while !text.contains("seen") && Instant::now() < deadline {
        let n = stdout.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(text, "PUT\nw\nseen\n");
}

/// Serializable count of keys under `prefix` on one member (0 if it does
/// not answer).
fn serializable_count(endpoint: &str, prefix: &str) -> u64 {
    let out = etcdctl(
        endpoint,
        &[
            "get",
            prefix,
            "--prefix",
            "--keys-only",
            "--limit=1",
            "--consistency=s",
            "-w",
            "json",
            "--command-timeout=2s",
        ],
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v["count"].as_u64())
        .unwrap_or(0)
}

fn hash_kv_at(endpoint: &str, revision: u64) -> Option<u64> {
    common::hash_kv(endpoint, revision).and_then(|v| v["hash"].as_u64())
}

// Guards store snapshots between members: a follower that was down while
// the leader released the log it needs is sent the leader's store, installs
// it, serves every key, agrees on HashKV, keeps it across a kill -9, and
// follows new writes afterwards.
#[test]
fn a_lagging_member_catches_up_from_a_store_snapshot() {
    let mut cluster = Cluster::start(3, &["--snapshot-count=100"]);
    let leader = cluster.leader();
    let lagging = (leader + 1) % 3;
    cluster.members[lagging].stop();
    let endpoint = cluster.members[leader].endpoint();
    // Past the 5000 entries the leader keeps for slow followers.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..8 {
            let endpoint = endpoint.clone();
            tasks.push(tokio::spawn(async move {
                let mut c = etcd_client::Client::connect([endpoint], None)
                    .await
                    .expect("connect");
                for i in 0..750 {
                    c.put(format!("snap/{t}/{i:04}"), format!("v{i}"), None)
                        .await
                        .expect("put");
                }
            }));
        }
        for task in tasks {
            task.await.expect("writer");
        }
    });
    cluster.members[lagging].restart();
    let lagging_endpoint = cluster.members[lagging].endpoint();
    let deadline = Instant::now() + Duration::from_secs(60);
    while serializable_count(&lagging_endpoint, "snap/") != 6000 {
        assert!(
            Instant::now() < deadline,
            "the restarted member never caught up:\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let lagging_log = cluster.members[lagging].log();
    assert!(
        lagging_log.contains("installed a store snapshot from the leader"),
        "{lagging_log}"
    );
    // The leader logs after the follower answered: give it a moment. The
    // leader that sent it may not be the first one (on a loaded box the
    // leadership can move while the 6000 writes pass).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cluster
        .members
        .iter()
        .any(|member| member.log().contains("sent a store snapshot"))
    {
        assert!(Instant::now() < deadline, "{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    let revision = json(&ok(etcdctl(
        &endpoint,
        &["endpoint", "status", "-w", "json"],
    )))[0]["Status"]["header"]["revision"]
        .as_u64()
        .expect("revision");
    let leader_hash = hash_kv_at(&endpoint, revision).expect("leader hashkv");
    assert_eq!(hash_kv_at(&lagging_endpoint, revision), Some(leader_hash));
    // The installed store and the WAL marker survive a kill -9.
    cluster.members[lagging].kill9();
    cluster.members[lagging].restart();
    assert_eq!(serializable_count(&lagging_endpoint, "snap/"), 6000);
    assert_eq!(hash_kv_at(&lagging_endpoint, revision), Some(leader_hash));
    // And it follows new writes.
    ok(etcdctl(&endpoint, &["put", "after-snapshot", "yes"]));
    eventually_reads(&lagging_endpoint, "after-snapshot", "yes\n");
}

// Guards etcd's graceful stop: a leader stopped with SIGTERM first hands
// leadership to an up-to-date follower, so writes go on without waiting for
// an election timeout.
#[test]
fn a_stopping_leader_hands_leadership_over() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.leader();
    ok(etcdctl(
        &cluster.members[leader].endpoint(),
        &["put", "before", "stop"],
    ));
    cluster.members[leader].stop();
    let log = cluster.members[leader].log();
    assert!(
        log.contains("handed leadership over before stopping"),
        "{log}"
    );
    let new_leader = cluster.leader();
    assert_ne!(new_leader, leader);
    let endpoint = cluster.members[new_leader].endpoint();
    ok(etcdctl(&endpoint, &["put", "after", "stop"]));
    eventually_reads(&endpoint, "before", "stop\n");
}
