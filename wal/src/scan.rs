//! Scanning one segment image: verify the header, decode batch after batch, and classify what
//! follows the last valid batch (clean zeros, or damage, and if damage, whether a valid record
//! of a *later* batch follows it). Pure: bytes in, verdict out, so it can be fuzzed.

use rkyv::util::AlignedVec;

use crate::error::CorruptReason;
use crate::record::{frame_batch_block_if_valid, frame_decode, FrameError, Record, RecordKind};
use crate::segment::{header_decode, SegmentId, BLOCK_SIZE_BYTES, SEGMENT_HEADER_BYTES};

/// A record and where its frame starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScannedRecord {
    pub offset_bytes: u64,
    pub record: Record,
}

/// A batch whose every record verified (batches are all-or-nothing on recovery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScannedBatch {
    pub start_bytes: u64,
    pub records: Vec<ScannedRecord>,
}

/// What follows the last valid batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Only zeros (or nothing) after `SegmentScan::end_bytes`.
    Clean,
    /// Something else: a bad record or stray bytes at `offset_bytes`.
    Damaged {
        offset_bytes: u64,
        problem: CorruptReason,
        /// Offset of a valid record of a batch that starts after `end_bytes`, if any: then the
        /// damage is not a torn final write.
        later_record_offset_bytes: Option<u64>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentScan {
    pub id: SegmentId,
    pub batches: Vec<ScannedBatch>,
    /// End of the last valid batch: a block boundary, where the next batch would start.
    pub end_bytes: u64,
    pub tail: Tail,
}

/// Scans a whole segment file image. `Err` only for an invalid header.
pub(crate) fn segment_scan(bytes: &[u8]) -> Result<SegmentScan, CorruptReason> {
    let id = header_decode(bytes)?;
    let mut scratch = AlignedVec::new();
    let mut batches = Vec::new();
    let mut at = SEGMENT_HEADER_BYTES;
    let damage = loop {
        match batch_scan(bytes, at, &mut scratch) {
            Ok(Some((batch, next))) => {
                batches.push(batch);
                at = next;
            }
            Ok(None) => break None,
            Err(damage) => break Some(damage),
        }
    };
    let end_bytes = at;
    let damage = damage.or_else(|| stray_bytes_after(bytes, end_bytes));
    let tail = match damage {
        None => Tail::Clean,
        Some((offset_bytes, problem)) => Tail::Damaged {
            offset_bytes,
            problem,
            later_record_offset_bytes: later_batch_record_find(bytes, end_bytes),
        },
    };
    Ok(SegmentScan {
        id,
        batches,
        end_bytes,
        tail,
    })
}

fn to_usize(offset_bytes: u64) -> usize {
    usize::try_from(offset_bytes).expect("offsets inside an in-memory image fit usize")
}

/// Decodes the batch starting at `start` (a block boundary). `Ok(None)`: nothing was ever
/// written there (zero header or end of file). `Err((offset, problem))`: the batch is damaged.
fn batch_scan(
    bytes: &[u8],
    start: u64,
    scratch: &mut AlignedVec,
) -> Result<Option<(ScannedBatch, u64)>, (u64, CorruptReason)> {
    debug_assert_eq!(
        start % BLOCK_SIZE_BYTES,
        0,
        "batches start on block boundaries"
    );
    if start >= bytes.len() as u64 {
        return Ok(None);
    }
    let Ok(batch_block) = u32::try_from(start / BLOCK_SIZE_BYTES) else {
        let detail = "batch starts beyond the addressable block range".to_string();
        return Err((start, CorruptReason::BadFrame { detail }));
    };
    let mut records = Vec::new();
    let mut at = start;
    loop {
        let frame = match frame_decode(&bytes[to_usize(at)..], batch_block, scratch) {
            Ok(frame) => frame,
            Err(FrameError::Zero) if at == start => return Ok(None),
            Err(FrameError::Zero) => {
                let detail = "zeroed record header inside a batch".to_string();
                return Err((at, CorruptReason::BadFrame { detail }));
            }
            Err(FrameError::Truncated {
                frame_bytes,
                available_bytes,
            }) => {
                let detail = format!(
                    "frame of {frame_bytes} bytes runs past the end of the file \
                     ({available_bytes} bytes left)"
                );
                return Err((at, CorruptReason::BadFrame { detail }));
            }
            Err(FrameError::Invalid(reason)) => return Err((at, reason)),
        };
        let next = at + frame.frame_bytes;
        if frame.kind == RecordKind::Padding {
            if !next.is_multiple_of(BLOCK_SIZE_BYTES) {
                let detail = format!("padding record ends at unaligned offset {next}");
                return Err((at, CorruptReason::BadFrame { detail }));
            }
            return Ok(Some((
                ScannedBatch {
                    start_bytes: start,
                    records,
                },
                next,
            )));
        }
        let record = frame.record.expect("non-padding frames carry a record");
        records.push(ScannedRecord {
            offset_bytes: at,
            record,
        });
        at = next;
    }
}

/// The first non-zero byte at or after `end_bytes`, as damage.
fn stray_bytes_after(bytes: &[u8], end_bytes: u64) -> Option<(u64, CorruptReason)> {
    let rest = bytes.get(to_usize(end_bytes)..)?;
    let position = rest.iter().position(|&b| b != 0)?;
    let offset_bytes = end_bytes + position as u64;
    let detail = format!("non-zero byte at offset {offset_bytes} after the last complete batch");
    Some((offset_bytes, CorruptReason::BadFrame { detail }))
}

/// Looks at every block boundary after the batch starting at `end_bytes` for a valid record
/// that belongs to a later batch. Records of the torn batch itself carry its block number, so
/// sectors of a torn write that landed out of order are not mistaken for later batches.
fn later_batch_record_find(bytes: &[u8], end_bytes: u64) -> Option<u64> {
    let torn_block = end_bytes / BLOCK_SIZE_BYTES;
    let mut at = end_bytes + BLOCK_SIZE_BYTES;
    while at < bytes.len() as u64 {
        if let Some(block) = frame_batch_block_if_valid(&bytes[to_usize(at)..]) {
            if u64::from(block) > torn_block {
                return Some(at);
            }
        }
        at += BLOCK_SIZE_BYTES;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchEncoder;
    use crate::entry::{WalEntry, WalState};
    use crate::segment::header_encode;
    use bytes::Bytes;

    fn entry(index: u64, data_bytes: usize) -> Record {
        Record::Entry(WalEntry {
            index,
            term: 1,
            kind: 0,
            data: Bytes::from(vec![index as u8; data_bytes]),
        })
    }

    /// A segment image of `len_blocks` blocks with the given batches written in order.
    fn image(batches: &[Vec<Record>], len_blocks: usize) -> (Vec<u8>, Vec<u64>) {
        let mut bytes = vec![0u8; len_blocks * BLOCK_SIZE_BYTES as usize];
        header_encode(
            SegmentId {
                seq: 0,
                first_index: 1,
            },
            &mut bytes[..4096],
        );
        let mut encoder = BatchEncoder::default();
        let mut at = SEGMENT_HEADER_BYTES;
        let mut starts = Vec::new();
        for batch in batches {
            encoder.clear();
            for record in batch {
                encoder.push(record);
            }
            let len = encoder.batch_bytes();
            let block = u32::try_from(at / BLOCK_SIZE_BYTES).unwrap();
            encoder.write_into(&mut bytes[to_usize(at)..to_usize(at + len)], block);
            starts.push(at);
            at += len;
        }
        (bytes, starts)
    }

    // Guards the happy path: every batch comes back, in order, with its records.
    #[test]
    fn a_clean_segment_yields_all_batches_and_a_clean_tail() {
        let batches = vec![
            vec![entry(1, 10), entry(2, 5000)],
            vec![Record::State(WalState {
                term: 1,
                vote: 1,
                commit: 2,
            })],
        ];
        let (bytes, starts) = image(&batches, 8);
        let scan = segment_scan(&bytes).unwrap();
        assert_eq!(scan.tail, Tail::Clean);
        assert_eq!(scan.batches.len(), 2);
        assert_eq!(scan.batches[1].start_bytes, starts[1]);
        let records: Vec<Vec<Record>> = scan
            .batches
            .iter()
            .map(|b| b.records.iter().map(|r| r.record.clone()).collect())
            .collect();
        assert_eq!(records, batches);
        assert_eq!(scan.end_bytes, starts[1] + BLOCK_SIZE_BYTES);
    }

    // Guards torn-tail classification: damage in the last batch with nothing after it is a
    // torn write (no later record), even when later sectors of that same batch survived.
    #[test]
    fn damage_in_the_last_batch_is_torn_even_if_its_later_sectors_are_valid() {
        let batches = vec![
            vec![entry(1, 10)],
            vec![entry(2, 10), entry(3, 9000), entry(4, 10)],
        ];
        let (mut bytes, starts) = image(&batches, 8);
        // Lose the first sector of the last batch; its later records are intact.
        bytes[to_usize(starts[1])..to_usize(starts[1]) + 512].fill(0);
        let scan = segment_scan(&bytes).unwrap();
        assert_eq!(scan.batches.len(), 1);
        assert_eq!(scan.end_bytes, starts[1]);
        assert!(
            matches!(
                scan.tail,
                Tail::Damaged {
                    later_record_offset_bytes: None,
                    ..
                }
            ),
            "{:?}",
            scan.tail
        );
    }

    // Guards corruption detection: damage followed by a valid later batch is not a torn tail.
    #[test]
    fn damage_followed_by_a_later_batch_reports_the_later_record() {
        let batches = vec![vec![entry(1, 10)], vec![entry(2, 10)], vec![entry(3, 10)]];
        let (mut bytes, starts) = image(&batches, 8);
        bytes[to_usize(starts[1]) + 20] ^= 0x40;
        let scan = segment_scan(&bytes).unwrap();
        assert_eq!(scan.end_bytes, starts[1]);
        match scan.tail {
            Tail::Damaged {
                offset_bytes,
                later_record_offset_bytes,
                problem,
            } => {
                assert_eq!(offset_bytes, starts[1]);
                assert_eq!(later_record_offset_bytes, Some(starts[2]));
                assert!(
                    matches!(problem, CorruptReason::CrcMismatch { .. }),
                    "{problem:?}"
                );
            }
            Tail::Clean => panic!("damage not detected"),
        }
    }

    // Guards the zero-header end rule: stray bytes after the end must not be ignored.
    #[test]
    fn stray_bytes_after_the_end_are_damage() {
        let (mut bytes, starts) = image(&[vec![entry(1, 10)]], 8);
        let stray = to_usize(starts[0] + BLOCK_SIZE_BYTES) + 700;
        bytes[stray] = 1;
        let scan = segment_scan(&bytes).unwrap();
        assert!(matches!(
            scan.tail,
            Tail::Damaged {
                later_record_offset_bytes: None,
                ..
            }
        ));
        assert_eq!(scan.batches.len(), 1);
    }
}
