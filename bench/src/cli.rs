//! The command line: etcd `benchmark`'s global flags and subcommands (same names, meanings
//! and defaults as etcd's tools/benchmark/cmd), plus keel's few additions, each marked
//! "keel:" in its help.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::workload;

/// etcd `benchmark`-style load generator; works against etcd and keel alike.
#[derive(Parser, Debug)]
#[command(name = "keel-bench", version)]
pub struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// etcd benchmark's global flags.
#[derive(Args, Debug, Clone)]
pub(crate) struct Global {
    /// gRPC endpoints (host:port or http://host:port, comma separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379",
        global = true
    )]
    pub(crate) endpoints: Vec<String>,
    /// Total number of gRPC connections (spread round robin over the endpoints).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub(crate) conns: u64,
    /// Total number of gRPC clients (concurrent requests, shared round robin over the conns).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub(crate) clients: u64,
    /// Use full floating point precision in the text report.
    #[arg(long, global = true)]
    pub(crate) precise: bool,
    /// Dial timeout for client connections (e.g. 500ms, 5s, 1m; etcd's default 0 = keel's 5s).
    #[arg(long, value_parser = parse_duration, global = true)]
    pub(crate) dial_timeout: Option<Duration>,
    /// Connect only to the leader node (found with Maintenance.Status on each endpoint).
    #[arg(long, global = true)]
    pub(crate) target_leader: bool,
    /// keel: print the report as JSON instead of text (no progress bar).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// keel: per-request timeout (e.g. 500ms, 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration, global = true)]
    pub(crate) request_timeout: Duration,
    /// keel: draw the latency distribution and the completed requests per second over time
    /// into this PNG file (needs /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf, Debian's
    /// fonts-dejavu-core, or a TTF named by KEEL_BENCH_FONT).
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) plot: Option<PathBuf>,
}

/// The subcommands, named as etcd's.
#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Benchmark put.
    Put(workload::put::PutArgs),
    /// Benchmark range.
    Range(workload::range::RangeArgs),
    /// Benchmark txn-put.
    #[command(name = "txn-put")]
    TxnPut(workload::txn_put::TxnPutArgs),
    /// Benchmark a mixed load of txn-put and txn-range.
    #[command(name = "txn-mixed")]
    TxnMixed(workload::txn_mixed::TxnMixedArgs),
    /// Benchmark watch: create many watchers, then put and count the events they receive.
    Watch(workload::watch::WatchArgs),
    /// Benchmark watch latency: the time from a put to each watcher's event.
    #[command(name = "watch-latency")]
    WatchLatency(workload::watch_latency::WatchLatencyArgs),
    /// Benchmark lease keepalive.
    #[command(name = "lease-keepalive")]
    LeaseKeepalive(workload::lease_keepalive::LeaseKeepaliveArgs),
}

/// Parses `500ms`, `10s`, `1m` or a bare number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?} (e.g. 500ms, 10s, 1m)"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("bad duration unit in {text:?} (ms, s, m)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::range::Consistency;

    fn parse(args: &[&str]) -> Cli {
        let mut argv = vec!["keel-bench"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv) {
            Ok(cli) => cli,
            Err(e) => panic!("{args:?} did not parse: {e}"),
        }
    }

    fn rejects(args: &[&str]) -> String {
        let mut argv = vec!["keel-bench"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv) {
            Ok(cli) => panic!("{args:?} parsed: {cli:?}"),
            Err(e) => e.to_string(),
        }
    }

    // The global flags keep etcd's names and defaults, and may come after the subcommand as
    // they may with etcd's cobra flags.
    #[test]
    fn global_flags_have_etcds_names_and_defaults() {
        let cli = parse(&["put"]);
        assert_eq!(cli.global.endpoints, vec!["127.0.0.1:2379"]);
        assert_eq!(cli.global.conns, 1);
        assert_eq!(cli.global.clients, 1);
        assert!(!cli.global.precise && !cli.global.target_leader && !cli.global.json);

        let cli = parse(&[
            "put",
            "--endpoints",
            "127.0.0.1:1,127.0.0.1:2",
            "--clients=64",
            "--conns",
            "8",
            "--dial-timeout",
            "500ms",
            "--target-leader",
        ]);
        assert_eq!(cli.global.endpoints, vec!["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!((cli.global.clients, cli.global.conns), (64, 8));
        assert_eq!(cli.global.dial_timeout, Some(Duration::from_millis(500)));
        assert!(cli.global.target_leader);
    }

    #[test]
    fn zero_clients_or_conns_are_rejected() {
        rejects(&["--clients", "0", "put"]);
        rejects(&["--conns", "0", "put"]);
    }

    #[test]
    fn put_takes_etcds_flags_with_etcds_defaults() {
        let Command::Put(args) = parse(&["put"]).command else {
            panic!("not put");
        };
        assert_eq!(args.keys.key_size, 8);
        assert_eq!(args.keys.key_space_size, 1);
        assert!(!args.sequential_keys);
        assert_eq!((args.val_size, args.total, args.rate), (8, 10_000, 0));

        let Command::Put(args) = parse(&[
            "put",
            "--key-size",
            "16",
            "--val-size",
            "256",
            "--key-space-size",
            "100000",
            "--sequential-keys",
            "--total",
            "5000",
            "--rate",
            "100",
        ])
        .command
        else {
            panic!("not put");
        };
        assert_eq!(args.keys.key_size, 16);
        assert_eq!(args.keys.key_space_size, 100_000);
        assert!(args.sequential_keys);
        assert_eq!((args.val_size, args.total, args.rate), (256, 5000, 100));
    }

    #[test]
    fn range_takes_a_key_an_optional_end_and_the_consistency() {
        let Command::Range(args) = parse(&["range", "foo"]).command else {
            panic!("not range");
        };
        assert_eq!((args.key.as_str(), args.end.as_str()), ("foo", ""));
        assert_eq!(args.consistency, Consistency::Linearizable);
        let Command::Range(args) = parse(&["range", "a", "b", "--consistency", "s"]).command else {
            panic!("not range");
        };
        assert_eq!((args.key.as_str(), args.end.as_str()), ("a", "b"));
        assert_eq!(args.consistency, Consistency::Serializable);
        let message = rejects(&["range", "a", "--consistency", "x"]);
        assert!(message.contains("--consistency"), "{message}");
        rejects(&["range"]);
    }

    #[test]
    fn txn_put_and_txn_mixed_take_etcds_flags() {
        let Command::TxnPut(args) = parse(&["txn-put", "--txn-ops", "4"]).command else {
            panic!("not txn-put");
        };
        assert_eq!((args.txn_ops, args.total, args.val_size), (4, 10_000, 8));

        let Command::TxnMixed(args) = parse(&["txn-mixed"]).command else {
            panic!("not txn-mixed");
        };
        assert_eq!(args.rw_ratio, 1.0);
        assert_eq!((args.limit, args.total), (1000, 10_000));
        assert_eq!(args.consistency, Consistency::Linearizable);
        let Command::TxnMixed(args) = parse(&[
            "txn-mixed",
            "--rw-ratio",
            "4",
            "--consistency",
            "s",
            "--end-key",
            "z",
            "--key-space-size",
            "1000",
        ])
        .command
        else {
            panic!("not txn-mixed");
        };
        assert_eq!(args.rw_ratio, 4.0);
        assert_eq!(args.consistency, Consistency::Serializable);
        assert_eq!(args.end_key, "z");
        assert_eq!(args.keys.key_space_size, 1000);
        rejects(&["txn-mixed", "--rw-ratio", "-1"]);
    }

    #[test]
    fn watch_commands_take_etcds_flags() {
        let Command::Watch(args) = parse(&["watch"]).command else {
            panic!("not watch");
        };
        assert_eq!((args.streams, args.watch_per_stream), (10, 100));
        assert_eq!(
            (args.watched_key_total, args.put_total, args.put_rate),
            (1, 1000, 0)
        );
        assert_eq!(args.key_size, 32);

        let Command::WatchLatency(args) = parse(&["watch-latency"]).command else {
            panic!("not watch-latency");
        };
        assert_eq!((args.streams, args.watchers_per_stream), (10, 10));
        assert_eq!((args.put_total, args.put_rate), (1000, 100));
        assert_eq!(args.watcher_total(), 100);
        // etcd 3.4 named the put count --total.
        let Command::WatchLatency(args) =
            parse(&["watch-latency", "--total", "50", "--watchers", "1000"]).command
        else {
            panic!("not watch-latency");
        };
        assert_eq!(args.put_total, 50);
        assert_eq!(args.watcher_total(), 1000);
        rejects(&[
            "watch-latency",
            "--watchers",
            "5",
            "--watchers-per-stream",
            "5",
        ]);
    }

    #[test]
    fn lease_keepalive_takes_total() {
        let Command::LeaseKeepalive(args) = parse(&["lease-keepalive", "--total", "7"]).command
        else {
            panic!("not lease-keepalive");
        };
        assert_eq!(args.total, 7);
    }

    #[test]
    fn durations_parse_with_ms_s_m_or_no_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("1h").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn plot_and_json_are_global() {
        let cli = parse(&["put", "--plot", "/tmp/x.png", "--json"]);
        assert_eq!(cli.global.plot, Some(PathBuf::from("/tmp/x.png")));
        assert!(cli.global.json);
    }
}
