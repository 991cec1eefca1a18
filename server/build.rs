//! Compiles keel's copies of etcd's v3 protos with protox (pure Rust, no protoc)
//! and generates prost messages and tonic services from them.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/mvccpb/kv.proto",
        "proto/authpb/auth.proto",
        "proto/etcdserverpb/rpc.proto",
        "proto/v3lockpb/v3lock.proto",
        "proto/v3electionpb/v3election.proto",
        "proto/keelpb/internal.proto",
        "proto/keelpb/peer.proto",
    ];
    for proto in &protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        // Keys and values travel as `bytes::Bytes`: decoding a request slices the
        // receive buffer instead of copying, and the MVCC store shares them.
        .bytes(".")
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
