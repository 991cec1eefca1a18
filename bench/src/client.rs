//! Connections and the client loop: `--conns` gRPC connections over the endpoints, shared
//! round robin by `--clients` concurrent clients, each issuing requests until the run's
//! `--total` is claimed. Bounded by `--total` and by the per-request timeout.
//!
//! Two kinds of connection: [`connect_unary`] opens [`GrpcConn`]s (lean unary calls, for
//! the request/response workloads) and [`connect`] opens tonic `Channel`s (for the
//! streaming ones: watch, lease keep-alive). [`drive`] runs clients over either.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tonic::transport::{Channel, Endpoint};

use crate::cli::Global;
use crate::grpc::GrpcConn;
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

/// The endpoint of each of the `--conns` connections: connection `i` goes to endpoint
/// `i % endpoints` (or all to the leader with `--target-leader`).
async fn conn_endpoints(global: &Global) -> anyhow::Result<Vec<String>> {
    anyhow::ensure!(!global.endpoints.is_empty(), "--endpoints is empty");
    let endpoints = if global.target_leader {
        vec![leader_endpoint(global).await?]
    } else {
        global.endpoints.clone()
    };
    Ok(spread(&endpoints, global.conns))
}

/// `conns` endpoints taken round robin from `endpoints` (not empty).
fn spread(endpoints: &[String], conns: u64) -> Vec<String> {
    (0..conns)
        .map(|i| endpoints[(i % endpoints.len() as u64) as usize].clone())
        .collect()
}

/// Opens `--conns` tonic channels (see [`conn_endpoints`]), for the streaming workloads.
pub(crate) async fn connect(global: &Global) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::new();
    for endpoint in conn_endpoints(global).await? {
        channels.push(dial(global, &endpoint).await?);
    }
    Ok(channels)
}

/// Opens `--conns` unary-call connections (see [`conn_endpoints`]), for the
/// request/response workloads.
pub(crate) async fn connect_unary(global: &Global) -> anyhow::Result<Vec<GrpcConn>> {
    let timeout = global.dial_timeout.unwrap_or(DIAL_TIMEOUT_DEFAULT);
    let mut conns = Vec::new();
    for endpoint in conn_endpoints(global).await? {
        conns.push(GrpcConn::connect(&uri(&endpoint), timeout).await?);
    }
    Ok(conns)
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

/// One request to perform over a connection of type `C`.
pub(crate) struct Call<C> {
    /// Which client (0-based, < `--clients`) performs it.
    pub(crate) client: usize,
    /// The client's connection.
    pub(crate) conn: C,
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
/// Client `k` uses connection `k % conns.len()`.
pub(crate) async fn drive<C, F, Fut>(
    global: &Global,
    conns: &[C],
    load: Load,
    request: F,
) -> Vec<Report>
where
    C: Clone + Send + 'static,
    F: Fn(Call<C>) -> (usize, Fut) + Send + Sync + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send,
{
    assert!(!conns.is_empty(), "connect() opens at least one connection");
    assert!(load.classes > 0, "a run has at least one class of requests");
    let next = Arc::new(AtomicU64::new(0));
    let request = Arc::new(request);
    let progress = Progress::new(load.total, load.label, Progress::visible(global.json));
    let pacer = Pacer::new(load.rate_per_sec);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..usize::try_from(global.clients).expect("clients fit in usize") {
        let conn = conns[client % conns.len()].clone();
        let (next, request, progress) = (next.clone(), request.clone(), progress.clone());
        let (timeout, total, classes) = (global.request_timeout, load.total, load.classes);
        tasks.push(tokio::spawn(async move {
            let mut recorders: Vec<Recorder> =
                (0..classes).map(|_| Recorder::new(started)).collect();
            // One timer per client, moved forward for each request: cheaper than a timer
            // registered and removed per request (tokio extends a later deadline without
            // touching its timer wheel).
            let deadline = tokio::time::sleep(timeout);
            tokio::pin!(deadline);
            // Bounded: each turn claims one of `total` request numbers.
            loop {
                let number = next.fetch_add(1, Ordering::Relaxed);
                if number >= total {
                    break;
                }
                pacer.wait(number).await;
                let (class, future) = request(Call {
                    client,
                    conn: conn.clone(),
                    number,
                });
                assert!(class < classes, "request class {class} out of {classes}");
                let begin = Instant::now();
                deadline.as_mut().reset((begin + timeout).into());
                let outcome = tokio::select! {
                    biased;
                    outcome = future => Some(outcome),
                    () = &mut deadline => None,
                };
                let end = Instant::now();
                match outcome {
                    Some(Ok(())) => recorders[class].ok_at(end - begin, end),
                    Some(Err(status)) => recorders[class].error(status_text(&status)),
                    None => recorders[class].error(format!("client timeout ({timeout:?})")),
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
pub(crate) async fn drive_one<C, F, Fut>(
    global: &Global,
    conns: &[C],
    total: u64,
    rate_per_sec: u64,
    label: &'static str,
    request: F,
) -> Report
where
    C: Clone + Send + 'static,
    F: Fn(Call<C>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send,
{
    let load = Load {
        total,
        rate_per_sec,
        classes: 1,
        label,
    };
    let mut reports = drive(global, conns, load, move |call| (0, request(call))).await;
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

    fn global(args: &[&str]) -> Global {
        use clap::Parser as _;
        let mut argv = vec!["keel-bench"];
        argv.extend_from_slice(args);
        argv.push("put");
        crate::Cli::try_parse_from(argv)
            .expect("valid flags")
            .global
    }

    #[test]
    fn connections_take_the_endpoints_round_robin() {
        let endpoints = ["a".to_string(), "b".to_string()];
        assert_eq!(spread(&endpoints, 3), ["a", "b", "a"]);
        assert_eq!(spread(&endpoints[..1], 2), ["a", "a"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_over_real_connections_counts_every_request_once() {
        use crate::grpc::path;
        use crate::proto::etcdserverpb::{PutRequest, PutResponse, TxnRequest, TxnResponse};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let endpoint = listener.local_addr().expect("bound").to_string();
        tokio::spawn(crate::noop::serve_on(listener));
        let global = global(&["--endpoints", &endpoint, "--clients", "8", "--conns", "3"]);
        let conns = connect_unary(&global).await.expect("connects");
        assert_eq!(conns.len(), 3);
        let load = Load {
            total: 500,
            rate_per_sec: 0,
            classes: 2,
            label: "test",
        };
        // Even numbers put (served), odd numbers txn (not served by the no-op server).
        let reports = drive(&global, &conns, load, |call| {
            let mut conn = call.conn;
            let class = (call.number % 2) as usize;
            let future = async move {
                if class == 0 {
                    let request = PutRequest::default();
                    conn.unary::<_, PutResponse>(path::KV_PUT, &request)
                        .await
                        .map(|_| ())
                } else {
                    let request = TxnRequest::default();
                    conn.unary::<_, TxnResponse>(path::KV_TXN, &request)
                        .await
                        .map(|_| ())
                }
            };
            (class, future)
        })
        .await;
        assert_eq!((reports[0].requests(), reports[0].errors()), (250, 0));
        assert_eq!((reports[1].requests(), reports[1].errors()), (0, 250));
    }

    // One timer serves all of a client's requests: each request gets the whole timeout, even
    // when the run has lasted longer than one timeout, and a request that never ends is
    // counted as an error when its own timeout passes.
    #[tokio::test]
    async fn each_request_gets_its_own_full_timeout_from_the_clients_one_timer() {
        let global = global(&["--request-timeout", "200ms"]);
        let report = drive_one(&global, &[()], 6, 0, "test", |call| async move {
            if call.number < 5 {
                tokio::time::sleep(Duration::from_millis(120)).await;
                Ok(())
            } else {
                std::future::pending().await
            }
        })
        .await;
        assert_eq!((report.requests(), report.errors()), (5, 1));
        assert!(report.total() >= Duration::from_millis(5 * 120 + 200));
    }

    #[test]
    fn endpoints_without_a_scheme_get_http() {
        assert_eq!(uri("127.0.0.1:2379"), "http://127.0.0.1:2379");
        assert_eq!(uri("http://[::1]:2379"), "http://[::1]:2379");
    }
}
