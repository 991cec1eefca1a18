//! `range`: Range requests for one key or a key range (etcd's `benchmark range key [end]`).

use crate::cli::Global;
use std::sync::Arc;

use crate::client::{connect_unary, drive_one};
use crate::grpc::path;
use crate::proto::etcdserverpb::{RangeRequest, RangeResponse};
use crate::report::Outcome;

/// etcd's `--consistency`: `l` (linearizable, the default) or `s` (serializable).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Consistency {
    /// A ReadIndex round through the leader before reading.
    #[value(name = "l")]
    Linearizable,
    /// Read the member's local state.
    #[value(name = "s")]
    Serializable,
}

impl Consistency {
    pub(crate) fn serializable(self) -> bool {
        self == Consistency::Serializable
    }
}

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct RangeArgs {
    /// Key to read.
    pub(crate) key: String,
    /// Range end (exclusive); empty = the key alone.
    #[arg(default_value = "")]
    pub(crate) end: String,
    /// Linearizable (l) or Serializable (s).
    #[arg(long, value_enum, default_value = "l")]
    pub(crate) consistency: Consistency,
    /// Total number of range requests.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) total: u64,
    /// Maximum range requests per second (0 is no limit).
    #[arg(long, default_value_t = 0)]
    pub(crate) rate: u64,
    /// keel: maximum keys per response (0 = all).
    #[arg(long, default_value_t = 0)]
    pub(crate) limit: i64,
}

pub(crate) async fn run(global: &Global, args: RangeArgs) -> anyhow::Result<Outcome> {
    let conns = connect_unary(global).await?;
    let request = Arc::new(RangeRequest {
        key: args.key.clone().into_bytes().into(),
        range_end: args.end.clone().into_bytes().into(),
        serializable: args.consistency.serializable(),
        limit: args.limit,
        ..Default::default()
    });
    let report = drive_one(
        global,
        &conns,
        args.total,
        args.rate,
        "range",
        move |call| {
            let (request, mut conn) = (request.clone(), call.conn);
            async move {
                conn.unary::<_, RangeResponse>(path::KV_RANGE, &*request)
                    .await
                    .map(|_| ())
            }
        },
    )
    .await;
    Ok(Outcome::single("range", report))
}
