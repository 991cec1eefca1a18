//! The typed server configuration and etcd's validation rules.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::flags::{spec, Kind, Support, FLAGS};
use super::parse::{parse_bool, parse_duration, value_error, RawValues};
use super::ConfigError;

/// etcd's upper bound for --election-timeout (etcd embed.maxElectionMs).
const ELECTION_TIMEOUT_MS_MAX: u64 = 50_000;

/// `--initial-cluster-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    /// Bootstrap a new cluster.
    New,
    /// Join an existing cluster.
    Existing,
}

/// Automatic compaction (`--auto-compaction-mode`/`-retention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Keep about this much history (`--auto-compaction-mode=periodic`).
    Periodic(Duration),
    /// Keep this many revisions (`--auto-compaction-mode=revision`).
    Revision(i64),
}

/// keel's `--storage-io`: how the WAL reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageIo {
    /// glommio DMA files: O_DIRECT through io_uring.
    Glommio,
    /// std files: pwrite + fdatasync (the default: the core awaits every WAL append before
    /// its next turn, so io_uring's asynchrony buys nothing yet, while waking the glommio
    /// core and its O_DIRECT sync cost more per put; measured in docs/benchmarks.md, "One
    /// client: where the latency goes").
    Std,
}

/// Where logs go (`--log-outputs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOutput {
    /// Standard error (etcd's `default` and `stderr`).
    Stderr,
    /// Standard output.
    Stdout,
    /// Appended to a file.
    File(PathBuf),
}

/// Everything the server needs from its flags, typed and validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--name`.
    pub name: String,
    /// `--data-dir` (default `${name}.keel`).
    pub data_dir: PathBuf,
    /// `--wal-dir`; `None` = `<data-dir>/member/wal`.
    pub wal_dir: Option<PathBuf>,
    /// `--snapshot-count`: applied entries between Raft log compactions.
    pub snapshot_count: u64,
    /// `--heartbeat-interval`, milliseconds (one Raft tick).
    pub heartbeat_interval_ms: u64,
    /// `--election-timeout`, milliseconds.
    pub election_timeout_ms: u64,
    /// `--initial-election-tick-advance`.
    pub initial_election_tick_advance: bool,
    /// `--listen-peer-urls`.
    pub listen_peer_urls: Vec<Url>,
    /// `--listen-client-urls`.
    pub listen_client_urls: Vec<Url>,
    /// `--advertise-client-urls`.
    pub advertise_client_urls: Vec<Url>,
    /// `--initial-advertise-peer-urls`.
    pub initial_advertise_peer_urls: Vec<Url>,
    /// `--initial-cluster`, as (member name, peer URL) pairs in the given order.
    pub initial_cluster: Vec<(String, Url)>,
    /// `--initial-cluster-state`.
    pub initial_cluster_state: ClusterState,
    /// `--initial-cluster-token`.
    pub initial_cluster_token: String,
    /// `--quota-backend-bytes` (0 = etcd's default quota).
    pub quota_backend_bytes: i64,
    /// `--backend-batch-interval`: most time between B+tree checkpoints
    /// (unset or 0 = etcd's 100 ms).
    pub backend_batch_interval: Duration,
    /// `--backend-batch-limit`: most applied entries between B+tree
    /// checkpoints (0 = etcd's 10000).
    pub backend_batch_limit: u64,
    /// `--auto-compaction-mode` with `--auto-compaction-retention` (None:
    /// retention 0, no automatic compaction).
    pub auto_compaction: Option<AutoCompaction>,
    /// `--max-txn-ops`.
    pub max_txn_ops: u64,
    /// `--max-request-bytes`.
    pub max_request_bytes: u64,
    /// `--max-concurrent-streams` (per client connection).
    pub max_concurrent_streams: u32,
    /// `--grpc-keepalive-interval` (None = disabled).
    pub grpc_keepalive_interval: Option<Duration>,
    /// `--grpc-keepalive-timeout`.
    pub grpc_keepalive_timeout: Option<Duration>,
    /// `--pre-vote`.
    pub pre_vote: bool,
    /// `--strict-reconfig-check`.
    pub strict_reconfig_check: bool,
    /// `--unsafe-no-fsync`.
    pub unsafe_no_fsync: bool,
    /// `--log-level` (or `debug` when `--debug`).
    pub log_level: tracing::Level,
    /// `--log-outputs`.
    pub log_outputs: Vec<LogOutput>,
    /// `--experimental-warning-apply-duration`.
    pub warning_apply_duration: Duration,
    /// `--experimental-lease-checkpoint-interval` (keel; etcd 3.5's name).
    pub lease_checkpoint_interval: Duration,
    /// `--experimental-watch-progress-notify-interval`.
    pub watch_progress_notify_interval: Duration,
    /// keel's `--storage-io`.
    pub storage_io: StorageIo,
    /// keel's `--wal-segment-size-bytes`.
    pub wal_segment_size_bytes: u64,
    /// keel's `--wal-preallocation`.
    pub wal_preallocation: keel_wal::Preallocation,
    /// keel's `--wal-sync`: `Fdatasync` or `Dsync` (never `None`: that is
    /// `--unsafe-no-fsync`, which overrides this when the WAL options are built).
    pub wal_sync: keel_wal::SyncMode,
    /// keel's `--wal-batch-limit`: most requests in one Raft batch (>= 1).
    pub wal_batch_limit: usize,
    /// keel's `--wal-batch-interval`: extra gathering time for a batch.
    pub wal_batch_interval: Duration,
    /// Startup warnings: flags accepted but not acted on, ignored names,
    /// unknown `ETCD_*` variables.
    pub warnings: Vec<String>,
}

/// Reads flags by name: the given value, or etcd's default.
struct Values<'a> {
    raw: &'a RawValues,
}

impl Values<'_> {
    fn text(&self, name: &'static str) -> (String, String) {
        let spec = spec(name).expect("flag names used by Config are in the table");
        match self.raw.get(name) {
            Some((value, origin)) => (value.clone(), origin.describe(name)),
            None => (spec.default.to_string(), format!("--{name}")),
        }
    }
    fn is_set(&self, name: &str) -> bool {
        self.raw.contains_key(name)
    }
    fn bool(&self, name: &'static str) -> Result<bool, ConfigError> {
        let (v, src) = self.text(name);
        parse_bool(&v).map_err(|r| value_error(&src, &v, r))
    }
    fn u64(&self, name: &'static str) -> Result<u64, ConfigError> {
        let (v, src) = self.text(name);
        v.parse()
            .map_err(|_| value_error(&src, &v, "not an unsigned integer"))
    }
    fn i64(&self, name: &'static str) -> Result<i64, ConfigError> {
        let (v, src) = self.text(name);
        v.parse()
            .map_err(|_| value_error(&src, &v, "not an integer"))
    }
    fn duration(&self, name: &'static str) -> Result<Duration, ConfigError> {
        let (v, src) = self.text(name);
        parse_duration(&v).map_err(|r| value_error(&src, &v, r))
    }
    fn urls(&self, name: &'static str) -> Result<Vec<Url>, ConfigError> {
        let (v, src) = self.text(name);
        parse_urls(&v).map_err(|r| value_error(&src, &v, r))
    }
}

fn parse_urls(text: &str) -> Result<Vec<Url>, String> {
    let mut urls = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let url = Url::parse(part).map_err(|e| format!("{part:?}: {e}"))?;
        if !matches!(url.scheme(), "http" | "https" | "unix" | "unixs") {
            return Err(format!(
                "URL scheme must be one of: http, https, unix or unixs: {part}"
            ));
        }
        if url.scheme().starts_with("http") && url.port().is_none() {
            return Err(format!(
                "URL address does not have the form \"host:port\": {part}"
            ));
        }
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    Ok(urls)
}

/// `--initial-cluster` syntax: `name=url[,name=url...]`.
fn parse_initial_cluster(text: &str) -> Result<Vec<(String, Url)>, String> {
    let mut members = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, url) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not name=url"))?;
        let url = parse_urls(url)?
            .pop()
            .ok_or_else(|| format!("{part:?} has no URL"))?;
        members.push((name.to_string(), url));
    }
    Ok(members)
}

/// etcd's checkBindURLs: a listen URL names an IP address or `localhost`.
fn check_bind_urls(flag: &str, urls: &[Url]) -> Result<(), ConfigError> {
    for url in urls {
        if url.scheme() != "http" {
            return Err(ConfigError::Invalid(format!(
                "--{flag}: {url}: keel serves plain http only for now (TLS and unix sockets are \
                 not implemented yet)"
            )));
        }
        match url.host() {
            Some(url::Host::Domain("localhost"))
            | Some(url::Host::Ipv4(_))
            | Some(url::Host::Ipv6(_)) => {}
            _ => {
                return Err(ConfigError::Invalid(format!(
                    "expected IP in URL for binding ({url})"
                )))
            }
        }
    }
    Ok(())
}

impl Config {
    pub(crate) fn from_raw(raw: &RawValues) -> Result<Self, ConfigError> {
        let v = Values { raw };
        let name = v.text("name").0;
        let data_dir = match raw.get("data-dir") {
            Some((dir, _)) => PathBuf::from(dir),
            None => PathBuf::from(format!("{name}.keel")),
        };
        let wal_dir = Some(v.text("wal-dir").0)
            .filter(|d| !d.is_empty())
            .map(PathBuf::from);
        let initial_advertise_peer_urls = v.urls("initial-advertise-peer-urls")?;
        let initial_cluster = initial_cluster(&v, &name, &initial_advertise_peer_urls)?;
        let config = Config {
            data_dir,
            wal_dir,
            snapshot_count: v.u64("snapshot-count")?,
            heartbeat_interval_ms: v.u64("heartbeat-interval")?,
            election_timeout_ms: v.u64("election-timeout")?,
            initial_election_tick_advance: v.bool("initial-election-tick-advance")?,
            listen_peer_urls: v.urls("listen-peer-urls")?,
            listen_client_urls: v.urls("listen-client-urls")?,
            advertise_client_urls: advertise_client_urls(&v)?,
            initial_advertise_peer_urls,
            initial_cluster,
            initial_cluster_state: cluster_state(&v)?,
            initial_cluster_token: v.text("initial-cluster-token").0,
            quota_backend_bytes: v.i64("quota-backend-bytes")?,
            backend_batch_interval: backend_batch_interval(&v)?,
            backend_batch_limit: match v.u64("backend-batch-limit")? {
                0 => BACKEND_BATCH_LIMIT_DEFAULT,
                limit => limit,
            },
            auto_compaction: auto_compaction(&v)?,
            max_txn_ops: v.u64("max-txn-ops")?,
            max_request_bytes: v.u64("max-request-bytes")?,
            max_concurrent_streams: max_concurrent_streams(&v)?,
            grpc_keepalive_interval: Some(v.duration("grpc-keepalive-interval")?)
                .filter(|d| !d.is_zero()),
            grpc_keepalive_timeout: Some(v.duration("grpc-keepalive-timeout")?)
                .filter(|d| !d.is_zero()),
            pre_vote: v.bool("pre-vote")?,
            strict_reconfig_check: v.bool("strict-reconfig-check")?,
            unsafe_no_fsync: v.bool("unsafe-no-fsync")?,
            log_level: log_level(&v)?,
            log_outputs: log_outputs(&v)?,
            warning_apply_duration: v.duration("experimental-warning-apply-duration")?,
            lease_checkpoint_interval: positive(&v, "experimental-lease-checkpoint-interval")?,
            watch_progress_notify_interval: positive(
                &v,
                "experimental-watch-progress-notify-interval",
            )?,
            storage_io: storage_io(&v)?,
            wal_segment_size_bytes: wal_segment_size_bytes(&v)?,
            wal_preallocation: wal_preallocation(&v)?,
            wal_sync: wal_sync(&v)?,
            wal_batch_limit: wal_batch_limit(&v)?,
            wal_batch_interval: wal_batch_interval(&v)?,
            warnings: not_acted_warnings(raw),
            name,
        };
        check_typed_values(&v)?;
        config.validate()?;
        Ok(config)
    }

    /// etcd's embed.Config.Validate and etcdserver's ServerConfig checks.
    fn validate(&self) -> Result<(), ConfigError> {
        check_bind_urls("listen-client-urls", &self.listen_client_urls)?;
        check_bind_urls("listen-peer-urls", &self.listen_peer_urls)?;
        if self.heartbeat_interval_ms == 0 {
            return Err(ConfigError::Invalid(format!(
                "--heartbeat-interval must be >0 (set to {}ms)",
                self.heartbeat_interval_ms
            )));
        }
        if self.election_timeout_ms == 0 {
            return Err(ConfigError::Invalid(format!(
                "--election-timeout must be >0 (set to {}ms)",
                self.election_timeout_ms
            )));
        }
        if 5 * self.heartbeat_interval_ms > self.election_timeout_ms {
            return Err(ConfigError::Invalid(format!(
                "--election-timeout[{}ms] should be at least as 5 times as \
                 --heartbeat-interval[{}ms]",
                self.election_timeout_ms, self.heartbeat_interval_ms
            )));
        }
        if self.election_timeout_ms > ELECTION_TIMEOUT_MS_MAX {
            return Err(ConfigError::Invalid(format!(
                "--election-timeout[{}ms] is too long, and should be set less than {}ms",
                self.election_timeout_ms, ELECTION_TIMEOUT_MS_MAX
            )));
        }
        if self.max_request_bytes == 0 {
            return Err(ConfigError::Invalid(
                "--max-request-bytes must be > 0".to_string(),
            ));
        }
        if self.max_txn_ops == 0 {
            return Err(ConfigError::Invalid(
                "--max-txn-ops must be > 0".to_string(),
            ));
        }
        self.validate_membership()
    }

    /// This member must be in --initial-cluster with exactly its advertised peer URLs.
    fn validate_membership(&self) -> Result<(), ConfigError> {
        let mine: Vec<&Url> = self
            .initial_cluster
            .iter()
            .filter(|(n, _)| *n == self.name)
            .map(|(_, u)| u)
            .collect();
        if mine.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "couldn't find local name {:?} in the initial cluster configuration",
                self.name
            )));
        }
        let advertised = &self.initial_advertise_peer_urls;
        let join = |urls: &mut dyn Iterator<Item = &Url>| {
            urls.map(|u| u.as_str().trim_end_matches('/').to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        if let Some(missing) = mine.iter().find(|u| !advertised.contains(u)) {
            return Err(ConfigError::Invalid(format!(
                "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={}",
                self.name,
                missing.as_str().trim_end_matches('/'),
                join(&mut advertised.iter())
            )));
        }
        if let Some(missing) = advertised.iter().find(|u| !mine.contains(u)) {
            return Err(ConfigError::Invalid(format!(
                "--initial-advertise-peer-urls has {} but missing from --initial-cluster={}={}",
                missing.as_str().trim_end_matches('/'),
                self.name,
                join(&mut mine.iter().copied())
            )));
        }
        Ok(())
    }

    /// The member names of --initial-cluster, each once, in order.
    pub fn initial_member_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for (name, _) in &self.initial_cluster {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        names
    }

    /// `<data-dir>/member/wal`, or `--wal-dir`.
    pub fn wal_dir(&self) -> PathBuf {
        self.wal_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("member").join("wal"))
    }
}

/// etcd: if --name is changed but --initial-cluster is not given, the initial
/// cluster is this member alone at its advertised peer URLs.
fn initial_cluster(
    v: &Values<'_>,
    name: &str,
    advertised: &[Url],
) -> Result<Vec<(String, Url)>, ConfigError> {
    if !v.is_set("initial-cluster") && name != "default" {
        return Ok(advertised
            .iter()
            .map(|u| (name.to_string(), u.clone()))
            .collect());
    }
    let (text, src) = v.text("initial-cluster");
    parse_initial_cluster(&text).map_err(|r| value_error(&src, &text, r))
}

fn advertise_client_urls(v: &Values<'_>) -> Result<Vec<Url>, ConfigError> {
    if v.is_set("listen-client-urls") && !v.is_set("advertise-client-urls") {
        return Err(ConfigError::Invalid(
            "--advertise-client-urls is required when --listen-client-urls is set explicitly"
                .to_string(),
        ));
    }
    v.urls("advertise-client-urls")
}

/// A duration flag that must be above zero.
fn positive(v: &Values<'_>, name: &'static str) -> Result<Duration, ConfigError> {
    let duration = v.duration(name)?;
    if duration.is_zero() {
        let (text, src) = v.text(name);
        return Err(value_error(&src, &text, "must be greater than 0"));
    }
    Ok(duration)
}

fn cluster_state(v: &Values<'_>) -> Result<ClusterState, ConfigError> {
    let (text, src) = v.text("initial-cluster-state");
    match text.as_str() {
        "new" => Ok(ClusterState::New),
        "existing" => Ok(ClusterState::Existing),
        _ => Err(value_error(
            &src,
            &text,
            "valid values are \"new\" and \"existing\"",
        )),
    }
}

fn max_concurrent_streams(v: &Values<'_>) -> Result<u32, ConfigError> {
    let (text, src) = v.text("max-concurrent-streams");
    text.parse()
        .map_err(|_| value_error(&src, &text, "not an unsigned 32-bit integer"))
}

fn log_level(v: &Values<'_>) -> Result<tracing::Level, ConfigError> {
    if v.bool("debug")? {
        return Ok(tracing::Level::DEBUG);
    }
    let (text, src) = v.text("log-level");
    match text.as_str() {
        "debug" => Ok(tracing::Level::DEBUG),
        "info" => Ok(tracing::Level::INFO),
        "warn" => Ok(tracing::Level::WARN),
        "error" | "dpanic" | "panic" | "fatal" => Ok(tracing::Level::ERROR),
        _ => Err(value_error(
            &src,
            &text,
            "only supports debug, info, warn, error, dpanic, panic, or fatal",
        )),
    }
}

fn log_outputs(v: &Values<'_>) -> Result<Vec<LogOutput>, ConfigError> {
    let name = if v.is_set("log-outputs") || !v.is_set("log-output") {
        "log-outputs"
    } else {
        "log-output"
    };
    let (text, _) = v.text(name);
    let mut outputs = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let output = match part {
            "default" | "stderr" => LogOutput::Stderr,
            "stdout" => LogOutput::Stdout,
            path => LogOutput::File(PathBuf::from(path)),
        };
        if !outputs.contains(&output) {
            outputs.push(output);
        }
    }
    if outputs.is_empty() {
        outputs.push(LogOutput::Stderr);
    }
    Ok(outputs)
}

/// A segment holds its header and at least one 4 KiB block, in whole blocks (keel-wal's
/// rule, checked here so that a bad value fails at startup with the flag's name).
fn wal_segment_size_bytes(v: &Values<'_>) -> Result<u64, ConfigError> {
    let size = v.u64("wal-segment-size-bytes")?;
    if size < 8192 || !size.is_multiple_of(4096) {
        let (text, src) = v.text("wal-segment-size-bytes");
        return Err(value_error(
            &src,
            &text,
            "must be a multiple of 4096 and at least 8192",
        ));
    }
    Ok(size)
}

/// At least one request per batch, at most what the core's inbox holds.
fn wal_batch_limit(v: &Values<'_>) -> Result<usize, ConfigError> {
    let limit = v.u64("wal-batch-limit")?;
    let max = crate::node::INBOX_CAPACITY as u64;
    if limit == 0 || limit > max {
        let (text, src) = v.text("wal-batch-limit");
        return Err(value_error(
            &src,
            &text,
            format!("must be between 1 and {max}"),
        ));
    }
    Ok(limit as usize)
}

/// A gathering wait longer than a second would only be a misconfiguration: every write
/// would wait that long.
fn wal_batch_interval(v: &Values<'_>) -> Result<Duration, ConfigError> {
    let interval = v.duration("wal-batch-interval")?;
    if interval > Duration::from_secs(1) {
        let (text, src) = v.text("wal-batch-interval");
        return Err(value_error(&src, &text, "must be at most 1s"));
    }
    Ok(interval)
}

fn wal_preallocation(v: &Values<'_>) -> Result<keel_wal::Preallocation, ConfigError> {
    let (text, src) = v.text("wal-preallocation");
    match text.as_str() {
        "zeroed" => Ok(keel_wal::Preallocation::Zeroed),
        "fallocate" => Ok(keel_wal::Preallocation::Fallocate),
        "none" => Ok(keel_wal::Preallocation::Grow),
        _ => Err(value_error(
            &src,
            &text,
            "valid values are \"zeroed\", \"fallocate\" and \"none\"",
        )),
    }
}

fn wal_sync(v: &Values<'_>) -> Result<keel_wal::SyncMode, ConfigError> {
    let (text, src) = v.text("wal-sync");
    match text.as_str() {
        "fdatasync" => Ok(keel_wal::SyncMode::Fdatasync),
        "dsync" => Ok(keel_wal::SyncMode::Dsync),
        _ => Err(value_error(
            &src,
            &text,
            "valid values are \"fdatasync\" and \"dsync\" (--unsafe-no-fsync turns syncing off)",
        )),
    }
}

fn storage_io(v: &Values<'_>) -> Result<StorageIo, ConfigError> {
    let (text, src) = v.text("storage-io");
    match text.as_str() {
        "glommio" => Ok(StorageIo::Glommio),
        "std" => Ok(StorageIo::Std),
        _ => Err(value_error(
            &src,
            &text,
            "valid values are \"glommio\" and \"std\"",
        )),
    }
}

/// Every explicitly given value must parse as its kind, even for flags keel
/// does not act on yet: a typo is an error now, not a surprise later.
fn check_typed_values(v: &Values<'_>) -> Result<(), ConfigError> {
    for spec in FLAGS {
        if !v.is_set(spec.name) || spec.support == Support::EtcdIgnored {
            continue;
        }
        match spec.kind {
            Kind::Bool => drop(v.bool(spec.name)?),
            Kind::Uint => drop(v.u64(spec.name)?),
            Kind::Int => drop(v.i64(spec.name)?),
            Kind::Duration => drop(v.duration(spec.name)?),
            Kind::Urls => drop(v.urls(spec.name)?),
            Kind::Text => {}
        }
    }
    let (mode, src) = v.text("auto-compaction-mode");
    if !matches!(mode.as_str(), "" | "periodic" | "revision") {
        return Err(value_error(&src, &mode, "unknown auto-compaction-mode"));
    }
    let (logger, src) = v.text("logger");
    if !matches!(logger.as_str(), "zap" | "capnslog") {
        return Err(value_error(
            &src,
            &logger,
            "valid values are \"zap\" and \"capnslog\"",
        ));
    }
    Ok(())
}

/// etcd's parseCompactionRetention: a bare non-negative integer is hours
/// (periodic) or revisions (revision); otherwise a duration (periodic only:
/// keel refuses a duration in revision mode, where etcd would count its
/// nanoseconds as revisions).
fn auto_compaction(v: &Values<'_>) -> Result<Option<AutoCompaction>, ConfigError> {
    let (mode, _) = v.text("auto-compaction-mode");
    let (retention, src) = v.text("auto-compaction-retention");
    let revision_mode = mode == "revision";
    if let Ok(n) = retention.parse::<i64>() {
        if n >= 0 {
            return Ok(match (n, revision_mode) {
                (0, _) => None,
                (n, true) => Some(AutoCompaction::Revision(n)),
                (n, false) => Some(AutoCompaction::Periodic(Duration::from_secs(
                    n.unsigned_abs().saturating_mul(3600),
                ))),
            });
        }
    }
    if revision_mode {
        return Err(value_error(
            &src,
            &retention,
            "revision mode needs a number of revisions",
        ));
    }
    let period = parse_duration(&retention).map_err(|r| {
        value_error(
            &src,
            &retention,
            format!("error parsing CompactionRetention: {r}"),
        )
    })?;
    Ok((!period.is_zero()).then_some(AutoCompaction::Periodic(period)))
}

/// etcd's defaultBatchLimit.
const BACKEND_BATCH_LIMIT_DEFAULT: u64 = 10_000;
/// etcd's defaultBatchInterval.
const BACKEND_BATCH_INTERVAL_DEFAULT: Duration = Duration::from_millis(100);

fn backend_batch_interval(v: &Values<'_>) -> Result<Duration, ConfigError> {
    let (text, _) = v.text("backend-batch-interval");
    if text.is_empty() {
        return Ok(BACKEND_BATCH_INTERVAL_DEFAULT);
    }
    let interval = v.duration("backend-batch-interval")?;
    Ok(if interval.is_zero() {
        BACKEND_BATCH_INTERVAL_DEFAULT
    } else {
        interval
    })
}

fn not_acted_warnings(raw: &RawValues) -> Vec<String> {
    let mut warnings = Vec::new();
    for (name, (_, origin)) in raw {
        let Some(spec) = spec(name) else { continue };
        match spec.support {
            Support::Acted => {}
            Support::NotYet(why) => warnings.push(format!(
                "{} is accepted but not acted on yet: {why}",
                origin.describe(name)
            )),
            Support::EtcdIgnored => warnings.push(format!("flag {name:?} is ignored")),
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_from, ParseOutcome};

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let args = args.iter().map(std::ffi::OsString::from);
        match parse_from(args, std::iter::empty())? {
            ParseOutcome::Run(config) => Ok(*config),
            ParseOutcome::Print(text) => panic!("printed {text}"),
        }
    }

    #[test]
    fn auto_compaction_retention_is_read_as_etcd_reads_it() {
        assert_eq!(parse(&[]).expect("defaults").auto_compaction, None);
        let hours = parse(&["--auto-compaction-retention=2"]).expect("hours");
        assert_eq!(
            hours.auto_compaction,
            Some(AutoCompaction::Periodic(Duration::from_secs(7200)))
        );
        let minutes = parse(&["--auto-compaction-retention=30m"]).expect("duration");
        assert_eq!(
            minutes.auto_compaction,
            Some(AutoCompaction::Periodic(Duration::from_secs(1800)))
        );
        let revisions = parse(&[
            "--auto-compaction-mode=revision",
            "--auto-compaction-retention=1000",
        ])
        .expect("revisions");
        assert_eq!(
            revisions.auto_compaction,
            Some(AutoCompaction::Revision(1000))
        );
        let off = parse(&[
            "--auto-compaction-mode=revision",
            "--auto-compaction-retention=0",
        ])
        .expect("off");
        assert_eq!(off.auto_compaction, None);
        let error = parse(&[
            "--auto-compaction-mode=revision",
            "--auto-compaction-retention=1h",
        ])
        .expect_err("a duration in revision mode");
        assert!(error.to_string().contains("number of revisions"), "{error}");
        let error = parse(&["--auto-compaction-retention=soon"]).expect_err("garbage");
        assert!(error.to_string().contains("CompactionRetention"), "{error}");
    }

    #[test]
    fn backend_batch_flags_default_as_etcd() {
        let config = parse(&[]).expect("defaults");
        assert_eq!(config.backend_batch_limit, 10_000);
        assert_eq!(config.backend_batch_interval, Duration::from_millis(100));
        let config =
            parse(&["--backend-batch-limit=7", "--backend-batch-interval=2s"]).expect("given");
        assert_eq!(config.backend_batch_limit, 7);
        assert_eq!(config.backend_batch_interval, Duration::from_secs(2));
    }

    #[test]
    fn wal_flags_default_to_etcds_segment_size_preallocated_and_refuse_bad_sizes() {
        let config = parse(&[]).expect("defaults");
        assert_eq!(config.wal_segment_size_bytes, 64 << 20);
        assert_eq!(config.wal_preallocation, keel_wal::Preallocation::Zeroed);
        let config =
            parse(&["--wal-segment-size-bytes=65536", "--wal-preallocation=none"]).expect("given");
        assert_eq!(config.wal_segment_size_bytes, 65536);
        assert_eq!(config.wal_preallocation, keel_wal::Preallocation::Grow);
        let config = parse(&["--wal-preallocation=fallocate"]).expect("given");
        assert_eq!(config.wal_preallocation, keel_wal::Preallocation::Fallocate);
        let error = parse(&["--wal-preallocation=yes"]).expect_err("not a mode");
        assert!(error.to_string().contains("wal-preallocation"), "{error}");
        for bad in ["4096", "10000", "-1", "big"] {
            let error = parse(&[&format!("--wal-segment-size-bytes={bad}")])
                .expect_err("not a segment size");
            assert!(
                error.to_string().contains("wal-segment-size-bytes"),
                "{error}"
            );
        }
    }

    // Guards --wal-sync: both modes parse from the flag and from ETCD_WAL_SYNC, the default
    // is the measured one (docs/tuning.md), and anything else (including "none": no syncing
    // is --unsafe-no-fsync's job) is refused naming the flag or variable and the choices.
    #[test]
    fn wal_sync_parses_both_modes_from_flag_or_env_and_refuses_anything_else() {
        assert_eq!(
            parse(&[]).expect("defaults").wal_sync,
            keel_wal::SyncMode::Fdatasync
        );
        let config = parse(&["--wal-sync=dsync"]).expect("dsync");
        assert_eq!(config.wal_sync, keel_wal::SyncMode::Dsync);
        let config = parse(&["--wal-sync", "fdatasync"]).expect("fdatasync");
        assert_eq!(config.wal_sync, keel_wal::SyncMode::Fdatasync);
        let env = [("ETCD_WAL_SYNC".to_string(), "dsync".to_string())];
        match parse_from(std::iter::empty(), env).expect("from the environment") {
            ParseOutcome::Run(config) => assert_eq!(config.wal_sync, keel_wal::SyncMode::Dsync),
            ParseOutcome::Print(text) => panic!("printed {text}"),
        }
        for bad in ["none", "fsync", "DSYNC", ""] {
            let error = parse(&[&format!("--wal-sync={bad}")]).expect_err("not a mode");
            let message = error.to_string();
            assert!(message.contains("wal-sync"), "{bad:?}: {message}");
            assert!(message.contains("\"dsync\""), "{bad:?}: {message}");
        }
        let env = [("ETCD_WAL_SYNC".to_string(), "sometimes".to_string())];
        let error = parse_from(std::iter::empty(), env).expect_err("not a mode");
        assert!(error.to_string().contains("ETCD_WAL_SYNC"), "{error}");
    }

    #[test]
    fn wal_batch_flags_default_to_the_inbox_and_no_wait_and_refuse_out_of_range_values() {
        let config = parse(&[]).expect("defaults");
        assert_eq!(config.wal_batch_limit, crate::node::INBOX_CAPACITY);
        assert_eq!(config.wal_batch_interval, Duration::ZERO);
        let config = parse(&["--wal-batch-limit=64", "--wal-batch-interval=500us"]).expect("given");
        assert_eq!(config.wal_batch_limit, 64);
        assert_eq!(config.wal_batch_interval, Duration::from_micros(500));
        for bad in [
            "--wal-batch-limit=0",
            "--wal-batch-limit=1000000",
            "--wal-batch-interval=2s",
        ] {
            let error = parse(&[bad]).expect_err("out of range");
            let name = bad
                .trim_start_matches("--")
                .split('=')
                .next()
                .expect("a name");
            assert!(error.to_string().contains(name), "{bad}: {error}");
        }
    }
}
