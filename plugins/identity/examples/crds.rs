//! Writes the identity CRDs (deploy/crds/*.yaml) from the Rust types. Run through
//! `cargo xtask crds`, or `cargo run -p identity --example crds -- <dir>`.

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds")
        });
    std::fs::create_dir_all(&dir).expect("failed to create the CRD directory");
    for (file, yaml) in identity::crd::generated() {
        let path = dir.join(file);
        std::fs::write(&path, yaml).expect("failed to write a CRD");
        println!("wrote {}", path.display());
    }
}
