//! Durability: restarts keep every key, value and revision; kill -9 under
//! concurrent writers loses no acknowledged write; a torn WAL tail is cut off
//! on start; corruption before the tail refuses to start, naming file and
//! offset.

mod common;

use std::io::{Read, Seek, SeekFrom, Write};

use common::{etcdctl, ok, wal_segments, Keel};
use etcd_client::{GetOptions, PutOptions};

/// Bytes per WAL batch alignment (docs/design/wal-format.md): every batch
/// starts on such a boundary, so a test can address "the last batch".
const WAL_ALIGN_BYTES: u64 = 4096;

async fn dump(keel: &Keel) -> (i64, Vec<(Vec<u8>, Vec<u8>, i64, i64, i64)>) {
    let mut c = keel.client().await;
    let resp = c
        .get("", Some(GetOptions::new().with_all_keys()))
        .await
        .expect("get");
    let rows = resp
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key().to_vec(),
                kv.value().to_vec(),
                kv.create_revision(),
                kv.mod_revision(),
                kv.version(),
            )
        })
        .collect();
    (resp.header().expect("header").revision(), rows)
}

// Guards restart: keys, values, versions, create/mod revisions, deletions,
// compaction and the current revision all survive a clean stop and restart.
#[tokio::test]
async fn restart_keeps_every_key_value_and_revision() {
    let mut keel = Keel::start(&[]);
    {
        let mut c = keel.client().await;
        for i in 0..200 {
            c.put(format!("k{:03}", i % 50), format!("v{i}"), None)
                .await
                .expect("put");
        }
        c.delete("k01", Some(etcd_client::DeleteOptions::new().with_prefix()))
            .await
            .expect("del");
        c.compact(100, None).await.expect("compact");
        c.put("last", "one", Some(PutOptions::new()))
            .await
            .expect("put");
    }
    let before = dump(&keel).await;
    let old_before = keel
        .client()
        .await
        .get("k000", Some(GetOptions::new().with_revision(150)))
        .await
        .expect("get");
    keel.stop();
    keel.restart();
    let after = dump(&keel).await;
    assert_eq!(before, after);
    let mut c = keel.client().await;
    let old_after = c
        .get("k000", Some(GetOptions::new().with_revision(150)))
        .await
        .expect("get");
    assert_eq!(
        common::rows(old_before.kvs()),
        common::rows(old_after.kvs())
    );
    let compacted = c
        .get("k000", Some(GetOptions::new().with_revision(50)))
        .await
        .expect_err("compacted");
    assert!(
        compacted
            .to_string()
            .contains("required revision has been compacted"),
        "{compacted}"
    );
    // Writing continues from the recovered revision.
    let resp = c.put("after", "restart", None).await.expect("put");
    assert_eq!(resp.header().expect("h").revision(), before.0 + 1);
}

// Guards the durability contract: writers record every acknowledged put;
// the server is SIGKILLed while they write; after restart every acknowledged
// key has its value at its revision. Bounded: 8 writers, at most 4 s or
// 2,000 puts each, before the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_concurrent_writers_loses_no_acknowledged_write() {
    let mut keel = Keel::start(&[]);
    common::kill_9_under_concurrent_writers(&mut keel, 500).await;
}

// The same contract on the glommio storage core (O_DIRECT WAL through
// io_uring), which is not the default: the restart runs on glommio too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_concurrent_writers_loses_no_acknowledged_write_with_glommio_io() {
    let mut keel = Keel::start(&["--storage-io", "glommio"]);
    common::kill_9_under_concurrent_writers(&mut keel, 500).await;
}

/// Offset just past the last non-zero byte of `file`, rounded up to the
/// batch alignment: where the next batch would be written.
fn end_of_data(file: &std::path::Path) -> u64 {
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .expect("open")
        .read_to_end(&mut bytes)
        .expect("read");
    let last = bytes
        .iter()
        .rposition(|b| *b != 0)
        .expect("segment has data") as u64
        + 1;
    last.div_ceil(WAL_ALIGN_BYTES) * WAL_ALIGN_BYTES
}

fn write_at(file: &std::path::Path, offset: u64, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .expect("open");
    f.seek(SeekFrom::Start(offset)).expect("seek");
    f.write_all(bytes).expect("write");
    f.sync_all().expect("sync");
}

fn read_at(file: &std::path::Path, offset: u64, len: usize) -> Vec<u8> {
    let mut f = std::fs::File::open(file).expect("open");
    f.seek(SeekFrom::Start(offset)).expect("seek");
    let mut buf = vec![0; len];
    f.read_exact(&mut buf).expect("read");
    buf
}

// Guards torn-tail repair: a batch that was only partly written when the
// power went (here: the first half of a copy of the previous batch, whose
// checksum cannot match) is cut off on start with a log line, and everything
// acknowledged before it is kept.
#[test]
fn torn_wal_tail_is_cut_off_on_start() {
    let mut keel = Keel::start(&[]);
    let ep = keel.endpoint();
    for i in 0..20 {
        ok(etcdctl(&ep, &["put", &format!("k{i}"), &format!("v{i}")]));
    }
    keel.kill9();
    let segment = wal_segments(&keel.wal_dir()).pop().expect("a segment");
    let end = end_of_data(&segment);
    let last_batch = read_at(&segment, end - WAL_ALIGN_BYTES, WAL_ALIGN_BYTES as usize);
    let used = last_batch.iter().rposition(|b| *b != 0).expect("data") + 1;
    // A torn write: the record header is there, the rest of its bytes are not.
    let mut torn = last_batch[..used].to_vec();
    let cut = torn.len() / 2;
    torn.truncate(cut);
    torn[cut - 1] ^= 0xff;
    write_at(&segment, end, &torn);
    keel.restart();
    assert!(
        keel.log().contains("torn"),
        "no log line about the torn tail:\n{}",
        keel.log()
    );
    for i in 0..20 {
        assert_eq!(
            ok(etcdctl(
                &ep,
                &["get", &format!("k{i}"), "--print-value-only"]
            )),
            format!("v{i}\n")
        );
    }
    // The repaired log keeps working across another restart.
    ok(etcdctl(&ep, &["put", "after", "repair"]));
    keel.stop();
    keel.restart();
    assert_eq!(
        ok(etcdctl(&ep, &["get", "after", "--print-value-only"])),
        "repair\n"
    );
}

// Guards "never silent data loss": a damaged record with valid records after
// it is not a torn tail; keel refuses to start and names file and offset.
#[test]
fn corruption_before_the_tail_refuses_to_start_naming_file_and_offset() {
    let mut keel = Keel::start(&[]);
    let ep = keel.endpoint();
    for i in 0..20 {
        ok(etcdctl(&ep, &["put", &format!("k{i}"), &format!("v{i}")]));
    }
    keel.kill9();
    let segment = wal_segments(&keel.wal_dir()).pop().expect("a segment");
    let end = end_of_data(&segment);
    // Damage a record well before the last batch: flip bytes in the middle of
    // a batch that has several batches after it.
    let victim = end - 8 * WAL_ALIGN_BYTES;
    let batch = read_at(&segment, victim, WAL_ALIGN_BYTES as usize);
    let used = batch.iter().rposition(|b| *b != 0).expect("data") + 1;
    let offset = victim + used as u64 / 2;
    let byte = read_at(&segment, offset, 1)[0];
    write_at(&segment, offset, &[byte ^ 0x5a]);
    let (status, log) = keel.start_expecting_failure();
    assert_eq!(status.code(), Some(1), "{log}");
    let file_name = segment.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(
        log.contains(file_name),
        "error does not name the segment {file_name}:\n{log}"
    );
    assert!(
        log.contains("offset"),
        "error does not name the offset:\n{log}"
    );
}
