//! The real etcdctl 3.4 against keel: every KV command etcd users type, with
//! asserted values, revisions, versions and etcd's exact error strings.

mod common;

use common::{b64, err, etcdctl, etcdctl_with_stdin, json, ok, Keel};

fn put(keel: &Keel, key: &str, value: &str) {
    assert_eq!(ok(etcdctl(&keel.endpoint(), &["put", key, value])), "OK\n");
}

// Guards the basic contract: put/get round trip, revisions start at 1 and
// each put adds one, versions count modifications.
#[test]
fn put_and_get_report_values_revisions_and_versions() {
    let keel = Keel::start(&[]);
    let ep = keel.endpoint();
    put(&keel, "foo", "bar");
    assert_eq!(ok(etcdctl(&ep, &["get", "foo"])), "foo\nbar\n");
    // --prev-kv prints the old pair after OK.
    assert_eq!(
        ok(etcdctl(&ep, &["put", "foo", "baz", "--prev-kv"])),
        "OK\nfoo\nbar\n"
    );
    let got = json(&ok(etcdctl(&ep, &["get", "foo", "-w", "json"])));
    assert_eq!(got["header"]["revision"], 3);
    let kv = &got["kvs"][0];
    assert_eq!(b64(&kv["key"]), "foo");
    assert_eq!(b64(&kv["value"]), "baz");
    assert_eq!(kv["create_revision"], 2);
    assert_eq!(kv["mod_revision"], 3);
    assert_eq!(kv["version"], 2);
    assert_eq!(got["count"], 1);
    // Header identity: etcd's ids for a default member on these URLs.
    assert_ne!(got["header"]["cluster_id"].as_u64(), Some(0));
    assert_ne!(got["header"]["member_id"].as_u64(), Some(0));
    assert!(got["header"]["raft_term"].as_u64().unwrap_or(0) >= 1);
    // A missing key prints nothing.
    assert_eq!(ok(etcdctl(&ep, &["get", "nope"])), "");
}

// Guards range forms: prefix, from-key, explicit [key, end), limit with
// `more` and `count`, keys-only, print-value-only, sort, historical reads,
// serializable reads.
#[test]
fn get_covers_prefix_from_key_range_limit_sort_and_revision() {
    let keel = Keel::start(&[]);
    let ep = keel.endpoint();
    for (k, v) in [("a", "1"), ("b", "2"), ("c", "3"), ("foo", "x")] {
        put(&keel, k, v);
    } // revisions 2..=5
    put(&keel, "a", "1b"); // rev 6
    assert_eq!(
        ok(etcdctl(&ep, &["get", "", "--prefix", "--keys-only"])),
        "a\n\nb\n\nc\n\nfoo\n\n"
    );
    assert_eq!(
        ok(etcdctl(&ep, &["get", "b", "--from-key"])),
        "b\n2\nc\n3\nfoo\nx\n"
    );
    assert_eq!(ok(etcdctl(&ep, &["get", "a", "c"])), "a\n1b\nb\n2\n");
    let limited = json(&ok(etcdctl(
        &ep,
        &["get", "a", "--from-key", "--limit", "2", "-w", "json"],
    )));
    assert_eq!(limited["kvs"].as_array().map(Vec::len), Some(2));
    assert_eq!(limited["more"], true);
    assert_eq!(limited["count"], 4);
    assert_eq!(
        ok(etcdctl(
            &ep,
            &[
                "get",
                "",
                "--prefix",
                "--sort-by=MODIFY",
                "--order=DESCEND",
                "--print-value-only"
            ]
        )),
        "1b\nx\n3\n2\n"
    );
    assert_eq!(
        ok(etcdctl(
            &ep,
            &[
                "get",
                "",
                "--prefix",
                "--sort-by=VALUE",
                "--order=ASCEND",
                "--print-value-only"
            ]
        )),
        "1b\n2\n3\nx\n"
    );
    assert_eq!(
        ok(etcdctl(
            &ep,
            &[
                "get",
                "",
                "--prefix",
                "--sort-by=VERSION",
                "--order=DESCEND",
                "--keys-only"
            ]
        )),
        "a\n\nb\n\nc\n\nfoo\n\n"
    );
    assert_eq!(ok(etcdctl(&ep, &["get", "a", "--rev", "2"])), "a\n1\n");
    assert_eq!(ok(etcdctl(&ep, &["get", "c", "--rev", "3"])), "");
    assert_eq!(
        ok(etcdctl(&ep, &["get", "a", "--consistency=s"])),
        "a\n1b\n"
    );
}

// Guards deletes: single, range, prefix, from-key, --prev-kv; deleting a
// missing key changes nothing (no revision bump).
#[test]
fn del_covers_single_prefix_from_key_and_prev_kv() {
    let keel = Keel::start(&[]);
    let ep = keel.endpoint();
    for (k, v) in [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5")] {
        put(&keel, k, v);
    } // revision 6
    assert_eq!(ok(etcdctl(&ep, &["del", "a", "--prev-kv"])), "1\na\n1\n");
    assert_eq!(ok(etcdctl(&ep, &["del", "a"])), "0\n");
    let rev = json(&ok(etcdctl(&ep, &["get", "b", "-w", "json"])))["header"]["revision"].clone();
    assert_eq!(rev, 7, "a no-op delete must not add a revision");
    assert_eq!(ok(etcdctl(&ep, &["del", "b", "d"])), "2\n");
    assert_eq!(ok(etcdctl(&ep, &["del", "d", "--from-key"])), "2\n");
    assert_eq!(ok(etcdctl(&ep, &["get", "", "--prefix"])), "");
    put(&keel, "p/1", "x");
    put(&keel, "p/2", "y");
    put(&keel, "q", "z");
    assert_eq!(ok(etcdctl(&ep, &["del", "p/", "--prefix"])), "2\n");
    assert_eq!(
        ok(etcdctl(&ep, &["get", "", "--prefix", "--keys-only"])),
        "q\n\n"
    );
    // Recreated keys start a new generation: version 1, new create revision.
    put(&keel, "p/1", "again");
    let kv = json(&ok(etcdctl(&ep, &["get", "p/1", "-w", "json"])))["kvs"][0].clone();
    assert_eq!(kv["version"], 1);
    assert_eq!(kv["create_revision"], kv["mod_revision"]);
}

// Guards txn through etcdctl's interactive syntax: compares, success and
// failure branches, and the printed outcome.
#[test]
fn txn_runs_the_branch_its_compares_choose() {
    let keel = Keel::start(&[]);
    let ep = keel.endpoint();
    put(&keel, "k", "v");
    let out = ok(etcdctl_with_stdin(
        &ep,
        &["txn"],
        Some("value(\"k\") = \"v\"\n\nput k v2\nget k\n\nput k nope\n\n"),
    ));
    assert_eq!(out, "SUCCESS\n\nOK\n\nk\nv2\n");
    let out = ok(etcdctl_with_stdin(
        &ep,
        &["txn"],
        Some("mod(\"k\") < \"2\"\n\nput k never\n\nput other yes\n\n"),
    ));
    assert_eq!(out, "FAILURE\n\nOK\n");
    assert_eq!(
        ok(etcdctl(&ep, &["get", "other", "--print-value-only"])),
        "yes\n"
    );
    assert_eq!(
        ok(etcdctl(&ep, &["get", "k", "--print-value-only"])),
        "v2\n"
    );
    let out = ok(etcdctl_with_stdin(
        &ep,
        &["txn", "-w", "json"],
        Some("version(\"k\") = \"2\"\ncreate(\"k\") = \"2\"\nmod(\"k\") > \"0\"\n\ndel k\n\n\n"),
    ));
    let resp = json(&out);
    assert_eq!(resp["succeeded"], true);
    assert_eq!(resp["header"]["revision"], 5);
}

// Guards compaction and etcd's exact errors for compacted and future revisions.
#[test]
fn compaction_makes_old_revisions_unreadable_with_etcds_errors() {
    let keel = Keel::start(&[]);
    let ep = keel.endpoint();
    put(&keel, "foo", "v1"); // 2
    put(&keel, "foo", "v2"); // 3
    put(&keel, "foo", "v3"); // 4
    assert_eq!(
        ok(etcdctl(&ep, &["compaction", "3"])),
        "compacted revision 3\n"
    );
    let e = err(etcdctl(&ep, &["get", "foo", "--rev", "2"]));
    assert!(
        e.contains("Error: etcdserver: mvcc: required revision has been compacted"),
        "{e}"
    );
    assert_eq!(ok(etcdctl(&ep, &["get", "foo", "--rev", "3"])), "foo\nv2\n");
    let e = err(etcdctl(&ep, &["get", "foo", "--rev", "100"]));
    assert!(
        e.contains("Error: etcdserver: mvcc: required revision is a future revision"),
        "{e}"
    );
    let e = err(etcdctl(&ep, &["compaction", "2"]));
    assert!(
        e.contains("Error: etcdserver: mvcc: required revision has been compacted"),
        "{e}"
    );
    let e = err(etcdctl(&ep, &["compaction", "50"]));
    assert!(
        e.contains("Error: etcdserver: mvcc: required revision is a future revision"),
        "{e}"
    );
    assert_eq!(ok(etcdctl(&ep, &["get", "foo"])), "foo\nv3\n");
}

// Guards request validation and apply-time errors with etcd's strings.
#[test]
fn bad_requests_get_etcds_error_strings() {
    let keel = Keel::start(&[]);
    let ep = keel.endpoint();
    let e = err(etcdctl(&ep, &["put", "", "v"]));
    assert!(e.contains("Error: etcdserver: key is not provided"), "{e}");
    let e = err(etcdctl(&ep, &["put", "missing", "--ignore-value"]));
    assert!(e.contains("Error: etcdserver: key not found"), "{e}");
    let e = err(etcdctl(&ep, &["put", "x", "y", "--lease=1234"]));
    assert!(
        e.contains("Error: etcdserver: requested lease not found"),
        "{e}"
    );
    // None of them changed the store.
    let got = json(&ok(etcdctl(&ep, &["get", "", "--prefix", "-w", "json"])));
    assert_eq!(got["header"]["revision"], 1);
    assert_eq!(
        got["count"],
        serde_json::Value::Null,
        "no keys: count is omitted as 0"
    );
}

// Guards `put --ignore-value` / `--ignore-lease`: keep the old value or lease.
#[test]
fn put_ignore_value_keeps_the_stored_value() {
    let keel = Keel::start(&[]);
    let ep = keel.endpoint();
    put(&keel, "k", "kept");
    assert_eq!(ok(etcdctl(&ep, &["put", "k", "--ignore-value"])), "OK\n");
    let kv = json(&ok(etcdctl(&ep, &["get", "k", "-w", "json"])))["kvs"][0].clone();
    assert_eq!(b64(&kv["value"]), "kept");
    assert_eq!(kv["version"], 2);
    assert_eq!(
        ok(etcdctl(&ep, &["put", "k", "new", "--ignore-lease"])),
        "OK\n"
    );
    assert_eq!(
        ok(etcdctl(&ep, &["get", "k", "--print-value-only"])),
        "new\n"
    );
}

// Guards `etcdctl endpoint status` and `endpoint health`: the numbers come
// from the member (leader is itself, term >= 1, applied index = raft index).
#[test]
fn endpoint_status_and_health_describe_the_member() {
    let keel = Keel::start(&[]);
    let ep = keel.endpoint();
    put(&keel, "a", "1");
    // etcdctl 3.4 prints the health verdict on stderr.
    let out = etcdctl(&ep, &["endpoint", "health"]);
    assert!(out.status.success());
    let health = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        health.starts_with(&format!("{ep} is healthy: successfully committed proposal")),
        "{health}"
    );
    let status = json(&ok(etcdctl(&ep, &["endpoint", "status", "-w", "json"])));
    let s = &status[0]["Status"];
    assert_eq!(s["version"], "3.4.23");
    assert_eq!(s["leader"], s["header"]["member_id"]);
    assert!(s["raftTerm"].as_u64().unwrap_or(0) >= 1);
    assert!(s["raftIndex"].as_u64().unwrap_or(0) >= 2);
    assert_eq!(s["raftIndex"], s["raftAppliedIndex"]);
    assert!(s["dbSize"].as_i64().unwrap_or(0) > 0);
    let table = ok(etcdctl(&ep, &["endpoint", "status"]));
    assert!(
        table.contains("3.4.23, ") && table.contains(", true, false, "),
        "{table}"
    );
}
