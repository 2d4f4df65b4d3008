//! Writes the gateway CRDs (deploy/crds/gateway.corbel.dev_*.yaml) from the Rust types. Run
//! through `cargo xtask crds`, or `cargo run -p gateway --example crds -- <dir>`.

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds");
    corbel_sdk::crd::write(&dir, &gateway::crd::generated());
}
