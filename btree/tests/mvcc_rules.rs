//! One test per MVCC rule of etcd 3.4 that the server relies on, each named as the rule. Each
//! builds the smallest history that shows the rule and checks the store's invariants after.

use bytes::Bytes;
use keel_btree::{
    Event, EventKind, KeyRange, KeyValue, MvccError, MvccStore, RangeOptions, RangeResult,
    ReadView, Revision,
};

fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn key(text: &str) -> KeyRange {
    KeyRange::Key(b(text))
}

fn range(start: &str, end: &str) -> KeyRange {
    KeyRange::Range {
        start: b(start),
        end: b(end),
    }
}

fn all() -> KeyRange {
    KeyRange::FromKey(Bytes::new())
}

fn at(revision: i64) -> RangeOptions {
    RangeOptions {
        revision,
        ..RangeOptions::default()
    }
}

/// Commits one transaction putting each `(key, value)`; returns the revision.
fn put(store: &mut MvccStore, entries: &[(&str, &str)]) -> i64 {
    let mut txn = store.write_txn();
    for (k, v) in entries {
        txn.put(b(k), b(v), 0);
    }
    txn.commit().revision
}

fn delete(store: &mut MvccStore, keys: &KeyRange) -> (i64, Vec<KeyValue>) {
    let mut txn = store.write_txn();
    let deleted = txn.delete_range(keys);
    (txn.commit().revision, deleted)
}

fn get(view: &ReadView, k: &str, revision: i64) -> Option<KeyValue> {
    let result = view
        .range(&key(k), &at(revision))
        .expect("readable revision");
    assert!(result.kvs.len() <= 1);
    result.kvs.into_iter().next()
}

fn kv(k: &str, v: &str, create_revision: i64, mod_revision: i64, version: i64) -> KeyValue {
    KeyValue {
        key: b(k),
        value: b(v),
        create_revision,
        mod_revision,
        version,
        lease: 0,
    }
}

fn checked(store: &MvccStore) {
    store.check().expect("store invariants hold");
}

// etcd NewStore: currentRev = 1, so the first write is revision 2 and headers start at 1.
#[test]
fn new_store_is_at_revision_one_and_never_compacted() {
    let store = MvccStore::new();
    assert_eq!(store.revision(), 1);
    assert_eq!(store.compacted_revision(), 0);
    let view = store.read_view();
    assert_eq!(
        view.range(&all(), &RangeOptions::default()),
        Ok(RangeResult {
            kvs: vec![],
            count: 0,
            revision: 1
        })
    );
}

// kvstore_txn.go put: a new key gets version 1 and create = mod = the txn's revision.
#[test]
fn first_put_creates_version_one_with_create_and_mod_revision_equal() {
    let mut store = MvccStore::new();
    let revision = put(&mut store, &[("foo", "bar")]);
    assert_eq!(revision, 2);
    assert_eq!(
        get(&store.read_view(), "foo", 0),
        Some(kv("foo", "bar", 2, 2, 1))
    );
    checked(&store);
}

// kvstore_txn.go put: version = previous + 1, create_revision carried over.
#[test]
fn put_on_existing_key_increments_version_and_keeps_create_revision() {
    let mut store = MvccStore::new();
    put(&mut store, &[("foo", "v1")]);
    put(&mut store, &[("foo", "v2")]);
    put(&mut store, &[("foo", "v3")]);
    assert_eq!(
        get(&store.read_view(), "foo", 0),
        Some(kv("foo", "v3", 2, 4, 3))
    );
    checked(&store);
}

// key_index.go: a tombstone ends the generation; the next put starts over at version 1.
#[test]
fn put_after_delete_starts_a_new_generation_at_version_one() {
    let mut store = MvccStore::new();
    put(&mut store, &[("foo", "v1")]);
    put(&mut store, &[("foo", "v2")]);
    delete(&mut store, &key("foo"));
    let revision = put(&mut store, &[("foo", "again")]);
    assert_eq!(revision, 5);
    assert_eq!(
        get(&store.read_view(), "foo", 0),
        Some(kv("foo", "again", 5, 5, 1))
    );
    checked(&store);
}

// The server answers prev_kv from put's result; etcd's put takes the new lease, never the old one.
#[test]
fn put_returns_the_previous_version_and_stores_the_new_lease() {
    let mut store = MvccStore::new();
    let mut txn = store.write_txn();
    assert_eq!(txn.put(b("k"), b("v1"), 7), None);
    let previous = txn.put(b("k"), b("v2"), 0);
    assert_eq!(
        previous,
        Some(KeyValue {
            lease: 7,
            ..kv("k", "v1", 2, 2, 1)
        })
    );
    txn.commit();
    assert_eq!(
        get(&store.read_view(), "k", 0).map(|kv| kv.lease),
        Some(0),
        "a put replaces the lease"
    );
}

// etcd DeleteRange: deleting nothing is not a change, so no revision is spent.
#[test]
fn delete_of_a_missing_key_changes_nothing_and_keeps_the_revision() {
    let mut store = MvccStore::new();
    put(&mut store, &[("a", "1")]);
    let mut txn = store.write_txn();
    assert!(txn.delete_range(&key("zzz")).is_empty());
    assert!(txn.delete_range(&range("b", "c")).is_empty());
    assert_eq!(
        txn.revision(),
        2,
        "no change, so reads stay at the begin revision"
    );
    let committed = txn.commit();
    assert_eq!((committed.revision, committed.events), (2, vec![]));
    assert_eq!(store.revision(), 2);
    checked(&store);
}

// A range delete tombstones only keys that exist now and reports their last versions.
#[test]
fn delete_range_deletes_live_keys_in_range_and_returns_their_previous_values() {
    let mut store = MvccStore::new();
    put(&mut store, &[("a", "1"), ("b", "2"), ("c", "3")]);
    delete(&mut store, &key("b"));
    let (revision, deleted) = delete(&mut store, &range("a", "d"));
    assert_eq!(revision, 4);
    assert_eq!(
        deleted,
        vec![kv("a", "1", 2, 2, 1), kv("c", "3", 2, 2, 1)],
        "b was already gone"
    );
    assert_eq!(
        store
            .read_view()
            .range(&all(), &RangeOptions::default())
            .expect("read")
            .count,
        0
    );
    checked(&store);
}

// storeTxnWrite.End bumps currentRev only when the txn has changes.
#[test]
fn txn_without_writes_keeps_the_revision_and_yields_no_events() {
    let mut store = MvccStore::new();
    put(&mut store, &[("a", "1")]);
    let txn = store.write_txn();
    let read = txn.range(&all(), &RangeOptions::default()).expect("read");
    assert_eq!(read.revision, 2);
    let committed = txn.commit();
    assert_eq!(committed.revision, 2);
    assert!(committed.events.is_empty());
    assert_eq!(store.revision(), 2);
}

// Every change of a txn is at beginRev + 1, sub = its index; history replays in sub order.
#[test]
fn writes_of_one_txn_share_the_next_main_revision_with_increasing_sub_revisions() {
    let mut store = MvccStore::new();
    put(&mut store, &[("x", "0")]);
    let mut txn = store.write_txn();
    txn.put(b("a"), b("1"), 0);
    txn.delete_range(&key("x"));
    txn.put(b("b"), b("2"), 0);
    let committed = txn.commit();
    assert_eq!(committed.revision, 3);
    let mods: Vec<(EventKind, i64)> = committed
        .events
        .iter()
        .map(|e| (e.kind, e.kv.mod_revision))
        .collect();
    assert_eq!(
        mods,
        vec![
            (EventKind::Put, 3),
            (EventKind::Delete, 3),
            (EventKind::Put, 3)
        ]
    );
    // Sub revisions order the changes in history.
    let history = store
        .read_view()
        .events(&all(), 3, 4, 0, false)
        .expect("history");
    let keys: Vec<Bytes> = history.iter().map(|e| e.kv.key.clone()).collect();
    assert_eq!(keys, vec![b("a"), b("x"), b("b")]);
    checked(&store);
}

// storeTxnWrite.Range reads at beginRev + 1 once the txn has changes (etcd Txn semantics).
#[test]
fn txn_reads_see_its_own_earlier_writes_at_the_next_revision() {
    let mut store = MvccStore::new();
    put(&mut store, &[("a", "old")]);
    let mut txn = store.write_txn();
    txn.put(b("a"), b("new"), 0);
    txn.put(b("b"), b("fresh"), 0);
    let read = txn.range(&all(), &RangeOptions::default()).expect("read");
    assert_eq!(
        read.revision, 3,
        "etcd: beginRev + 1 once the txn has changes"
    );
    assert_eq!(
        read.kvs,
        vec![kv("a", "new", 2, 3, 2), kv("b", "fresh", 3, 3, 1)]
    );
    assert_eq!(
        txn.range(&key("a"), &at(2)).expect("read").kvs,
        vec![kv("a", "old", 2, 2, 1)]
    );
    txn.delete_range(&key("b"));
    assert_eq!(
        txn.range(&key("b"), &RangeOptions::default())
            .expect("read")
            .count,
        0
    );
    txn.commit();
    checked(&store);
}

// rangeKeys: rev > curRev is ErrFutureRev, where curRev is the txn's own revision.
#[test]
fn txn_read_above_its_own_revision_is_a_future_revision() {
    let mut store = MvccStore::new();
    let txn = store.write_txn();
    assert_eq!(
        txn.range(&all(), &at(2)),
        Err(MvccError::FutureRevision {
            requested: 2,
            current: 1
        })
    );
    drop(txn);
    let mut txn = store.write_txn();
    txn.put(b("a"), b("1"), 0);
    assert!(
        txn.range(&all(), &at(2)).is_ok(),
        "its own revision is readable once it has changes"
    );
}

// The server drops a txn whose request fails; nothing of it may remain, revision included.
#[test]
fn dropping_a_txn_without_commit_discards_its_writes() {
    let mut store = MvccStore::new();
    put(&mut store, &[("a", "1"), ("b", "2")]);
    let before = store
        .read_view()
        .range(&all(), &RangeOptions::default())
        .expect("read");
    {
        let mut txn = store.write_txn();
        txn.put(b("a"), b("changed"), 0);
        txn.put(b("new"), b("x"), 0);
        txn.delete_range(&key("b"));
    }
    assert_eq!(store.revision(), 2);
    assert_eq!(
        store.read_view().range(&all(), &RangeOptions::default()),
        Ok(before)
    );
    assert_eq!((store.key_count(), store.record_count()), (2, 2));
    checked(&store);
    // The next transaction reuses the discarded revision.
    assert_eq!(put(&mut store, &[("c", "3")]), 3);
}

// A read at R sees each key's newest change <= R; the header carries the current revision.
#[test]
fn read_at_a_revision_sees_the_state_after_that_revision() {
    let mut store = MvccStore::new();
    put(&mut store, &[("k", "v2")]); // 2
    put(&mut store, &[("k", "v3")]); // 3
    delete(&mut store, &key("k")); // 4
    put(&mut store, &[("k", "v5")]); // 5
    let view = store.read_view();
    assert_eq!(get(&view, "k", 1), None);
    assert_eq!(get(&view, "k", 2), Some(kv("k", "v2", 2, 2, 1)));
    assert_eq!(get(&view, "k", 3), Some(kv("k", "v3", 2, 3, 2)));
    assert_eq!(get(&view, "k", 4), None);
    assert_eq!(get(&view, "k", 5), Some(kv("k", "v5", 5, 5, 1)));
    assert_eq!(
        view.range(&key("k"), &at(3)).expect("read").revision,
        5,
        "header is current"
    );
}

// rangeKeys: a revision above the current one is ErrFutureRev.
#[test]
fn read_above_the_current_revision_is_a_future_revision() {
    let mut store = MvccStore::new();
    put(&mut store, &[("k", "v")]);
    let view = store.read_view();
    assert_eq!(
        view.range(&all(), &at(3)),
        Err(MvccError::FutureRevision {
            requested: 3,
            current: 2
        })
    );
    assert!(view.range(&all(), &at(2)).is_ok());
}

// rangeKeys: rev < compactMainRev is ErrCompacted; rev == compactMainRev is readable.
#[test]
fn read_below_the_compacted_revision_is_compacted_and_at_it_is_allowed() {
    let mut store = MvccStore::new();
    for i in 0..5 {
        put(&mut store, &[("k", &i.to_string())]); // 2..=6
    }
    store.compact(4).expect("compact");
    let view = store.read_view();
    assert_eq!(
        view.range(&all(), &at(3)),
        Err(MvccError::Compacted {
            compacted_revision: 4
        })
    );
    assert_eq!(get(&view, "k", 4), Some(kv("k", "2", 2, 4, 3)));
    assert!(
        view.range(&all(), &at(0)).is_ok(),
        "revision <= 0 reads the current revision"
    );
}

// rangeKeys checks ErrFutureRev first; the error a client sees must match.
#[test]
fn future_revision_is_checked_before_compacted_as_etcd_does() {
    let mut store = MvccStore::new();
    put(&mut store, &[("k", "v")]);
    store.compact(2).expect("compact");
    let view = store.read_view();
    assert_eq!(
        view.range(&all(), &at(9)),
        Err(MvccError::FutureRevision {
            requested: 9,
            current: 2
        })
    );
}

// RangeResponse.count is all matching keys; limit cuts only kvs (the server derives `more`).
#[test]
fn count_counts_every_matching_key_and_ignores_the_limit() {
    let mut store = MvccStore::new();
    put(
        &mut store,
        &[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")],
    );
    let opts = RangeOptions {
        limit: 2,
        ..RangeOptions::default()
    };
    let result = store
        .read_view()
        .range(&range("a", "d"), &opts)
        .expect("read");
    assert_eq!(result.count, 3);
    assert_eq!(
        result
            .kvs
            .iter()
            .map(|kv| kv.key.clone())
            .collect::<Vec<_>>(),
        vec![b("a"), b("b")]
    );
}

// count is taken at the revision read, not at the current one.
#[test]
fn count_counts_keys_as_of_the_revision_read() {
    let mut store = MvccStore::new();
    put(&mut store, &[("a", "1"), ("b", "2")]); // 2
    delete(&mut store, &key("a")); // 3
    put(&mut store, &[("c", "3")]); // 4
    let view = store.read_view();
    assert_eq!(view.range(&all(), &at(2)).expect("read").count, 2);
    assert_eq!(view.range(&all(), &at(3)).expect("read").count, 1);
    assert_eq!(view.range(&all(), &at(4)).expect("read").count, 2);
}

// count_only returns no kvs but the full count.
#[test]
fn count_only_returns_the_count_without_key_values() {
    let mut store = MvccStore::new();
    put(&mut store, &[("a", "1"), ("b", "2")]);
    let opts = RangeOptions {
        count_only: true,
        ..RangeOptions::default()
    };
    assert_eq!(
        store.read_view().range(&all(), &opts),
        Ok(RangeResult {
            kvs: vec![],
            count: 2,
            revision: 2
        })
    );
}

// etcd's key/range_end forms: one key, [start, end), and >= start; end <= start is empty.
#[test]
fn key_ranges_cover_one_key_a_half_open_interval_or_everything_from_a_key() {
    let mut store = MvccStore::new();
    put(
        &mut store,
        &[("a", "1"), ("b", "2"), ("b\0", "3"), ("c", "4")],
    );
    let view = store.read_view();
    let keys = |r: &KeyRange| -> Vec<Bytes> {
        view.range(r, &RangeOptions::default())
            .expect("read")
            .kvs
            .into_iter()
            .map(|kv| kv.key)
            .collect()
    };
    assert_eq!(keys(&key("b")), vec![b("b")]);
    assert_eq!(
        keys(&range("b", "c")),
        vec![b("b"), b("b\0")],
        "end excluded"
    );
    assert_eq!(keys(&KeyRange::FromKey(b("b\0"))), vec![b("b\0"), b("c")]);
    assert_eq!(
        keys(&range("c", "b")),
        Vec::<Bytes>::new(),
        "end before start matches nothing"
    );
    assert_eq!(
        keys(&range("b", "b")),
        Vec::<Bytes>::new(),
        "empty range matches nothing"
    );
}

// key_index.go compact: the newest revision <= c of a live key stays, older ones go.
#[test]
fn compact_keeps_the_latest_revision_of_each_live_key() {
    let mut store = MvccStore::new();
    put(&mut store, &[("k", "v2")]); // 2
    put(&mut store, &[("k", "v3")]); // 3
    put(&mut store, &[("other", "x")]); // 4
    put(&mut store, &[("k", "v5")]); // 5
    let outcome = store.compact(4).expect("compact");
    assert_eq!(
        outcome.revisions_removed_count, 1,
        "only k@2 is superseded at or before 4"
    );
    assert_eq!(outcome.keys_removed_count, 0);
    let view = store.read_view();
    assert_eq!(
        get(&view, "k", 4),
        Some(kv("k", "v3", 2, 3, 2)),
        "k@3 kept: latest <= 4"
    );
    assert_eq!(get(&view, "other", 5), Some(kv("other", "x", 4, 4, 1)));
    assert_eq!(store.record_count(), 3);
    checked(&store);
}

// key_index.go compact: a tombstone as the newest revision <= c goes, and the key with it.
#[test]
fn compact_removes_keys_whose_latest_revision_is_a_tombstone() {
    let mut store = MvccStore::new();
    put(&mut store, &[("gone", "1"), ("kept", "1")]); // 2
    delete(&mut store, &key("gone")); // 3
    let outcome = store.compact(3).expect("compact");
    assert_eq!(outcome.keys_removed_count, 1);
    assert_eq!(
        outcome.revisions_removed_count, 2,
        "gone@2 and the tombstone gone@3"
    );
    assert_eq!((store.key_count(), store.record_count()), (1, 1));
    checked(&store);
}

// A delete above c stays in history so watchers from c on still see it.
#[test]
fn compact_keeps_a_tombstone_after_the_compaction_revision() {
    let mut store = MvccStore::new();
    put(&mut store, &[("k", "1")]); // 2
    put(&mut store, &[("x", "1")]); // 3
    delete(&mut store, &key("k")); // 4
    store.compact(3).expect("compact");
    let view = store.read_view();
    assert_eq!(get(&view, "k", 3), Some(kv("k", "1", 2, 2, 1)));
    let history = view.events(&key("k"), 4, 5, 0, true).expect("history");
    assert_eq!(history.len(), 1, "the delete at 4 is still watchable");
    assert_eq!(history[0].prev_kv, Some(kv("k", "1", 2, 2, 1)));
    checked(&store);
}

// Compaction removes only history nobody may read any more.
#[test]
fn reads_at_or_above_the_compacted_revision_are_unchanged_by_compaction() {
    let mut store = MvccStore::new();
    for round in 0..6 {
        put(&mut store, &[("a", &round.to_string()), ("b", "x")]);
        if round % 2 == 1 {
            delete(&mut store, &key("b"));
        }
        delete(&mut store, &range("c", "d"));
        put(&mut store, &[("c", "1")]);
    }
    let before = store.read_view();
    store.compact(8).expect("compact");
    let after = store.read_view();
    for revision in 8..=store.revision() {
        assert_eq!(
            after.range(&all(), &at(revision)),
            before.range(&all(), &at(revision)),
            "at {revision}"
        );
    }
    checked(&store);
}

// updateCompactRev: rev <= compactMainRev is ErrCompacted.
#[test]
fn compact_at_or_below_the_compacted_revision_is_compacted() {
    let mut store = MvccStore::new();
    put(&mut store, &[("a", "1")]);
    put(&mut store, &[("a", "2")]);
    store.compact(2).expect("compact");
    assert_eq!(
        store.compact(2),
        Err(MvccError::Compacted {
            compacted_revision: 2
        })
    );
    assert_eq!(
        store.compact(1),
        Err(MvccError::Compacted {
            compacted_revision: 2
        })
    );
    assert!(store.compact(3).is_ok());
}

// updateCompactRev: rev > currentRev is ErrFutureRev, and nothing changes.
#[test]
fn compact_above_the_current_revision_is_a_future_revision() {
    let mut store = MvccStore::new();
    put(&mut store, &[("a", "1")]);
    assert_eq!(
        store.compact(3),
        Err(MvccError::FutureRevision {
            requested: 3,
            current: 2
        })
    );
    assert_eq!(
        store.compacted_revision(),
        0,
        "a refused compaction changes nothing"
    );
}

// etcd starts with compactMainRev = -1: compact(0) is accepted once, a negative revision is not.
#[test]
fn first_compaction_accepts_revision_zero_as_etcd_does() {
    let mut store = MvccStore::new();
    assert_eq!(
        store.compact(-1),
        Err(MvccError::Compacted {
            compacted_revision: 0
        })
    );
    assert!(store.compact(0).is_ok());
    assert_eq!(
        store.compact(0),
        Err(MvccError::Compacted {
            compacted_revision: 0
        })
    );
}

// Copy-on-write: a view is a snapshot; later commits and compactions do not reach it.
#[test]
fn read_view_keeps_its_data_after_later_writes_and_compaction() {
    let mut store = MvccStore::new();
    put(&mut store, &[("a", "1"), ("b", "1")]); // 2
    put(&mut store, &[("a", "2")]); // 3
    let old = store.read_view();
    let old_all = old.range(&all(), &at(2)).expect("read");
    delete(&mut store, &key("b")); // 4
    put(&mut store, &[("a", "3")]); // 5
    store.compact(5).expect("compact");
    assert_eq!(old.revision(), 3);
    assert_eq!(old.compacted_revision(), 0);
    assert_eq!(
        old.range(&all(), &at(2)),
        Ok(old_all),
        "history the store compacted away"
    );
    assert_eq!(get(&old, "b", 0), Some(kv("b", "1", 2, 2, 1)));
    assert_eq!(
        store.read_view().range(&all(), &at(2)),
        Err(MvccError::Compacted {
            compacted_revision: 5
        })
    );
}

// The server reads views on tokio threads while the core thread writes.
#[test]
fn read_view_is_send_sync_static_and_cheap_to_clone_across_threads() {
    fn assert_send_sync_static<T: Send + Sync + 'static>() {}
    assert_send_sync_static::<ReadView>();
    let mut store = MvccStore::new();
    put(&mut store, &[("k", "v")]);
    let view = store.read_view();
    let reader = std::thread::spawn({
        let view = view.clone();
        move || get(&view, "k", 0)
    });
    put(&mut store, &[("k", "w")]);
    assert_eq!(
        reader.join().expect("reader thread"),
        Some(kv("k", "v", 2, 2, 1))
    );
}

// Watchers with prev_kv get the version each change replaced, including within one txn.
#[test]
fn commit_events_carry_the_previous_version_of_each_key() {
    let mut store = MvccStore::new();
    put(&mut store, &[("a", "1")]);
    let mut txn = store.write_txn();
    txn.put(b("a"), b("2"), 0);
    txn.put(b("n"), b("new"), 3);
    txn.delete_range(&key("a"));
    let committed = txn.commit();
    assert_eq!(
        committed.events,
        vec![
            Event {
                kind: EventKind::Put,
                kv: kv("a", "2", 2, 3, 2),
                prev_kv: Some(kv("a", "1", 2, 2, 1))
            },
            Event {
                kind: EventKind::Put,
                kv: KeyValue {
                    lease: 3,
                    ..kv("n", "new", 3, 3, 1)
                },
                prev_kv: None
            },
            Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: b("a"),
                    mod_revision: 3,
                    ..KeyValue::default()
                },
                prev_kv: Some(kv("a", "2", 2, 3, 2)),
            },
        ]
    );
}

// etcd sends a DELETE event's kv as key + mod_revision only (kvsToEvents).
#[test]
fn delete_event_carries_only_the_key_and_the_deleting_revision() {
    let mut store = MvccStore::new();
    put(&mut store, &[("k", "v")]);
    delete(&mut store, &key("k"));
    let history = store
        .read_view()
        .events(&all(), 3, 4, 0, false)
        .expect("history");
    let want = KeyValue {
        key: b("k"),
        mod_revision: 3,
        ..KeyValue::default()
    };
    assert_eq!(
        history,
        vec![Event {
            kind: EventKind::Delete,
            kv: want,
            prev_kv: None
        }]
    );
}

// Watch catch-up (syncWatchers) replays the key bucket in revision order.
#[test]
fn events_replay_history_in_revision_order_within_range_and_limit() {
    let mut store = MvccStore::new();
    put(&mut store, &[("a", "1")]); // 2
    put(&mut store, &[("z", "1")]); // 3
    put(&mut store, &[("a", "2")]); // 4
    delete(&mut store, &key("a")); // 5
    let view = store.read_view();
    let history = view
        .events(&range("a", "b"), 2, 100, 0, true)
        .expect("history");
    let got: Vec<(EventKind, i64, Option<i64>)> = history
        .iter()
        .map(|e| {
            (
                e.kind,
                e.kv.mod_revision,
                e.prev_kv.as_ref().map(|p| p.mod_revision),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (EventKind::Put, 2, None),
            (EventKind::Put, 4, Some(2)),
            (EventKind::Delete, 5, Some(4))
        ]
    );
    assert_eq!(
        view.events(&all(), 2, 100, 2, false)
            .expect("history")
            .len(),
        2,
        "max_events"
    );
    assert_eq!(
        view.events(&all(), 3, 5, 0, false).expect("history").len(),
        2,
        "end excluded"
    );
    assert!(view
        .events(&all(), 6, 100, 0, false)
        .expect("future start")
        .is_empty());
}

// A watch starting below the compacted revision is cancelled as compacted; at it, allowed.
#[test]
fn events_below_the_compacted_revision_are_compacted() {
    let mut store = MvccStore::new();
    put(&mut store, &[("a", "1")]);
    put(&mut store, &[("a", "2")]);
    store.compact(3).expect("compact");
    let view = store.read_view();
    assert_eq!(
        view.events(&all(), 2, 10, 0, false),
        Err(MvccError::Compacted {
            compacted_revision: 3
        })
    );
    let from_compacted = view
        .events(&all(), 3, 10, 0, true)
        .expect("start at compacted is allowed");
    assert_eq!(from_compacted.len(), 1);
    assert_eq!(
        from_compacted[0].prev_kv, None,
        "the version it replaced was compacted"
    );
}

// The page file keys records by this encoding; its layout is a format.
#[test]
fn revision_encoding_is_sixteen_big_endian_bytes() {
    let encoded = Revision::new(0x0102, 3).to_bytes();
    assert_eq!(encoded.len(), Revision::ENCODED_LEN_BYTES);
    assert_eq!(encoded, [0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 3]);
    assert_eq!(Revision::from_bytes(&encoded), Ok(Revision::new(0x0102, 3)));
}
