//! Backend-independent scenarios, run against MemDisk, StdDisk and GlommioDisk, in each
//! durable sync mode, by tests/backends.rs. Each returns `Err(message)` on failure so that the
//! caller (which may be inside a glommio executor) can report it.

use std::path::{Path, PathBuf};

use keel_wal::{
    CorruptReason, Disk, SnapshotMarker, SyncMode, Wal, WalError, WalOptions, WalState,
    BLOCK_SIZE_BYTES,
};

use super::{entries, small_options_in, Model};

/// Flips bits of one byte of a closed file (models bit rot on the medium).
pub type ByteFlip<'a> = &'a dyn Fn(&Path, u64, u8);

fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if condition {
        Ok(())
    } else {
        Err(message())
    }
}

fn wal_err(error: WalError) -> String {
    format!("unexpected wal error: {error}")
}

/// Segment file paths in `dir`, oldest first.
pub async fn segment_paths<D: Disk>(disk: &D, dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<String> = disk
        .list_dir(dir)
        .await
        .expect("list dir")
        .into_iter()
        .filter(|name| name.ends_with(".wal"))
        .collect();
    names.sort();
    names.into_iter().map(|name| dir.join(name)).collect()
}

fn state(term: u64, commit: u64) -> WalState {
    WalState {
        term,
        vote: 1,
        commit,
    }
}

/// Appends with rolls, overwrites, states and a marker; reopens with several `replay_from`
/// values; everything must match the model, including first/last index.
pub async fn append_roll_overwrite_reopen<D: Disk + Clone>(
    disk: D,
    dir: &Path,
    sync_mode: SyncMode,
) -> Result<(), String> {
    let options = small_options_in(sync_mode, 16 * 1024);
    let (mut wal, recovered) = Wal::open(disk.clone(), dir, options.clone(), 0)
        .await
        .map_err(wal_err)?;
    ensure(recovered == Default::default(), || {
        format!("fresh wal recovered {recovered:?}")
    })?;
    let mut model = Model::default();
    for batch in 0..12u64 {
        let first = model.next_index();
        let new = entries(first, 1 + batch % 4, 1, 700);
        let st = state(1, first);
        wal.append(&new, Some(&st)).await.map_err(wal_err)?;
        model.append(&new, Some(&st));
    }
    // Raft conflict: replace the last 5 entries with a term-2 suffix.
    let new = entries(model.last_index - 4, 3, 2, 300);
    wal.append(&new, None).await.map_err(wal_err)?;
    model.append(&new, None);
    let marker = SnapshotMarker { index: 10, term: 1 };
    wal.save_snapshot_marker(marker).await.map_err(wal_err)?;
    model.marker(marker);
    let new = entries(model.next_index(), 2, 2, 5000);
    wal.append(&new, Some(&state(2, 12)))
        .await
        .map_err(wal_err)?;
    model.append(&new, Some(&state(2, 12)));
    let (first, last) = (wal.first_index(), wal.last_index());
    ensure(last == model.last_index, || {
        format!("last_index {last} != {}", model.last_index)
    })?;
    ensure(first == 1, || format!("first_index {first} != 1"))?;
    wal.close().await.map_err(wal_err)?;
    let segments = segment_paths(&disk, dir).await.len();
    ensure(segments >= 3, || {
        format!("expected rolls, found {segments} segments")
    })?;

    for replay_from in [0, 1, 7, model.last_index, model.last_index + 5] {
        let (wal, recovered) = Wal::open(disk.clone(), dir, options.clone(), replay_from)
            .await
            .map_err(wal_err)?;
        model.check(&recovered, replay_from)?;
        ensure(recovered.torn_tail.is_none(), || {
            "clean close reported a torn tail".into()
        })?;
        ensure(
            wal.last_index() == last && wal.first_index() == first,
            || {
                format!(
                    "reopened first/last {}/{}",
                    wal.first_index(),
                    wal.last_index()
                )
            },
        )?;
        wal.close().await.map_err(wal_err)?;
    }
    Ok(())
}

/// release_before removes old segments (never the active one) and keeps entries >= index.
pub async fn release_before_removes_only_old_segments<D: Disk + Clone>(
    disk: D,
    dir: &Path,
    sync_mode: SyncMode,
) -> Result<(), String> {
    let options = small_options_in(sync_mode, 16 * 1024);
    let (mut wal, _) = Wal::open(disk.clone(), dir, options.clone(), 0)
        .await
        .map_err(wal_err)?;
    let mut model = Model::default();
    for _ in 0..20 {
        let new = entries(model.next_index(), 3, 1, 900);
        wal.append(&new, Some(&state(1, new[0].index)))
            .await
            .map_err(wal_err)?;
        model.append(&new, Some(&state(1, new[0].index)));
    }
    let before = segment_paths(&disk, dir).await;
    let release_index = model.last_index - 10;
    wal.release_before(release_index).await.map_err(wal_err)?;
    model.release(release_index);
    let after = segment_paths(&disk, dir).await;
    ensure(after.len() < before.len(), || {
        format!("nothing released: {before:?}")
    })?;
    ensure(after.last() == before.last(), || {
        "active segment changed".into()
    })?;
    let first = wal.first_index();
    ensure(first > 1 && first <= release_index, || {
        format!("first_index {first} after release")
    })?;
    wal.close().await.map_err(wal_err)?;
    let (mut wal, recovered) = Wal::open(disk.clone(), dir, options.clone(), 0)
        .await
        .map_err(wal_err)?;
    model.check(&recovered, 0)?;
    ensure(wal.first_index() == first, || {
        format!("first {} != {first}", wal.first_index())
    })?;
    ensure(
        recovered.entries.first().map(|e| e.index) == Some(first),
        || "first entry".into(),
    )?;

    // Releasing everything keeps the active segment, and with it the log end and state.
    wal.release_before(u64::MAX).await.map_err(wal_err)?;
    model.release(u64::MAX);
    let remaining = segment_paths(&disk, dir).await;
    ensure(
        remaining.len() == 1 && remaining.last() == before.last(),
        || format!("release must keep the active segment: {remaining:?}"),
    )?;
    let first = wal.first_index();
    wal.close().await.map_err(wal_err)?;
    let (wal, recovered) = Wal::open(disk, dir, options, 0).await.map_err(wal_err)?;
    model.check(&recovered, 0)?;
    ensure(wal.last_index() == model.last_index, || {
        "last index lost by release".into()
    })?;
    ensure(wal.first_index() == first, || {
        format!("first {} != {first}", wal.first_index())
    })?;
    ensure(
        recovered.entries.first().map(|e| e.index) == Some(first),
        || "first entry".into(),
    )?;
    ensure(
        recovered.entries.last().map(|e| e.index) == Some(model.last_index),
        || "last".into(),
    )?;
    wal.close().await.map_err(wal_err)
}

/// Three batches in one segment: A and B at blocks 1 and 2, C (multi-block) from block 3.
async fn three_batches<D: Disk + Clone>(
    disk: &D,
    dir: &Path,
    options: &WalOptions,
) -> Result<(Model, PathBuf), String> {
    let (mut wal, _) = Wal::open(disk.clone(), dir, options.clone(), 0)
        .await
        .map_err(wal_err)?;
    let mut model = Model::default();
    for (count, data_bytes) in [(2, 100), (2, 100), (3, 3000)] {
        let new = entries(model.next_index(), count, 1, data_bytes);
        wal.append(&new, Some(&state(1, new[0].index)))
            .await
            .map_err(wal_err)?;
        model.append(&new, Some(&state(1, new[0].index)));
    }
    wal.close().await.map_err(wal_err)?;
    let segments = segment_paths(disk, dir).await;
    ensure(segments.len() == 1, || {
        format!("expected one segment: {segments:?}")
    })?;
    Ok((model, segments[0].clone()))
}

/// A damaged final batch is cut off, reported, and the WAL keeps working after it.
pub async fn torn_last_batch_is_cut_and_reported<D: Disk + Clone>(
    disk: D,
    dir: &Path,
    flip: ByteFlip<'_>,
    sync_mode: SyncMode,
) -> Result<(), String> {
    let options = small_options_in(sync_mode, 1024 * 1024);
    let (model_all, segment) = three_batches(&disk, dir, &options).await?;
    let batch_c = 3 * BLOCK_SIZE_BYTES;
    flip(&segment, batch_c + 5000, 0x5A);
    let (mut wal, recovered) = Wal::open(disk.clone(), dir, options.clone(), 0)
        .await
        .map_err(wal_err)?;
    let torn = recovered
        .torn_tail
        .clone()
        .ok_or("torn tail not reported")?;
    ensure(
        torn.segment == segment && torn.offset_bytes == batch_c,
        || format!("{torn:?}"),
    )?;
    let mut model = model_all.clone();
    model.entries.truncate(4);
    model.last_index = 4;
    model.state = Some(state(1, 3));
    model.check(&recovered, 0)?;
    let new = entries(5, 2, 2, 10);
    wal.append(&new, None).await.map_err(wal_err)?;
    model.append(&new, None);
    wal.close().await.map_err(wal_err)?;
    let (wal, recovered) = Wal::open(disk, dir, options, 0).await.map_err(wal_err)?;
    ensure(recovered.torn_tail.is_none(), || {
        "tail still torn after repair".into()
    })?;
    model.check(&recovered, 0)?;
    wal.close().await.map_err(wal_err)
}

/// A flipped byte in the middle of the last segment, with valid batches after it, is
/// corruption of acknowledged data: a hard error naming the record's offset.
pub async fn flipped_byte_before_valid_records_is_a_hard_error<D: Disk + Clone>(
    disk: D,
    dir: &Path,
    flip: ByteFlip<'_>,
    sync_mode: SyncMode,
) -> Result<(), String> {
    let options = small_options_in(sync_mode, 1024 * 1024);
    let (_, segment) = three_batches(&disk, dir, &options).await?;
    let batch_b = 2 * BLOCK_SIZE_BYTES;
    flip(&segment, batch_b + 40, 0x01);
    match Wal::open(disk, dir, options, 0).await {
        Err(WalError::Corrupt {
            segment: found,
            offset_bytes,
            reason:
                CorruptReason::CorruptBeforeTail {
                    later_record_offset_bytes,
                    ..
                },
        }) if found == segment
            && offset_bytes == batch_b
            && later_record_offset_bytes == 3 * BLOCK_SIZE_BYTES =>
        {
            Ok(())
        }
        Err(error) => Err(format!("wrong error: {error:?}")),
        Ok(_) => Err("corruption before the tail was accepted".into()),
    }
}

/// A flipped byte in a segment that is not the last one is a hard error naming that file
/// and the offset of the damaged record.
pub async fn flipped_byte_in_an_earlier_segment_is_a_hard_error<D: Disk + Clone>(
    disk: D,
    dir: &Path,
    flip: ByteFlip<'_>,
    sync_mode: SyncMode,
) -> Result<(), String> {
    let options = small_options_in(sync_mode, 16 * 1024);
    let (mut wal, _) = Wal::open(disk.clone(), dir, options.clone(), 0)
        .await
        .map_err(wal_err)?;
    for index in 0..12 {
        wal.append(&entries(index * 2 + 1, 2, 1, 1500), None)
            .await
            .map_err(wal_err)?;
    }
    wal.close().await.map_err(wal_err)?;
    let segments = segment_paths(&disk, dir).await;
    ensure(segments.len() >= 3, || {
        format!("expected rolls: {segments:?}")
    })?;
    // Damage in the last batch of an earlier segment: nothing valid follows in that file,
    // but it is not the last segment, so it is not a torn tail either.
    let last_batch = 3 * BLOCK_SIZE_BYTES;
    flip(&segments[1], last_batch + 30, 0x80);
    match Wal::open(disk.clone(), dir, options.clone(), 0).await {
        Err(WalError::Corrupt {
            segment,
            offset_bytes,
            reason: CorruptReason::CrcMismatch { .. },
        }) if segment == segments[1] && offset_bytes == last_batch => {}
        Err(error) => return Err(format!("wrong error: {error:?}")),
        Ok(_) => return Err("corruption in an earlier segment was accepted".into()),
    }
    flip(&segments[1], last_batch + 30, 0x80); // repair
    let record = BLOCK_SIZE_BYTES; // first record of the first batch
    flip(&segments[1], record + 30, 0x80);
    match Wal::open(disk, dir, options, 0).await {
        // Later batches of the same segment are valid, so the reason may say so; either
        // way the error must name the damaged segment and record.
        Err(WalError::Corrupt {
            segment,
            offset_bytes,
            reason: CorruptReason::CrcMismatch { .. } | CorruptReason::CorruptBeforeTail { .. },
        }) if segment == segments[1] && offset_bytes == record => Ok(()),
        Err(error) => Err(format!("wrong error: {error:?}")),
        Ok(_) => Err("corruption in an earlier segment was accepted".into()),
    }
}
