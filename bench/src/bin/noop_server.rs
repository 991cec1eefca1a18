//! `keel-noop-server [ADDR]`: the no-op KV baseline (see `keel_bench::noop`), on
//! 127.0.0.1:2379 unless ADDR is given.

use std::process::ExitCode;

/// mimalloc, as keel uses: the client's allocations cost less (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:2379".to_string());
    let served = addr
        .parse()
        .map_err(|e| anyhow::anyhow!("bad address {addr:?}: {e}"))
        .and_then(keel_bench::noop::serve);
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keel-noop-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}
