//! Generated etcd v3 wire types and services (from `server/proto/`, see build.rs).
#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// etcd's MVCC types: `KeyValue`, `Event`.
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}
/// etcd's auth types: `User`, `Role`, `Permission`.
pub mod authpb {
    tonic::include_proto!("authpb");
}
/// etcd's v3 client API: KV, Watch, Lease, Cluster, Maintenance, Auth.
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}
/// etcd's v3lock service.
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}
/// etcd's v3election service.
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}
/// keel's Raft entry payload.
pub mod keelpb {
    tonic::include_proto!("keelpb");
}
