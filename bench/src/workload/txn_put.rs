//! `txn-put`: Txn requests of --txn-ops puts each.

use crate::client::{connect, drive};
use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::{PutRequest, RequestOp, TxnRequest};
use crate::report::Report;
use crate::Global;

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct TxnPutArgs {
    #[command(flatten)]
    keys: super::KeyArgs,
    /// Value size in bytes.
    #[arg(long, default_value_t = 8)]
    val_size: usize,
    /// Puts per txn.
    #[arg(long, default_value_t = 1)]
    txn_ops: u64,
    /// Total number of txn requests.
    #[arg(long, default_value_t = 10_000)]
    total: u64,
    /// Maximum txns per second (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
}

pub(crate) async fn run(global: &Global, args: TxnPutArgs) -> anyhow::Result<Report> {
    let channels = connect(global).await?;
    let value = super::value(args.val_size);
    let keys = args.keys.clone();
    let ops = args.txn_ops.max(1);
    Ok(drive(
        global,
        channels,
        args.total,
        args.rate,
        move |channel, i| {
            let success = (0..ops)
                .map(|j| RequestOp {
                    request: Some(Request::RequestPut(PutRequest {
                        key: keys.key(i * ops + j).into(),
                        value: value.clone(),
                        ..Default::default()
                    })),
                })
                .collect();
            let request = TxnRequest {
                success,
                ..Default::default()
            };
            async move { KvClient::new(channel).txn(request).await.map(|_| ()) }
        },
    )
    .await)
}
