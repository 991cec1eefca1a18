//! `--wal-sync dsync`: the WAL makes each append durable with one
//! `pwritev2(RWF_DSYNC)` instead of a write and an fdatasync. The durability
//! contract must not change: every acknowledged put survives kill -9.

mod common;

use common::{wal_segments, Keel};

// Guards the dsync mode end to end: with --wal-sync dsync (and segments
// small enough that the WAL rolls, so new segments are installed by durable
// writes too), concurrent writers are cut off by kill -9; after a restart in
// the same mode every acknowledged put is there with its value and revision,
// and the log continues. Bounded: at most 4 s of writing.
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
    common::kill_9_under_concurrent_writers(&mut keel, 400).await;
    // Segments are named `<sequence>-<first index>.wal` (hex); released ones
    // are gone, so the newest one's sequence says how often the WAL rolled.
    let segments = wal_segments(&keel.wal_dir());
    let newest = segments
        .last()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('-').next())
        .and_then(|seq| u64::from_str_radix(seq, 16).ok());
    assert!(
        newest.is_some_and(|seq| seq >= 1),
        "the WAL never rolled: {segments:?}"
    );
    assert!(
        keel.log().contains("sync_mode=Dsync"),
        "the restart did not open the WAL in dsync mode:\n{}",
        keel.log()
    );
}
