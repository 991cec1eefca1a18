//! Records: what the record tree stores under a revision (etcd's key bucket value): a put's
//! key-value, or a delete's tombstone, as an rkyv archive. Layout: docs/design/btree-format.md,
//! "Values".

use bytes::Bytes;
use rkyv::rancor;
use rkyv::util::AlignedVec;

use super::event::EventKind;
use super::key_value::KeyValue;
use crate::error::Corruption;

/// `kind` of a put record.
const KIND_PUT: u8 = 1;
/// `kind` of a tombstone.
const KIND_TOMBSTONE: u8 = 2;

/// One stored change, as archived. Its revision is its key in the record tree, so
/// `mod_revision` is not stored again.
#[derive(rkyv::Archive, rkyv::Serialize)]
struct StoredRecord {
    /// [`KIND_PUT`] or [`KIND_TOMBSTONE`].
    kind: u8,
    /// Main revision that created the key's generation; 0 for a tombstone.
    create_revision: i64,
    /// 1 for the creating put, +1 per later put in the generation; 0 for a tombstone.
    version: i64,
    /// Lease id; 0 for none and for a tombstone.
    lease: i64,
    key: Bytes,
    /// Empty for a tombstone.
    value: Bytes,
}

/// An encoded record: 8-aligned bytes as rkyv needs them.
pub(crate) fn put_encode(
    key: &Bytes,
    value: &Bytes,
    create_revision: i64,
    version: i64,
    lease: i64,
) -> Bytes {
    assert!(version >= 1, "a put writes version {version} >= 1");
    encode(&StoredRecord {
        kind: KIND_PUT,
        create_revision,
        version,
        lease,
        key: key.clone(),
        value: value.clone(),
    })
}

pub(crate) fn tombstone_encode(key: &Bytes) -> Bytes {
    encode(&StoredRecord {
        kind: KIND_TOMBSTONE,
        create_revision: 0,
        version: 0,
        lease: 0,
        key: key.clone(),
        value: Bytes::new(),
    })
}

fn encode(record: &StoredRecord) -> Bytes {
    let bytes: AlignedVec = rkyv::to_bytes::<rancor::Error>(record)
        .expect("serializing a plain struct into an AlignedVec cannot fail");
    Bytes::from_owner(bytes)
}

/// A stored record, read in place.
pub(crate) struct RecordRef<'a> {
    archived: &'a ArchivedStoredRecord,
}

/// Runs `read` on the record encoded in `bytes` (validated; copied to aligned memory first if
/// `bytes` is not 8-aligned).
pub(crate) fn with_record<R>(
    bytes: &[u8],
    read: impl FnOnce(RecordRef<'_>) -> R,
) -> Result<R, Corruption> {
    let bad = |error: rancor::Error| Corruption::Value(format!("record: {error}"));
    if (bytes.as_ptr() as usize).is_multiple_of(8) {
        let archived = rkyv::access::<ArchivedStoredRecord, rancor::Error>(bytes).map_err(bad)?;
        return checked(archived).map(read);
    }
    let mut aligned = AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    let archived = rkyv::access::<ArchivedStoredRecord, rancor::Error>(&aligned).map_err(bad)?;
    checked(archived).map(read)
}

fn checked(archived: &ArchivedStoredRecord) -> Result<RecordRef<'_>, Corruption> {
    let valid = match archived.kind {
        KIND_PUT => archived.version.to_native() >= 1,
        KIND_TOMBSTONE => archived.version.to_native() == 0,
        _ => false,
    };
    if !valid {
        return Err(Corruption::Value("record kind or version".to_string()));
    }
    Ok(RecordRef { archived })
}

impl RecordRef<'_> {
    pub(crate) fn key(&self) -> &[u8] {
        self.archived.key.as_slice()
    }

    pub(crate) fn kind(&self) -> EventKind {
        if self.archived.kind == KIND_PUT {
            EventKind::Put
        } else {
            EventKind::Delete
        }
    }

    pub(crate) fn is_tombstone(&self) -> bool {
        self.archived.kind == KIND_TOMBSTONE
    }

    pub(crate) fn create_revision(&self) -> i64 {
        self.archived.create_revision.to_native()
    }

    pub(crate) fn version(&self) -> i64 {
        self.archived.version.to_native()
    }

    /// The record as readers see it, written at main revision `mod_revision` (key and value
    /// copied out). A tombstone gives etcd's delete event form: key and `mod_revision` only.
    pub(crate) fn to_key_value(&self, mod_revision: i64) -> KeyValue {
        KeyValue {
            key: Bytes::copy_from_slice(self.archived.key.as_slice()),
            create_revision: self.create_revision(),
            mod_revision,
            version: self.version(),
            value: Bytes::copy_from_slice(self.archived.value.as_slice()),
            lease: self.archived.lease.to_native(),
        }
    }

    /// Feeds the record's fields, in a fixed order independent of the encoding, to `hasher`
    /// (for `hash_kv`).
    pub(crate) fn hash_into(&self, hasher: &mut crc32fast::Hasher) {
        hasher.update(&[self.archived.kind]);
        hasher.update(&self.create_revision().to_be_bytes());
        hasher.update(&self.version().to_be_bytes());
        hasher.update(&self.archived.lease.to_native().to_be_bytes());
        let key = self.archived.key.as_slice();
        hasher.update(&(key.len() as u64).to_be_bytes());
        hasher.update(key);
        let value = self.archived.value.as_slice();
        hasher.update(&(value.len() as u64).to_be_bytes());
        hasher.update(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_and_tombstone_records_round_trip() {
        let put = put_encode(
            &Bytes::from_static(b"k"),
            &Bytes::from_static(b"v"),
            3,
            2,
            9,
        );
        let kv = with_record(&put, |r| r.to_key_value(5)).expect("valid");
        assert_eq!(
            kv,
            KeyValue {
                key: Bytes::from_static(b"k"),
                create_revision: 3,
                mod_revision: 5,
                version: 2,
                value: Bytes::from_static(b"v"),
                lease: 9,
            }
        );
        let tomb = tombstone_encode(&Bytes::from_static(b"k"));
        assert!(with_record(&tomb, |r| r.is_tombstone()).expect("valid"));
    }

    // Pins the stored layout (docs/design/btree-format.md, "Values"): a change of rkyv, of
    // its format features or of `StoredRecord` that moves a byte fails here, and must come
    // with a format version bump.
    #[test]
    fn record_layout_is_pinned() {
        let put = put_encode(
            &Bytes::from_static(b"ab"),
            &Bytes::from_static(b"xyz"),
            3,
            2,
            9,
        );
        #[rustfmt::skip]
        let expected: [u8; 56] = [
            b'a', b'b', b'x', b'y', b'z', 0, 0, 0, // key, value, padding to 8
            1, 0, 0, 0, 0, 0, 0, 0,                // kind = put, padding
            3, 0, 0, 0, 0, 0, 0, 0,                // create_revision
            2, 0, 0, 0, 0, 0, 0, 0,                // version
            9, 0, 0, 0, 0, 0, 0, 0,                // lease
            216, 255, 255, 255, 2, 0, 0, 0,        // key: offset -40 (to byte 0), length 2
            210, 255, 255, 255, 3, 0, 0, 0,        // value: offset -46 (to byte 2), length 3
        ];
        assert_eq!(&put[..], &expected[..]);
    }

    // Bytes from disk: a truncated, garbled or misaligned record is an error, never a panic.
    #[test]
    fn damaged_or_misaligned_records_are_errors_or_read_correctly() {
        let put = put_encode(
            &Bytes::from_static(b"key"),
            &Bytes::from(vec![7; 40]),
            3,
            1,
            0,
        );
        assert!(with_record(&put[..put.len() - 3], |_| ()).is_err());
        let mut shifted = vec![0u8; put.len() + 1];
        shifted[1..].copy_from_slice(&put);
        let version = with_record(&shifted[1..], |r| r.version()).expect("copied to aligned");
        assert_eq!(version, 1);
        for i in 0..put.len() {
            let mut bad = put.to_vec();
            bad[i] ^= 0xff;
            let _ = with_record(&bad, |r| r.to_key_value(1));
        }
    }
}
