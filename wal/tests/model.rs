//! Property test: random sequences of appends (with suffix overwrites, state records and
//! multi-block batches), snapshot markers, release_before and close/reopen, with small
//! segments so that rolls are frequent, in either durable sync mode. After every step the WAL's first/last index, and
//! after every reopen the recovered state, must equal a plain-vector model.
//!
//! proptest prints the failing (shrunk) case and stores it under proptest-regressions/.
//! `KEEL_LONG_TESTS=1` runs 4096 cases instead of 256.

mod common;

use std::path::Path;

use common::{entries, small_options_in, Model, DURABLE_SYNC_MODES};
use futures::executor::block_on;
use keel_wal::{MemDisk, SnapshotMarker, SyncMode, Wal, WalOptions, WalState};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Append `count` entries starting `back` entries before the log end (0 = just after it).
    Append {
        count: u64,
        back: u64,
        data_bytes: usize,
        with_state: bool,
    },
    /// A marker `ahead` past the log end (0 = at the log end, i.e. behind the entries' end).
    Marker {
        ahead: u64,
    },
    Release {
        behind: u64,
    },
    Reopen {
        replay_from_behind: u64,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..5u64, 0..4u64, prop_oneof![0..300usize, 300..2000usize, 4000..9000usize], any::<bool>())
            .prop_map(|(count, back, data_bytes, with_state)| Op::Append { count, back, data_bytes, with_state }),
        1 => (0..3u64).prop_map(|ahead| Op::Marker { ahead }),
        1 => (0..30u64).prop_map(|behind| Op::Release { behind }),
        1 => (0..10u64).prop_map(|replay_from_behind| Op::Reopen { replay_from_behind }),
    ]
}

fn cases() -> u32 {
    if std::env::var_os("KEEL_LONG_TESTS").is_some() {
        4096
    } else {
        256
    }
}

fn first_index_check(wal: &Wal<MemDisk>, model: &Model) -> Result<(), TestCaseError> {
    let first = wal.first_index();
    let model_first = model.entries.first().map_or(0, |e| e.index);
    if model.release_floor == 0 {
        prop_assert_eq!(first, model_first, "first_index");
    } else if model.entries.iter().any(|e| e.index >= model.release_floor) {
        prop_assert!(
            first >= model_first,
            "first_index {} < model first {}",
            first,
            model_first
        );
        prop_assert!(
            first <= model.release_floor.max(model_first),
            "first_index {} too high",
            first
        );
    }
    Ok(())
}

async fn run(
    sync_mode: SyncMode,
    segment_size_bytes: u64,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let disk = MemDisk::new();
    let dir = Path::new("/model/wal");
    let options: WalOptions = small_options_in(sync_mode, segment_size_bytes);
    let (mut wal, _) = Wal::open(disk.clone(), dir, options.clone(), 0)
        .await
        .unwrap();
    let mut model = Model::default();
    let mut term = 1u64;
    for op in ops {
        match op {
            Op::Append {
                count,
                back,
                data_bytes,
                with_state,
            } => {
                if back > 0 {
                    term += 1;
                }
                let start = model
                    .next_index()
                    .saturating_sub(back)
                    .max(model.first_allowed_index());
                let new = entries(start, count, term, data_bytes);
                let state = with_state.then_some(WalState {
                    term,
                    vote: 3,
                    commit: start,
                });
                wal.append(&new, state.as_ref()).await.unwrap();
                model.append(&new, state.as_ref());
            }
            Op::Marker { ahead } => {
                if model.last_index == 0 && ahead == 0 {
                    continue;
                }
                let marker = SnapshotMarker {
                    index: model.last_index + ahead,
                    term,
                };
                wal.save_snapshot_marker(marker).await.unwrap();
                model.marker(marker);
            }
            Op::Release { behind } => {
                let index = model.last_index.saturating_sub(behind);
                wal.release_before(index).await.unwrap();
                model.release(index);
            }
            Op::Reopen { replay_from_behind } => {
                wal.close().await.unwrap();
                let replay_from = model.last_index.saturating_sub(replay_from_behind);
                let (reopened, recovered) =
                    Wal::open(disk.clone(), dir, options.clone(), replay_from)
                        .await
                        .unwrap();
                wal = reopened;
                if let Err(diff) = model.check(&recovered, replay_from) {
                    return Err(TestCaseError::fail(diff));
                }
                prop_assert!(recovered.torn_tail.is_none());
            }
        }
        prop_assert_eq!(wal.last_index(), model.last_index, "last_index");
        first_index_check(&wal, &model)?;
    }
    let first = wal.first_index();
    wal.close().await.unwrap();
    let (wal, recovered) = Wal::open(disk, dir, options, 0).await.unwrap();
    if let Err(diff) = model.check(&recovered, 0) {
        return Err(TestCaseError::fail(diff));
    }
    prop_assert_eq!(recovered.entries.first().map_or(0, |e| e.index), first);
    prop_assert_eq!(wal.first_index(), first);
    prop_assert_eq!(wal.last_index(), model.last_index);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    // Guards the whole contract against a model: replay equals the model after any sequence
    // of operations, across rolls, overwrites, snapshot jumps, releases and reopens.
    #[test]
    fn recovered_log_equals_the_model_after_random_operations(
        sync_mode in proptest::sample::select(DURABLE_SYNC_MODES.to_vec()),
        segment_size_bytes in prop_oneof![Just(8192u64), Just(12288), Just(16384), Just(65536)],
        ops in proptest::collection::vec(op_strategy(), 1..60),
    ) {
        block_on(run(sync_mode, segment_size_bytes, ops))?;
    }
}
