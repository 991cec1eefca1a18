//! `--wal-sync dsync`: the WAL makes each append durable with one
//! `pwritev2(RWF_DSYNC)` instead of a write and an fdatasync. The durability
//! contract must not change: every acknowledged put survives kill -9.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{wal_segments, Keel};
use etcd_client::GetOptions;

/// Writers, and the acknowledged puts wanted before the kill.
const WRITERS: usize = 4;
const ACKED_BEFORE_KILL: usize = 400;

/// Acknowledged puts: key -> (value, mod revision).
type Acked = Arc<Mutex<BTreeMap<String, (String, i64)>>>;

/// Puts `d{writer}/{i}` until the server stops answering or `stop_at`,
/// recording every acknowledged one.
async fn write_until_gone(endpoint: String, writer: usize, stop_at: Instant, acked: Acked) {
    let Ok(mut client) = etcd_client::Client::connect([endpoint], None).await else {
        return;
    };
    for i in 0..10_000 {
        if Instant::now() > stop_at {
            return;
        }
        let (key, value) = (format!("d{writer}/{i:05}"), format!("v{writer}.{i}"));
        let Ok(put) = client.put(key.clone(), value.clone(), None).await else {
            return; // killed
        };
        let revision = put
            .header()
            .expect("a put response has a header")
            .revision();
        acked.lock().expect("lock").insert(key, (value, revision));
    }
}

// Guards the dsync mode end to end: with --wal-sync dsync (and segments
// small enough that the WAL rolls, so new segments are installed by durable
// writes too), concurrent writers are cut off by kill -9; after a restart in
// the same mode every acknowledged put is there with its value and revision,
// and the log continues. Bounded: at most 10 s of writing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_put_survives_kill_9_with_wal_sync_dsync() {
    let mut keel = Keel::start(&["--wal-sync", "dsync", "--wal-segment-size-bytes=65536"]);
    let log = keel.log();
    assert!(
        log.contains("sync_mode=Dsync"),
        "the WAL was not opened in dsync mode:\n{log}"
    );
    assert!(
        !log.contains("RWF_DSYNC) is refused"),
        "this kernel should take RWF_DSYNC:\n{log}"
    );
    let acked: Acked = Arc::default();
    let stop_at = Instant::now() + Duration::from_secs(10);
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(write_until_gone(keel.endpoint(), w, stop_at, acked.clone())))
        .collect();
    while acked.lock().expect("lock").len() < ACKED_BEFORE_KILL && Instant::now() < stop_at {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    keel.kill9();
    for writer in writers {
        writer.await.expect("writer task");
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() >= ACKED_BEFORE_KILL,
        "only {} puts were acknowledged in 10 s:\n{}",
        acked.len(),
        keel.log()
    );
    let segments = wal_segments(&keel.wal_dir());
    assert!(segments.len() >= 2, "the WAL never rolled: {segments:?}");

    keel.restart();
    let mut client = keel.client().await;
    let stored = client
        .get("d", Some(GetOptions::new().with_prefix()))
        .await
        .expect("get");
    let stored: BTreeMap<String, (String, i64)> = stored
        .kvs()
        .iter()
        .map(|kv| {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let value = String::from_utf8_lossy(kv.value()).into_owned();
            (key, (value, kv.mod_revision()))
        })
        .collect();
    let lost: Vec<String> = acked
        .iter()
        .filter(|(key, want)| stored.get(*key) != Some(want))
        .map(|(key, want)| format!("{key}: acknowledged {want:?}, stored {:?}", stored.get(key)))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged puts lost or changed:\n{}",
        lost.len(),
        acked.len(),
        lost.join("\n")
    );
    let revision_max = acked.values().map(|(_, r)| *r).max().expect("acked puts");
    let after = client.put("after", "restart", None).await.expect("put");
    let revision = after.header().expect("header").revision();
    assert!(
        revision > revision_max,
        "revision {revision} after the restart is not past {revision_max}"
    );
}
