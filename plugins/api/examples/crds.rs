//! Writes the API-management CRDs (deploy/crds/*.api.corbel.dev.yaml) from the Rust types. Run
//! through `cargo xtask crds`, or `cargo run -p api --example crds`.

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds");
    corbel_sdk::crd::write(&dir, &api::crd::generated());
}
