//! etcd's flags and ETCD_* variables: names, defaults, errors, warnings.

mod common;

use std::process::Command;

use common::{etcdctl, free_port, ok, Keel};

fn keel(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run keel")
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// Guards the exit-code contract: an unknown flag is an error (code 1), not
// silently ignored.
#[test]
fn unknown_flag_is_an_error_with_exit_code_1() {
    let out = keel(&["--no-such-flag=1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--no-such-flag"), "{}", stderr(&out));
}

#[test]
fn malformed_values_are_errors_naming_the_flag() {
    for (args, needle) in [
        (&["--max-txn-ops=many"][..], "--max-txn-ops"),
        (&["--unsafe-no-fsync=maybe"][..], "--unsafe-no-fsync"),
        (
            &["--listen-client-urls=notaurl"][..],
            "--listen-client-urls",
        ),
        (
            &["--grpc-keepalive-interval=5 parsecs"][..],
            "--grpc-keepalive-interval",
        ),
        (
            &["--initial-cluster-state=sideways"][..],
            "--initial-cluster-state",
        ),
        (&["--log-level=chatty"][..], "--log-level"),
    ] {
        let out = keel(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn stray_arguments_are_not_valid_flags() {
    let out = keel(&["serve"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("'serve' is not a valid flag"),
        "{}",
        stderr(&out)
    );
}

// Guards etcd's validation messages for inconsistent timing flags.
#[test]
fn election_timeout_must_be_five_heartbeats() {
    let out = keel(&["--heartbeat-interval=300", "--election-timeout=1000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[300ms]"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn listen_client_urls_without_advertise_client_urls_is_refused() {
    let out = keel(&["--listen-client-urls=http://127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--advertise-client-urls is required"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn version_prints_and_exits_zero() {
    let out = keel(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("keel Version: ") && text.contains("etcd API Version: 3.4.23"),
        "{text}"
    );
}

#[test]
fn help_lists_etcd_flags_with_defaults() {
    let out = keel(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--data-dir",
        "--listen-client-urls",
        "[default: http://localhost:2379]",
        "ETCD_MAX_TXN_OPS",
    ] {
        assert!(text.contains(needle), "missing {needle}");
    }
}

// Guards ETCD_* variables: they configure the server like the flags do.
#[test]
fn etcd_environment_variables_configure_the_server() {
    let keel = Keel::start_with_env(&[], &[("ETCD_MAX_TXN_OPS", "1")]);
    let out =
        common::etcdctl_with_stdin(&keel.endpoint(), &["txn"], Some("\nput a 1\nput b 2\n\n\n"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("too many operations in txn request"));
    assert!(!keel.log().contains("unrecognized environment variable"));
}

// Guards etcd's rule: a flag and its variable both set is a conflict.
#[test]
fn flag_and_variable_both_set_is_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["--max-txn-ops=5"])
        .env("ETCD_MAX_TXN_OPS", "7")
        .output()
        .expect("run keel");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("conflicting environment variable \"ETCD_MAX_TXN_OPS\""),
        "{}",
        stderr(&out)
    );
}

// Guards "never silently ignored": flags keel does not act on yet, legacy
// names and unknown ETCD_* variables are named in startup warnings.
#[test]
fn flags_not_acted_on_yet_are_named_in_a_startup_warning() {
    let keel = Keel::start_with_env(&["--max-wals=3", "--cors=*"], &[("ETCD_NOT_A_FLAG", "x")]);
    let log = keel.log();
    assert!(
        log.contains("--max-wals is accepted but not acted on yet"),
        "{log}"
    );
    assert!(
        log.contains("--cors is accepted but not acted on yet"),
        "{log}"
    );
    assert!(
        log.contains("unrecognized environment variable ETCD_NOT_A_FLAG"),
        "{log}"
    );
}

// Guards Go-style single-dash flags, which etcd scripts use.
#[test]
fn single_dash_flags_work_like_etcds() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = keel(&["-version"]);
    assert_eq!(out.status.code(), Some(0));
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .current_dir(tmp.path())
        .args([
            "-name",
            "solo",
            &format!("-listen-client-urls={url}"),
            &format!("-advertise-client-urls={url}"),
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + common::START_DEADLINE;
    let endpoint = format!("127.0.0.1:{port}");
    while !etcdctl(&endpoint, &["endpoint", "health", "--command-timeout=1s"])
        .status
        .success()
    {
        assert!(std::time::Instant::now() < deadline, "keel did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(ok(etcdctl(&endpoint, &["put", "k", "v"])), "OK\n");
    // The default data dir is `${name}.keel` in the working directory.
    assert!(tmp
        .path()
        .join("solo.keel")
        .join("member")
        .join("wal")
        .is_dir());
    let _ = child.kill();
    let _ = child.wait();
}

// Guards data-dir exclusivity: a second member on the same dir is refused.
#[test]
fn second_process_on_the_same_data_dir_is_refused() {
    let keel = Keel::start(&[]);
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let out = keel_with_dir(&keel, &url);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("in use by another keel process"),
        "{}",
        stderr(&out)
    );
}

fn keel_with_dir(keel: &Keel, url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .arg(format!("--data-dir={}", keel.data_dir.display()))
        .arg(format!("--listen-client-urls={url}"))
        .arg(format!("--advertise-client-urls={url}"))
        .output()
        .expect("run keel")
}

/// The kernel's view of a running keel: `THP_enabled` in /proc/PID/status is 0 once the
/// process set PR_SET_THP_DISABLE.
fn thp_enabled(keel: &Keel) -> String {
    let pid = keel.child.as_ref().expect("running").id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("THP_enabled:"))
        .expect("THP_enabled in /proc/PID/status")
        .trim()
        .to_string()
}

// keel turns transparent huge pages off for itself (their faults cost the core thread time
// and the tail latency; docs/tuning.md); MIMALLOC_ALLOW_THP set leaves them to mimalloc.
#[test]
fn transparent_huge_pages_are_off_unless_mimalloc_allow_thp_is_set() {
    let off = Keel::start(&[]);
    assert_eq!(thp_enabled(&off), "0", "{}", off.log());
    let left = Keel::start_with_env(&[], &[("MIMALLOC_ALLOW_THP", "1")]);
    assert_eq!(thp_enabled(&left), "1", "{}", left.log());
    assert!(
        left.log()
            .contains("transparent huge pages left as configured"),
        "{}",
        left.log()
    );
}
