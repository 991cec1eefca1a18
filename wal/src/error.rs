//! `WalError`: every way a WAL operation can fail. Disk problems carry the file and byte offset;
//! caller mistakes (non-contiguous appends) carry the indexes involved.

use std::io;
use std::path::PathBuf;

/// An error returned by a [`crate::Wal`] operation.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// The operating system (or the [`crate::Disk`] implementation) reported an I/O error.
    #[error("wal i/o error on {path}: {source}")]
    Io {
        /// The file or directory the failed operation was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Bytes on disk fail verification somewhere other than a torn tail of the last segment.
    /// Never repaired silently: an operator must look at the file.
    #[error("wal segment {segment} is corrupt at byte offset {offset_bytes}: {reason}")]
    Corrupt {
        /// The segment file.
        segment: PathBuf,
        /// Byte offset within `segment` of the bad record, header or byte range.
        offset_bytes: u64,
        /// What is wrong there.
        reason: CorruptReason,
    },
    /// `append` was given entries that do not continue the log: `entries` must be contiguous,
    /// `entries[0].index` must be `<= last_index() + 1` (when the log is not empty) and above
    /// the last snapshot marker's index. `expected` is the bound that was violated: the next
    /// index, or `marker.index + 1` for entries at or below the marker.
    #[error("entries do not continue the log: got index {got}, expected {expected}")]
    NonContiguous {
        /// The violated bound (see above).
        expected: u64,
        /// The index that was given.
        got: u64,
    },
    /// An entry's data is too large to be framed as one record.
    #[error(
        "entry {index} has {size_bytes} bytes of data, more than the {size_bytes_max} allowed"
    )]
    EntryTooLarge {
        /// The entry's index.
        index: u64,
        /// Its data length.
        size_bytes: u64,
        /// The largest data length a record can hold.
        size_bytes_max: u64,
    },
    /// `WalOptions` are unusable.
    #[error("invalid wal options: {reason}")]
    InvalidOptions {
        /// Which option and why.
        reason: String,
    },
    /// A previous write or sync failed after it may have reached the disk. The log tail is now
    /// unknown (after a failed fsync the kernel may have dropped the dirty pages), so the WAL
    /// refuses further writes. Reopening it runs recovery, which re-establishes a valid tail.
    #[error("wal is poisoned by an earlier failed write or sync; reopen it to recover")]
    Poisoned,
}

/// Why a stretch of a segment failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorruptReason {
    /// A record's stored crc32 does not match the crc32 of its bytes.
    #[error("record crc mismatch: expected {crc_expected:#010x}, actual {crc_actual:#010x}")]
    CrcMismatch {
        /// The crc32 stored in the record header.
        crc_expected: u32,
        /// The crc32 computed over the record's bytes.
        crc_actual: u32,
    },
    /// The segment header (first block) is invalid.
    #[error("bad segment header: {detail}")]
    BadHeader {
        /// What is wrong with it.
        detail: String,
    },
    /// A record frame is malformed (unknown kind, impossible length, wrong batch, ...).
    #[error("bad record frame: {detail}")]
    BadFrame {
        /// What is wrong with it.
        detail: String,
    },
    /// The record's checksum is right but its payload does not decode.
    #[error("record payload does not decode: {detail}")]
    BadPayload {
        /// The decoder's message.
        detail: String,
    },
    /// An entry does not continue the entries before it (across records or segments).
    #[error("entry index {got} does not follow the log, expected <= {expected}")]
    NonContiguousEntry {
        /// The largest index allowed at this position.
        expected: u64,
        /// The index found.
        got: u64,
    },
    /// A bad record (or unexpected bytes) is followed by a valid record of a later batch, so
    /// it is not a torn final write but damage to acknowledged data.
    #[error("{first_problem}; yet a valid record of a later batch follows at byte offset {later_record_offset_bytes}")]
    CorruptBeforeTail {
        /// The problem found first.
        first_problem: String,
        /// Offset of the later valid record.
        later_record_offset_bytes: u64,
    },
    /// Bytes after the end of the records of a segment that is not the last one.
    #[error("unexpected bytes after the end of records of a non-final segment: {detail}")]
    TrailingBytes {
        /// What was found.
        detail: String,
    },
    /// Segment sequence numbers are not consecutive: a segment file is missing.
    #[error("segment sequence gap: expected sequence {seq_expected:#x}, found {seq_found:#x}")]
    SequenceGap {
        /// The next sequence number expected.
        seq_expected: u64,
        /// The sequence number of this file.
        seq_found: u64,
    },
}

impl WalError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> WalError {
        let path = path.into();
        move |source| WalError::Io { path, source }
    }
}
