//! Records: the frame `len | crc32 | kind | reserved | batch_block | payload` and the rkyv
//! payloads of the four kinds (entry, state, snapshot marker, padding).
//! Layout and checksum scope: docs/design/wal-format.md, section "Records".

use bytes::Bytes;
use rkyv::rancor;
use rkyv::util::AlignedVec;

use crate::entry::{SnapshotMarker, WalEntry, WalState};
use crate::error::CorruptReason;
use crate::segment::read_u32;

/// Bytes of a record header: len u32, crc32 u32, kind u8, 3 reserved bytes, batch_block u32.
pub(crate) const RECORD_HEADER_BYTES: usize = 16;

/// Largest payload one record may carry. Bounds what a corrupt length can make recovery
/// allocate, and what one entry may hold.
pub(crate) const RECORD_PAYLOAD_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// Bytes an entry payload may need beyond its data (rkyv root struct and alignment).
pub(crate) const ENTRY_PAYLOAD_OVERHEAD_BYTES_MAX: u64 = 64;

/// What a record holds. 0 is never a kind, so a zeroed header is never a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum RecordKind {
    Entry = 1,
    State = 2,
    SnapshotMarker = 3,
    /// Zero-filled payload that pads a batch to a block boundary; always a batch's last record.
    Padding = 4,
}

impl RecordKind {
    fn from_u8(byte: u8) -> Option<RecordKind> {
        match byte {
            1 => Some(RecordKind::Entry),
            2 => Some(RecordKind::State),
            3 => Some(RecordKind::SnapshotMarker),
            4 => Some(RecordKind::Padding),
            _ => None,
        }
    }
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct EntryPayload {
    index: u64,
    term: u64,
    kind: u8,
    data: Bytes,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct StatePayload {
    term: u64,
    vote: u64,
    commit: u64,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct MarkerPayload {
    index: u64,
    term: u64,
}

/// A decoded record that carries data for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    Entry(WalEntry),
    State(WalState),
    SnapshotMarker(SnapshotMarker),
}

/// Appends the rkyv payload of `record` to `out`; `scratch` is reused between calls so that
/// encoding a batch allocates nothing once warm.
pub(crate) fn payload_encode(record: &Record, scratch: &mut AlignedVec, out: &mut Vec<u8>) {
    scratch.clear();
    let writer = std::mem::take(scratch);
    let written = match record {
        Record::Entry(entry) => rkyv::api::high::to_bytes_in::<_, rancor::Error>(
            &EntryPayload {
                index: entry.index,
                term: entry.term,
                kind: entry.kind,
                data: entry.data.clone(),
            },
            writer,
        ),
        Record::State(state) => rkyv::api::high::to_bytes_in::<_, rancor::Error>(
            &StatePayload {
                term: state.term,
                vote: state.vote,
                commit: state.commit,
            },
            writer,
        ),
        Record::SnapshotMarker(marker) => rkyv::api::high::to_bytes_in::<_, rancor::Error>(
            &MarkerPayload {
                index: marker.index,
                term: marker.term,
            },
            writer,
        ),
    };
    *scratch = written.expect("serializing plain structs into an AlignedVec cannot fail");
    out.extend_from_slice(scratch);
}

pub(crate) fn record_kind(record: &Record) -> RecordKind {
    match record {
        Record::Entry(_) => RecordKind::Entry,
        Record::State(_) => RecordKind::State,
        Record::SnapshotMarker(_) => RecordKind::SnapshotMarker,
    }
}

/// Decodes a verified payload. `scratch` gives rkyv the alignment it needs.
fn payload_decode(
    kind: RecordKind,
    payload: &[u8],
    scratch: &mut AlignedVec,
) -> Result<Option<Record>, CorruptReason> {
    let bad = |error: rancor::Error| CorruptReason::BadPayload {
        detail: error.to_string(),
    };
    scratch.clear();
    scratch.extend_from_slice(payload);
    let record = match kind {
        RecordKind::Padding => return Ok(None),
        RecordKind::Entry => {
            let archived =
                rkyv::access::<ArchivedEntryPayload, rancor::Error>(scratch).map_err(bad)?;
            Record::Entry(WalEntry {
                index: archived.index.to_native(),
                term: archived.term.to_native(),
                kind: archived.kind,
                data: Bytes::copy_from_slice(archived.data.as_slice()),
            })
        }
        RecordKind::State => {
            let archived =
                rkyv::access::<ArchivedStatePayload, rancor::Error>(scratch).map_err(bad)?;
            Record::State(WalState {
                term: archived.term.to_native(),
                vote: archived.vote.to_native(),
                commit: archived.commit.to_native(),
            })
        }
        RecordKind::SnapshotMarker => {
            let archived =
                rkyv::access::<ArchivedMarkerPayload, rancor::Error>(scratch).map_err(bad)?;
            Record::SnapshotMarker(SnapshotMarker {
                index: archived.index.to_native(),
                term: archived.term.to_native(),
            })
        }
    };
    Ok(Some(record))
}

/// Writes one frame (header + payload) into `out`, which must be exactly its size.
pub(crate) fn frame_encode(out: &mut [u8], kind: RecordKind, batch_block: u32, payload: &[u8]) {
    assert_eq!(
        out.len(),
        RECORD_HEADER_BYTES + payload.len(),
        "frame buffer size"
    );
    let len = u32::try_from(payload.len()).expect("payload length checked against the max");
    out[0..4].copy_from_slice(&len.to_le_bytes());
    out[8] = kind as u8;
    out[9..12].fill(0);
    out[12..16].copy_from_slice(&batch_block.to_le_bytes());
    out[RECORD_HEADER_BYTES..].copy_from_slice(payload);
    let crc = frame_crc(out);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// crc32 over the frame without its crc field: len, kind, reserved, batch_block, payload.
fn frame_crc(frame: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&frame[0..4]);
    hasher.update(&frame[8..]);
    hasher.finalize()
}

/// A frame that passed verification.
#[derive(Debug)]
pub(crate) struct Frame {
    pub kind: RecordKind,
    /// Total frame length (header + payload) in bytes.
    pub frame_bytes: u64,
    /// The decoded record; `None` for padding.
    pub record: Option<Record>,
}

/// Why no frame could be decoded at a position.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The 16 header bytes are all zero: no record was ever written here.
    Zero,
    /// The frame runs past the end of the file.
    Truncated {
        frame_bytes: u64,
        available_bytes: u64,
    },
    /// The frame is present but invalid.
    Invalid(CorruptReason),
}

/// Decodes and verifies the frame at the start of `bytes` (which runs to the end of the file),
/// expecting it to belong to the batch starting at block `batch_block`.
pub(crate) fn frame_decode(
    bytes: &[u8],
    batch_block: u32,
    scratch: &mut AlignedVec,
) -> Result<Frame, FrameError> {
    let available_bytes = bytes.len() as u64;
    if bytes.len() < RECORD_HEADER_BYTES {
        if bytes.iter().all(|&b| b == 0) {
            return Err(FrameError::Zero);
        }
        return Err(FrameError::Truncated {
            frame_bytes: RECORD_HEADER_BYTES as u64,
            available_bytes,
        });
    }
    let header = &bytes[..RECORD_HEADER_BYTES];
    if header.iter().all(|&b| b == 0) {
        return Err(FrameError::Zero);
    }
    let invalid = |detail: String| FrameError::Invalid(CorruptReason::BadFrame { detail });
    let Some(kind) = RecordKind::from_u8(header[8]) else {
        return Err(invalid(format!("unknown record kind {}", header[8])));
    };
    let payload_bytes = u64::from(read_u32(header, 0));
    if payload_bytes > RECORD_PAYLOAD_BYTES_MAX {
        return Err(invalid(format!(
            "payload length {payload_bytes} exceeds the maximum"
        )));
    }
    let frame_bytes = RECORD_HEADER_BYTES as u64 + payload_bytes;
    if frame_bytes > available_bytes {
        return Err(FrameError::Truncated {
            frame_bytes,
            available_bytes,
        });
    }
    let frame = &bytes[..usize::try_from(frame_bytes).expect("bounded by the slice length")];
    let crc_expected = read_u32(header, 4);
    let crc_actual = frame_crc(frame);
    if crc_expected != crc_actual {
        return Err(FrameError::Invalid(CorruptReason::CrcMismatch {
            crc_expected,
            crc_actual,
        }));
    }
    if header[9..12] != [0, 0, 0] {
        return Err(invalid("non-zero reserved header bytes".to_string()));
    }
    let found_block = read_u32(header, 12);
    if found_block != batch_block {
        return Err(invalid(format!(
            "record belongs to the batch at block {found_block}, expected block {batch_block}"
        )));
    }
    let record = payload_decode(kind, &frame[RECORD_HEADER_BYTES..], scratch)
        .map_err(FrameError::Invalid)?;
    Ok(Frame {
        kind,
        frame_bytes,
        record,
    })
}

/// Reads just the `batch_block` of a frame at the start of `bytes` if the frame verifies
/// (checksum only, payload not decoded). Used to look for later batches past a bad record.
pub(crate) fn frame_batch_block_if_valid(bytes: &[u8]) -> Option<u32> {
    if bytes.len() < RECORD_HEADER_BYTES {
        return None;
    }
    RecordKind::from_u8(bytes[8])?;
    let payload_bytes = u64::from(read_u32(bytes, 0));
    let frame_bytes = RECORD_HEADER_BYTES as u64 + payload_bytes;
    if payload_bytes > RECORD_PAYLOAD_BYTES_MAX || frame_bytes > bytes.len() as u64 {
        return None;
    }
    let frame = &bytes[..usize::try_from(frame_bytes).ok()?];
    (read_u32(bytes, 4) == frame_crc(frame)).then(|| read_u32(bytes, 12))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(record: &Record, batch_block: u32) -> Vec<u8> {
        let mut scratch = AlignedVec::new();
        let mut payload = Vec::new();
        payload_encode(record, &mut scratch, &mut payload);
        let mut frame = vec![0u8; RECORD_HEADER_BYTES + payload.len()];
        frame_encode(&mut frame, record_kind(record), batch_block, &payload);
        frame
    }

    // Guards the codec: every record kind must decode to exactly what was encoded.
    #[test]
    fn every_record_kind_round_trips_through_its_frame() {
        let records = [
            Record::Entry(WalEntry {
                index: 42,
                term: 7,
                kind: 3,
                data: Bytes::from_static(b"hello wal"),
            }),
            Record::Entry(WalEntry {
                index: u64::MAX,
                term: 0,
                kind: 0,
                data: Bytes::new(),
            }),
            Record::State(WalState {
                term: 9,
                vote: 2,
                commit: 41,
            }),
            Record::SnapshotMarker(SnapshotMarker { index: 40, term: 6 }),
        ];
        let mut scratch = AlignedVec::new();
        for record in records {
            let frame = encode(&record, 5);
            let decoded = frame_decode(&frame, 5, &mut scratch).expect("valid frame");
            assert_eq!(decoded.frame_bytes, frame.len() as u64);
            assert_eq!(decoded.record, Some(record));
            assert_eq!(frame_batch_block_if_valid(&frame), Some(5));
        }
    }

    // Guards the checksum scope: a flip anywhere in the frame (len, crc, kind, reserved,
    // batch block or payload) must be detected, never decoded into a different record.
    #[test]
    fn any_flipped_bit_in_a_frame_is_detected() {
        let record = Record::Entry(WalEntry {
            index: 3,
            term: 1,
            kind: 1,
            data: Bytes::from(vec![0xAB; 100]),
        });
        let frame = encode(&record, 1);
        let mut scratch = AlignedVec::new();
        for at in 0..frame.len() {
            for bit in [0x01u8, 0x80] {
                let mut broken = frame.clone();
                broken[at] ^= bit;
                let result = frame_decode(&broken, 1, &mut scratch);
                assert!(
                    result.is_err(),
                    "flip of bit {bit:#x} at byte {at} decoded: {result:?}"
                );
            }
        }
    }

    // Guards the end-of-log rule: zeroed space reads as "nothing written", a frame cut by the
    // end of the file reads as truncated, and a frame of another batch is refused.
    #[test]
    fn zeroed_truncated_and_foreign_batch_frames_are_told_apart() {
        let mut scratch = AlignedVec::new();
        assert_eq!(
            frame_decode(&[0u8; 64], 0, &mut scratch).unwrap_err(),
            FrameError::Zero
        );
        assert_eq!(
            frame_decode(&[0u8; 3], 0, &mut scratch).unwrap_err(),
            FrameError::Zero
        );
        let frame = encode(
            &Record::State(WalState {
                term: 1,
                vote: 1,
                commit: 1,
            }),
            2,
        );
        let cut = &frame[..frame.len() - 1];
        assert!(matches!(
            frame_decode(cut, 2, &mut scratch),
            Err(FrameError::Truncated { .. })
        ));
        assert!(matches!(
            frame_decode(&frame, 3, &mut scratch),
            Err(FrameError::Invalid(CorruptReason::BadFrame { .. }))
        ));
    }
}
