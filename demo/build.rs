//! Compiles `proto/shop.proto` with `protox` (a pure-Rust protobuf compiler), so building the
//! demo needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/shop.proto");
    let fds = protox::compile(["shop.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_transport(false)
        .emit_rerun_if_changed(false)
        .compile_fds(fds)?;
    Ok(())
}
