//! Writes the identity CRDs (deploy/crds/*.yaml) from the Rust types. Run through
//! `cargo xtask crds`, or `cargo run -p identity --example crds -- <dir>`.

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds");
    corbel_sdk::crd::write(&dir, &identity::crd::generated());
}
