//! Watch through the Rust etcd-client and etcdctl: events in revision order,
//! each exactly once; ranges, prefixes, filters, prev_kv, history from a
//! start revision, compaction, cancel, progress, fragments, slow watchers,
//! and resuming across a server restart.

mod common;

use std::time::Duration;

use common::{etcdctl, ok, Keel};
use etcd_client::{EventType, WatchFilterType, WatchOptions, WatchResponse, WatchStream};

/// Next response within a deadline (a test must fail, not hang).
async fn next(stream: &mut WatchStream) -> WatchResponse {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("watch response within 10 s")
        .expect("watch stream ok")
        .expect("watch stream open")
}

/// (type, key, value, mod_revision) of each event.
fn summary(resp: &WatchResponse) -> Vec<(EventType, String, String, i64)> {
    resp.events()
        .iter()
        .map(|e| {
            let kv = e.kv().expect("kv");
            (
                e.event_type(),
                String::from_utf8_lossy(kv.key()).into_owned(),
                String::from_utf8_lossy(kv.value()).into_owned(),
                kv.mod_revision(),
            )
        })
        .collect()
}

/// Collects events until `count` have arrived.
async fn collect(stream: &mut WatchStream, count: usize) -> Vec<(EventType, String, String, i64)> {
    let mut events = Vec::new();
    while events.len() < count {
        events.extend(summary(&next(stream).await));
    }
    events
}

// Guards the basic contract: created response, then puts and deletes of the
// watched key in order with their revisions; other keys are not delivered.
#[tokio::test]
async fn watch_delivers_puts_and_deletes_of_the_key_in_order() {
    let keel = Keel::start(&[]);
    let mut c = keel.client().await;
    // etcd-client's watch() consumes the created response itself.
    let (_watcher, mut stream) = c.watch("k", None).await.expect("watch");
    c.put("k", "1", None).await.expect("put"); // 2
    c.put("other", "x", None).await.expect("put"); // 3
    c.put("k", "2", None).await.expect("put"); // 4
    c.delete("k", None).await.expect("delete"); // 5
    let events = collect(&mut stream, 3).await;
    assert_eq!(
        events,
        vec![
            (EventType::Put, "k".into(), "1".into(), 2),
            (EventType::Put, "k".into(), "2".into(), 4),
            (EventType::Delete, "k".into(), "".into(), 5),
        ]
    );
}

// Guards ranges, prefixes, filters and prev_kv on several watchers of one
// stream, each with its own id.
#[tokio::test]
async fn watchers_on_one_stream_get_their_ranges_filters_and_prev_kv() {
    let keel = Keel::start(&[]);
    let mut c = keel.client().await;
    let (mut watcher, mut stream) = c
        .watch("p/", Some(WatchOptions::new().with_prefix()))
        .await
        .expect("watch");
    let first = watcher.watch_id();
    watcher
        .watch(
            "a",
            Some(
                WatchOptions::new()
                    .with_range("c")
                    .with_filters([WatchFilterType::NoPut]),
            ),
        )
        .await
        .expect("watch");
    let second = next(&mut stream).await.watch_id();
    watcher
        .watch("p/x", Some(WatchOptions::new().with_prev_key()))
        .await
        .expect("watch");
    let third = next(&mut stream).await.watch_id();
    assert_ne!(first, second);
    assert_ne!(second, third);
    c.put("p/x", "v1", None).await.expect("put"); // 2: first, third
    c.put("b", "v", None).await.expect("put"); // 3: nobody (second filters puts)
    c.put("p/x", "v2", None).await.expect("put"); // 4: first, third (prev v1)
    c.delete("b", None).await.expect("delete"); // 5: second
    let mut by_watcher: std::collections::BTreeMap<i64, Vec<(EventType, String, String, i64)>> =
        Default::default();
    let mut prev_values = Vec::new();
    while by_watcher.values().map(Vec::len).sum::<usize>() < 5 {
        let resp = next(&mut stream).await;
        if resp.watch_id() == third {
            for e in resp.events() {
                prev_values.push(
                    e.prev_kv()
                        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
                );
            }
        }
        by_watcher
            .entry(resp.watch_id())
            .or_default()
            .extend(summary(&resp));
    }
    assert_eq!(
        by_watcher[&first].iter().map(|e| e.3).collect::<Vec<_>>(),
        [2, 4]
    );
    assert_eq!(
        by_watcher[&second],
        vec![(EventType::Delete, "b".into(), "".into(), 5)]
    );
    assert_eq!(
        by_watcher[&third].iter().map(|e| e.3).collect::<Vec<_>>(),
        [2, 4]
    );
    // A create has no prev_kv; the second put carries the first value.
    assert_eq!(prev_values, [None, Some("v1".to_string())]);
}

// Guards history: a start revision in the past replays every event since,
// then continues live, with no gap and no duplicate at the boundary.
#[tokio::test]
async fn start_revision_replays_history_then_continues_live() {
    let keel = Keel::start(&[]);
    let mut c = keel.client().await;
    for i in 0..50 {
        c.put(format!("h/{}", i % 5), format!("v{i}"), None)
            .await
            .expect("put"); // revs 2..=51
    }
    let (_w, mut stream) = c
        .watch(
            "h/",
            Some(WatchOptions::new().with_prefix().with_start_revision(10)),
        )
        .await
        .expect("watch");
    let history = collect(&mut stream, 42).await;
    assert_eq!(
        history.iter().map(|e| e.3).collect::<Vec<_>>(),
        (10..=51).collect::<Vec<_>>()
    );
    c.put("h/0", "live", None).await.expect("put"); // 52
    let live = collect(&mut stream, 1).await;
    assert_eq!(
        live,
        vec![(EventType::Put, "h/0".into(), "live".into(), 52)]
    );
}

// Guards watchers that arrive after writes nobody watched: those writes reach
// a later watcher from history, a watcher from "now" gets exactly the later
// writes, and the hub's progress notifications report the current revision,
// across the last watcher leaving and a new one arriving. (A hub that skips
// batches while nobody watches must still pass this.)
#[tokio::test]
async fn watchers_arriving_after_unwatched_writes_miss_nothing_and_get_nothing_twice() {
    let keel = Keel::start(&["--experimental-watch-progress-notify-interval=300ms"]);
    let mut c = keel.client().await;
    c.put("k", "1", None).await.expect("put"); // 2
    c.put("k", "2", None).await.expect("put"); // 3
    let (mut watcher, mut stream) = c.watch("k", None).await.expect("watch from now");
    c.put("k", "3", None).await.expect("put"); // 4
    assert_eq!(
        collect(&mut stream, 1).await,
        vec![(EventType::Put, "k".into(), "3".into(), 4)]
    );
    watcher.request_progress().await.expect("progress");
    let progress = next(&mut stream).await;
    assert!(progress.events().is_empty());
    assert_eq!(progress.header().expect("header").revision(), 4);
    watcher.cancel().await.expect("cancel");
    assert!(next(&mut stream).await.canceled());
    // Nobody watches these.
    c.put("k", "4", None).await.expect("put"); // 5
    c.put("other", "x", None).await.expect("put"); // 6
    c.put("k", "5", None).await.expect("put"); // 7
    let (_again, mut again) = c
        .watch("k", Some(WatchOptions::new().with_start_revision(5)))
        .await
        .expect("watch from 5");
    let (_now, mut now) = c
        .watch("k", Some(WatchOptions::new().with_progress_notify()))
        .await
        .expect("watch from now");
    // The hub's own progress notification speaks for the revision it has
    // handed out: the current one, not where it stood when the last watcher left.
    let progress = next(&mut now).await;
    assert!(progress.events().is_empty());
    assert_eq!(progress.header().expect("header").revision(), 7);
    c.put("k", "6", None).await.expect("put"); // 8
    assert_eq!(
        collect(&mut again, 3).await,
        vec![
            (EventType::Put, "k".into(), "4".into(), 5),
            (EventType::Put, "k".into(), "5".into(), 7),
            (EventType::Put, "k".into(), "6".into(), 8),
        ]
    );
    assert_eq!(
        collect(&mut now, 1).await,
        vec![(EventType::Put, "k".into(), "6".into(), 8)]
    );
    // Within the next 400 ms: progress notifications at most, no event again.
    let quiet_until = tokio::time::Instant::now() + Duration::from_millis(400);
    for stream in [&mut again, &mut now] {
        while let Ok(extra) = tokio::time::timeout_at(quiet_until, stream.message()).await {
            let extra = extra.expect("stream ok").expect("stream open");
            assert!(extra.events().is_empty(), "an event came twice: {extra:?}");
            assert_eq!(extra.header().expect("header").revision(), 8);
        }
    }
}

// Guards compaction: a watch from a compacted revision is cancelled with
// compact_revision, as etcd does.
#[tokio::test]
async fn watch_from_a_compacted_revision_is_cancelled_with_the_compact_revision() {
    let keel = Keel::start(&[]);
    let mut c = keel.client().await;
    for i in 0..5 {
        c.put("k", format!("{i}"), None).await.expect("put"); // 2..=6
    }
    c.compact(5, None).await.expect("compact");
    let (_w, mut stream) = c
        .watch("k", Some(WatchOptions::new().with_start_revision(3)))
        .await
        .expect("watch");
    let cancel = next(&mut stream).await;
    assert!(cancel.canceled());
    assert_eq!(cancel.compact_revision(), 5);
    // At the compacted revision itself history is still there.
    let (_w, mut stream) = c
        .watch("k", Some(WatchOptions::new().with_start_revision(5)))
        .await
        .expect("watch");
    assert_eq!(
        collect(&mut stream, 2)
            .await
            .iter()
            .map(|e| e.3)
            .collect::<Vec<_>>(),
        [5, 6]
    );
}

// Guards cancel, client-chosen ids, duplicate ids and progress requests.
#[tokio::test]
async fn cancel_chosen_ids_and_progress_requests() {
    let keel = Keel::start(&[]);
    let mut c = keel.client().await;
    let (mut watcher, mut stream) = c
        .watch("a", Some(WatchOptions::new().with_watch_id(7)))
        .await
        .expect("watch");
    assert_eq!(watcher.watch_id(), 7);
    watcher
        .watch("b", Some(WatchOptions::new().with_watch_id(7)))
        .await
        .expect("watch");
    let dup = next(&mut stream).await;
    assert!(dup.created() && dup.canceled());
    assert_eq!(dup.watch_id(), -1);
    assert_eq!(
        dup.cancel_reason(),
        "mvcc: duplicate watch ID provided on the WatchStream"
    );
    c.put("x", "1", None).await.expect("put"); // 2
    watcher.request_progress().await.expect("progress");
    let progress = next(&mut stream).await;
    assert_eq!(progress.watch_id(), -1);
    assert!(progress.events().is_empty());
    assert_eq!(progress.header().expect("h").revision(), 2);
    watcher.cancel_by_id(7).await.expect("cancel");
    let canceled = next(&mut stream).await;
    assert!(canceled.canceled());
    assert_eq!(canceled.watch_id(), 7);
    c.put("a", "after cancel", None).await.expect("put");
    let quiet = tokio::time::timeout(Duration::from_millis(300), stream.message()).await;
    assert!(quiet.is_err(), "a cancelled watcher got {quiet:?}");
}

// Guards fragments: with fragment=true a response bigger than
// --max-request-bytes is split; all events arrive, in order.
#[tokio::test]
async fn large_responses_are_fragmented_for_watchers_that_allow_it() {
    let keel = Keel::start(&["--max-request-bytes=4096"]);
    let mut c = keel.client().await;
    let txn_put = |i: usize| etcd_client::TxnOp::put(format!("f/{i:02}"), vec![b'v'; 1000], None);
    let (_w, mut stream) = c
        .watch(
            "f/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_fragment()
                    .with_prev_key(),
            ),
        )
        .await
        .expect("watch");
    // One txn of 3 puts is one revision with 3 events (~3 KB) per txn; the
    // delete of all 12 is one revision whose events carry 1 KB prev values.
    for chunk in 0..4 {
        let ops: Vec<_> = (chunk * 3..chunk * 3 + 3).map(txn_put).collect();
        c.txn(etcd_client::Txn::new().and_then(ops))
            .await
            .expect("txn");
    }
    collect(&mut stream, 12).await;
    c.delete(
        "f/",
        Some(
            etcd_client::DeleteOptions::new()
                .with_prefix()
                .with_prev_key(),
        ),
    )
    .await
    .expect("delete");
    let mut fragments = 0;
    let mut deletes = 0;
    while deletes < 12 {
        let resp = next(&mut stream).await;
        deletes += resp.events().len();
        fragments += 1;
    }
    assert_eq!(deletes, 12);
    // 12 deletes with 1 KB prev values against a 4 KB limit: several parts.
    assert!(fragments >= 3, "only {fragments} responses");
}

// Guards slow watchers: a stream nobody reads while thousands of events
// happen neither blocks writers nor loses or repeats events; they arrive in
// order once the client reads again (caught up from history).
#[tokio::test]
async fn slow_watcher_catches_up_without_blocking_writers() {
    let keel = Keel::start(&[]);
    let mut c = keel.client().await;
    let (_w, mut stream) = c
        .watch("s/", Some(WatchOptions::new().with_prefix()))
        .await
        .expect("watch");
    // Far more responses than the stream's buffer (128) and gRPC's window hold.
    let value = vec![b'x'; 4096];
    let writes = 1500usize;
    for i in 0..writes {
        c.put(format!("s/{}", i % 100), value.clone(), None)
            .await
            .expect("put");
    }
    let events = collect(&mut stream, writes).await;
    let revisions: Vec<i64> = events.iter().map(|e| e.3).collect();
    assert_eq!(revisions, (2..2 + writes as i64).collect::<Vec<_>>());
}

// Guards etcdctl watch with a command-line history read.
#[test]
fn etcdctl_watch_prints_history_from_a_revision() {
    let keel = Keel::start(&[]);
    let ep = keel.endpoint();
    ok(etcdctl(&ep, &["put", "w", "1"]));
    ok(etcdctl(&ep, &["put", "w", "2"]));
    ok(etcdctl(&ep, &["del", "w"]));
    let mut child = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            format!("--endpoints={ep}"),
            "watch".into(),
            "w".into(),
            "--rev=2".into(),
            "--prev-kv".into(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("etcdctl watch");
    let mut out = child.stdout.take().expect("stdout");
    let mut text = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    use std::io::Read;
    let mut buf = [0u8; 256];
    let expected = "PUT\nw\n1\nPUT\nw\n1\nw\n2\nDELETE\nw\n2\nw\n\n";
    while text.len() < expected.len() && std::time::Instant::now() < deadline {
        let n = out.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let _ = child.kill();
    let _ = child.wait();
    // With --prev-kv etcdctl prints the previous pair before the new one.
    assert_eq!(text, expected);
}

// Guards the stop path: open streams (a watch, a lease keep-alive) never end
// by themselves, so a stopping member ends them with etcd's "server stopped"
// (Unavailable) instead of waiting out its shutdown grace period (2 s) for the
// connections that hold them. Multi-threaded: the client's connection must
// keep running (answer the server's GOAWAY ping) while stop() blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_open_streams_and_does_not_wait_for_them() {
    let mut keel = Keel::start(&[]);
    let mut c = keel.client().await;
    let (_watcher, mut events) = c.watch("stop/key", None).await.expect("watch");
    let lease = c.lease_grant(60, None).await.expect("grant").id();
    let (_keeper, mut keep_alives) = c.lease_keep_alive(lease).await.expect("keep-alive");
    let started = std::time::Instant::now();
    keel.stop();
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "stopping with open streams took {took:?}: it waited for them\n{}",
        keel.log()
    );
    let watch_end = tokio::time::timeout(Duration::from_secs(5), events.message())
        .await
        .expect("the watch stream ended");
    match watch_end {
        Err(e) => assert!(
            e.to_string().contains("server stopped") || e.to_string().contains("transport"),
            "{e}"
        ),
        Ok(None) => {}
        Ok(Some(response)) => panic!("an event after the stop: {response:?}"),
    }
    let keep_alive_end = tokio::time::timeout(Duration::from_secs(5), keep_alives.message())
        .await
        .expect("the keep-alive stream ended");
    assert!(
        !matches!(keep_alive_end, Ok(Some(_))),
        "a keep-alive answered after the stop: {keep_alive_end:?}"
    );
}
