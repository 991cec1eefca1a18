//! `range`: Range requests for one key or a key range.

use crate::client::{connect, drive};
use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::RangeRequest;
use crate::report::Report;
use crate::Global;

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct RangeArgs {
    /// Key to read.
    key: String,
    /// Range end (exclusive); empty = the key alone.
    #[arg(default_value = "")]
    end: String,
    /// Linearizable (l) or serializable (s).
    #[arg(long, default_value = "l")]
    consistency: String,
    /// Total number of range requests.
    #[arg(long, default_value_t = 10_000)]
    total: u64,
    /// Maximum requests per second (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Maximum keys per response (0 = all).
    #[arg(long, default_value_t = 0)]
    limit: i64,
}

pub(crate) async fn run(global: &Global, args: RangeArgs) -> anyhow::Result<Report> {
    let serializable = match args.consistency.as_str() {
        "l" => false,
        "s" => true,
        other => anyhow::bail!("--consistency must be l or s, not {other:?}"),
    };
    let channels = connect(global).await?;
    let request = RangeRequest {
        key: args.key.clone().into_bytes().into(),
        range_end: args.end.clone().into_bytes().into(),
        serializable,
        limit: args.limit,
        ..Default::default()
    };
    Ok(drive(
        global,
        channels,
        args.total,
        args.rate,
        move |channel, _| {
            let request = request.clone();
            async move { KvClient::new(channel).range(request).await.map(|_| ()) }
        },
    )
    .await)
}
