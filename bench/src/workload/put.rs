//! `put`: Put requests of `--val-size` bytes over the key space (etcd's `benchmark put`).

use crate::cli::Global;
use crate::client::{connect_unary, drive_one};
use crate::grpc::path;
use crate::proto::etcdserverpb::{PutRequest, PutResponse};
use crate::report::Outcome;

use super::keys::{random_value, KeySpace};

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct PutArgs {
    #[command(flatten)]
    pub(crate) keys: KeySpace,
    /// Use sequential keys (key number = request number modulo the key space).
    #[arg(long)]
    pub(crate) sequential_keys: bool,
    /// Value size of put request (bytes).
    #[arg(long, default_value_t = 8)]
    pub(crate) val_size: usize,
    /// Total number of put requests.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) total: u64,
    /// Maximum puts per second (0 is no limit).
    #[arg(long, default_value_t = 0)]
    pub(crate) rate: u64,
}

pub(crate) async fn run(global: &Global, args: PutArgs) -> anyhow::Result<Outcome> {
    args.keys.validate()?;
    let conns = connect_unary(global).await?;
    let value = random_value(args.val_size);
    let keys = args.keys.clone();
    let sequential = args.sequential_keys;
    let report = drive_one(global, &conns, args.total, args.rate, "put", move |call| {
        let key = if sequential {
            keys.key(call.number)
        } else {
            keys.random_key()
        };
        let request = PutRequest {
            key,
            value: value.clone(),
            ..Default::default()
        };
        let mut conn = call.conn;
        async move {
            conn.unary::<_, PutResponse>(path::KV_PUT, &request)
                .await
                .map(|_| ())
        }
    })
    .await;
    Ok(Outcome::single("put", report))
}
