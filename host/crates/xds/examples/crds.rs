//! Writes the XdsSnapshot kind's CRD (deploy/crds/xdssnapshots.xds.corbel.dev.yaml) from its Rust
//! types. Run through `cargo xtask crds`, or `cargo run -p corbel-xds --example crds -- <dir>`.

use corbel_xds::api::{SOURCE, XdsSnapshot};
use kube::CustomResourceExt;

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../deploy/crds");
    corbel_sdk::crd::write(&dir, &corbel_sdk::crd::files(SOURCE, [XdsSnapshot::crd()]));
}
