//! `txn-put`: Txn requests of `--txn-ops` puts each (etcd's `benchmark txn-put`): txn `i`
//! writes key numbers `i * ops + j`, modulo the key space, as etcd's tool does.

use crate::cli::Global;
use crate::client::{connect_unary, drive_one};
use crate::grpc::path;
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::{PutRequest, RequestOp, TxnRequest, TxnResponse};
use crate::report::Outcome;

use super::keys::{random_value, KeySpace};

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct TxnPutArgs {
    #[command(flatten)]
    pub(crate) keys: KeySpace,
    /// Value size of txn put (bytes).
    #[arg(long, default_value_t = 8)]
    pub(crate) val_size: usize,
    /// Number of puts per txn.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) txn_ops: u64,
    /// Total number of txn requests.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) total: u64,
    /// Maximum txns per second (0 is no limit).
    #[arg(long, default_value_t = 0)]
    pub(crate) rate: u64,
}

pub(crate) async fn run(global: &Global, args: TxnPutArgs) -> anyhow::Result<Outcome> {
    args.keys.validate()?;
    let conns = connect_unary(global).await?;
    let value = random_value(args.val_size);
    let keys = args.keys.clone();
    let ops = args.txn_ops;
    let report = drive_one(
        global,
        &conns,
        args.total,
        args.rate,
        "txn-put",
        move |call| {
            let success = (0..ops)
                .map(|j| RequestOp {
                    request: Some(Request::RequestPut(PutRequest {
                        key: keys.key(call.number * ops + j),
                        value: value.clone(),
                        ..Default::default()
                    })),
                })
                .collect();
            let request = TxnRequest {
                success,
                ..Default::default()
            };
            let mut conn = call.conn;
            async move {
                conn.unary::<_, TxnResponse>(path::KV_TXN, &request)
                    .await
                    .map(|_| ())
            }
        },
    )
    .await;
    Ok(Outcome::single("txn-put", report))
}
