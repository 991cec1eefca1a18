//! `keel`: parse etcd's flags and environment, set up logging, run the member.

use std::process::ExitCode;

use keel_server::config::{parse_from, LogOutput, ParseOutcome};

/// mimalloc instead of glibc's malloc: request buffers are allocated on one thread and freed
/// on another (edge -> core -> edge); with glibc's arenas, malloc and free took ~20% of the
/// core thread's time at 256 clients (perf; docs/benchmarks.md, "Where the time goes").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let thp = keep_or_disable_transparent_huge_pages();
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let config = match parse_from(std::env::args_os().skip(1), env) {
        Ok(ParseOutcome::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Ok(ParseOutcome::Run(config)) => config,
        Err(e) => {
            eprintln!("keel: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = init_logging(config.log_level, &config.log_outputs) {
        eprintln!("keel: {e:#}");
        return ExitCode::from(1);
    }
    if config.log_outputs.len() > 1 {
        tracing::warn!(outputs = ?config.log_outputs, "keel writes logs to one output; using the first");
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    match thp {
        Ok(true) => tracing::debug!("transparent huge pages disabled for this process"),
        Ok(false) => {
            tracing::info!("transparent huge pages left as configured (MIMALLOC_ALLOW_THP is set)")
        }
        Err(e) => {
            tracing::warn!(error = %e, "disabling transparent huge pages failed; latency may spike")
        }
    }
    match keel_server::run(*config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(1)
        }
    }
}

/// Turns transparent huge pages off for this process, unless `MIMALLOC_ALLOW_THP` is set (then
/// mimalloc's own setting rules). mimalloc asks for huge pages on its arenas (`MADV_HUGEPAGE`),
/// and a fault in such an arena clears 2 MiB, after compacting memory when the kernel's THP
/// defrag setting is `madvise` (the common default), on whichever thread touched it: at 256
/// clients that was ~12% of the core thread's time, and put p99 was 27-53 ms with them vs 18-22
/// ms without (docs/tuning.md, "Transparent huge pages"). Databases commonly run without them.
/// `Ok(true)`: disabled; `Ok(false)`: left alone.
fn keep_or_disable_transparent_huge_pages() -> std::io::Result<bool> {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return Ok(false);
    }
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of this process;
    // it only sets a flag the kernel checks when it maps a page.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(true)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Logs at `level` (RUST_LOG, when set, overrides it) to the first output.
fn init_logging(level: tracing::Level, outputs: &[LogOutput]) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(level.as_str().to_ascii_lowercase()));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match outputs.first() {
        // Colors only on a terminal: a redirected log stays plain text.
        None | Some(LogOutput::Stderr) => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .init(),
        Some(LogOutput::Stdout) => builder
            .with_ansi(std::io::stdout().is_terminal())
            .with_writer(std::io::stdout)
            .init(),
        Some(LogOutput::File(path)) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| anyhow::anyhow!("--log-outputs {}: {e}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
    }
    Ok(())
}
