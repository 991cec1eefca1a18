//! Property: a watcher that resumes after a server restart (clean stop or
//! kill -9) from its last seen revision + 1 — as etcd clients do — sees every
//! event exactly once and in revision order.

mod common;

use std::time::Duration;

use common::Keel;
use etcd_client::{EventType, WatchOptions, WatchStream};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8),
    Delete(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![3 => (0u8..4, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)), 1 => (0u8..4).prop_map(Op::Delete)]
}

type Seen = (bool, String, String, i64); // (is_put, key, value, mod_revision)

/// Applies `ops`, returning the events they must produce.
async fn apply(c: &mut etcd_client::Client, ops: &[Op]) -> Vec<Seen> {
    let mut expected = Vec::new();
    for op in ops {
        match op {
            Op::Put(k, v) => {
                let (key, value) = (format!("k{k}"), format!("{v}"));
                let rev = c
                    .put(key.clone(), value.clone(), None)
                    .await
                    .expect("put")
                    .header()
                    .expect("h")
                    .revision();
                expected.push((true, key, value, rev));
            }
            Op::Delete(k) => {
                let key = format!("k{k}");
                let resp = c.delete(key.clone(), None).await.expect("delete");
                if resp.deleted() > 0 {
                    expected.push((
                        false,
                        key,
                        String::new(),
                        resp.header().expect("h").revision(),
                    ));
                }
            }
        }
    }
    expected
}

async fn receive(stream: &mut WatchStream, seen: &mut Vec<Seen>, want: usize) {
    while seen.len() < want {
        let resp = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("events within 10 s")
            .expect("stream ok")
            .expect("stream open");
        for e in resp.events() {
            let kv = e.kv().expect("kv");
            seen.push((
                e.event_type() == EventType::Put,
                String::from_utf8_lossy(kv.key()).into_owned(),
                String::from_utf8_lossy(kv.value()).into_owned(),
                kv.mod_revision(),
            ));
        }
    }
}

fn run(ops: Vec<Op>, restart_at: usize, kill: bool) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let mut keel = Keel::start(&[]);
        let restart_at = restart_at.min(ops.len());
        let mut c = keel.client().await;
        let (_w, mut stream) = c
            .watch("k", Some(WatchOptions::new().with_prefix()))
            .await
            .expect("watch");
        let mut expected = apply(&mut c, &ops[..restart_at]).await;
        let mut seen = Vec::new();
        receive(&mut stream, &mut seen, expected.len()).await;
        drop(stream);
        if kill {
            keel.kill9();
        } else {
            keel.stop();
        }
        keel.restart();
        let mut c = keel.client().await;
        let resume_from = seen.last().map_or(2, |e| e.3 + 1);
        let (_w, mut stream) = c
            .watch(
                "k",
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(resume_from),
                ),
            )
            .await
            .expect("watch again");
        expected.extend(apply(&mut c, &ops[restart_at..]).await);
        receive(&mut stream, &mut seen, expected.len()).await;
        // Nothing extra arrives: exactly once.
        let extra = tokio::time::timeout(Duration::from_millis(300), stream.message()).await;
        prop_assert!(extra.is_err(), "unexpected extra response {extra:?}");
        prop_assert_eq!(seen, expected);
        Ok(())
    })
}

proptest! {
    // Each case starts and restarts a server: few cases by default,
    // KEEL_LONG_TESTS=1 for more.
    #![proptest_config(ProptestConfig {
        cases: if std::env::var_os("KEEL_LONG_TESTS").is_some() { 40 } else { 4 },
        ..ProptestConfig::default()
    })]
    #[test]
    fn watchers_across_a_restart_see_every_event_exactly_once_in_order(
        ops in prop::collection::vec(op(), 5..40),
        restart_at in 0usize..40,
        kill in any::<bool>(),
    ) {
        run(ops, restart_at, kill)?;
    }
}
