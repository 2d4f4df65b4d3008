//! Copies the Envoy API's descriptor set from the `envoy-types` crate into `OUT_DIR`.
//!
//! The xDS room converts the proto-JSON resources plugins publish into protobuf with
//! `prost-reflect`, which needs the descriptors of every Envoy message. `envoy-types` generates its
//! prost types from exactly such a set (`src/generated/types.bin`) but does not export it, so the
//! build reads it from the crate's unpacked sources in Cargo's registry (the version is pinned
//! with `=` in Cargo.toml for that reason). The descriptors then always match the prost types the
//! server speaks. (`cargo metadata` would find the directory more generally, but it wants every
//! package of the lock file downloaded, which a build of one crate does not guarantee.)

use std::path::PathBuf;

const ENVOY_TYPES: &str = "envoy-types-0.7.7";

fn main() {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("CARGO_HOME or HOME is set");
    let registry = cargo_home.join("registry/src");
    let source = std::fs::read_dir(&registry)
        .unwrap_or_else(|e| panic!("failed to read {}: {e}", registry.display()))
        .filter_map(Result::ok)
        .map(|index| index.path().join(ENVOY_TYPES).join("src/generated/types.bin"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{ENVOY_TYPES}/src/generated/types.bin is not under {}: fetch the crate (cargo fetch) \
                 or, with vendored sources, set CARGO_HOME to where it is unpacked",
                registry.display()
            )
        });
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("envoy-descriptors.bin");
    std::fs::copy(&source, &out)
        .unwrap_or_else(|e| panic!("failed to copy {}: {e}", source.display()));
    println!("cargo::rerun-if-changed={}", source.display());
    println!("cargo::rerun-if-changed=build.rs");
}
