//! Compiles `ecovol/v1/*.proto` with protox (pure Rust, no system protoc) and generates tonic clients and servers.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("ecovol/v1")?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    files.sort();
    let descriptors = protox::compile(&files, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("ecovol_descriptor.bin"), prost::Message::encode_to_vec(&descriptors))?;
    // Our codec answers an undecodable body InvalidArgument instead of tonic's Internal (src/codec.rs).
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .codec_path("crate::codec::EcovolCodec")
        .compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed=ecovol");
    Ok(())
}
