//! keel-bench: an etcd `benchmark`-style load generator. It talks only etcd's public gRPC
//! API, so the same code measures etcd and keel.
//!
//! Contract: [`run`] performs one subcommand against `--endpoints`, prints etcd's text report
//! (or `--json`) on stdout and, with `--plot FILE`, writes a PNG of the latency distribution
//! and the completions per second over time.
//!
//! It is not a server test: it checks no answers (a Range's value, a watch event's revision);
//! correctness lives in server/tests. It is not etcd's tool either: the differences are listed
//! in docs/benchmarks.md.
//!
//! ```
//! use clap::Parser as _;
//! let cli = keel_bench::Cli::try_parse_from([
//!     "keel-bench", "--endpoints", "127.0.0.1:2379", "--clients", "64", "put", "--total", "1000",
//! ])
//! .expect("etcd benchmark's flags parse");
//! // keel_bench::run(cli) would now put 1000 keys with 64 clients and print etcd's report.
//! drop(cli);
//! ```
//!
//! Invariants:
//! 1. Every run is bounded: by `--total` (or `--put-total`) requests, each bounded by
//!    `--request-timeout`; watch runs wait at most `--request-timeout` after the last put.
//! 2. Each client records into its own [`report::Recorder`]; recorders are merged once at the
//!    end, so nothing on the request path is shared but one atomic counter.
//! 3. A report counts every request once: as a latency sample or as an error.
//! 4. The progress bar goes to stderr only, and only when stderr is a terminal and `--json`
//!    is off; stdout holds the report alone.

#![deny(missing_docs)]

mod cli;
mod client;
mod grpc;
pub mod noop;
mod plot;
mod progress;
mod proto;
mod report;
mod workload;

pub use cli::Cli;

use cli::Command;

/// Runs the subcommand `cli` names on a new multi-threaded tokio runtime and prints its
/// report (and draws the plot when `--plot` is given).
pub fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(path) = &cli.global.plot {
        // Fail before the run, not after it, when the plot cannot be drawn.
        plot::font_check()?;
        plot::check_writable(path)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let global = cli.global.clone();
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Put(args) => workload::put::run(&global, args).await,
            Command::Range(args) => workload::range::run(&global, args).await,
            Command::TxnPut(args) => workload::txn_put::run(&global, args).await,
            Command::TxnMixed(args) => workload::txn_mixed::run(&global, args).await,
            Command::Watch(args) => workload::watch::run(&global, args).await,
            Command::WatchLatency(args) => workload::watch_latency::run(&global, args).await,
            Command::LeaseKeepalive(args) => workload::lease_keepalive::run(&global, args).await,
        }
    })?;
    if global.json {
        println!("{}", serde_json::to_string_pretty(&outcome.to_json())?);
    } else {
        print!("{}", outcome.to_text(global.precise));
    }
    if let Some(path) = &global.plot {
        plot::draw(&outcome, path)?;
        if !global.json {
            println!("\nPlot: {}", path.display());
        }
    }
    Ok(())
}
