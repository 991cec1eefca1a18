//! Leases, locks and elections through the Rust etcd-client and etcdctl:
//! TTL rules, keep-alive, expiry through Raft, checkpoints across restart,
//! strict mutual exclusion, a holder's lease expiry freeing the lock, and
//! election failover.

mod common;

use std::time::{Duration, Instant};

use common::{etcdctl, ok, Keel};
use etcd_client::{
    EventType, GetOptions, LeaseGrantOptions, LockOptions, ProclaimOptions, PutOptions,
    ResignOptions, WatchOptions,
};

fn status_message(e: etcd_client::Error) -> (tonic::Code, String) {
    match e {
        etcd_client::Error::GRpcStatus(s) => (s.code(), s.message().to_string()),
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

/// Polls `check` until it holds or `deadline` passes.
async fn eventually<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

// Guards etcd's TTL rules and errors.
#[tokio::test]
async fn lease_grant_rules_and_errors() {
    let keel = Keel::start(&[]);
    let mut c = keel.client().await;
    let resp = c.lease_grant(1, None).await.expect("grant");
    assert!(resp.id() > 0);
    assert_eq!(
        resp.ttl(),
        2,
        "raised to the minimum TTL (1.5 election timeouts)"
    );
    let resp = c
        .lease_grant(60, Some(LeaseGrantOptions::new().with_id(0x1234)))
        .await
        .expect("grant");
    assert_eq!((resp.id(), resp.ttl()), (0x1234, 60));
    let (code, message) = status_message(
        c.lease_grant(60, Some(LeaseGrantOptions::new().with_id(0x1234)))
            .await
            .expect_err("exists"),
    );
    assert_eq!(
        (code, message.as_str()),
        (
            tonic::Code::FailedPrecondition,
            "etcdserver: lease already exists"
        )
    );
    let (code, message) = status_message(
        c.lease_grant(9_000_000_001, None)
            .await
            .expect_err("too large"),
    );
    assert_eq!(
        (code, message.as_str()),
        (tonic::Code::OutOfRange, "etcdserver: too large lease TTL")
    );
    let (code, message) = status_message(c.lease_revoke(0x999).await.expect_err("unknown"));
    assert_eq!(
        (code, message.as_str()),
        (
            tonic::Code::NotFound,
            "etcdserver: requested lease not found"
        )
    );
    let ttl = c
        .lease_time_to_live(0x999, None)
        .await
        .expect("ttl of unknown lease");
    assert_eq!(ttl.ttl(), -1);
}

// Guards attachment and revoke: keys on a lease are listed, and revoking
// deletes all of them in one revision, with watch events.
#[tokio::test]
async fn revoke_deletes_every_attached_key_in_one_revision() {
    let keel = Keel::start(&[]);
    let mut c = keel.client().await;
    let lease = c.lease_grant(60, None).await.expect("grant").id();
    c.put("a", "1", Some(PutOptions::new().with_lease(lease)))
        .await
        .expect("put");
    c.put("b", "2", Some(PutOptions::new().with_lease(lease)))
        .await
        .expect("put");
    c.put("c", "3", Some(PutOptions::new().with_lease(lease)))
        .await
        .expect("put");
    c.put("c", "unleased", None).await.expect("put"); // detaches c
    let ttl = time_to_live_with_keys(&mut c, lease).await;
    assert_eq!(ttl.granted_ttl(), 60);
    assert!(ttl.ttl() > 50 && ttl.ttl() <= 60, "{}", ttl.ttl());
    assert_eq!(ttl.keys(), [b"a".to_vec(), b"b".to_vec()]);
    let leases = c.leases().await.expect("leases");
    assert_eq!(
        leases.leases().iter().map(|l| l.id()).collect::<Vec<_>>(),
        [lease]
    );
    let (_w, mut stream) = c
        .watch("", Some(WatchOptions::new().with_all_keys()))
        .await
        .expect("watch");
    let revoked = c.lease_revoke(lease).await.expect("revoke");
    let resp = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("in time")
        .expect("ok")
        .expect("open");
    let deletes: Vec<_> = resp
        .events()
        .iter()
        .map(|e| (e.event_type(), e.kv().expect("kv").mod_revision()))
        .collect();
    let rev = revoked.header().expect("h").revision();
    assert_eq!(
        deletes,
        [(EventType::Delete, rev), (EventType::Delete, rev)]
    );
    let left = c
        .get("", Some(GetOptions::new().with_all_keys()))
        .await
        .expect("get");
    assert_eq!(
        left.kvs()
            .iter()
            .map(|kv| kv.key().to_vec())
            .collect::<Vec<_>>(),
        [b"c".to_vec()]
    );
}

// Guards lease detachment on delete (a regression: deleting a leased key did
// not detach it, so revoking the old lease later deleted the key's new,
// unleased incarnation), also across a restart from the store.
#[tokio::test]
async fn a_deleted_leased_key_recreated_without_lease_survives_the_revoke() {
    let mut keel = Keel::start(&[]);
    let mut c = keel.client().await;
    let lease = c.lease_grant(60, None).await.expect("grant").id();
    c.put("k", "leased", Some(PutOptions::new().with_lease(lease)))
        .await
        .expect("put");
    c.delete("k", None).await.expect("delete");
    c.put("k", "free", None).await.expect("put");
    let ttl = time_to_live_with_keys(&mut c, lease).await;
    assert!(ttl.keys().is_empty(), "{:?}", ttl.keys());
    drop(c);
    keel.stop();
    keel.restart();
    let mut c = keel.client().await;
    c.lease_revoke(lease).await.expect("revoke");
    let got = c.get("k", None).await.expect("get");
    assert_eq!(got.kvs().len(), 1);
    assert_eq!(got.kvs()[0].value(), b"free");
    assert_eq!(got.kvs()[0].lease(), 0);
}

// Guards expiry through Raft and keep-alive.
#[tokio::test]
async fn leases_expire_unless_kept_alive() {
    let keel = Keel::start(&[]);
    let mut c = keel.client().await;
    let short = c.lease_grant(2, None).await.expect("grant").id();
    let kept = c.lease_grant(2, None).await.expect("grant").id();
    c.put("short", "x", Some(PutOptions::new().with_lease(short)))
        .await
        .expect("put");
    c.put("kept", "x", Some(PutOptions::new().with_lease(kept)))
        .await
        .expect("put");
    let (mut keeper, mut responses) = c.lease_keep_alive(kept).await.expect("keep alive");
    let started = Instant::now();
    let mut expired = false;
    while started.elapsed() < Duration::from_secs(6) {
        keeper.keep_alive().await.expect("send keep-alive");
        let resp = responses.message().await.expect("ok").expect("open");
        assert_eq!((resp.id(), resp.ttl()), (kept, 2));
        if c.get("short", None).await.expect("get").kvs().is_empty() {
            expired = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(expired, "the short lease's key was not deleted");
    assert_eq!(
        c.get("kept", None).await.expect("get").kvs().len(),
        1,
        "the kept-alive key is gone"
    );
    assert_eq!(
        c.lease_time_to_live(short, None).await.expect("ttl").ttl(),
        -1
    );
    // A keep-alive for a lease that does not exist answers TTL 0 (etcd);
    // etcd-client turns that answer into "lease not found".
    match c.lease_keep_alive(short).await {
        Err(etcd_client::Error::LeaseKeepAliveError(message)) => {
            assert_eq!(message, "lease not found")
        }
        other => panic!("expected lease not found, got {:?}", other.map(|_| ())),
    }
}

// Guards lease checkpoints: the remaining TTL recorded through Raft survives
// a restart; without it the lease would get its full TTL again.
#[tokio::test]
async fn remaining_ttl_survives_a_restart_through_checkpoints() {
    let mut keel = Keel::start(&["--experimental-lease-checkpoint-interval=1s"]);
    let lease = {
        let mut c = keel.client().await;
        let lease = c.lease_grant(30, None).await.expect("grant").id();
        c.put("k", "v", Some(PutOptions::new().with_lease(lease)))
            .await
            .expect("put");
        lease
    };
    tokio::time::sleep(Duration::from_secs(6)).await;
    keel.stop();
    keel.restart();
    let mut c = keel.client().await;
    let ttl = c.lease_time_to_live(lease, None).await.expect("ttl");
    // Checkpointed at <= 25 s left, plus the election-timeout extension on
    // promotion (1 s); a reset would show 31.
    assert!(
        ttl.ttl() > 0 && ttl.ttl() <= 27,
        "remaining TTL after restart: {}",
        ttl.ttl()
    );
    assert_eq!(ttl.granted_ttl(), 30);
    assert_eq!(c.get("k", None).await.expect("get").kvs().len(), 1);
}

// Guards the etcdctl lease commands.
#[test]
fn etcdctl_lease_commands() {
    let keel = Keel::start(&[]);
    let ep = keel.endpoint();
    let granted = ok(etcdctl(&ep, &["lease", "grant", "100"]));
    let id = granted.split_whitespace().nth(1).expect("id").to_string();
    assert_eq!(granted, format!("lease {id} granted with TTL(100s)\n"));
    ok(etcdctl(&ep, &["put", "k", "v", &format!("--lease={id}")]));
    let ttl = ok(etcdctl(&ep, &["lease", "timetolive", &id, "--keys"]));
    assert!(
        ttl.starts_with(&format!("lease {id} granted with TTL(100s), remaining("))
            && ttl.ends_with("attached keys([k])\n"),
        "{ttl}"
    );
    assert_eq!(
        ok(etcdctl(&ep, &["lease", "list"])),
        format!("found 1 leases\n{id}\n")
    );
    let kept = ok(etcdctl(&ep, &["lease", "keep-alive", "--once", &id]));
    assert_eq!(kept, format!("lease {id} keepalived with TTL(100)\n"));
    assert_eq!(
        ok(etcdctl(&ep, &["lease", "revoke", &id])),
        format!("lease {id} revoked\n")
    );
    assert_eq!(ok(etcdctl(&ep, &["get", "k"])), "");
    assert_eq!(
        ok(etcdctl(&ep, &["lease", "timetolive", &id])),
        format!("lease {id} already expired\n")
    );
}

// Guards mutual exclusion: two etcdctl lock contenders run a critical
// section five times each; the log of entries and exits never interleaves.
#[test]
fn etcdctl_lock_contenders_are_mutually_exclusive() {
    let keel = Keel::start(&[]);
    let ep = keel.endpoint();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("critical.log");
    let script = |who: &str| {
        format!(
            "for i in 1 2 3 4 5; do ETCDCTL_API=3 etcdctl --endpoints={ep} lock shared -- \
             sh -c 'echo in {who} >> {log}; sleep 0.05; echo out {who} >> {log}' >/dev/null || exit 1; done",
            log = log.display()
        )
    };
    let a = std::process::Command::new("sh")
        .args(["-c", &script("a")])
        .spawn()
        .expect("spawn");
    let b = std::process::Command::new("sh")
        .args(["-c", &script("b")])
        .spawn()
        .expect("spawn");
    for mut child in [a, b] {
        assert!(child.wait().expect("wait").success());
    }
    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 20, "{text}");
    for pair in lines.chunks(2) {
        let who = pair[0].strip_prefix("in ").expect("an entry");
        assert_eq!(
            pair[1],
            format!("out {who}"),
            "interleaved critical sections:\n{text}"
        );
    }
}

// Guards lease expiry freeing a lock: the holder's lease is not kept alive;
// the waiter gets the lock when it expires.
#[tokio::test]
async fn a_holders_lease_expiry_frees_the_lock() {
    let keel = Keel::start(&[]);
    let mut c = keel.client().await;
    let holder_lease = c.lease_grant(2, None).await.expect("grant").id();
    let waiter_lease = c.lease_grant(60, None).await.expect("grant").id();
    let held = c
        .lock("L", Some(LockOptions::new().with_lease(holder_lease)))
        .await
        .expect("lock");
    assert!(held.key().starts_with(b"L/"));
    let started = Instant::now();
    let got = c
        .lock("L", Some(LockOptions::new().with_lease(waiter_lease)))
        .await
        .expect("lock after expiry");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "the waiter did not wait"
    );
    assert_ne!(got.key(), held.key());
    assert!(c.get(held.key(), None).await.expect("get").kvs().is_empty());
    c.unlock(got.key()).await.expect("unlock");
    // Free again: a new locker gets it at once.
    let again = c
        .lock("L", Some(LockOptions::new().with_lease(waiter_lease)))
        .await
        .expect("lock");
    assert_eq!(again.key(), got.key());
}

// Guards elections: campaign, leader, proclaim, observe, failover when the
// leader's lease expires, resign, and etcd's election errors.
#[tokio::test]
async fn election_campaign_proclaim_observe_and_failover() {
    let keel = Keel::start(&[]);
    let mut c = keel.client().await;
    let (code, message) = status_message(c.leader("e").await.expect_err("no leader yet"));
    assert_eq!(
        (code, message.as_str()),
        (tonic::Code::Unknown, "election: no leader")
    );
    let mut observe = c.observe("e").await.expect("observe");
    let alice_lease = c.lease_grant(2, None).await.expect("grant").id();
    let bob_lease = c.lease_grant(60, None).await.expect("grant").id();
    let alice = c
        .campaign("e", "alice", alice_lease)
        .await
        .expect("campaign")
        .leader()
        .expect("key")
        .clone();
    assert_eq!(
        c.leader("e")
            .await
            .expect("leader")
            .kv()
            .expect("kv")
            .value(),
        b"alice"
    );
    c.proclaim(
        "alice-2",
        Some(ProclaimOptions::new().with_leader(alice.clone())),
    )
    .await
    .expect("proclaim");
    let mut bob_client = keel.client().await;
    let bob_task = tokio::spawn(async move { bob_client.campaign("e", "bob", bob_lease).await });
    // Alice's lease is not kept alive: Bob takes over when it expires.
    let bob = tokio::time::timeout(Duration::from_secs(15), bob_task)
        .await
        .expect("bob elected in time")
        .expect("join")
        .expect("campaign");
    let bob = bob.leader().expect("key").clone();
    assert_eq!(
        c.leader("e")
            .await
            .expect("leader")
            .kv()
            .expect("kv")
            .value(),
        b"bob"
    );
    let (_, message) = status_message(
        c.proclaim("stale", Some(ProclaimOptions::new().with_leader(alice)))
            .await
            .expect_err("not leader"),
    );
    assert_eq!(message, "election: not leader");
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("bob") {
        let resp = tokio::time::timeout(Duration::from_secs(10), observe.message())
            .await
            .expect("in time")
            .expect("ok")
            .expect("open");
        seen.push(String::from_utf8_lossy(resp.kv().expect("kv").value()).into_owned());
    }
    assert_eq!(seen, ["alice", "alice-2", "bob"]);
    c.resign(Some(ResignOptions::new().with_leader(bob)))
        .await
        .expect("resign");
    assert!(
        eventually(Duration::from_secs(5), || {
            let mut c = c.clone();
            async move { c.leader("e").await.is_err() }
        })
        .await
    );
}

// Guards etcdctl elect: a campaigner and an observer.
#[test]
fn etcdctl_elect_campaign_and_observe() {
    let keel = Keel::start(&[]);
    let ep = keel.endpoint();
    let mut observer = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            format!("--endpoints={ep}"),
            "elect".into(),
            "-l".into(),
            "job".into(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("observer");
    let mut observed = observer.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut text = String::new();
        let mut buf = [0u8; 256];
        while let Ok(n) = observed.read(&mut buf) {
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            let _ = tx.send(text.clone());
        }
    });
    let mut candidate = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            format!("--endpoints={ep}"),
            "elect".into(),
            "job".into(),
            "alice".into(),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("candidate");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut leader = String::new();
    while Instant::now() < deadline {
        let out = ok(etcdctl(
            &ep,
            &["get", "job/", "--prefix", "--print-value-only"],
        ));
        if out == "alice\n" {
            leader = out;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(leader, "alice\n");
    let mut text = String::new();
    while !text.contains("\nalice\n") {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(latest) => text = latest,
            Err(_) => break,
        }
    }
    let _ = candidate.kill();
    let _ = candidate.wait();
    let _ = observer.kill();
    let _ = observer.wait();
    assert!(
        text.starts_with("job/") && text.contains("\nalice\n"),
        "observer printed {text:?}"
    );
}

/// LeaseTimeToLive with the lease's keys.
async fn time_to_live_with_keys(
    c: &mut etcd_client::Client,
    lease: i64,
) -> etcd_client::LeaseTimeToLiveResponse {
    c.lease_time_to_live(
        lease,
        Some(etcd_client::LeaseTimeToLiveOptions::new().with_keys()),
    )
    .await
    .expect("ttl")
}
