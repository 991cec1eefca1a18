//! keel-bench: load etcd or keel through etcd's public gRPC API and report
//! latency and throughput the way etcd's `benchmark` tool does.

mod client;
mod proto;
mod report;
mod workload;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// etcd `benchmark`-style load generator; works against etcd and keel alike.
#[derive(Parser, Debug)]
#[command(name = "keel-bench", version)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// etcd benchmark's global flags.
#[derive(Args, Debug, Clone)]
pub(crate) struct Global {
    /// gRPC endpoints (host:port, comma separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379",
        global = true
    )]
    pub(crate) endpoints: Vec<String>,
    /// Total number of gRPC connections.
    #[arg(long, default_value_t = 1, global = true)]
    pub(crate) conns: usize,
    /// Total number of concurrent clients.
    #[arg(long, default_value_t = 1, global = true)]
    pub(crate) clients: usize,
    /// Print the report as JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Per-request timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration, global = true)]
    pub(crate) request_timeout: Duration,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Benchmark Put.
    Put(workload::put::PutArgs),
    /// Benchmark Range (reads the keys put by a previous run, or any).
    Range(workload::range::RangeArgs),
    /// Benchmark Txn with puts.
    #[command(name = "txn-put")]
    TxnPut(workload::txn_put::TxnPutArgs),
    /// Benchmark the time from a put to its watch event at many watchers.
    #[command(name = "watch-latency")]
    WatchLatency(workload::watch_latency::WatchLatencyArgs),
    /// Benchmark lease keep-alive requests.
    #[command(name = "lease-keepalive")]
    LeaseKeepalive(workload::lease_keepalive::LeaseKeepaliveArgs),
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("bad duration unit in {text:?} (ms, s, m)")),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        match cli.command {
            Command::Put(args) => workload::put::run(&cli.global, args).await,
            Command::Range(args) => workload::range::run(&cli.global, args).await,
            Command::TxnPut(args) => workload::txn_put::run(&cli.global, args).await,
            Command::WatchLatency(args) => workload::watch_latency::run(&cli.global, args).await,
            Command::LeaseKeepalive(args) => {
                workload::lease_keepalive::run(&cli.global, args).await
            }
        }
    })?;
    if cli.global.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}
