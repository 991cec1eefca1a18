//! The tonic services of etcd's v3 API that keel serves, and the one table of
//! etcd's errors.

pub mod errors;
mod kv;
mod lease;
mod maintenance;
mod watch;

pub(crate) use kv::KvService;
pub(crate) use lease::LeaseService;
pub(crate) use maintenance::MaintenanceService;
pub(crate) use watch::WatchService;
