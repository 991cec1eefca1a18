//! etcd's v3 wire types and client stubs (generated from server/proto).
#![allow(missing_docs, clippy::all, clippy::pedantic, dead_code)]

pub(crate) mod mvccpb {
    tonic::include_proto!("mvccpb");
}
pub(crate) mod authpb {
    tonic::include_proto!("authpb");
}
pub(crate) mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}
