//! Segment files: their names (`{seq:016x}-{first_index:016x}.wal`), the temporary names of
//! segments being prepared, and the versioned header that fills a segment's first block.
//! Layout: docs/design/wal-format.md, section "Segment header".

use crate::error::CorruptReason;

/// Every batch starts at, and is padded to, a multiple of this many bytes (format doc,
/// "Batches"). It is also the largest O_DIRECT alignment glommio asks for on common devices.
pub const BLOCK_SIZE_BYTES: u64 = 4096;

/// The segment header occupies the whole first block; records start right after it.
pub const SEGMENT_HEADER_BYTES: u64 = BLOCK_SIZE_BYTES;

/// Identifies a keel WAL segment (format doc, "Segment header").
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"KEELWAL\0";

/// Current on-disk format version (format doc, "Version changes").
pub(crate) const FORMAT_VERSION: u32 = 1;

/// Bytes of the header that carry data: magic, version, header size, seq, first index, crc.
const HEADER_USED_BYTES: usize = 36;

const SEGMENT_SUFFIX: &str = ".wal";
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// Identity of a segment: its sequence number (consecutive from the first segment ever
/// created) and the log position + 1 at the time it was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SegmentId {
    /// Sequence number; segments of one WAL have consecutive sequence numbers.
    pub seq: u64,
    /// `last_index + 1` when the segment was started. Entries inside may start lower (a
    /// suffix overwrite) or higher (after a snapshot marker); it names, it does not bound.
    pub first_index: u64,
}

impl SegmentId {
    /// `{seq:016x}-{first_index:016x}.wal`, like etcd's names, so `ls` sorts by sequence.
    pub fn file_name(&self) -> String {
        format!(
            "{:016x}-{:016x}{SEGMENT_SUFFIX}",
            self.seq, self.first_index
        )
    }

    /// Parses a name made by [`SegmentId::file_name`]; `None` for any other name.
    pub fn parse(name: &str) -> Option<SegmentId> {
        let stem = name.strip_suffix(SEGMENT_SUFFIX)?;
        let (seq, first_index) = stem.split_once('-')?;
        Some(SegmentId {
            seq: parse_hex16(seq)?,
            first_index: parse_hex16(first_index)?,
        })
    }
}

/// Name of the temporary file a segment with sequence `seq` is prepared under. A `.tmp` file
/// never holds acknowledged data: recovery deletes every one it finds.
pub(crate) fn tmp_file_name(seq: u64) -> String {
    format!("{seq:016x}{TMP_SUFFIX}")
}

fn parse_hex16(text: &str) -> Option<u64> {
    if text.len() != 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

/// Encodes the header block of segment `id` into `out` (exactly one block).
pub(crate) fn header_encode(id: SegmentId, out: &mut [u8]) {
    assert_eq!(
        out.len() as u64,
        SEGMENT_HEADER_BYTES,
        "header buffer must be one block"
    );
    out.fill(0);
    out[0..8].copy_from_slice(&SEGMENT_MAGIC);
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    let header_bytes = u32::try_from(SEGMENT_HEADER_BYTES).expect("header size fits u32");
    out[12..16].copy_from_slice(&header_bytes.to_le_bytes());
    out[16..24].copy_from_slice(&id.seq.to_le_bytes());
    out[24..32].copy_from_slice(&id.first_index.to_le_bytes());
    let crc = crc32fast::hash(&out[0..32]);
    out[32..36].copy_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(
        header_decode(out),
        Ok(id),
        "header must decode to what was encoded"
    );
}

/// Decodes and verifies a header block (the first `SEGMENT_HEADER_BYTES` of a segment).
pub(crate) fn header_decode(bytes: &[u8]) -> Result<SegmentId, CorruptReason> {
    let bad = |detail: String| CorruptReason::BadHeader { detail };
    if (bytes.len() as u64) < SEGMENT_HEADER_BYTES {
        return Err(bad(format!(
            "file has {} bytes, shorter than the header block",
            bytes.len()
        )));
    }
    if bytes[0..8] != SEGMENT_MAGIC {
        return Err(bad(format!(
            "magic is {:02x?}, not a keel wal segment",
            &bytes[0..8]
        )));
    }
    let crc_expected = read_u32(bytes, 32);
    let crc_actual = crc32fast::hash(&bytes[0..32]);
    if crc_expected != crc_actual {
        return Err(CorruptReason::CrcMismatch {
            crc_expected,
            crc_actual,
        });
    }
    let version = read_u32(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(bad(format!(
            "format version {version}, this build reads {FORMAT_VERSION}"
        )));
    }
    let header_bytes = u64::from(read_u32(bytes, 12));
    if header_bytes != SEGMENT_HEADER_BYTES {
        return Err(bad(format!(
            "header size {header_bytes}, expected {SEGMENT_HEADER_BYTES}"
        )));
    }
    if let Some(offset) = bytes[HEADER_USED_BYTES..SEGMENT_HEADER_BYTES as usize]
        .iter()
        .position(|&b| b != 0)
    {
        return Err(bad(format!(
            "non-zero reserved byte at {}",
            offset + HEADER_USED_BYTES
        )));
    }
    Ok(SegmentId {
        seq: read_u64(bytes, 16),
        first_index: read_u64(bytes, 24),
    })
}

pub(crate) fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("slice of 4 bytes"))
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("slice of 8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Guards the naming scheme: names must round-trip and sort by sequence, and foreign files
    // in the directory (including temp files) must never be mistaken for segments.
    #[test]
    fn segment_names_round_trip_and_reject_foreign_names() {
        let id = SegmentId {
            seq: 0x1f,
            first_index: 0x1234,
        };
        assert_eq!(id.file_name(), "000000000000001f-0000000000001234.wal");
        assert_eq!(SegmentId::parse(&id.file_name()), Some(id));
        for name in [
            "000000000000001f-0000000000001234.wal.tmp",
            "000000000000001f.tmp",
            "1f-1234.wal",
            "000000000000001f_0000000000001234.wal",
            "000000000000001g-0000000000001234.wal",
            "lock",
        ] {
            assert_eq!(SegmentId::parse(name), None, "{name}");
        }
        let later = SegmentId {
            seq: 0x20,
            first_index: 1,
        };
        assert!(id.file_name() < later.file_name(), "names sort by sequence");
    }

    // Guards header verification: any flipped byte in the header block must be refused.
    #[test]
    fn header_round_trips_and_any_flipped_byte_is_refused() {
        let id = SegmentId {
            seq: 7,
            first_index: 1001,
        };
        let mut block = vec![0u8; SEGMENT_HEADER_BYTES as usize];
        header_encode(id, &mut block);
        assert_eq!(header_decode(&block), Ok(id));
        for at in [0, 8, 12, 16, 24, 32, 40, 4095] {
            let mut broken = block.clone();
            broken[at] ^= 0x01;
            assert!(header_decode(&broken).is_err(), "flip at {at} accepted");
        }
        assert!(header_decode(&block[..100]).is_err());
    }
}
