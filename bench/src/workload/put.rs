//! `put`: Put requests of --val-size bytes over the key space.

use crate::client::{connect, drive};
use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::PutRequest;
use crate::report::Report;
use crate::Global;

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct PutArgs {
    #[command(flatten)]
    keys: super::KeyArgs,
    /// Value size in bytes.
    #[arg(long, default_value_t = 8)]
    val_size: usize,
    /// Total number of put requests.
    #[arg(long, default_value_t = 10_000)]
    total: u64,
    /// Maximum puts per second (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
}

pub(crate) async fn run(global: &Global, args: PutArgs) -> anyhow::Result<Report> {
    let channels = connect(global).await?;
    let value = super::value(args.val_size);
    let keys = args.keys.clone();
    Ok(drive(
        global,
        channels,
        args.total,
        args.rate,
        move |channel, i| {
            let request = PutRequest {
                key: keys.key(i).into(),
                value: value.clone(),
                ..Default::default()
            };
            async move { KvClient::new(channel).put(request).await.map(|_| ()) }
        },
    )
    .await)
}
