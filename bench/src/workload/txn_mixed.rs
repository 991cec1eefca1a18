//! `txn-mixed`: a read/write mix of txns (etcd's `benchmark txn-mixed`). Each txn holds one
//! op: with probability `r / (1 + r)` (`r` = `--rw-ratio`) a range over the whole key space
//! (or up to `--end-key`) limited to `--limit` keys, else a put of key number
//! `i % --key-space-size`. Reads and writes are reported apart, then all txns together.

use crate::cli::Global;
use crate::client::{connect_unary, drive, Load};
use crate::grpc::path;
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::{PutRequest, RangeRequest, RequestOp, TxnRequest, TxnResponse};
use crate::report::{Outcome, Part, Report};

use super::keys::{random_value, KeySpace};
use super::range::Consistency;

/// Request classes, indexes of the reports `drive` returns.
const READ: usize = 0;
const WRITE: usize = 1;

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct TxnMixedArgs {
    #[command(flatten)]
    pub(crate) keys: KeySpace,
    /// Value size of mixed txn (bytes).
    #[arg(long, default_value_t = 8)]
    pub(crate) val_size: usize,
    /// Maximum txns per second (0 is no limit).
    #[arg(long, default_value_t = 0)]
    pub(crate) rate: u64,
    /// Total number of txn requests.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) total: u64,
    /// Read operation range end key. By default, a full range query limited by --limit.
    #[arg(long, default_value = "")]
    pub(crate) end_key: String,
    /// Read operation range result limit.
    #[arg(long, default_value_t = 1000)]
    pub(crate) limit: i64,
    /// Linearizable (l) or Serializable (s) reads.
    #[arg(long, value_enum, default_value = "l")]
    pub(crate) consistency: Consistency,
    /// Read/write ops ratio (1 = as many reads as writes; 0 = writes only).
    #[arg(long, default_value_t = 1.0, value_parser = parse_ratio)]
    pub(crate) rw_ratio: f64,
}

fn parse_ratio(text: &str) -> Result<f64, String> {
    let ratio: f64 = text.parse().map_err(|_| format!("bad ratio {text:?}"))?;
    if ratio.is_finite() && ratio >= 0.0 {
        Ok(ratio)
    } else {
        Err(format!(
            "--rw-ratio must be a finite number >= 0, not {text}"
        ))
    }
}

/// splitmix64: a fixed, well-mixed function of the request number, so the read/write mix of
/// a run is the same in every run (and for etcd and keel).
fn mix(number: u64) -> u64 {
    let mut z = number.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Whether request `number` is a read when reads are `rw_ratio` times as frequent as writes.
pub(crate) fn is_read(number: u64, rw_ratio: f64) -> bool {
    let uniform = (mix(number) >> 11) as f64 / (1u64 << 53) as f64;
    uniform < rw_ratio / (1.0 + rw_ratio)
}

pub(crate) async fn run(global: &Global, args: TxnMixedArgs) -> anyhow::Result<Outcome> {
    args.keys.validate()?;
    let conns = connect_unary(global).await?;
    let value = random_value(args.val_size);
    let keys = args.keys.clone();
    let read = RangeRequest {
        // etcd's tool reads with the prefix "" (every key from "\0" on).
        key: b"\0".to_vec().into(),
        range_end: if args.end_key.is_empty() {
            b"\0".to_vec().into()
        } else {
            args.end_key.clone().into_bytes().into()
        },
        limit: args.limit,
        serializable: args.consistency.serializable(),
        ..Default::default()
    };
    let rw_ratio = args.rw_ratio;
    let load = Load {
        total: args.total,
        rate_per_sec: args.rate,
        classes: 2,
        label: "txn-mixed",
    };
    let mut reports = drive(global, &conns, load, move |call| {
        let (class, op) = if is_read(call.number, rw_ratio) {
            (READ, Request::RequestRange(read.clone()))
        } else {
            let put = PutRequest {
                key: keys.key(call.number),
                value: value.clone(),
                ..Default::default()
            };
            (WRITE, Request::RequestPut(put))
        };
        let request = TxnRequest {
            success: vec![RequestOp { request: Some(op) }],
            ..Default::default()
        };
        let mut conn = call.conn;
        let future = async move {
            conn.unary::<_, TxnResponse>(path::KV_TXN, &request)
                .await
                .map(|_| ())
        };
        (class, future)
    })
    .await;
    let write = reports.pop().expect("two classes");
    let read = reports.pop().expect("two classes");
    let all = Report::combine([&read, &write]);
    let parts = vec![
        Part {
            name: "read",
            title: format!(
                "Total Read Ops: {}\nDetails",
                read.requests() + read.errors()
            ),
            report: read,
        },
        Part {
            name: "write",
            title: format!(
                "Total Write Ops: {}\nDetails",
                write.requests() + write.errors()
            ),
            report: write,
        },
        Part {
            name: "all",
            title: "All txns".into(),
            report: all,
        },
    ];
    Ok(Outcome {
        command: "txn-mixed",
        parts,
        headline: 2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The mix must follow --rw-ratio: ratio r gives a read share of r / (1 + r).
    #[test]
    fn read_share_follows_the_rw_ratio() {
        for (ratio, share) in [(1.0, 0.5), (4.0, 0.8), (0.25, 0.2)] {
            let reads = (0..100_000u64).filter(|n| is_read(*n, ratio)).count();
            let measured = reads as f64 / 100_000.0;
            assert!(
                (measured - share).abs() < 0.01,
                "ratio {ratio}: read share {measured}, expected {share}"
            );
        }
    }

    #[test]
    fn ratio_zero_means_writes_only() {
        assert!((0..10_000u64).all(|n| !is_read(n, 0.0)));
    }

    #[test]
    fn the_mix_is_the_same_in_every_run() {
        let first: Vec<bool> = (0..64u64).map(|n| is_read(n, 1.0)).collect();
        let second: Vec<bool> = (0..64u64).map(|n| is_read(n, 1.0)).collect();
        assert_eq!(first, second);
        assert!(first.contains(&true) && first.contains(&false));
    }

    #[test]
    fn negative_or_nan_ratios_are_rejected() {
        assert!(parse_ratio("-1").is_err());
        assert!(parse_ratio("NaN").is_err());
        assert!(parse_ratio("inf").is_err());
        assert_eq!(parse_ratio("0.5"), Ok(0.5));
    }
}
