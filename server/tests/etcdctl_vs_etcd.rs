//! Side by side: the same etcdctl session against a real etcd 3.4 and against
//! keel must print the same thing, byte for byte (after replacing the member
//! and cluster ids and the raft term, which differ by design), with the same
//! exit codes and the same `Error:` lines. Both stores start at revision 1,
//! so every revision in the output must match too.

mod common;

use common::{etcdctl_with_stdin, Etcd, Keel};

/// (args, stdin) for one etcdctl run.
type Step = (&'static [&'static str], Option<&'static str>);

const SESSION: &[Step] = &[
    (&["put", "foo", "bar"], None),
    (&["put", "foo", "baz", "--prev-kv"], None),
    (&["put", "foo", "qux", "--prev-kv", "-w", "json"], None),
    (&["get", "foo", "-w", "json"], None),
    (&["put", "a", "1"], None),
    (&["put", "b", "2"], None),
    (&["put", "c", "3"], None),
    (&["put", "dir/x", "10"], None),
    (&["put", "dir/y", "20"], None),
    (&["get", "", "--prefix", "-w", "json"], None),
    (&["get", "dir/", "--prefix", "--keys-only"], None),
    (&["get", "b", "--from-key", "-w", "json"], None),
    (&["get", "a", "c", "-w", "json"], None),
    (
        &["get", "a", "--from-key", "--limit", "2", "-w", "json"],
        None,
    ),
    (
        &[
            "get",
            "",
            "--prefix",
            "--limit",
            "3",
            "--sort-by=CREATE",
            "--order=DESCEND",
            "-w",
            "json",
        ],
        None,
    ),
    (&["get", "", "--prefix", "--sort-by=VALUE"], None),
    (
        &[
            "get",
            "",
            "--prefix",
            "--sort-by=VERSION",
            "--order=DESCEND",
            "--print-value-only",
        ],
        None,
    ),
    (
        &[
            "get",
            "",
            "--prefix",
            "--sort-by=MODIFY",
            "--order=ASCEND",
            "--keys-only",
        ],
        None,
    ),
    (&["get", "foo", "--rev", "2", "-w", "json"], None),
    (&["get", "foo", "--rev", "3"], None),
    (&["get", "", "--prefix", "--rev", "5", "-w", "json"], None),
    (&["get", "foo", "--consistency=s", "-w", "json"], None),
    (&["get", "missing", "-w", "json"], None),
    (&["del", "a", "--prev-kv", "-w", "json"], None),
    (&["del", "a"], None),
    (&["del", "dir/", "--prefix", "--prev-kv"], None),
    (&["put", "dir/x", "again"], None),
    (&["get", "dir/x", "-w", "json"], None),
    (
        &["txn", "-w", "json"],
        Some("value(\"foo\") = \"qux\"\n\nput foo t1\nget foo\ndel b\n\nput never x\n\n"),
    ),
    (
        &["txn"],
        Some("version(\"foo\") > \"10\"\n\nput never x\n\nput else yes\nget else\n\n"),
    ),
    (
        &["txn", "-w", "json"],
        Some("create(\"c\") = \"7\"\nmod(\"c\") < \"100\"\n\nget c\n\n\n"),
    ),
    (
        &["txn", "-w", "json"],
        Some("value(\"nokey\") = \"\"\n\nput nokey x\n\nput nokey y\n\n"),
    ),
    (&["get", "nokey", "-w", "json"], None),
    (&["put", "missing", "--ignore-value"], None),
    (&["put", "foo", "--ignore-value", "-w", "json"], None),
    (&["put", "foo", "v", "--ignore-lease"], None),
    (&["put", "x", "y", "--lease=1234"], None),
    (&["put", "", "v"], None),
    (&["get", ""], None),
    (&["del", ""], None),
    (&["compaction", "4"], None),
    (&["get", "foo", "--rev", "3"], None),
    (&["get", "foo", "--rev", "4", "-w", "json"], None),
    (&["get", "foo", "--rev", "1000"], None),
    (&["compaction", "3"], None),
    (&["compaction", "1000"], None),
    (&["get", "", "--from-key", "-w", "json"], None),
];

/// Member id, cluster id and raft term are per-deployment numbers; etcdctl's
/// retry warnings carry random target names. Neither is behaviour.
fn normalize(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.contains("retry_interceptor.go") {
            continue;
        }
        let mut line = line.to_string();
        for field in ["cluster_id", "member_id", "raft_term"] {
            let key = format!("\"{field}\":");
            while let Some(start) = line.find(&key) {
                let value_start = start + key.len();
                let value_end = line[value_start..]
                    .find(|c: char| !c.is_ascii_digit())
                    .map_or(line.len(), |i| value_start + i);
                line.replace_range(start..value_end, &format!("\"{field}\"=N"));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

// Guards drop-in compatibility for etcdctl users: any difference in output,
// revision numbers, error text or exit code is a bug in keel.
#[test]
fn etcdctl_session_prints_the_same_against_keel_and_etcd() {
    let etcd = Etcd::start();
    let keel = Keel::start(&[]);
    let mut differences = Vec::new();
    for (i, (args, stdin)) in SESSION.iter().enumerate() {
        let expected = etcdctl_with_stdin(&etcd.endpoint(), args, *stdin);
        let actual = etcdctl_with_stdin(&keel.endpoint(), args, *stdin);
        let render = |o: &std::process::Output| {
            format!(
                "exit {:?}\nstdout:\n{}stderr:\n{}",
                o.status.code(),
                normalize(&String::from_utf8_lossy(&o.stdout)),
                normalize(&String::from_utf8_lossy(&o.stderr))
            )
        };
        let (expected, actual) = (render(&expected), render(&actual));
        if expected != actual {
            differences.push(format!(
                "step {i}: etcdctl {}\n--- etcd\n{expected}--- keel\n{actual}",
                args.join(" ")
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} differences:\n{}",
        differences.len(),
        differences.join("\n")
    );
}
