//! `BatchEncoder`: turns one `append` into one block-aligned buffer of frames ending in a
//! padding record, so a batch never shares a block with acknowledged records
//! (docs/design/wal-format.md, section "Batches").

use rkyv::util::AlignedVec;

use crate::record::{
    frame_encode, payload_encode, record_kind, Record, RecordKind, RECORD_HEADER_BYTES,
};
use crate::segment::BLOCK_SIZE_BYTES;

/// One frame waiting to be written: its kind and its payload's range in `payloads`.
#[derive(Debug, Clone, Copy)]
struct PendingFrame {
    kind: RecordKind,
    payload_start: usize,
    payload_end: usize,
}

/// Accumulates the records of one batch. Reused across batches: once warm it allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct BatchEncoder {
    payloads: Vec<u8>,
    frames: Vec<PendingFrame>,
    scratch: AlignedVec,
}

impl BatchEncoder {
    pub fn clear(&mut self) {
        self.payloads.clear();
        self.frames.clear();
    }

    pub fn push(&mut self, record: &Record) {
        let payload_start = self.payloads.len();
        payload_encode(record, &mut self.scratch, &mut self.payloads);
        let payload_end = self.payloads.len();
        self.frames.push(PendingFrame {
            kind: record_kind(record),
            payload_start,
            payload_end,
        });
    }

    /// Bytes of the data frames, without padding.
    fn records_bytes(&self) -> u64 {
        (self.frames.len() * RECORD_HEADER_BYTES + self.payloads.len()) as u64
    }

    /// Payload bytes of the closing padding record.
    fn padding_payload_bytes(&self) -> u64 {
        let with_padding_header = self.records_bytes() + RECORD_HEADER_BYTES as u64;
        with_padding_header.next_multiple_of(BLOCK_SIZE_BYTES) - with_padding_header
    }

    /// Size of the encoded batch: a positive multiple of `BLOCK_SIZE_BYTES`.
    pub fn batch_bytes(&self) -> u64 {
        let bytes =
            self.records_bytes() + RECORD_HEADER_BYTES as u64 + self.padding_payload_bytes();
        debug_assert_eq!(bytes % BLOCK_SIZE_BYTES, 0, "batch must be block aligned");
        bytes
    }

    /// Writes the batch into `out` (exactly `batch_bytes()` long) for a batch starting at
    /// block `batch_block` of its segment.
    pub fn write_into(&self, out: &mut [u8], batch_block: u32) {
        assert_eq!(out.len() as u64, self.batch_bytes(), "batch buffer size");
        let mut at = 0usize;
        for frame in &self.frames {
            let payload = &self.payloads[frame.payload_start..frame.payload_end];
            let end = at + RECORD_HEADER_BYTES + payload.len();
            frame_encode(&mut out[at..end], frame.kind, batch_block, payload);
            at = end;
        }
        let padding_bytes = usize::try_from(self.padding_payload_bytes()).expect("< one block");
        frame_encode(
            &mut out[at..],
            RecordKind::Padding,
            batch_block,
            &ZEROS[..padding_bytes],
        );
    }
}

/// Source of padding payloads (always shorter than one block).
static ZEROS: [u8; BLOCK_SIZE_BYTES as usize] = [0; BLOCK_SIZE_BYTES as usize];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{WalEntry, WalState};
    use crate::record::{frame_decode, Frame};
    use bytes::Bytes;

    fn entry(index: u64, data_bytes: usize) -> Record {
        Record::Entry(WalEntry {
            index,
            term: 1,
            kind: 0,
            data: Bytes::from(vec![index as u8; data_bytes]),
        })
    }

    fn decode_all(bytes: &[u8], batch_block: u32) -> Vec<Frame> {
        let mut scratch = AlignedVec::new();
        let mut frames = Vec::new();
        let mut at = 0usize;
        while at < bytes.len() {
            let frame = frame_decode(&bytes[at..], batch_block, &mut scratch).expect("valid");
            at += usize::try_from(frame.frame_bytes).unwrap();
            frames.push(frame);
        }
        assert_eq!(at, bytes.len(), "frames must tile the batch exactly");
        frames
    }

    // Guards the batch rule: every batch is a whole number of blocks ending in exactly one
    // padding record, whatever the record sizes (including when the last block has less than
    // one header of room left, which forces the padding into an extra block).
    #[test]
    fn batches_are_block_multiples_that_end_in_one_padding_record() {
        let mut encoder = BatchEncoder::default();
        for data_bytes in [
            0usize, 1, 100, 4000, 4030, 4040, 4050, 4063, 4064, 4080, 9000,
        ] {
            encoder.clear();
            encoder.push(&entry(1, data_bytes));
            encoder.push(&Record::State(WalState {
                term: 1,
                vote: 0,
                commit: 1,
            }));
            let batch_bytes = encoder.batch_bytes();
            assert_eq!(batch_bytes % BLOCK_SIZE_BYTES, 0);
            let mut out = vec![0xEEu8; usize::try_from(batch_bytes).unwrap()];
            encoder.write_into(&mut out, 9);
            let frames = decode_all(&out, 9);
            assert_eq!(frames.len(), 3, "data_bytes {data_bytes}");
            assert_eq!(frames[2].kind, RecordKind::Padding);
            assert!(frames[2].frame_bytes < BLOCK_SIZE_BYTES + RECORD_HEADER_BYTES as u64);
            assert_eq!(frames[0].record, Some(entry(1, data_bytes)));
        }
    }

    // Guards encoder reuse: clearing must forget the previous batch completely.
    #[test]
    fn a_cleared_encoder_encodes_only_the_new_batch() {
        let mut encoder = BatchEncoder::default();
        encoder.push(&entry(1, 10));
        encoder.push(&entry(2, 10));
        encoder.clear();
        encoder.push(&entry(3, 10));
        let mut out = vec![0u8; usize::try_from(encoder.batch_bytes()).unwrap()];
        encoder.write_into(&mut out, 1);
        let frames = decode_all(&out, 1);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].record, Some(entry(3, 10)));
    }
}
