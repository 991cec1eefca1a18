//! One module per subcommand, plus what several share (keys, watch streams).

pub(crate) mod keys;
pub(crate) mod lease_keepalive;
pub(crate) mod put;
pub(crate) mod range;
pub(crate) mod txn_mixed;
pub(crate) mod txn_put;
pub(crate) mod watch;
pub(crate) mod watch_latency;
pub(crate) mod watch_streams;
