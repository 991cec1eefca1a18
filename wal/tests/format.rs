//! Format stability: the bytes the WAL writes for a fixed workload must equal a checked-in
//! version-1 segment, and that segment must still open. A failure here means the on-disk
//! format changed: bump FORMAT_VERSION, add a "Version changes" entry to
//! docs/design/wal-format.md, keep this fixture opening, and add one for the new version.
//! Regenerate (only together with such a change) with `KEEL_REWRITE=1`.

mod common;

use std::path::Path;

use common::entries;
use futures::executor::block_on;
use keel_wal::{Disk, DiskFile, MemDisk, Preallocation, SnapshotMarker, Wal, WalOptions, WalState};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/v1-0000000000000000-0000000000000001.wal"
);
const SEGMENT_NAME: &str = "0000000000000000-0000000000000001.wal";
const DIR: &str = "/format/wal";

fn options() -> WalOptions {
    WalOptions {
        segment_size_bytes: 64 * 1024,
        preallocation: Preallocation::Grow,
        ..WalOptions::default()
    }
}

const STATE: WalState = WalState {
    term: 2,
    vote: 3,
    commit: 2,
};
const MARKER: SnapshotMarker = SnapshotMarker { index: 1, term: 1 };

async fn written_image() -> Vec<u8> {
    let disk = MemDisk::new();
    let (mut wal, _) = Wal::open(disk.clone(), Path::new(DIR), options(), 0)
        .await
        .unwrap();
    wal.append(&entries(1, 2, 1, 40), Some(&STATE))
        .await
        .unwrap();
    wal.save_snapshot_marker(MARKER).await.unwrap();
    wal.append(&entries(3, 1, 2, 5000), None).await.unwrap();
    wal.close().await.unwrap();
    disk.file_bytes(&Path::new(DIR).join(SEGMENT_NAME))
        .expect("first segment")
}

// Guards the on-disk format against silent change (e.g. an rkyv feature or frame change).
#[test]
fn version_1_segments_are_written_identically_and_still_open() {
    block_on(async {
        let image = written_image().await;
        if std::env::var_os("KEEL_REWRITE").is_some() {
            std::fs::write(FIXTURE, &image).expect("write fixture");
        }
        let fixture = std::fs::read(FIXTURE).expect("fixture missing; see the module docs");
        assert!(
            image == fixture,
            "the WAL no longer writes format version 1 byte for byte"
        );

        let disk = MemDisk::new();
        let dir = Path::new(DIR);
        let file = disk.create_file(&dir.join(SEGMENT_NAME)).await.unwrap();
        file.write_at(fixture, 0).await.unwrap();
        file.sync().await.unwrap();
        disk.sync_dir(dir).await.unwrap();
        let (wal, recovered) = Wal::open(disk, dir, options(), 0).await.unwrap();
        let mut want = entries(1, 2, 1, 40);
        want.extend(entries(3, 1, 2, 5000));
        assert!(
            recovered.entries == want,
            "fixture entries differ from the workload's"
        );
        assert_eq!(recovered.state, Some(STATE));
        assert_eq!(recovered.snapshot, Some(MARKER));
        assert!(recovered.torn_tail.is_none());
        assert_eq!((wal.first_index(), wal.last_index()), (1, 3));
    });
}
