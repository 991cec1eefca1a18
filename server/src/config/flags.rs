//! The table of every etcd 3.4 server flag: name, value kind, etcd's default,
//! help text, and whether keel acts on it yet. `etcd --help` (etcdmain/help.go
//! and config.go in etcd 3.4) is the source of names and defaults.
//!
//! One table, so that the command line parser, the `ETCD_*` environment
//! mapping, the startup warning for flags keel does not act on yet and the
//! documentation (docs/ops/flags.md) cannot drift apart.

/// How a flag's value is written and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Go `strconv.ParseBool` syntax; `--flag` alone means true.
    Bool,
    /// Free text.
    Text,
    /// Unsigned integer.
    Uint,
    /// Signed integer.
    Int,
    /// Go duration (`5s`, `2h`, `100ms`, `1m30s`).
    Duration,
    /// Comma-separated URLs.
    Urls,
}

/// Whether keel acts on a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Support {
    /// keel implements the flag's meaning.
    Acted,
    /// Accepted for compatibility; setting it prints a startup warning naming
    /// the flag and why it has no effect yet.
    NotYet(&'static str),
    /// Flags etcd 3.4 itself accepts and ignores (legacy v0.4 names).
    EtcdIgnored,
}

/// One server flag.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlagSpec {
    /// Long name without dashes, exactly as etcd spells it.
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    /// etcd's default, as text; `""` means empty.
    pub(crate) default: &'static str,
    pub(crate) help: &'static str,
    pub(crate) support: Support,
}

const fn f(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    help: &'static str,
    support: Support,
) -> FlagSpec {
    FlagSpec {
        name,
        kind,
        default,
        help,
        support,
    }
}

use Kind::{Bool, Duration, Int, Text, Uint, Urls};
use Support::{Acted, EtcdIgnored, NotYet};

const TLS: Support = NotYet("TLS is not implemented yet; client and peer traffic is plain HTTP/2");
const PROXY: Support = NotYet("keel has no v2 proxy mode");
const DISCOVERY: Support = NotYet("discovery bootstrap is not implemented; use --initial-cluster");
const CLUSTER: Support =
    NotYet("forcing a new cluster from a member's data is not implemented yet");
const AUTH: Support = NotYet("auth is not implemented yet");

/// Every flag of etcd 3.4's server, in etcd's help order, plus keel's own
/// (marked "keel:" in their help).
pub(crate) const FLAGS: &[FlagSpec] = &[
    // Member
    f("name", Text, "default", "Human-readable name for this member.", Acted),
    f("data-dir", Text, "${name}.keel", "Path to the data directory.", Acted),
    f("wal-dir", Text, "", "Path to the dedicated wal directory.", Acted),
    f("snapshot-count", Uint, "100000", "Number of committed transactions to trigger a snapshot to disk.", Acted),
    f("heartbeat-interval", Uint, "100", "Time (in milliseconds) of a heartbeat interval.", Acted),
    f("election-timeout", Uint, "1000", "Time (in milliseconds) for an election to timeout.", Acted),
    f("initial-election-tick-advance", Bool, "true", "Whether to fast-forward initial election ticks on boot for faster election.", Acted),
    f("listen-peer-urls", Urls, "http://localhost:2380", "List of URLs to listen on for peer traffic.", Acted),
    f("listen-client-urls", Urls, "http://localhost:2379", "List of URLs to listen on for client traffic.", Acted),
    f("max-snapshots", Uint, "5", "Maximum number of snapshot files to retain (0 is unlimited).", NotYet("keel keeps no snapshot files yet")),
    f("max-wals", Uint, "5", "Maximum number of wal files to retain (0 is unlimited).", NotYet("WAL segments are deleted once a store checkpoint covers them, not by count")),
    f("quota-backend-bytes", Int, "0", "Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).", Acted),
    f("backend-batch-interval", Duration, "", "BackendBatchInterval is the maximum time before commit the backend transaction.", Acted),
    f("backend-batch-limit", Int, "0", "BackendBatchLimit is the maximum operations before commit the backend transaction.", Acted),
    f("max-txn-ops", Uint, "128", "Maximum number of operations permitted in a transaction.", Acted),
    f("max-request-bytes", Uint, "1572864", "Maximum client request size in bytes the server will accept.", Acted),
    f("max-concurrent-streams", Uint, "4294967295", "Maximum concurrent streams that each client can open at a time.", Acted),
    f("grpc-keepalive-min-time", Duration, "5s", "Minimum duration interval that a client should wait before pinging server.", NotYet("tonic exposes no minimum client ping interval")),
    f("grpc-keepalive-interval", Duration, "2h", "Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).", Acted),
    f("grpc-keepalive-timeout", Duration, "20s", "Additional duration of wait before closing a non-responsive connection (0 to disable).", Acted),
    // Clustering
    f("initial-advertise-peer-urls", Urls, "http://localhost:2380", "List of this member's peer URLs to advertise to the rest of the cluster.", Acted),
    f("initial-cluster", Text, "default=http://localhost:2380", "Initial cluster configuration for bootstrapping.", Acted),
    f("initial-cluster-state", Text, "new", "Initial cluster state ('new' or 'existing').", Acted),
    f("initial-cluster-token", Text, "etcd-cluster", "Initial cluster token for the etcd cluster during bootstrap.", Acted),
    f("advertise-client-urls", Urls, "http://localhost:2379", "List of this member's client URLs to advertise to the public.", Acted),
    f("discovery", Text, "", "Discovery URL used to bootstrap the cluster.", DISCOVERY),
    f("discovery-fallback", Text, "proxy", "Expected behavior ('exit' or 'proxy') when discovery services fails.", DISCOVERY),
    f("discovery-proxy", Text, "", "HTTP proxy to use for traffic to discovery service.", DISCOVERY),
    f("discovery-srv", Text, "", "DNS srv domain used to bootstrap the cluster.", DISCOVERY),
    f("discovery-srv-name", Text, "", "Suffix to the dns srv name queried when bootstrapping.", DISCOVERY),
    f("strict-reconfig-check", Bool, "true", "Reject reconfiguration requests that would cause quorum loss.", Acted),
    f("pre-vote", Bool, "false", "Enable to run an additional Raft election phase.", Acted),
    f("auto-compaction-retention", Text, "0", "Auto compaction retention length. 0 means disable auto compaction.", Acted),
    f("auto-compaction-mode", Text, "periodic", "Interpret 'auto-compaction-retention' one of: periodic|revision.", Acted),
    f("enable-v2", Bool, "false", "Accept etcd V2 client requests.", NotYet("keel serves only the v3 API")),
    // Security
    f("cert-file", Text, "", "Path to the client server TLS cert file.", TLS),
    f("key-file", Text, "", "Path to the client server TLS key file.", TLS),
    f("client-cert-auth", Bool, "false", "Enable client cert authentication.", TLS),
    f("client-crl-file", Text, "", "Path to the client certificate revocation list file.", TLS),
    f("client-cert-allowed-hostname", Text, "", "Allowed TLS hostname for client cert authentication.", TLS),
    f("trusted-ca-file", Text, "", "Path to the client server TLS trusted CA cert file.", TLS),
    f("auto-tls", Bool, "false", "Client TLS using generated certificates.", TLS),
    f("peer-cert-file", Text, "", "Path to the peer server TLS cert file.", TLS),
    f("peer-key-file", Text, "", "Path to the peer server TLS key file.", TLS),
    f("peer-client-cert-auth", Bool, "false", "Enable peer client cert authentication.", TLS),
    f("peer-trusted-ca-file", Text, "", "Path to the peer server TLS trusted CA file.", TLS),
    f("peer-cert-allowed-cn", Text, "", "Required CN for client certs connecting to the peer endpoint.", TLS),
    f("peer-cert-allowed-hostname", Text, "", "Allowed TLS hostname for inter peer authentication.", TLS),
    f("peer-auto-tls", Bool, "false", "Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided.", TLS),
    f("peer-crl-file", Text, "", "Path to the peer certificate revocation list file.", TLS),
    f("cipher-suites", Text, "", "Comma-separated list of supported TLS cipher suites between client/server and peers.", TLS),
    f("cors", Text, "*", "Comma-separated whitelist of origins for CORS, or cross-origin resource sharing, (empty or * means allow all).", NotYet("the HTTP/JSON gateway is not implemented yet")),
    f("host-whitelist", Text, "*", "Acceptable hostnames from HTTP client requests, if server is not secure (empty or * means allow all).", NotYet("the HTTP/JSON gateway is not implemented yet")),
    // Auth
    f("auth-token", Text, "simple", "Specify a v3 authentication token type and its options ('simple' or 'jwt').", AUTH),
    f("bcrypt-cost", Uint, "10", "Specify the cost / strength of the bcrypt algorithm for hashing auth passwords.", AUTH),
    f("auth-token-ttl", Uint, "300", "Time (in seconds) of the auth-token-ttl.", AUTH),
    // Profiling and monitoring
    f("enable-pprof", Bool, "false", "Enable runtime profiling data via HTTP server.", NotYet("keel has no pprof endpoint (use perf)")),
    f("metrics", Text, "basic", "Set level of detail for exported metrics, specify 'extensive' to include histogram metrics.", NotYet("metrics are not implemented yet")),
    f("listen-metrics-urls", Urls, "", "List of URLs to listen on for the metrics and health endpoints.", NotYet("metrics are not implemented yet")),
    // Logging
    f("logger", Text, "capnslog", "Specify 'zap' for structured logging or 'capnslog'.", Acted),
    f("log-outputs", Text, "default", "Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or list of comma separated output targets.", Acted),
    f("log-output", Text, "default", "[TO BE DEPRECATED IN v3.5] use '--log-outputs'.", Acted),
    f("log-level", Text, "info", "Configures log level. Only supports debug, info, warn, error, panic, or fatal.", Acted),
    f("debug", Bool, "false", "Enable debug-level logging for etcd. Use '--log-level=debug' instead.", Acted),
    f("log-package-levels", Text, "", "Specify a particular log level for each etcd package.", NotYet("use --log-level or RUST_LOG")),
    // v2 proxy
    f("proxy", Text, "off", "Proxy mode setting ('off', 'readonly' or 'on').", PROXY),
    f("proxy-failure-wait", Uint, "5000", "Time (in milliseconds) an endpoint will be held in a failed state.", PROXY),
    f("proxy-refresh-interval", Uint, "30000", "Time (in milliseconds) of the endpoints refresh interval.", PROXY),
    f("proxy-dial-timeout", Uint, "1000", "Time (in milliseconds) for a dial to timeout.", PROXY),
    f("proxy-write-timeout", Uint, "5000", "Time (in milliseconds) for a write to timeout.", PROXY),
    f("proxy-read-timeout", Uint, "0", "Time (in milliseconds) for a read to timeout.", PROXY),
    // Experimental
    f("experimental-initial-corrupt-check", Bool, "false", "Enable to check data corruption before serving any client/peer traffic.", NotYet("the automatic corruption check is not implemented yet; HashKV is served (etcdctl endpoint hashkv)")),
    f("experimental-corrupt-check-time", Duration, "0s", "Duration of time between cluster corruption check passes.", NotYet("the automatic corruption check is not implemented yet; HashKV is served (etcdctl endpoint hashkv)")),
    f("experimental-enable-v2v3", Text, "", "Serve v2 requests through the v3 backend under a given prefix.", NotYet("keel serves only the v3 API")),
    f("experimental-backend-bbolt-freelist-type", Text, "array", "ExperimentalBackendFreelistType specifies the type of freelist that boltdb backend uses.", NotYet("keel has no bbolt backend")),
    f("experimental-enable-lease-checkpoint", Bool, "false", "Enable leader to send regular checkpoints to other members to prevent reset of remaining TTL on leader change.", NotYet("keel always checkpoints lease TTLs (see --experimental-lease-checkpoint-interval)")),
    f("experimental-enable-lease-checkpoint-persist", Bool, "false", "Enable persisting remainingTTL to prevent indefinite auto-renewal of long lived leases.", NotYet("keel always persists lease checkpoints")),
    f("experimental-compaction-batch-limit", Int, "1000", "Sets the maximum revisions deleted in each compaction batch.", NotYet("keel compacts online in fixed steps of 100 index entries between applies")),
    f("experimental-watch-progress-notify-interval", Duration, "10m", "Duration of periodic watch progress notifications.", Acted),
    f("experimental-lease-checkpoint-interval", Duration, "5m", "keel (etcd 3.5's name): how often the leader records each lease's remaining TTL through Raft.", Acted),
    f("experimental-warning-apply-duration", Duration, "100ms", "Time duration after which a warning is generated if request takes more time.", Acted),
    f("experimental-peer-skip-client-san-verification", Bool, "false", "Skip verification of SAN field in client certificate for peer connections.", TLS),
    f("enable-grpc-gateway", Bool, "true", "Enable GRPC gateway.", NotYet("the HTTP/JSON gateway is not implemented yet")),
    // Unsafe
    f("unsafe-no-fsync", Bool, "false", "Disables fsync, unsafe, will cause data loss.", Acted),
    f("force-new-cluster", Bool, "false", "Force to create a new one-member cluster.", CLUSTER),
    f("version", Bool, "false", "Print the version and exit.", Acted),
    f("config-file", Text, "", "Path to the server configuration file.", NotYet("configuration files are not read yet; pass flags or ETCD_* variables")),
    // keel's own
    f("storage-io", Text, "std", "keel: storage I/O backend for the WAL: 'std' (pwrite + fdatasync on the core thread; the measured default, see docs/benchmarks.md) or 'glommio' (O_DIRECT, io_uring).", Acted),
    f("wal-segment-size-bytes", Uint, "67108864", "keel: target size of a WAL segment file (etcd's is fixed at 64 MiB); a multiple of 4096, at least 8192.", Acted),
    f("wal-batch-limit", Uint, "8192", "keel: most requests a member takes into one Raft batch (on the leader: one WAL write and fdatasync).", Acted),
    f("wal-batch-interval", Duration, "0s", "keel: how long a member waits after a batch's first client request for more before proposing it (0: at once; requests that arrive during a write form the next batch anyway).", Acted),
    f("wal-preallocation", Text, "zeroed", "keel: how a new WAL segment is prepared: 'zeroed' (allocated and written with zeros in the background, so appends overwrite written blocks), 'fallocate' (allocated only) or 'none' (appends grow the file).", Acted),
    f("wal-sync", Text, "fdatasync", "keel: how a WAL append is made durable: 'fdatasync' (write, then fdatasync) or 'dsync' (one pwritev2 with RWF_DSYNC that returns once the write is durable; with --storage-io glommio it is write + fdatasync). --unsafe-no-fsync overrides it.", Acted),
    // Flags etcd 3.4 accepts and ignores (etcd 0.4 names).
    f("cluster-active-size", Text, "", "", EtcdIgnored),
    f("cluster-remove-delay", Text, "", "", EtcdIgnored),
    f("cluster-sync-interval", Text, "", "", EtcdIgnored),
    f("config", Text, "", "", EtcdIgnored),
    f("force", Text, "", "", EtcdIgnored),
    f("max-result-buffer", Text, "", "", EtcdIgnored),
    f("max-retry-attempts", Text, "", "", EtcdIgnored),
    f("peer-heartbeat-interval", Text, "", "", EtcdIgnored),
    f("peer-election-timeout", Text, "", "", EtcdIgnored),
    f("retry-interval", Text, "", "", EtcdIgnored),
    f("snapshot", Text, "", "", EtcdIgnored),
    f("v", Text, "", "", EtcdIgnored),
    f("vv", Text, "", "", EtcdIgnored),
];

/// The table entry for `name`, if etcd (or keel) has such a flag.
pub(crate) fn spec(name: &str) -> Option<&'static FlagSpec> {
    FLAGS.iter().find(|s| s.name == name)
}

/// etcd's environment variable for a flag: `ETCD_` + upper case, `-` -> `_`.
pub(crate) fn env_name(flag: &str) -> String {
    format!("ETCD_{}", flag.to_ascii_uppercase().replace('-', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/ops/flags.md, rendered from the table.
    fn render_markdown() -> String {
        let mut out = String::from(
            "# keel server flags\n\n\
             Generated from `server/src/config/flags.rs` by the test \
             `flags_doc_matches_the_flag_table` (`KEEL_REWRITE=1 cargo test -p keel-server \
             flags_doc` rewrites it). Every flag of etcd 3.4's server is accepted with etcd's \
             name and default; each can also be set with its `ETCD_*` variable (setting both is \
             an error, as in etcd). A flag keel does not act on yet is named in a warning at \
             startup.\n\n\
             | flag | env | default | keel | meaning |\n| --- | --- | --- | --- | --- |\n",
        );
        for spec in FLAGS.iter().filter(|s| s.support != Support::EtcdIgnored) {
            let support = match spec.support {
                Support::Acted => "acted on".to_string(),
                Support::NotYet(why) => format!("accepted, warns: {why}"),
                Support::EtcdIgnored => unreachable!("filtered"),
            };
            let default = if spec.default.is_empty() {
                String::new()
            } else {
                format!("`{}`", spec.default)
            };
            out.push_str(&format!(
                "| `--{}` | `{}` | {} | {} | {} |\n",
                spec.name,
                env_name(spec.name),
                default,
                support,
                spec.help.replace('|', "\\|")
            ));
        }
        let ignored: Vec<String> = FLAGS
            .iter()
            .filter(|s| s.support == Support::EtcdIgnored)
            .map(|s| format!("`--{}`", s.name))
            .collect();
        out.push_str(&format!(
            "\nLegacy names etcd 3.4 accepts and ignores (keel too, with a warning): {}.\n",
            ignored.join(", ")
        ));
        out
    }

    // Guards the docs against drifting from the parser: the flag reference
    // is the table, rendered.
    #[test]
    fn flags_doc_matches_the_flag_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ops/flags.md");
        let rendered = render_markdown();
        if std::env::var_os("KEEL_REWRITE").is_some() {
            std::fs::write(&path, &rendered).expect("write docs/ops/flags.md");
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == rendered,
            "docs/ops/flags.md is stale: run KEEL_REWRITE=1 cargo test -p keel-server flags_doc"
        );
    }

    #[test]
    fn flag_names_are_unique() {
        let mut names: Vec<&str> = FLAGS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }
}
