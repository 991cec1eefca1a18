//! Connections and the client loop: `--conns` gRPC connections over the endpoints, shared
//! round robin by `--clients` concurrent clients, each issuing requests until the run's
//! `--total` is claimed. Bounded by `--total` and by the per-request timeout.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tonic::transport::{Channel, Endpoint};

use crate::cli::Global;
use crate::progress::Progress;
use crate::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::proto::etcdserverpb::StatusRequest;
use crate::report::{Recorder, Report};

/// Dial timeout when `--dial-timeout` is not given (etcd's 0 means "no timeout").
const DIAL_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);

fn uri(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

async fn dial(global: &Global, endpoint: &str) -> anyhow::Result<Channel> {
    let uri = uri(endpoint);
    Endpoint::from_shared(uri.clone())
        .with_context(|| format!("bad endpoint {endpoint:?}"))?
        .tcp_nodelay(true)
        .connect_timeout(global.dial_timeout.unwrap_or(DIAL_TIMEOUT_DEFAULT))
        .connect()
        .await
        .with_context(|| format!("connecting to {uri}"))
}

/// The endpoint whose member is the leader (etcd's `--target-leader`).
async fn leader_endpoint(global: &Global) -> anyhow::Result<String> {
    for endpoint in &global.endpoints {
        let channel = dial(global, endpoint).await?;
        let status = MaintenanceClient::new(channel)
            .status(StatusRequest {})
            .await
            .with_context(|| format!("Maintenance.Status at {endpoint}"))?
            .into_inner();
        let member_id = status.header.map(|h| h.member_id);
        if member_id == Some(status.leader) {
            return Ok(endpoint.clone());
        }
    }
    anyhow::bail!(
        "--target-leader: none of {:?} is the leader",
        global.endpoints
    )
}

/// Opens `--conns` connections, connection `i` to endpoint `i % endpoints` (or all to the
/// leader with `--target-leader`).
pub(crate) async fn connect(global: &Global) -> anyhow::Result<Vec<Channel>> {
    anyhow::ensure!(!global.endpoints.is_empty(), "--endpoints is empty");
    let endpoints = if global.target_leader {
        vec![leader_endpoint(global).await?]
    } else {
        global.endpoints.clone()
    };
    let mut channels = Vec::new();
    for i in 0..global.conns {
        let endpoint = &endpoints[(i % endpoints.len() as u64) as usize];
        channels.push(dial(global, endpoint).await?);
    }
    Ok(channels)
}

/// Optional pacing shared by all clients: request `i` starts no earlier than
/// `start + i / rate` (etcd's `--rate`, a limiter with a burst of 1).
#[derive(Clone, Copy)]
pub(crate) struct Pacer {
    start: Instant,
    /// 0 = no limit.
    rate_per_sec: u64,
}

impl Pacer {
    pub(crate) fn new(rate_per_sec: u64) -> Self {
        Pacer {
            start: Instant::now(),
            rate_per_sec,
        }
    }

    /// When request `i` may start (None: at once).
    pub(crate) fn due(&self, i: u64) -> Option<Instant> {
        (self.rate_per_sec > 0)
            .then(|| self.start + Duration::from_secs_f64(i as f64 / self.rate_per_sec as f64))
    }

    pub(crate) async fn wait(&self, i: u64) {
        if let Some(due) = self.due(i) {
            tokio::time::sleep_until(due.into()).await;
        }
    }
}

/// One request to perform.
pub(crate) struct Call {
    /// Which client (0-based, < `--clients`) performs it.
    pub(crate) client: usize,
    pub(crate) channel: Channel,
    /// Request number, 0-based, < the run's total.
    pub(crate) number: u64,
}

/// The shape of a closed-loop run.
pub(crate) struct Load {
    /// Requests in the run.
    pub(crate) total: u64,
    /// Requests per second over all clients (0 = no limit).
    pub(crate) rate_per_sec: u64,
    /// Number of request classes (reports returned); a request names its class.
    pub(crate) classes: usize,
    /// Progress bar label.
    pub(crate) label: &'static str,
}

/// Runs `load.total` requests over `--clients` clients; `request(call)` returns the class
/// of request `call.number` and the future performing it. Returns one report per class.
pub(crate) async fn drive<F, Fut>(
    global: &Global,
    channels: &[Channel],
    load: Load,
    request: F,
) -> Vec<Report>
where
    F: Fn(Call) -> (usize, Fut) + Send + Sync + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send,
{
    assert!(
        !channels.is_empty(),
        "connect() opens at least one connection"
    );
    assert!(load.classes > 0, "a run has at least one class of requests");
    let next = Arc::new(AtomicU64::new(0));
    let request = Arc::new(request);
    let progress = Progress::new(load.total, load.label, Progress::visible(global.json));
    let pacer = Pacer::new(load.rate_per_sec);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..usize::try_from(global.clients).expect("clients fit in usize") {
        let channel = channels[client % channels.len()].clone();
        let (next, request, progress) = (next.clone(), request.clone(), progress.clone());
        let (timeout, total, classes) = (global.request_timeout, load.total, load.classes);
        tasks.push(tokio::spawn(async move {
            let mut recorders: Vec<Recorder> =
                (0..classes).map(|_| Recorder::new(started)).collect();
            // Bounded: each turn claims one of `total` request numbers.
            loop {
                let number = next.fetch_add(1, Ordering::Relaxed);
                if number >= total {
                    break;
                }
                pacer.wait(number).await;
                let channel = channel.clone();
                let (class, future) = request(Call {
                    client,
                    channel,
                    number,
                });
                assert!(class < classes, "request class {class} out of {classes}");
                let begin = Instant::now();
                let outcome = tokio::time::timeout(timeout, future).await;
                let latency = begin.elapsed();
                match outcome {
                    Ok(Ok(())) => recorders[class].ok(latency),
                    Ok(Err(status)) => recorders[class].error(status_text(&status)),
                    Err(_) => recorders[class].error(format!("client timeout ({timeout:?})")),
                }
                progress.inc(1);
            }
            recorders
        }));
    }
    let mut per_class: Vec<Vec<Recorder>> = (0..load.classes).map(|_| Vec::new()).collect();
    for task in tasks {
        match task.await {
            Ok(recorders) => {
                for (class, r) in recorders.into_iter().enumerate() {
                    per_class[class].push(r);
                }
            }
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    progress.finish();
    let total = started.elapsed();
    per_class
        .into_iter()
        .map(|recorders| Report::merge(total, recorders))
        .collect()
}

/// [`drive`] for a run with one class of requests.
pub(crate) async fn drive_one<F, Fut>(
    global: &Global,
    channels: &[Channel],
    total: u64,
    rate_per_sec: u64,
    label: &'static str,
    request: F,
) -> Report
where
    F: Fn(Call) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send,
{
    let load = Load {
        total,
        rate_per_sec,
        classes: 1,
        label,
    };
    let mut reports = drive(global, channels, load, move |call| (0, request(call))).await;
    reports.pop().expect("one class, one report")
}

/// An error as the report's distribution names it: gRPC code and message.
pub(crate) fn status_text(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_spaces_requests_by_the_rate() {
        let pacer = Pacer::new(100);
        let first = pacer.due(0).expect("paced");
        let later = pacer.due(50).expect("paced");
        assert_eq!(later - first, Duration::from_millis(500));
        assert_eq!(Pacer::new(0).due(1_000), None);
    }

    #[test]
    fn endpoints_without_a_scheme_get_http() {
        assert_eq!(uri("127.0.0.1:2379"), "http://127.0.0.1:2379");
        assert_eq!(uri("http://[::1]:2379"), "http://[::1]:2379");
    }
}
