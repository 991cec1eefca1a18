//! The entry points the tests call: read the settings, start a cluster, run
//! a fault cycle or a soak, print the report, and on failure panic with the
//! error, the seed to replay it, and the tail of every member's log.

use std::fmt::Display;

use tokio::sync::Mutex;

use super::binary::MemberBinary;
use super::cluster::{Cluster, LOG_TAIL_LINES};
use super::scenario::{run_cycle, Fault};
use super::settings::{Settings, SEED_ENV};
use super::soak::run_soak;
use super::stale_read::probe_stale_read;

/// One cluster at a time per test binary: three members under load each
/// already fill the two cores of the dev box.
static ONE_CLUSTER_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// Runs one cycle of `fault` on a fresh cluster.
pub(crate) async fn run_fault_test(default_binary: MemberBinary, fault: Fault) {
    let _turn = ONE_CLUSTER_AT_A_TIME.lock().await;
    let settings = settings_or_panic(default_binary);
    println!(
        "{fault} on {}: seed {} ({SEED_ENV}={1} replays it)",
        settings.binary.name(),
        settings.seed
    );
    let mut cluster = start_or_panic(&settings).await;
    let scenario = settings.scenario_config(format!("faults-{:x}/", settings.seed), settings.seed);
    match run_cycle(&mut cluster, fault, &scenario).await {
        Ok((report, _)) => println!("{report}\n  {}", cluster.proxy_summary()),
        Err(e) => fail(&mut cluster, &settings, e),
    }
}

/// Runs random fault cycles on one cluster, bounded by the soak settings.
pub(crate) async fn run_soak_test(default_binary: MemberBinary) {
    let _turn = ONE_CLUSTER_AT_A_TIME.lock().await;
    let settings = settings_or_panic(default_binary);
    let soak = settings.soak_config();
    println!(
        "fault soak on {}: seed {} ({SEED_ENV}={1} replays it), at most {} cycles / {} s",
        settings.binary.name(),
        settings.seed,
        soak.cycles_max,
        soak.duration_max.as_secs()
    );
    let mut cluster = start_or_panic(&settings).await;
    let template = settings.scenario_config(format!("soak-{:x}/", settings.seed), settings.seed);
    match run_soak(&mut cluster, soak, &template).await {
        Ok(report) => {
            assert!(
                report.cycles >= 1,
                "a soak must run at least one cycle: {report}"
            );
            println!("{report}\n  {}", cluster.proxy_summary());
        }
        Err(e) => fail(&mut cluster, &settings, e),
    }
}

/// Runs the scripted split-brain read that the checks must reject.
pub(crate) async fn run_stale_read_test(default_binary: MemberBinary) {
    let _turn = ONE_CLUSTER_AT_A_TIME.lock().await;
    let settings = settings_or_panic(default_binary);
    println!("stale-read probe on {}", settings.binary.name());
    let mut cluster = start_or_panic(&settings).await;
    match probe_stale_read(&mut cluster).await {
        Ok(report) => println!(
            "leader {} isolated, {} elected; linearizable read on the isolated leader: {}\n\
             checker: {}lost-write check: {}",
            report.old_leader,
            report.new_leader,
            report.isolated_linearizable_read,
            report.rejection,
            report.missing_write
        ),
        Err(e) => fail(&mut cluster, &settings, e),
    }
}

fn settings_or_panic(default_binary: MemberBinary) -> Settings {
    Settings::from_env(default_binary).unwrap_or_else(|e| panic!("fault test settings: {e}"))
}

async fn start_or_panic(settings: &Settings) -> Cluster {
    let mut cluster = match Cluster::launch(settings.cluster_config()) {
        Ok(cluster) => cluster,
        Err(e) => panic!("launching a {} cluster: {e}", settings.binary.name()),
    };
    let deadline = cluster.start_deadline();
    if let Err(e) = cluster.wait_healthy(deadline).await {
        let binary = settings.binary.name();
        fail(
            &mut cluster,
            settings,
            format!("a new {binary} cluster never became healthy: {e}"),
        );
    }
    cluster
}

fn fail(cluster: &mut Cluster, settings: &Settings, error: impl Display) -> ! {
    let kept = if settings.keep_dir_on_failure {
        format!(
            "data dirs and logs kept in {}",
            cluster.preserve_dir().display()
        )
    } else {
        "set KEEL_FAULT_KEEP_DIR=1 to keep data dirs and logs".to_string()
    };
    panic!(
        "{error}\nseed {} ({SEED_ENV}={0} replays its op and fault choices); {kept}; cut links at failure: {:?}\n{}",
        settings.seed,
        cluster.network().cut_links(),
        cluster.log_tails(LOG_TAIL_LINES)
    );
}
