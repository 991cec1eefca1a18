//! The bench speaks only etcd's public v3 API: it compiles the same proto
//! files as the server, so it measures etcd and keel with the same code. The
//! server stubs are for `keel-noop-server` only, the no-op baseline.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "../server/proto/mvccpb/kv.proto",
        "../server/proto/authpb/auth.proto",
        "../server/proto/etcdserverpb/rpc.proto",
    ];
    for proto in &protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["../server/proto"])?;
    tonic_prost_build::configure()
        .bytes(".")
        // Server stubs too: `keel-noop-server` (the no-op baseline) implements KV.
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
