//! Writes the Plugin kind's CRD (deploy/crds/plugins.corbel.dev.yaml) from its Rust types. Run
//! through `cargo xtask crds`, or `cargo run -p corbel-reconcile --example crds -- <dir>`.

use corbel_reconcile::plugin_kind::api::{Plugin, SOURCE};
use kube::CustomResourceExt;

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../deploy/crds");
    corbel_sdk::crd::write(&dir, &corbel_sdk::crd::files(SOURCE, [Plugin::crd()]));
}
