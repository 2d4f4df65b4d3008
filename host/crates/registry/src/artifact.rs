//! The shape of a plugin in a registry: the CNCF Wasm OCI artifact layout (an image manifest whose
//! config is `application/vnd.wasm.config.v0+json` and whose one layer is `application/wasm`), and
//! the older layout other Wasm tools publish (`application/vnd.wasm.config.v1+json` with a
//! `application/vnd.wasm.content.layer.v1+wasm` layer), which is read but never written.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::RegistryError;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const WASM_CONFIG_V0: &str = "application/vnd.wasm.config.v0+json";
pub const WASM_LAYER: &str = "application/wasm";
pub const WASM_CONFIG_V1: &str = "application/vnd.wasm.config.v1+json";
pub const WASM_LAYER_V1: &str = "application/vnd.wasm.content.layer.v1+wasm";

/// Manifest media types asked for in `Accept` (the distribution registry answers 404 without one).
pub const ACCEPTED_MANIFESTS: &[&str] = &[OCI_MANIFEST, DOCKER_MANIFEST];

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Whether `digest` is `sha256:` and 64 lowercase hex digits: the only digests Corbel stores,
/// and the check that makes a digest safe to use as a file name.
pub fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    pub fn of(media_type: &str, bytes: &[u8]) -> Self {
        Self {
            media_type: media_type.to_owned(),
            digest: sha256_digest(bytes),
            size: bytes.len() as u64,
            annotations: BTreeMap::new(),
        }
    }
}

/// An OCI image manifest, with only the fields Corbel reads or writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The config blob of the CNCF Wasm OCI artifact layout (`application/vnd.wasm.config.v0+json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub layer_digests: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<ComponentInfo>,
}

/// What the component imports and exports, and the world it targets when known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentInfo {
    pub exports: Vec<String>,
    pub imports: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// A component packaged for pushing: the three blobs' bytes and the manifest's digest.
#[derive(Debug)]
pub struct Packaged {
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub layer: Descriptor,
    pub config_descriptor: Descriptor,
}

/// Builds the manifest and config for a component. `info` comes from the component's own type
/// information (`runtime::inspect`), so a registry shows what the plugin imports and exports.
pub fn package(
    component: &[u8],
    info: ComponentInfo,
    title: Option<&str>,
    created: &str,
) -> Packaged {
    let layer = Descriptor::of(WASM_LAYER, component);
    let config = WasmConfig {
        created: Some(created.to_owned()),
        architecture: "wasm".into(),
        os: "wasip2".into(),
        layer_digests: vec![layer.digest.clone()],
        component: Some(info),
    };
    let config = serde_json::to_vec(&config).expect("the config always serializes");
    let config_descriptor = Descriptor::of(WASM_CONFIG_V0, &config);
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "org.opencontainers.image.created".into(),
        created.to_owned(),
    );
    if let Some(title) = title {
        annotations.insert("org.opencontainers.image.title".into(), title.to_owned());
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        artifact_type: Some(WASM_CONFIG_V0.into()),
        config: config_descriptor.clone(),
        layers: vec![layer.clone()],
        annotations,
    };
    let manifest = serde_json::to_vec(&manifest).expect("the manifest always serializes");
    Packaged {
        manifest_digest: sha256_digest(&manifest),
        config,
        manifest,
        layer,
        config_descriptor,
    }
}

/// Which layout a pulled manifest used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Layout {
    /// `application/vnd.wasm.config.v0+json` + `application/wasm` (what `corbel plugin push` writes).
    WasmV0,
    /// `application/vnd.wasm.config.v1+json` + `application/vnd.wasm.content.layer.v1+wasm`.
    WasmV1,
}

/// Reads a pulled manifest and finds the component layer, refusing anything that is not a Wasm
/// artifact with exactly one Wasm layer.
pub fn component_layer(
    reference: &str,
    manifest_bytes: &[u8],
) -> Result<(Manifest, Descriptor, Layout), RegistryError> {
    let manifest: Manifest =
        serde_json::from_slice(manifest_bytes).map_err(|e| RegistryError::NotAPlugin {
            reference: reference.to_owned(),
            why: format!("its manifest is not an OCI image manifest: {e}"),
        })?;
    let layout = match manifest.config.media_type.as_str() {
        WASM_CONFIG_V0 => Layout::WasmV0,
        WASM_CONFIG_V1 => Layout::WasmV1,
        other => {
            return Err(RegistryError::NotAPlugin {
                reference: reference.to_owned(),
                why: format!(
                    "its config is {other}, not a Wasm artifact ({WASM_CONFIG_V0} or {WASM_CONFIG_V1}); is it a container image?"
                ),
            });
        }
    };
    let wasm: Vec<&Descriptor> = manifest
        .layers
        .iter()
        .filter(|l| l.media_type == WASM_LAYER || l.media_type == WASM_LAYER_V1)
        .collect();
    let [layer] = wasm.as_slice() else {
        return Err(RegistryError::NotAPlugin {
            reference: reference.to_owned(),
            why: format!(
                "it has {} Wasm layers ({WASM_LAYER} or {WASM_LAYER_V1}) among {} layers; a plugin artifact has exactly one",
                wasm.len(),
                manifest.layers.len()
            ),
        });
    };
    if !is_sha256_digest(&layer.digest) {
        return Err(RegistryError::NotAPlugin {
            reference: reference.to_owned(),
            why: format!("its layer digest {:?} is not a sha256 digest", layer.digest),
        });
    }
    let layer = (*layer).clone();
    Ok((manifest, layer, layout))
}

/// What a Wasm binary is, from its header: a component, a core module, or not Wasm at all.
pub fn check_component(reference: &str, bytes: &[u8]) -> Result<(), RegistryError> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Err(RegistryError::CoreModule {
            reference: reference.to_owned(),
        }),
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => Ok(()),
        _ => Err(RegistryError::NotAPlugin {
            reference: reference.to_owned(),
            why: "its layer is not WebAssembly (it does not start with the `\\0asm` magic bytes)"
                .into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ComponentInfo {
        ComponentInfo {
            exports: vec!["corbel:plugin/admission@0.1.0".into()],
            imports: vec!["corbel:plugin/log@0.1.0".into()],
            target: Some("corbel:plugin/policy@0.1.0".into()),
        }
    }

    #[test]
    fn packages_a_component_in_the_cncf_wasm_layout() {
        let component = b"\0asm\x0d\0\x01\0rest";
        let packaged = package(component, info(), Some("p.wasm"), "2026-11-21T00:00:00Z");
        let manifest: serde_json::Value = serde_json::from_slice(&packaged.manifest).unwrap();
        assert_eq!(manifest["config"]["mediaType"], WASM_CONFIG_V0);
        assert_eq!(manifest["layers"][0]["mediaType"], WASM_LAYER);
        assert_eq!(manifest["layers"][0]["digest"], sha256_digest(component));
        let config: serde_json::Value = serde_json::from_slice(&packaged.config).unwrap();
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(config["os"], "wasip2");
        assert_eq!(config["layerDigests"][0], sha256_digest(component));
        assert_eq!(
            config["component"]["exports"][0],
            "corbel:plugin/admission@0.1.0"
        );
        assert_eq!(packaged.manifest_digest, sha256_digest(&packaged.manifest));
    }

    #[test]
    fn reads_both_wasm_layouts_and_refuses_container_images() {
        let layer = |media: &str| Descriptor::of(media, b"\0asm\x0d\0\x01\0");
        let manifest = |config: &str, layer_type: &str| {
            serde_json::to_vec(&Manifest {
                schema_version: 2,
                media_type: Some(OCI_MANIFEST.into()),
                artifact_type: None,
                config: Descriptor::of(config, b"{}"),
                layers: vec![layer(layer_type)],
                annotations: BTreeMap::new(),
            })
            .unwrap()
        };
        let (_, _, layout) = component_layer("r", &manifest(WASM_CONFIG_V0, WASM_LAYER)).unwrap();
        assert_eq!(layout, Layout::WasmV0);
        let (_, _, layout) =
            component_layer("r", &manifest(WASM_CONFIG_V1, WASM_LAYER_V1)).unwrap();
        assert_eq!(layout, Layout::WasmV1);
        let image = component_layer(
            "r",
            &manifest(
                "application/vnd.oci.image.config.v1+json",
                "application/vnd.oci.image.layer.v1.tar+gzip",
            ),
        )
        .unwrap_err();
        assert!(image.to_string().contains("container image"), "{image}");
    }

    #[test]
    fn tells_a_core_module_from_a_component() {
        let core = check_component("r", b"\0asm\x01\0\0\0").unwrap_err();
        assert!(
            core.to_string().contains("core WebAssembly module"),
            "{core}"
        );
        assert!(check_component("r", b"\0asm\x0d\0\x01\0").is_ok());
        assert!(check_component("r", b"PK\x03\x04zip!").is_err());
    }

    #[test]
    fn only_lowercase_sha256_digests_are_file_names() {
        assert!(is_sha256_digest(&sha256_digest(b"x")));
        assert!(!is_sha256_digest("sha256:../../etc/passwd"));
        assert!(!is_sha256_digest("sha512:abcd"));
    }
}
