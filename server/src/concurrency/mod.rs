//! etcd's concurrency recipes (clientv3/concurrency: Mutex, Election) run
//! inside the server for the v3lock and v3election services, exactly as etcd
//! runs them: as a client of the member's own KV, lease and watch APIs.

mod client;
mod election;
mod mutex;

pub(crate) use client::InternalClient;
pub(crate) use election::{Election, LeaderKey};
pub(crate) use mutex::lock;
