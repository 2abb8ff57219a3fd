//! Compile the vendored CRI v1 `api.proto` into prost types, a tonic
//! server (for the daemon) and a tonic client (for tests and tools).
//!
//! Debian 12's protoc (3.21) predates the `debug_redact` field option
//! (protobuf 3.22) that the upstream file puts on auth fields; it only
//! tells Go's printers to hide a value and changes nothing on the wire, so
//! a copy without it is compiled and the vendored file stays as upstream
//! ships it.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/api.proto");
    let text = std::fs::read_to_string("proto/api.proto")?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("proto");
    std::fs::create_dir_all(&out)?;
    let text = text.replace(" [debug_redact = true]", "");
    std::fs::write(out.join("api.proto"), text)?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // RPCs not implemented yet answer Unimplemented (as the CRI asks).
        .generate_default_stubs(true)
        .compile_protos(&[out.join("api.proto")], &[out])?;
    Ok(())
}
