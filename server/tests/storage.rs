//! The on-disk store under a running keel, through the real etcdctl and the
//! Rust client: restart from the last checkpoint (only the WAL after it is
//! replayed), WAL release behind checkpoints, the space quota with the
//! NOSPACE alarm, online defragmentation under writes, physical compaction,
//! HashKV, and Status's real file sizes.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{endpoint_status, err, etcdctl, eventually, hash_kv, ok, wal_segments, Cluster, Keel};
use etcd_client::GetOptions;

/// The number after `name=` in the last log line that has it.
fn last_logged_number(log: &str, name: &str) -> Option<u64> {
    let pattern = format!("{name}=");
    log.lines().rev().find_map(|line| {
        let at = line.find(&pattern)? + pattern.len();
        let digits: String = line[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    })
}

fn db_size_bytes(endpoint: &str) -> u64 {
    endpoint_status(endpoint)["dbSize"]
        .as_u64()
        .expect("dbSize")
}

fn member_id(endpoint: &str) -> u64 {
    endpoint_status(endpoint)["header"]["member_id"]
        .as_u64()
        .expect("member_id")
}

// Guards point 2 of the page-file issue: a restart opens the store at its
// last checkpoint and replays only the WAL entries after it, and every key,
// value and revision is back.
#[tokio::test]
async fn restart_replays_only_the_log_after_the_last_checkpoint() {
    let mut keel = Keel::start(&["--backend-batch-limit=50"]);
    let mut c = keel.client().await;
    for i in 0..600 {
        c.put(format!("key{i:04}"), format!("value{i}"), None)
            .await
            .expect("put");
    }
    let before = c
        .get("key", Some(GetOptions::new().with_prefix()))
        .await
        .expect("get");
    drop(c);
    keel.kill9();
    let log_before = keel.log().len();
    keel.restart();
    let log = keel.log()[log_before..].to_string();
    let checkpoint = last_logged_number(&log, "checkpoint_index").expect("checkpoint logged");
    let replayed = last_logged_number(&log, "entries").expect("replayed entries logged");
    // 600 puts plus the member's own bootstrap entries; checkpoints every 50.
    assert!(checkpoint >= 550, "checkpoint at {checkpoint}:\n{log}");
    assert!(replayed <= 60, "{replayed} entries replayed:\n{log}");
    let mut c = keel.client().await;
    let after = c
        .get("key", Some(GetOptions::new().with_prefix()))
        .await
        .expect("get");
    assert_eq!(common::rows(after.kvs()), common::rows(before.kvs()));
    assert_eq!(
        after.header().expect("header").revision(),
        before.header().expect("header").revision()
    );
    // Writes go on at the next revision.
    let put = c.put("key0000", "again", None).await.expect("put");
    assert_eq!(
        put.header().expect("header").revision(),
        before.header().expect("header").revision() + 1
    );
}

// Guards WAL release: segments wholly behind a durable checkpoint are
// deleted, and a kill -9 afterwards still recovers everything from the
// store plus the WAL that is left.
#[tokio::test]
async fn wal_segments_behind_a_checkpoint_are_released() {
    let mut keel = Keel::start(&[]);
    let mut c = keel.client().await;
    let value = vec![b'x'; 1 << 20];
    // 80 MiB of entries: more than one 64 MiB WAL segment.
    let wal_dir = keel.wal_dir();
    let first_segment = wal_segments(&wal_dir)
        .into_iter()
        .next()
        .expect("a segment");
    let revisions = put_numbered(&mut c, "big", 80, &value).await;
    let released = eventually(Duration::from_secs(20), || !first_segment.exists());
    assert!(
        released,
        "the first WAL segment {} was never released; segments: {:?}\n{}",
        first_segment.display(),
        wal_segments(&wal_dir),
        keel.log()
    );
    drop(c);
    assert_numbered_survive_kill9(&mut keel, "big", &revisions, value.len()).await;
}

/// Puts `{prefix}00`, `{prefix}01`, ... (`count` keys) with `value`; their revisions.
async fn put_numbered(
    c: &mut etcd_client::Client,
    prefix: &str,
    count: usize,
    value: &[u8],
) -> Vec<i64> {
    let mut revisions = Vec::new();
    for i in 0..count {
        let put = c
            .put(format!("{prefix}{i:02}"), value, None)
            .await
            .expect("put");
        revisions.push(put.header().expect("header").revision());
    }
    revisions
}

/// kill -9, restart, and every key `put_numbered` wrote is back with its value's length
/// and its revision.
async fn assert_numbered_survive_kill9(
    keel: &mut Keel,
    prefix: &str,
    revisions: &[i64],
    value_len: usize,
) {
    keel.kill9();
    keel.restart();
    let mut c = keel.client().await;
    for (i, revision) in revisions.iter().enumerate() {
        let got = c.get(format!("{prefix}{i:02}"), None).await.expect("get");
        let kv = &got.kvs()[0];
        assert_eq!(kv.value().len(), value_len, "{prefix}{i:02}");
        assert_eq!(kv.mod_revision(), *revision, "{prefix}{i:02}");
    }
}

// Guards the storage-profile flags: --wal-segment-size-bytes rolls segments
// at the given size, --wal-preallocation=none leaves the live segment at the
// length written (no fallocate), and a restart reads the small segments back.
#[tokio::test]
async fn wal_segment_size_and_preallocation_flags_shape_the_wal() {
    let segment_bytes: u64 = 256 * 1024;
    let mut keel = Keel::start(&[
        "--wal-segment-size-bytes=262144",
        "--wal-preallocation=none",
        // No checkpoint releases segments while the test counts them.
        "--backend-batch-limit=1000000",
        "--backend-batch-interval=1h",
    ]);
    let mut c = keel.client().await;
    let value = vec![b'w'; 16 * 1024];
    // 64 x 16 KiB = 1 MiB of entries: at least 4 segments of 256 KiB.
    let revisions = put_numbered(&mut c, "seg", 64, &value).await;
    let segments = wal_segments(&keel.wal_dir());
    assert!(segments.len() >= 4, "segments: {segments:?}");
    for segment in &segments[..segments.len() - 1] {
        let len = std::fs::metadata(segment).expect("segment").len();
        assert!(
            len <= segment_bytes + value.len() as u64 + 4096,
            "{} is {len} bytes, rolled too late",
            segment.display()
        );
    }
    let live = segments.last().expect("a live segment");
    let live_len = std::fs::metadata(live).expect("live segment").len();
    assert!(
        live_len < segment_bytes,
        "the live segment {} is {live_len} bytes: preallocated despite --wal-preallocation=none",
        live.display()
    );
    drop(c);
    assert_numbered_survive_kill9(&mut keel, "seg", &revisions, value.len()).await;
}

// Guards the WAL batch flags: with --wal-batch-interval a lone put waits the
// interval for company before it is written (so it cannot answer sooner), and
// with --wal-batch-limit=1 concurrent puts still all succeed, one revision each.
#[tokio::test]
async fn wal_batch_interval_holds_a_batch_open_and_a_limit_of_one_still_serves_everyone() {
    let keel = Keel::start(&["--wal-batch-interval=300ms"]);
    let mut c = keel.client().await;
    c.put("warm", "up", None).await.expect("put");
    let started = std::time::Instant::now();
    c.put("lone", "put", None).await.expect("put");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300),
        "a lone put answered after {took:?}, before the 300ms batch interval"
    );
    drop(c);
    drop(keel);

    let keel = Keel::start(&["--wal-batch-limit=1"]);
    let c = keel.client().await;
    let puts = (0..32).map(|i| {
        let mut c = c.clone();
        async move {
            let put = c.put(format!("k{i:02}"), "v", None).await.expect("put");
            put.header().expect("header").revision()
        }
    });
    let mut revisions = futures::future::join_all(puts).await;
    revisions.sort_unstable();
    assert_eq!(revisions, (2..34).collect::<Vec<i64>>());
}

// Guards point 6: past --quota-backend-bytes writes fail with etcd's error,
// the NOSPACE alarm is raised (and survives a restart), reads and deletes go
// on, and after compaction, defragmentation and `etcdctl alarm disarm` writes
// work again, as etcd's documented recovery goes.
#[test]
fn quota_raises_nospace_and_disarm_after_defrag_recovers() {
    let quota_bytes = 8 << 20;
    let mut keel = Keel::start(&[&format!("--quota-backend-bytes={quota_bytes}")]);
    let endpoint = keel.endpoint();
    let value = "v".repeat(100 << 10);
    let mut refused = None;
    for i in 0..400 {
        let out = etcdctl(&endpoint, &["put", &format!("k{i:03}"), &value]);
        if !out.status.success() {
            refused = Some((i, err(out)));
            break;
        }
    }
    let (written, message) = refused.expect("the quota never refused a write");
    assert!(
        message.contains("etcdserver: mvcc: database space exceeded"),
        "{message}"
    );
    assert!(written > 10, "refused after only {written} puts");
    let id = member_id(&endpoint);
    let alarm_line = format!("memberID:{id} alarm:NOSPACE");
    let alarms = ok(etcdctl(&endpoint, &["alarm", "list"]));
    assert!(alarms.contains(&alarm_line), "{alarms}");
    let errors = endpoint_status(&endpoint)["errors"].to_string();
    assert!(errors.contains(&alarm_line), "{errors}");
    // Still refused, also after a restart: the alarm is part of the state.
    keel.stop();
    keel.restart();
    let out = err(etcdctl(&endpoint, &["put", "more", "x"]));
    assert!(out.contains("database space exceeded"), "{out}");
    assert!(ok(etcdctl(&endpoint, &["alarm", "list"])).contains(&alarm_line));
    // Reads and deletes are allowed.
    assert_eq!(
        ok(etcdctl(&endpoint, &["get", "k000", "--print-value-only"])).trim(),
        value
    );
    let deleted = ok(etcdctl(&endpoint, &["del", "k", "--prefix"]));
    assert_eq!(deleted.trim(), written.to_string());
    let revision = endpoint_status(&endpoint)["header"]["revision"]
        .as_u64()
        .expect("revision");
    ok(etcdctl(
        &endpoint,
        &["compact", &revision.to_string(), "--physical"],
    ));
    let defrag = ok(etcdctl(&endpoint, &["defrag", "--command-timeout=60s"]));
    assert!(
        defrag.contains(&format!("Finished defragmenting etcd member[{endpoint}]")),
        "{defrag}"
    );
    assert!(db_size_bytes(&endpoint) < quota_bytes, "{}", keel.log());
    let disarmed = ok(etcdctl(&endpoint, &["alarm", "disarm"]));
    assert!(disarmed.contains(&alarm_line), "{disarmed}");
    assert_eq!(ok(etcdctl(&endpoint, &["alarm", "list"])).trim(), "");
    assert_eq!(ok(etcdctl(&endpoint, &["put", "after", "ok"])).trim(), "OK");
    assert!(
        endpoint_status(&endpoint)["errors"].is_null(),
        "{}",
        endpoint_status(&endpoint)
    );
}

// Guards point 5: `etcdctl defrag` rewrites the store while writes go on,
// loses nothing (every write acknowledged during it is there afterwards),
// and the file shrinks to about the live data.
#[tokio::test]
async fn defrag_runs_online_and_shrinks_the_file() {
    let keel = Keel::start(&[]);
    let endpoint = keel.endpoint();
    let mut c = keel.client().await;
    let value = "d".repeat(1024);
    for i in 0..4000 {
        c.put(format!("fill{i:05}"), value.clone(), None)
            .await
            .expect("put");
    }
    // Keep fill00000..fill00099, delete the other 3900.
    let deleted = c
        .delete(
            "fill00100",
            Some(etcd_client::DeleteOptions::new().with_range("fill04000")),
        )
        .await
        .expect("delete");
    assert_eq!(deleted.deleted(), 3900);
    let revision = deleted.header().expect("header").revision();
    c.compact(
        revision,
        Some(etcd_client::CompactionOptions::new().with_physical()),
    )
    .await
    .expect("compact");
    let size_before = db_size_bytes(&endpoint);

    // Writers keep going through the defragmentation.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut c = keel.client().await;
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut i = 0u32;
            while !stop.load(Ordering::Acquire) && Instant::now() < deadline && i < 50_000 {
                let put = c
                    .put(format!("during{i:05}"), format!("w{i}"), None)
                    .await
                    .expect("a put during defrag failed");
                acked.push((i, put.header().expect("header").revision()));
                i += 1;
            }
            acked
        })
    };
    // Let the writer get going, then defragment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let endpoint_for_defrag = endpoint.clone();
    let defrag = tokio::task::spawn_blocking(move || {
        etcdctl(&endpoint_for_defrag, &["defrag", "--command-timeout=120s"])
    })
    .await
    .expect("defrag task");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Release);
    let acked = writer.await.expect("writer");
    let defrag = ok(defrag);
    assert!(
        defrag.contains("Finished defragmenting etcd member"),
        "{defrag}"
    );
    assert!(
        acked.len() > 10,
        "only {} writes during defrag",
        acked.len()
    );
    let size_after = db_size_bytes(&endpoint);
    assert!(
        size_after * 2 < size_before,
        "defrag left {size_after} bytes of {size_before}"
    );
    let got = c
        .get("during", Some(GetOptions::new().with_prefix()))
        .await
        .expect("get");
    assert_eq!(got.kvs().len(), acked.len());
    for (kv, (i, revision)) in got.kvs().iter().zip(&acked) {
        assert_eq!(kv.key_str().expect("utf8"), format!("during{i:05}"));
        assert_eq!(kv.value_str().expect("utf8"), format!("w{i}"));
        assert_eq!(kv.mod_revision(), *revision);
    }
}

// Guards HashKV: answered at the current and at a given revision, stable
// across a restart, refused below the compacted revision with etcd's error,
// and its compact_revision is -1 before any compaction.
#[test]
fn hashkv_is_stable_and_checks_revisions() {
    let mut keel = Keel::start(&[]);
    let endpoint = keel.endpoint();
    for i in 0..50 {
        ok(etcdctl(
            &endpoint,
            &["put", &format!("h{}", i % 7), &format!("{i}")],
        ));
    }
    let hashkv = |rev: u64| hash_kv(&endpoint, rev).expect("hashkv");
    let at_20 = hashkv(20);
    let now = hashkv(0);
    assert_eq!(at_20["compact_revision"].as_i64(), Some(-1));
    assert_eq!(now["header"]["revision"].as_i64(), Some(51));
    assert_ne!(at_20["hash"], now["hash"]);
    keel.stop();
    keel.restart();
    assert_eq!(hashkv(20)["hash"], at_20["hash"]);
    assert_eq!(hashkv(0)["hash"], now["hash"]);
    ok(etcdctl(&endpoint, &["compact", "30"]));
    let out = err(etcdctl(&endpoint, &["endpoint", "hashkv", "--rev=20"]));
    assert!(
        out.contains("etcdserver: mvcc: required revision has been compacted"),
        "{out}"
    );
    let future = err(etcdctl(&endpoint, &["endpoint", "hashkv", "--rev=1000"]));
    assert!(
        future.contains("etcdserver: mvcc: required revision is a future revision"),
        "{future}"
    );
    let after = hashkv(0);
    assert_eq!(after["compact_revision"].as_i64(), Some(30));
}

// Guards replica agreement: after concurrent writes, every member of a
// 3-member cluster answers the same HashKV at the same revision.
#[test]
fn hashkv_agrees_across_members() {
    let cluster = Cluster::start(3, &[]);
    let endpoints: Vec<String> = cluster.members.iter().map(|m| m.endpoint()).collect();
    std::thread::scope(|s| {
        for (w, endpoint) in endpoints.iter().enumerate() {
            s.spawn(move || {
                for i in 0..40 {
                    ok(etcdctl(
                        endpoint,
                        &["put", &format!("w{w}-{}", i % 9), &format!("{i}")],
                    ));
                }
            });
        }
    });
    ok(etcdctl(&endpoints[0], &["compact", "50"]));
    let revision = endpoint_status(&endpoints[0])["header"]["revision"]
        .as_u64()
        .expect("revision");
    let mut hashes = Vec::new();
    for endpoint in &endpoints {
        // A follower may still be applying: poll until it reached the revision.
        let mut answer = None;
        let reached = eventually(Duration::from_secs(20), || {
            answer = hash_kv(endpoint, revision);
            answer.is_some()
        });
        assert!(
            reached,
            "{endpoint} never reached revision {revision}:\n{}",
            cluster.logs()
        );
        let answer = answer.expect("answer");
        assert_eq!(answer["compact_revision"].as_i64(), Some(50));
        hashes.push(answer["hash"].as_u64().expect("hash"));
    }
    assert!(
        hashes.iter().all(|h| *h == hashes[0]),
        "members disagree at revision {revision}: {hashes:?}"
    );
}

// Guards physical compaction: `etcdctl compact --physical` returns once the
// superseded revisions are gone, reads below it fail with etcd's error, and
// the latest values stay.
#[test]
fn physical_compaction_answers_when_done() {
    let keel = Keel::start(&[]);
    let endpoint = keel.endpoint();
    for i in 0..300 {
        ok(etcdctl(
            &endpoint,
            &["put", &format!("c{}", i % 10), &format!("{i}")],
        ));
    }
    let out = ok(etcdctl(&endpoint, &["compact", "250", "--physical"]));
    assert_eq!(out.trim(), "compacted revision 250");
    let old = err(etcdctl(&endpoint, &["get", "c1", "--rev=100"]));
    assert!(
        old.contains("etcdserver: mvcc: required revision has been compacted"),
        "{old}"
    );
    let at = ok(etcdctl(
        &endpoint,
        &["get", "c1", "--rev=250", "--print-value-only"],
    ));
    assert_eq!(at.trim(), "241");
    let now = ok(etcdctl(&endpoint, &["get", "c9", "--print-value-only"]));
    assert_eq!(now.trim(), "299");
}

// Guards --auto-compaction-mode=periodic: with a 1 s retention the leader
// compacts on its own to the revision of about a second ago, so old
// revisions become unreadable with etcd's error while the latest stay.
#[test]
fn periodic_auto_compaction_compacts_old_revisions() {
    let keel = Keel::start(&[
        "--auto-compaction-mode=periodic",
        "--auto-compaction-retention=1s",
    ]);
    let endpoint = keel.endpoint();
    for i in 0..20 {
        ok(etcdctl(&endpoint, &["put", "auto", &i.to_string()]));
    }
    let compacted = eventually(Duration::from_secs(20), || {
        let out = etcdctl(&endpoint, &["get", "auto", "--rev=3"]);
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr)
                .contains("etcdserver: mvcc: required revision has been compacted")
    });
    assert!(compacted, "revision 3 was never compacted:\n{}", keel.log());
    assert!(keel.log().contains("completed auto compaction"));
    let latest = ok(etcdctl(&endpoint, &["get", "auto", "--print-value-only"]));
    assert_eq!(latest.trim(), "19");
}
