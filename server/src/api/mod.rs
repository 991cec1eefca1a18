//! The tonic services of etcd's v3 API that keel serves, and the one table of
//! etcd's errors.

mod closing;
mod cluster;
mod election;
pub mod errors;
mod kv;
mod lease;
mod lock;
mod maintenance;
mod watch;

pub(crate) use cluster::{ClusterOps, ClusterService};
pub(crate) use election::ElectionService;
pub(crate) use kv::KvService;
pub(crate) use lease::LeaseService;
pub(crate) use lock::LockService;
pub(crate) use maintenance::MaintenanceService;
pub(crate) use watch::WatchService;
