//! The bench speaks only etcd's public v3 API: it compiles the same proto
//! files as the server (client side only), so it measures etcd and keel with
//! the same code.

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
        .build_server(false)
        .compile_fds(descriptors)?;
    Ok(())
}
