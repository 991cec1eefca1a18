//! `sim`: runs the keel-raft cluster simulator for one seed or a range of seeds.
//!
//! ```text
//! cargo run -p keel-raft --features sim --bin sim -- --seed N [--steps M] [--nodes 3|5]
//!     [--seeds K] [--trace] [--verbose] [--no-step-checks]
//!     [--bug ack-before-sync|read-without-read-index]
//! ```
//! One line per passing seed (`--verbose`: the full summary); on a failure the full
//! summary, the exact command that reproduces it and, when a single seed runs, the last
//! events of its trace (`--trace` prints all of them). Exit
//! status 1 if any seed failed. The output legend is in docs/design/sim.md.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::time::Instant;

use keel_raft::sim::{run, InjectedBugs, RunReport, SimConfig};

/// Trace lines printed before a failure.
const TRACE_TAIL_LINES: usize = 60;
/// Default number of events per run.
const STEPS_DEFAULT: u64 = 20_000;

/// Command-line errors.
#[derive(Debug, thiserror::Error)]
enum ArgsError {
    #[error("{flag} needs a value")]
    MissingValue { flag: String },
    #[error("{flag}: {value:?} is not a valid number")]
    NotANumber { flag: String, value: String },
    #[error("--nodes must be 3 or 5, not {nodes}")]
    Nodes { nodes: u64 },
    #[error("unknown bug {name:?} (ack-before-sync, read-without-read-index)")]
    UnknownBug { name: String },
    #[error("unknown argument {arg:?}")]
    Unknown { arg: String },
}

#[derive(Debug)]
struct Args {
    seed: u64,
    seeds: u64,
    steps: u64,
    nodes: usize,
    trace: bool,
    verbose: bool,
    step_checks: bool,
    bugs: InjectedBugs,
}

fn number(flag: &str, value: Option<String>) -> Result<u64, ArgsError> {
    let value = value.ok_or_else(|| ArgsError::MissingValue {
        flag: flag.to_string(),
    })?;
    value.parse().map_err(|_| ArgsError::NotANumber {
        flag: flag.to_string(),
        value,
    })
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, ArgsError> {
    let mut parsed = Args {
        seed: 1,
        seeds: 1,
        steps: STEPS_DEFAULT,
        nodes: 3,
        trace: false,
        verbose: false,
        step_checks: true,
        bugs: InjectedBugs::default(),
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seed" => parsed.seed = number(&arg, args.next())?,
            "--seeds" => parsed.seeds = number(&arg, args.next())?.max(1),
            "--steps" => parsed.steps = number(&arg, args.next())?,
            "--nodes" => {
                let nodes = number(&arg, args.next())?;
                if nodes != 3 && nodes != 5 {
                    return Err(ArgsError::Nodes { nodes });
                }
                parsed.nodes = nodes as usize;
            }
            "--trace" => parsed.trace = true,
            "--verbose" => parsed.verbose = true,
            "--no-step-checks" => parsed.step_checks = false,
            "--bug" => match args.next().as_deref() {
                Some("ack-before-sync") => parsed.bugs.ack_before_sync = true,
                Some("read-without-read-index") => parsed.bugs.read_without_read_index = true,
                other => {
                    return Err(ArgsError::UnknownBug {
                        name: other.unwrap_or_default().to_string(),
                    })
                }
            },
            _ => return Err(ArgsError::Unknown { arg }),
        }
    }
    Ok(parsed)
}

/// Runs one seed; a panic inside keel-raft becomes a failure with the panic message.
fn run_seed(config: SimConfig) -> Result<RunReport, String> {
    catch_unwind(AssertUnwindSafe(|| run(config))).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic with a non-string payload".to_string())
    })
}

/// Prints the end of the trace of a failing seed (re-running it with tracing on).
fn print_trace_tail(config: &SimConfig) {
    let traced = SimConfig {
        trace: true,
        ..config.clone()
    };
    let lines = match run_seed(traced) {
        Ok(report) => report.trace,
        Err(_) => return,
    };
    println!("  last {TRACE_TAIL_LINES} trace lines:");
    for line in lines
        .iter()
        .skip(lines.len().saturating_sub(TRACE_TAIL_LINES))
    {
        println!("    {line}");
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("sim: {e}");
            eprintln!(
                "usage: sim --seed N [--steps M] [--nodes 3|5] [--seeds K] [--trace] \
                 [--verbose] [--no-step-checks] [--bug ack-before-sync|read-without-read-index]"
            );
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let (mut failed, mut events) = (0u64, 0u64);
    for seed in args.seed..args.seed.saturating_add(args.seeds) {
        let config = SimConfig {
            trace: args.trace,
            bugs: args.bugs,
            step_checks: args.step_checks,
            ..SimConfig::new(seed, args.nodes, args.steps)
        };
        match run_seed(config.clone()) {
            Ok(report) => {
                events += report.events;
                if args.trace {
                    report.trace.iter().for_each(|line| println!("{line}"));
                }
                if report.passed() && !args.verbose {
                    println!(
                        "PASS seed={seed} events={} time={} applied={} digest={:016x}",
                        report.events, report.time, report.cluster.applied_max, report.digest
                    );
                    continue;
                }
                println!("{report}");
                if !report.passed() {
                    failed += 1;
                    if !args.trace && args.seeds == 1 {
                        print_trace_tail(&config);
                    }
                    println!("  reproduce: {}", report.reproduction_command());
                }
            }
            Err(panic) => {
                failed += 1;
                println!("FAIL seed={seed}: keel-raft panicked: {panic}");
                println!("  reproduce: {}", config.reproduction_command());
            }
        }
    }
    println!(
        "{} seeds x {} steps ({} events) in {:.1}s: {} failed",
        args.seeds,
        args.steps,
        events,
        started.elapsed().as_secs_f64(),
        failed
    );
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
