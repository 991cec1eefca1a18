//! The `keel-bench` binary: parses etcd `benchmark`'s flags and runs the subcommand.

use std::process::ExitCode;

/// mimalloc, as keel uses: the client's allocations cost less (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser as _;

fn main() -> ExitCode {
    match keel_bench::run(keel_bench::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}`: the error and its causes on one line, without a backtrace.
            eprintln!("keel-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
