//! The server's unversioned state in keel-btree's buckets, written in the
//! same write transaction as the MVCC changes that cause it, so every
//! checkpoint holds a consistent whole, and read back once at open (work
//! bounded by the number of leases, leased keys, members and alarms, not by
//! the size of the store).
//!
//! Keys (all integers big-endian):
//! - lease bucket: `l` + lease id (8) -> [`LeaseRecord`]; `k` + lease id (8) +
//!   key -> empty (a key attached to the lease)
//! - members bucket: `m` + member id (8) -> [`Member`]; `r` + member id (8) ->
//!   empty (removed, never to return)
//! - alarm bucket: member id (8) + alarm type (1) -> empty

use bytes::{BufMut, Bytes, BytesMut};
use keel_btree::{BtreeError, Bucket, KeyRange, ReadView, WriteTxn};
use prost::Message;

use crate::proto::keelpb::{LeaseRecord, Member};

const LEASE: u8 = b'l';
const ATTACHED: u8 = b'k';
const MEMBER: u8 = b'm';
const REMOVED: u8 = b'r';

fn tagged(tag: u8, id: u64, rest: &[u8]) -> Bytes {
    let mut key = BytesMut::with_capacity(9 + rest.len());
    key.put_u8(tag);
    key.put_u64(id);
    key.put_slice(rest);
    key.freeze()
}

fn everything() -> KeyRange {
    KeyRange::FromKey(Bytes::new())
}

pub(crate) fn put_lease(
    txn: &mut WriteTxn<'_>,
    id: i64,
    record: &LeaseRecord,
) -> Result<(), BtreeError> {
    txn.bucket_put(
        Bucket::Lease,
        tagged(LEASE, id as u64, &[]),
        Bytes::from(record.encode_to_vec()),
    )
}

pub(crate) fn delete_lease(txn: &mut WriteTxn<'_>, id: i64) -> Result<(), BtreeError> {
    txn.bucket_delete(Bucket::Lease, &tagged(LEASE, id as u64, &[]))?;
    Ok(())
}

pub(crate) fn attach(txn: &mut WriteTxn<'_>, id: i64, key: &[u8]) -> Result<(), BtreeError> {
    txn.bucket_put(
        Bucket::Lease,
        tagged(ATTACHED, id as u64, key),
        Bytes::new(),
    )
}

pub(crate) fn detach(txn: &mut WriteTxn<'_>, id: i64, key: &[u8]) -> Result<(), BtreeError> {
    txn.bucket_delete(Bucket::Lease, &tagged(ATTACHED, id as u64, key))?;
    Ok(())
}

pub(crate) fn put_member(txn: &mut WriteTxn<'_>, member: &Member) -> Result<(), BtreeError> {
    txn.bucket_put(
        Bucket::Members,
        tagged(MEMBER, member.id, &[]),
        Bytes::from(member.encode_to_vec()),
    )
}

pub(crate) fn remove_member(txn: &mut WriteTxn<'_>, id: u64) -> Result<(), BtreeError> {
    txn.bucket_delete(Bucket::Members, &tagged(MEMBER, id, &[]))?;
    txn.bucket_put(Bucket::Members, tagged(REMOVED, id, &[]), Bytes::new())
}

pub(crate) fn set_alarm(
    txn: &mut WriteTxn<'_>,
    member: u64,
    alarm: i32,
    active: bool,
) -> Result<(), BtreeError> {
    let mut key = BytesMut::with_capacity(9);
    key.put_u64(member);
    key.put_u8(alarm as u8);
    if active {
        txn.bucket_put(Bucket::Alarm, key.freeze(), Bytes::new())
    } else {
        txn.bucket_delete(Bucket::Alarm, &key)?;
        Ok(())
    }
}

fn id_at(key: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = key.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// What the buckets held at open.
#[derive(Default, Debug)]
pub(crate) struct Restored {
    pub(crate) leases: Vec<(i64, LeaseRecord, Vec<Bytes>)>,
    pub(crate) members: Vec<Member>,
    pub(crate) removed: Vec<u64>,
    pub(crate) alarms: Vec<(u64, i32)>,
}

/// Reads the buckets back; a damaged record is an error naming it (the
/// store verified its pages, so this means a bug or a newer format).
pub(crate) fn restore(view: &ReadView) -> Result<Restored, String> {
    let mut restored = Restored::default();
    let leases = view
        .bucket_range(Bucket::Lease, &everything(), 0)
        .map_err(|e| e.to_string())?;
    let mut attached: std::collections::BTreeMap<i64, Vec<Bytes>> = Default::default();
    for (key, value) in leases {
        let id = id_at(&key, 1).ok_or("short lease bucket key")? as i64;
        match key.first() {
            Some(&LEASE) => {
                let record =
                    LeaseRecord::decode(value).map_err(|e| format!("lease {id:x}: {e}"))?;
                restored.leases.push((id, record, Vec::new()));
            }
            Some(&ATTACHED) => attached.entry(id).or_default().push(key.slice(9..)),
            _ => return Err(format!("unknown lease bucket key {key:?}")),
        }
    }
    for (id, _, keys) in &mut restored.leases {
        *keys = attached.remove(id).unwrap_or_default();
    }
    for (key, value) in view
        .bucket_range(Bucket::Members, &everything(), 0)
        .map_err(|e| e.to_string())?
    {
        let id = id_at(&key, 1).ok_or("short members bucket key")?;
        match key.first() {
            Some(&MEMBER) => restored
                .members
                .push(Member::decode(value).map_err(|e| format!("member {id:x}: {e}"))?),
            Some(&REMOVED) => restored.removed.push(id),
            _ => return Err(format!("unknown members bucket key {key:?}")),
        }
    }
    for (key, _) in view
        .bucket_range(Bucket::Alarm, &everything(), 0)
        .map_err(|e| e.to_string())?
    {
        let member = id_at(&key, 0).ok_or("short alarm key")?;
        let alarm = *key.get(8).ok_or("short alarm key")?;
        restored.alarms.push((member, i32::from(alarm)));
    }
    Ok(restored)
}
