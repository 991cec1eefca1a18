//! Decoder robustness without a fuzzer: arbitrary and mutated segment images must be decoded
//! (or refused) without panicking, and a mutated image must never verify with more records
//! than it had. Seeded by proptest (failures print the input).

mod common;

use std::path::Path;

use common::{entries, small_options};
use futures::executor::block_on;
use keel_wal::{segment_header_block, segment_verify, MemDisk, Wal};
use proptest::prelude::*;

/// A real segment image with a few batches (built through the WAL on MemDisk).
fn valid_image() -> (Vec<u8>, usize) {
    block_on(async {
        let disk = MemDisk::new();
        let dir = Path::new("/decode/wal");
        let (mut wal, _) = Wal::open(disk.clone(), dir, small_options(64 * 1024), 0)
            .await
            .unwrap();
        for first in [1, 4, 7] {
            wal.append(&entries(first, 3, 1, 700), None).await.unwrap();
        }
        wal.close().await.unwrap();
        let path = disk
            .file_paths()
            .into_iter()
            .find(|p| p.ends_with("0000000000000000-0000000000000001.wal"));
        let bytes = disk.file_bytes(&path.expect("first segment")).unwrap();
        (bytes, 9)
    })
}

proptest! {
    // Guards the decoder against panics on arbitrary bytes after a valid header.
    #[test]
    fn arbitrary_records_never_panic_the_decoder(tail in proptest::collection::vec(any::<u8>(), 0..20_000)) {
        let mut image = segment_header_block(0, 1);
        image.extend_from_slice(&tail);
        let _verdict = segment_verify(&image);
        let _verdict = segment_verify(&tail);
    }

    // Guards against mutated images decoding into extra records or panicking.
    #[test]
    fn mutated_segments_never_panic_or_gain_records(
        flips in proptest::collection::vec((0usize..20_000, any::<u8>()), 1..8),
    ) {
        let (mut image, records) = valid_image();
        prop_assert_eq!(segment_verify(&image), Ok(records));
        for (at, mask) in flips {
            let at = at % image.len();
            image[at] ^= mask.max(1);
        }
        if let Ok(count) = segment_verify(&image) {
            prop_assert!(count <= records, "{} records from a mutated image of {}", count, records);
        }
    }
}
