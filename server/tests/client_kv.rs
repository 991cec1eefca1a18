//! The Rust `etcd-client` crate against keel: every option of Range, Put,
//! DeleteRange, Txn and Compact, with asserted values, revisions, versions,
//! gRPC codes and etcd's exact error strings.

mod common;

use common::Keel;
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, SortOrder, SortTarget, Txn,
    TxnOp, TxnOpResponse,
};

fn status_of(e: etcd_client::Error) -> tonic::Status {
    match e {
        etcd_client::Error::GRpcStatus(s) => s,
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

async fn expect_status<T: std::fmt::Debug>(
    r: Result<T, etcd_client::Error>,
    code: tonic::Code,
    message: &str,
) {
    let s = status_of(r.expect_err(&format!("expected error {message:?}")));
    assert_eq!(s.code(), code, "{message}");
    assert_eq!(s.message(), message);
}

async fn keys(client: &mut Client, key: &str, opts: GetOptions) -> Vec<String> {
    let resp = client.get(key, Some(opts)).await.expect("get");
    resp.kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect()
}

async fn seed(client: &mut Client) {
    // revisions: a=2, b=3, c=4, d=5, then a=6 (version 2), e=7
    for (k, v) in [
        ("a", "va"),
        ("b", "vb"),
        ("c", "vc"),
        ("d", "vd"),
        ("a", "va2"),
        ("e", "ve"),
    ] {
        client.put(k, v, None).await.expect("put");
    }
}

// Guards Range key forms and limit/more/count semantics.
#[tokio::test]
async fn range_key_forms_limit_more_and_count() {
    let keel = Keel::start(&[]);
    let mut c = keel.client().await;
    seed(&mut c).await;
    assert_eq!(keys(&mut c, "b", GetOptions::new()).await, ["b"]);
    assert_eq!(
        keys(&mut c, "b", GetOptions::new().with_range("d")).await,
        ["b", "c"]
    );
    assert_eq!(
        keys(&mut c, "c", GetOptions::new().with_from_key()).await,
        ["c", "d", "e"]
    );
    assert_eq!(
        keys(&mut c, "", GetOptions::new().with_all_keys()).await,
        ["a", "b", "c", "d", "e"]
    );
    c.put("ab", "x", None).await.expect("put"); // rev 8
    assert_eq!(
        keys(&mut c, "a", GetOptions::new().with_prefix()).await,
        ["a", "ab"]
    );
    // An end before the start matches nothing.
    assert!(keys(&mut c, "d", GetOptions::new().with_range("b"))
        .await
        .is_empty());
    let resp = c
        .get("", Some(GetOptions::new().with_all_keys().with_limit(2)))
        .await
        .expect("get");
    assert_eq!(resp.kvs().len(), 2);
    assert!(resp.more());
    assert_eq!(resp.count(), 6);
    let resp = c
        .get("", Some(GetOptions::new().with_all_keys().with_limit(6)))
        .await
        .expect("get");
    assert!(!resp.more());
    let resp = c
        .get(
            "",
            Some(GetOptions::new().with_all_keys().with_count_only()),
        )
        .await
        .expect("get");
    assert!(resp.kvs().is_empty());
    assert_eq!(resp.count(), 6);
    let resp = c
        .get("a", Some(GetOptions::new().with_keys_only()))
        .await
        .expect("get");
    assert_eq!(resp.kvs()[0].key(), b"a");
    assert!(resp.kvs()[0].value().is_empty());
    assert_eq!(resp.kvs()[0].version(), 2);
    assert_eq!(resp.header().expect("header").revision(), 8);
    let resp = c
        .get("a", Some(GetOptions::new().with_serializable()))
        .await
        .expect("get");
    assert_eq!(resp.kvs()[0].value(), b"va2");
}

// Guards historical reads: the state as of revision R, with etcd's errors
// beyond the current revision.
#[tokio::test]
async fn range_at_a_revision_sees_that_revision() {
    let keel = Keel::start(&[]);
    let mut c = keel.client().await;
    seed(&mut c).await;
    let resp = c
        .get("a", Some(GetOptions::new().with_revision(5)))
        .await
        .expect("get");
    assert_eq!(resp.kvs()[0].value(), b"va");
    assert_eq!(resp.kvs()[0].mod_revision(), 2);
    // The header reports the current revision, not the requested one (etcd).
    assert_eq!(resp.header().expect("header").revision(), 7);
    let resp = c
        .get("", Some(GetOptions::new().with_all_keys().with_revision(3)))
        .await
        .expect("get");
    assert_eq!(
        resp.kvs().iter().map(|kv| kv.key()).collect::<Vec<_>>(),
        [b"a", b"b"]
    );
    expect_status(
        c.get("a", Some(GetOptions::new().with_revision(8))).await,
        tonic::Code::OutOfRange,
        "etcdserver: mvcc: required revision is a future revision",
    )
    .await;
}

// Guards sort targets and orders, including etcd's "ascending by default
// when the target is not the key".
#[tokio::test]
async fn range_sorts_by_every_target_in_both_orders() {
    let keel = Keel::start(&[]);
    let mut c = keel.client().await;
    seed(&mut c).await;
    let all = || GetOptions::new().with_all_keys();
    let sorted = |t, o| all().with_sort(t, o);
    assert_eq!(
        keys(&mut c, "", sorted(SortTarget::Key, SortOrder::Descend)).await,
        ["e", "d", "c", "b", "a"]
    );
    assert_eq!(
        keys(&mut c, "", sorted(SortTarget::Mod, SortOrder::Descend)).await,
        ["e", "a", "d", "c", "b"]
    );
    assert_eq!(
        keys(&mut c, "", sorted(SortTarget::Mod, SortOrder::Ascend)).await,
        ["b", "c", "d", "a", "e"]
    );
    assert_eq!(
        keys(&mut c, "", sorted(SortTarget::Create, SortOrder::Descend)).await,
        ["e", "d", "c", "b", "a"]
    );
    assert_eq!(
        keys(&mut c, "", sorted(SortTarget::Version, SortOrder::Descend)).await[0],
        "a"
    );
    assert_eq!(
        keys(&mut c, "", sorted(SortTarget::Value, SortOrder::Ascend)).await,
        ["a", "b", "c", "d", "e"]
    );
    assert_eq!(
        keys(&mut c, "", sorted(SortTarget::Mod, SortOrder::None)).await,
        ["b", "c", "d", "a", "e"]
    );
    // Sorting happens before the limit: the two newest keys.
    let newest = all()
        .with_sort(SortTarget::Mod, SortOrder::Descend)
        .with_limit(2);
    let resp = c.get("", Some(newest)).await.expect("get");
    assert_eq!(
        resp.kvs().iter().map(|kv| kv.key()).collect::<Vec<_>>(),
        [b"e", b"a"]
    );
    assert!(resp.more());
    assert_eq!(resp.count(), 5);
}

// Guards min/max mod and create revision filters.
#[tokio::test]
async fn range_filters_by_mod_and_create_revision() {
    let keel = Keel::start(&[]);
    let mut c = keel.client().await;
    seed(&mut c).await;
    let all = || GetOptions::new().with_all_keys();
    assert_eq!(
        keys(&mut c, "", all().with_min_mod_revision(5)).await,
        ["a", "d", "e"]
    );
    assert_eq!(
        keys(&mut c, "", all().with_max_mod_revision(4)).await,
        ["b", "c"]
    );
    assert_eq!(
        keys(
            &mut c,
            "",
            all()
                .with_min_create_revision(3)
                .with_max_create_revision(5)
        )
        .await,
        ["b", "c", "d"]
    );
    assert_eq!(
        keys(&mut c, "", all().with_max_create_revision(2)).await,
        ["a"]
    );
    // count is the number of keys in range, before filtering (etcd).
    let resp = c
        .get("", Some(all().with_min_mod_revision(7)))
        .await
        .expect("get");
    assert_eq!(resp.kvs().len(), 1);
    assert_eq!(resp.count(), 5);
}

// Guards Put options and the response header.
#[tokio::test]
async fn put_prev_kv_ignore_value_ignore_lease_and_header() {
    let keel = Keel::start(&[]);
    let mut c = keel.client().await;
    let resp = c.put("k", "v1", None).await.expect("put");
    let h = resp.header().expect("header");
    assert_eq!(h.revision(), 2);
    assert_ne!(h.cluster_id(), 0);
    assert_ne!(h.member_id(), 0);
    assert!(h.raft_term() >= 1);
    assert!(resp.prev_key().is_none());
    let resp = c
        .put("k", "v2", Some(PutOptions::new().with_prev_key()))
        .await
        .expect("put");
    let prev = resp.prev_key().expect("prev kv");
    assert_eq!(
        (prev.value(), prev.version(), prev.mod_revision()),
        (&b"v1"[..], 1, 2)
    );
    let resp = c
        .put(
            "k",
            "",
            Some(PutOptions::new().with_ignore_value().with_prev_key()),
        )
        .await
        .expect("put");
    assert_eq!(resp.prev_key().expect("prev").value(), b"v2");
    let got = c.get("k", None).await.expect("get");
    let kv = &got.kvs()[0];
    assert_eq!(
        (
            kv.value(),
            kv.version(),
            kv.create_revision(),
            kv.mod_revision()
        ),
        (&b"v2"[..], 3, 2, 4)
    );
    c.put("k", "v3", Some(PutOptions::new().with_ignore_lease()))
        .await
        .expect("put");
    expect_status(
        c.put("nokey", "", Some(PutOptions::new().with_ignore_value()))
            .await,
        tonic::Code::InvalidArgument,
        "etcdserver: key not found",
    )
    .await;
    expect_status(
        c.put("k", "x", Some(PutOptions::new().with_ignore_value()))
            .await,
        tonic::Code::InvalidArgument,
        "etcdserver: value is provided",
    )
    .await;
    expect_status(
        c.put(
            "k",
            "x",
            Some(PutOptions::new().with_ignore_lease().with_lease(5)),
        )
        .await,
        tonic::Code::InvalidArgument,
        "etcdserver: lease is provided",
    )
    .await;
    expect_status(
        c.put("k", "x", Some(PutOptions::new().with_lease(0x1234)))
            .await,
        tonic::Code::NotFound,
        "etcdserver: requested lease not found",
    )
    .await;
    expect_status(
        c.put("", "x", None).await,
        tonic::Code::InvalidArgument,
        "etcdserver: key is not provided",
    )
    .await;
    // Failed requests did not advance the revision.
    assert_eq!(
        c.get("k", None)
            .await
            .expect("get")
            .header()
            .expect("h")
            .revision(),
        5
    );
}

// Guards DeleteRange forms, counts and prev_kv.
#[tokio::test]
async fn delete_range_forms_counts_and_prev_kvs() {
    let keel = Keel::start(&[]);
    let mut c = keel.client().await;
    seed(&mut c).await;
    let resp = c
        .delete("a", Some(DeleteOptions::new().with_prev_key()))
        .await
        .expect("del");
    assert_eq!(resp.deleted(), 1);
    assert_eq!(resp.prev_kvs()[0].value(), b"va2");
    assert_eq!(resp.header().expect("h").revision(), 8);
    let resp = c.delete("zzz", None).await.expect("del");
    assert_eq!(
        (resp.deleted(), resp.header().expect("h").revision()),
        (0, 8)
    );
    let resp = c
        .delete("b", Some(DeleteOptions::new().with_range("d")))
        .await
        .expect("del");
    assert_eq!(resp.deleted(), 2);
    assert!(resp.prev_kvs().is_empty());
    // All deletes of one request share one revision.
    assert_eq!(resp.header().expect("h").revision(), 9);
    let resp = c
        .delete(
            "d",
            Some(DeleteOptions::new().with_from_key().with_prev_key()),
        )
        .await
        .expect("del");
    assert_eq!(resp.deleted(), 2);
    assert_eq!(
        resp.prev_kvs()
            .iter()
            .map(|kv| kv.key())
            .collect::<Vec<_>>(),
        [b"d", b"e"]
    );
    // The deleted keys are gone now but readable at older revisions.
    assert!(c
        .get("", Some(GetOptions::new().with_all_keys()))
        .await
        .expect("get")
        .kvs()
        .is_empty());
    let old = c
        .get("b", Some(GetOptions::new().with_revision(8)))
        .await
        .expect("get");
    assert_eq!(old.kvs()[0].value(), b"vb");
    expect_status(
        c.delete("", None).await,
        tonic::Code::InvalidArgument,
        "etcdserver: key is not provided",
    )
    .await;
}

fn txn_succeeded(resp: &etcd_client::TxnResponse) -> bool {
    resp.succeeded()
}

// Guards every compare target with every result operator.
#[tokio::test]
async fn txn_compares_every_target_with_every_operator() {
    let keel = Keel::start(&[]);
    let mut c = keel.client().await;
    c.put("k", "m", None).await.expect("put"); // create=2 mod=2 version=1
    c.put("k", "m", None).await.expect("put"); // mod=3 version=2
    let cases: Vec<(Compare, bool)> = vec![
        (Compare::version("k", CompareOp::Equal, 2), true),
        (Compare::version("k", CompareOp::Greater, 1), true),
        (Compare::version("k", CompareOp::Less, 2), false),
        (Compare::version("k", CompareOp::NotEqual, 2), false),
        (Compare::create_revision("k", CompareOp::Equal, 2), true),
        (Compare::create_revision("k", CompareOp::Less, 3), true),
        (Compare::create_revision("k", CompareOp::Greater, 2), false),
        (Compare::mod_revision("k", CompareOp::Equal, 3), true),
        (Compare::mod_revision("k", CompareOp::Greater, 2), true),
        (Compare::mod_revision("k", CompareOp::NotEqual, 3), false),
        (Compare::value("k", CompareOp::Equal, "m"), true),
        (Compare::value("k", CompareOp::Greater, "a"), true),
        (Compare::value("k", CompareOp::Less, "a"), false),
        (Compare::value("k", CompareOp::NotEqual, "x"), true),
        (Compare::lease("k", CompareOp::Equal, 0), true),
        (Compare::lease("k", CompareOp::Greater, 0), false),
        // A missing key compares as zeros, except that value compares fail.
        (Compare::version("missing", CompareOp::Equal, 0), true),
        (
            Compare::create_revision("missing", CompareOp::Equal, 0),
            true,
        ),
        (Compare::value("missing", CompareOp::Equal, ""), false),
        (Compare::value("missing", CompareOp::NotEqual, "x"), false),
    ];
    for (i, (cmp, expected)) in cases.into_iter().enumerate() {
        let resp = c.txn(Txn::new().when([cmp])).await.expect("txn");
        assert_eq!(txn_succeeded(&resp), expected, "case {i}");
        // A txn without writes does not add a revision.
        assert_eq!(resp.header().expect("h").revision(), 3, "case {i}");
    }
}

// Guards range compares: every key in the range must satisfy the compare.
#[tokio::test]
async fn txn_range_compares_check_every_key_in_range() {
    let keel = Keel::start(&[]);
    let mut c = keel.client().await;
    for k in ["p/1", "p/2", "p/3"] {
        c.put(k, "same", None).await.expect("put");
    }
    let all_same = Compare::value("p/", CompareOp::Equal, "same").with_prefix();
    assert!(c
        .txn(Txn::new().when([all_same.clone()]))
        .await
        .expect("txn")
        .succeeded());
    c.put("p/2", "other", None).await.expect("put");
    assert!(!c
        .txn(Txn::new().when([all_same]))
        .await
        .expect("txn")
        .succeeded());
    let early = Compare::create_revision("p/1", CompareOp::Less, 5).with_range("p/3");
    assert!(c
        .txn(Txn::new().when([early]))
        .await
        .expect("txn")
        .succeeded());
    let none_newer = Compare::mod_revision("p/", CompareOp::Less, 5).with_prefix();
    assert!(!c
        .txn(Txn::new().when([none_newer]))
        .await
        .expect("txn")
        .succeeded());
}

// Guards txn results: chosen branch, per-op responses, one revision for all
// writes, later ops seeing earlier writes, nested txns.
#[tokio::test]
async fn txn_branches_ops_and_nested_txns() {
    let keel = Keel::start(&[]);
    let mut c = keel.client().await;
    c.put("x", "1", None).await.expect("put"); // rev 2
    let txn = Txn::new()
        .when([Compare::value("x", CompareOp::Equal, "1")])
        .and_then([
            TxnOp::put("x", "2", Some(PutOptions::new().with_prev_key())),
            TxnOp::put("y", "3", None),
            TxnOp::get("", Some(GetOptions::new().with_all_keys())),
            TxnOp::txn(
                Txn::new()
                    .when([Compare::version("z", CompareOp::Equal, 0)])
                    .and_then([TxnOp::put("z", "nested", None)])
                    .or_else([TxnOp::delete("z", None)]),
            ),
        ])
        .or_else([TxnOp::put("never", "x", None)]);
    let resp = c.txn(txn).await.expect("txn");
    assert!(resp.succeeded());
    assert_eq!(resp.header().expect("h").revision(), 3);
    let ops = resp.op_responses();
    assert_eq!(ops.len(), 4);
    match &ops[0] {
        TxnOpResponse::Put(p) => assert_eq!(p.prev_key().expect("prev").value(), b"1"),
        other => panic!("{other:?}"),
    }
    match &ops[2] {
        TxnOpResponse::Get(g) => {
            let seen: Vec<_> = g
                .kvs()
                .iter()
                .map(|kv| (kv.key().to_vec(), kv.value().to_vec()))
                .collect();
            assert_eq!(
                seen,
                [
                    (b"x".to_vec(), b"2".to_vec()),
                    (b"y".to_vec(), b"3".to_vec())
                ]
            );
            assert_eq!(g.header().expect("h").revision(), 3);
        }
        other => panic!("{other:?}"),
    }
    match &ops[3] {
        TxnOpResponse::Txn(t) => assert!(t.succeeded()),
        other => panic!("{other:?}"),
    }
    let z = c.get("z", None).await.expect("get");
    assert_eq!(
        (z.kvs()[0].value(), z.kvs()[0].mod_revision()),
        (&b"nested"[..], 3)
    );
    let y = c.get("y", None).await.expect("get");
    assert_eq!(y.kvs()[0].create_revision(), 3);
    // The failure branch runs when a compare fails.
    let resp = c
        .txn(
            Txn::new()
                .when([Compare::value("x", CompareOp::Equal, "1")])
                .or_else([TxnOp::delete("y", None)]),
        )
        .await
        .expect("txn");
    assert!(!resp.succeeded());
    assert_eq!(resp.header().expect("h").revision(), 4);
    assert!(c.get("y", None).await.expect("get").kvs().is_empty());
}

// Guards --max-txn-ops and the duplicate-key rule with etcd's errors.
#[tokio::test]
async fn txn_limits_and_duplicate_keys_are_rejected() {
    let keel = Keel::start(&["--max-txn-ops=3"]);
    let mut c = keel.client().await;
    let four_puts: Vec<TxnOp> = (0..4)
        .map(|i| TxnOp::put(format!("k{i}"), "v", None))
        .collect();
    expect_status(
        c.txn(Txn::new().and_then(four_puts)).await,
        tonic::Code::InvalidArgument,
        "etcdserver: too many operations in txn request",
    )
    .await;
    let three_puts: Vec<TxnOp> = (0..3)
        .map(|i| TxnOp::put(format!("k{i}"), "v", None))
        .collect();
    assert!(c
        .txn(Txn::new().and_then(three_puts))
        .await
        .expect("txn")
        .succeeded());
    let dup = "etcdserver: duplicate key given in txn request";
    let twice = Txn::new().and_then([TxnOp::put("a", "1", None), TxnOp::put("a", "2", None)]);
    expect_status(c.txn(twice).await, tonic::Code::InvalidArgument, dup).await;
    let put_and_delete = Txn::new().and_then([
        TxnOp::put("b", "1", None),
        TxnOp::delete("a", Some(DeleteOptions::new().with_range("c"))),
    ]);
    expect_status(
        c.txn(put_and_delete).await,
        tonic::Code::InvalidArgument,
        dup,
    )
    .await;
    let nested = Txn::new().and_then([
        TxnOp::put("n", "1", None),
        TxnOp::txn(Txn::new().and_then([TxnOp::put("n", "2", None)])),
    ]);
    expect_status(c.txn(nested).await, tonic::Code::InvalidArgument, dup).await;
    // The same key in the two branches of one nested txn is fine: one runs.
    let branches = Txn::new().and_then([TxnOp::txn(
        Txn::new()
            .when([Compare::version("m", CompareOp::Equal, 0)])
            .and_then([TxnOp::put("m", "then", None)])
            .or_else([TxnOp::put("m", "else", None)]),
    )]);
    assert!(c.txn(branches).await.expect("txn").succeeded());
    assert_eq!(
        c.get("m", None).await.expect("get").kvs()[0].value(),
        b"then"
    );
    // Apply-time checks inside a txn: unknown lease, ignore_value on a missing key.
    let bad_lease =
        Txn::new().and_then([TxnOp::put("l", "v", Some(PutOptions::new().with_lease(77)))]);
    expect_status(
        c.txn(bad_lease).await,
        tonic::Code::NotFound,
        "etcdserver: requested lease not found",
    )
    .await;
    assert!(c.get("l", None).await.expect("get").kvs().is_empty());
}

// Guards Compact: reads below the compacted revision fail, at and above it
// they see the same data as before, and future revisions are refused.
#[tokio::test]
async fn compact_removes_history_below_the_revision_only() {
    let keel = Keel::start(&[]);
    let mut c = keel.client().await;
    for i in 1..=5 {
        c.put("k", format!("v{i}"), None).await.expect("put"); // revs 2..=6
    }
    c.put("gone", "x", None).await.expect("put"); // 7
    c.delete("gone", None).await.expect("del"); // 8
    let before = c
        .get("k", Some(GetOptions::new().with_revision(4)))
        .await
        .expect("get");
    let resp = c.compact(4, None).await.expect("compact");
    assert_eq!(resp.header().expect("h").revision(), 8);
    let after = c
        .get("k", Some(GetOptions::new().with_revision(4)))
        .await
        .expect("get");
    assert_eq!(common::rows(before.kvs()), common::rows(after.kvs()));
    assert_eq!(after.kvs()[0].value(), b"v3");
    expect_status(
        c.get("k", Some(GetOptions::new().with_revision(3))).await,
        tonic::Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    )
    .await;
    expect_status(
        c.compact(4, None).await,
        tonic::Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    )
    .await;
    expect_status(
        c.compact(9, None).await,
        tonic::Code::OutOfRange,
        "etcdserver: mvcc: required revision is a future revision",
    )
    .await;
    c.compact(8, None).await.expect("compact to current");
    let k = c.get("k", None).await.expect("get");
    assert_eq!((k.kvs()[0].value(), k.kvs()[0].version()), (&b"v5"[..], 5));
    assert!(c.get("gone", None).await.expect("get").kvs().is_empty());
    // A txn range below the compacted revision fails as etcd's does.
    let txn = Txn::new().and_then([TxnOp::get("k", Some(GetOptions::new().with_revision(5)))]);
    expect_status(
        c.txn(txn).await,
        tonic::Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    )
    .await;
}

// Guards --max-request-bytes: etcd's "request is too large" for a request
// over the limit, and the store stays unchanged.
#[tokio::test]
async fn oversized_requests_get_request_is_too_large() {
    let keel = Keel::start(&["--max-request-bytes=1024"]);
    let mut c = keel.client().await;
    c.put("small", vec![b'x'; 512], None)
        .await
        .expect("put under the limit");
    expect_status(
        c.put("big", vec![b'x'; 2048], None).await,
        tonic::Code::InvalidArgument,
        "etcdserver: request is too large",
    )
    .await;
    assert!(c.get("big", None).await.expect("get").kvs().is_empty());
    // Far over the limit (beyond gRPC's allowance) the transport refuses it.
    let s = status_of(
        c.put("huge", vec![b'x'; 2 << 20], None)
            .await
            .expect_err("too big"),
    );
    assert_eq!(s.code(), tonic::Code::OutOfRange, "{s:?}");
}

// Guards binary keys and values: arbitrary bytes round-trip unchanged.
#[tokio::test]
async fn binary_keys_and_values_round_trip() {
    let keel = Keel::start(&[]);
    let mut c = keel.client().await;
    let key = vec![0u8, 255, 1, 0, 128];
    let value: Vec<u8> = (0..=255).collect();
    c.put(key.clone(), value.clone(), None).await.expect("put");
    let got = c.get(key.clone(), None).await.expect("get");
    assert_eq!(
        (got.kvs()[0].key(), got.kvs()[0].value()),
        (&key[..], &value[..])
    );
    let from_zero = c
        .get(vec![0u8], Some(GetOptions::new().with_from_key()))
        .await
        .expect("get");
    assert_eq!(from_zero.kvs().len(), 1);
}
