//! Connections and the client loop: `--conns` gRPC connections shared round
//! robin by `--clients` concurrent clients, each issuing requests until the
//! run's total is claimed. Bounded by `--total` and by the request timeout.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tonic::transport::{Channel, Endpoint};

use crate::report::{Recorder, Report};
use crate::Global;

/// Opens `--conns` connections over the endpoints.
pub(crate) async fn connect(global: &Global) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(global.conns.max(1));
    for i in 0..global.conns.max(1) {
        let endpoint = &global.endpoints[i % global.endpoints.len()];
        let uri = if endpoint.contains("://") {
            endpoint.clone()
        } else {
            format!("http://{endpoint}")
        };
        let channel = Endpoint::from_shared(uri.clone())
            .with_context(|| format!("bad endpoint {endpoint}"))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("connecting to {uri}"))?;
        channels.push(channel);
    }
    Ok(channels)
}

/// Optional pacing: request `i` starts no earlier than `start + i / rate`.
#[derive(Clone, Copy)]
pub(crate) struct Pacer {
    start: Instant,
    rate_per_sec: u64,
}

impl Pacer {
    pub(crate) fn new(rate_per_sec: u64) -> Self {
        Pacer {
            start: Instant::now(),
            rate_per_sec,
        }
    }

    async fn wait(&self, i: u64) {
        if self.rate_per_sec == 0 {
            return;
        }
        let due = self.start + Duration::from_secs_f64(i as f64 / self.rate_per_sec as f64);
        tokio::time::sleep_until(due.into()).await;
    }
}

/// Runs `total` requests over `global.clients` clients; `request(channel, i)`
/// performs request number `i`.
pub(crate) async fn drive<F, Fut>(
    global: &Global,
    channels: Vec<Channel>,
    total: u64,
    rate_per_sec: u64,
    request: F,
) -> Report
where
    F: Fn(Channel, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let request = Arc::new(request);
    let pacer = Pacer::new(rate_per_sec);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..global.clients.max(1) {
        let channel = channels[c % channels.len()].clone();
        let next = next.clone();
        let request = request.clone();
        let timeout = global.request_timeout;
        tasks.push(tokio::spawn(async move {
            let mut recorder = Recorder::new(started);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                pacer.wait(i).await;
                let begin = Instant::now();
                let outcome = tokio::time::timeout(timeout, request(channel.clone(), i)).await;
                let latency = begin.elapsed();
                match outcome {
                    Ok(Ok(())) => recorder.ok(latency),
                    Ok(Err(status)) => {
                        recorder.error(format!("{:?}: {}", status.code(), status.message()))
                    }
                    Err(_) => recorder.error("client timeout".to_string()),
                }
            }
            recorder
        }));
    }
    let mut recorders = Vec::new();
    for task in tasks {
        if let Ok(r) = task.await {
            recorders.push(r);
        }
    }
    Report::merge(started.elapsed(), recorders)
}
