//! Fault tests of real processes: a cluster runner (members of any
//! etcd-3.4-compatible binary on loopback), peer-link proxies that partition,
//! a recorded concurrent workload, a linearizability checker, and the checks
//! run after every fault. See docs/dev/fault-tests.md.

mod binary;
mod checker;
mod cluster;
mod error;
mod history;
mod proxy;
mod runner;
mod scenario;
mod settings;
mod soak;
mod socket_owner;
mod stale_read;
mod verify;
mod workload;

pub(crate) use binary::MemberBinary;
pub(crate) use runner::{run_fault_test, run_soak_test, run_stale_read_test};
pub(crate) use scenario::Fault;
