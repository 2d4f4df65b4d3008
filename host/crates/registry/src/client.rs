//! Talking to an OCI registry: references, credentials (flags, or the user's docker config), TLS
//! with extra CAs, and the few operations plugins need (push, resolve, pull a blob into the cache,
//! read and write cosign signatures). Built on `oci-client`; every byte received is checked
//! against the digest it was asked for, here, whatever the library also checks.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;
use futures::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use super::RegistryError;
use super::artifact::{self, Descriptor, Manifest, sha256_digest};
use super::cache::Cache;
use super::signature;

/// Parses `oci://host/repo:tag`, `host/repo@sha256:…` (the `oci://` prefix is optional).
pub fn parse_reference(text: &str) -> Result<Reference, RegistryError> {
    let bare = text.strip_prefix("oci://").unwrap_or(text);
    let reference = Reference::from_str(bare).map_err(|e| RegistryError::InvalidReference {
        reference: text.to_owned(),
        why: e.to_string(),
    })?;
    if let Some(digest) = reference.digest()
        && !artifact::is_sha256_digest(digest)
    {
        return Err(RegistryError::InvalidReference {
            reference: text.to_owned(),
            why: format!("{digest} is not a sha256 digest (sha256: and 64 lowercase hex digits)"),
        });
    }
    Ok(reference)
}

/// `host/path/name`: the repository, as cosign's `docker-reference` names it.
pub fn repository(reference: &Reference) -> String {
    format!("{}/{}", reference.registry(), reference.repository())
}

/// Credentials and TLS for registries.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extra CA certificates (PEM) to trust besides the system's.
    pub ca_files: Vec<PathBuf>,
    /// Username and password given on the command line; otherwise the docker config is read.
    pub credentials: Option<(String, String)>,
}

/// A client for one command or one start: remembers tokens per registry.
pub struct Registry {
    client: Client,
    options: Options,
}

/// The outcome of resolving a reference: the manifest, its digest, and its component layer.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub manifest_digest: String,
    pub manifest: Manifest,
    pub layer: Descriptor,
    pub layout: artifact::Layout,
}

impl Registry {
    pub fn new(options: Options) -> Result<Self, RegistryError> {
        // reqwest is built without a default crypto provider (the host picks ring everywhere).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut extra = Vec::new();
        for path in &options.ca_files {
            let data = std::fs::read(path).map_err(|e| RegistryError::Tls {
                path: path.display().to_string(),
                why: format!("cannot be read: {e}"),
            })?;
            if !data
                .windows(27)
                .any(|w| w == b"-----BEGIN CERTIFICATE-----")
            {
                return Err(RegistryError::Tls {
                    path: path.display().to_string(),
                    why: "holds no PEM certificate".into(),
                });
            }
            extra.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let config = ClientConfig {
            extra_root_certificates: extra,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(60)),
            user_agent: concat!("corbel/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        let client = Client::try_from(config).map_err(|e| RegistryError::Tls {
            path: options
                .ca_files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            why: format!("the HTTPS client cannot be built: {e}"),
        })?;
        Ok(Self { client, options })
    }

    /// The credentials for a registry host: flags first, then the docker config.
    fn auth(&self, reference: &Reference) -> Result<RegistryAuth, RegistryError> {
        if let Some((user, password)) = &self.options.credentials {
            return Ok(RegistryAuth::Basic(user.clone(), password.clone()));
        }
        docker_config_auth(reference.resolve_registry())
    }

    async fn login(
        &self,
        reference: &Reference,
        op: RegistryOperation,
    ) -> Result<(), RegistryError> {
        let auth = self.auth(reference)?;
        self.client
            .auth(reference, &auth, op)
            .await
            .map_err(|e| map_error(reference, e))?;
        Ok(())
    }

    /// Pushes a packaged component; returns the manifest digest.
    pub async fn push(
        &self,
        reference: &Reference,
        packaged: &artifact::Packaged,
        component: &[u8],
    ) -> Result<String, RegistryError> {
        self.login(reference, RegistryOperation::Push).await?;
        let err = |e| map_error(reference, e);
        for (bytes, descriptor) in [
            (component, &packaged.layer),
            (packaged.config.as_slice(), &packaged.config_descriptor),
        ] {
            if !self
                .client
                .blob_exists(reference, &descriptor.digest)
                .await
                .unwrap_or(false)
            {
                self.client
                    .push_blob(reference, bytes.to_vec(), &descriptor.digest)
                    .await
                    .map_err(err)?;
            }
        }
        self.client
            .push_manifest_raw(
                reference,
                packaged.manifest.clone(),
                artifact::OCI_MANIFEST
                    .parse()
                    .expect("a valid header value"),
            )
            .await
            .map_err(err)?;
        Ok(packaged.manifest_digest.clone())
    }

    /// Fetches a manifest and checks its bytes against its digest (and against the digest in the
    /// reference, when it has one).
    async fn manifest(&self, reference: &Reference) -> Result<(Vec<u8>, String), RegistryError> {
        self.login(reference, RegistryOperation::Pull).await?;
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(
                reference,
                &self.auth(reference)?,
                artifact::ACCEPTED_MANIFESTS,
            )
            .await
            .map_err(|e| map_error(reference, e))?;
        let actual = sha256_digest(&bytes);
        let expected = reference.digest().unwrap_or(&digest);
        if actual != expected {
            return Err(RegistryError::DigestMismatch {
                what: format!("manifest of {}", reference.whole()),
                expected: expected.to_owned(),
                actual,
            });
        }
        Ok((bytes.to_vec(), actual))
    }

    /// Resolves a reference (tag or digest) to its manifest digest and component layer.
    pub async fn resolve(&self, reference: &Reference) -> Result<Resolved, RegistryError> {
        let (bytes, manifest_digest) = self.manifest(reference).await?;
        let (manifest, layer, layout) = artifact::component_layer(&reference.whole(), &bytes)?;
        Ok(Resolved {
            manifest_digest,
            manifest,
            layer,
            layout,
        })
    }

    /// Streams a blob into the cache, checking its digest; reports progress on standard error
    /// (`bytes/total` when it is a terminal, one line per blob otherwise) when `progress` is set.
    /// On a mismatch nothing is left in the cache and the error names both digests.
    pub async fn pull_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        cache: &Cache,
        progress: bool,
    ) -> Result<(), RegistryError> {
        let digest = descriptor.digest.as_str();
        let mut writer = cache.blob_writer(digest)?;
        let layer = oci_client::manifest::OciDescriptor {
            media_type: descriptor.media_type.clone(),
            digest: digest.to_owned(),
            size: descriptor.size as i64,
            ..Default::default()
        };
        let mut stream = self
            .client
            .pull_blob_stream(reference, &layer)
            .await
            .map_err(|e| map_error(reference, e))?;
        let total = stream.content_length.unwrap_or(descriptor.size);
        let tty = progress && std::io::stderr().is_terminal();
        let short = &digest[..digest.len().min(19)];
        let mut last_shown = 0u64;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => writer.write(&bytes)?,
                Err(e) => {
                    // oci-client checks the digest at the end of the stream too; whoever notices
                    // first, the error is ours and names both digests.
                    let actual = writer.actual_digest();
                    if writer.written() >= descriptor.size && actual != digest {
                        return Err(RegistryError::DigestMismatch {
                            what: format!("blob of {}", reference.whole()),
                            expected: digest.to_owned(),
                            actual,
                        });
                    }
                    return Err(RegistryError::Registry {
                        reference: reference.whole(),
                        why: format!("the download of {digest} failed: {e}"),
                    });
                }
            }
            if tty && writer.written() - last_shown >= 256 << 10 {
                last_shown = writer.written();
                eprint!(
                    "\r  {short}…  {} / {}",
                    human(writer.written()),
                    human(total)
                );
            }
        }
        if tty {
            eprintln!(
                "\r  {short}…  {} / {}",
                human(writer.written()),
                human(total)
            );
        } else if progress {
            eprintln!("pulled {digest} ({} bytes)", writer.written());
        }
        if writer.written() > descriptor.size || writer.actual_digest() != digest {
            let actual = writer.actual_digest();
            return Err(RegistryError::DigestMismatch {
                what: format!("blob of {}", reference.whole()),
                expected: digest.to_owned(),
                actual,
            });
        }
        writer.finish()
    }

    /// Fetches a small blob (a config, a signature payload) into memory, checking its digest.
    async fn small_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
    ) -> Result<Vec<u8>, RegistryError> {
        const LIMIT: u64 = 1 << 20;
        if descriptor.size > LIMIT {
            return Err(RegistryError::Registry {
                reference: reference.whole(),
                why: format!(
                    "{} is {} bytes, more than the {LIMIT} expected of it",
                    descriptor.digest, descriptor.size
                ),
            });
        }
        let mut bytes = Vec::new();
        let result = self
            .client
            .pull_blob(reference, descriptor.digest.as_str(), &mut bytes)
            .await;
        let actual = sha256_digest(&bytes);
        if actual != descriptor.digest {
            return Err(RegistryError::DigestMismatch {
                what: format!("blob of {}", reference.whole()),
                expected: descriptor.digest.clone(),
                actual,
            });
        }
        result.map_err(|e| map_error(reference, e))?;
        Ok(bytes)
    }

    /// The artifact's Wasm config (what the component imports and exports, its world), when the
    /// manifest is of the CNCF layout and its config says so. `None` for the older layout or a
    /// config without a `component` entry; an unreadable config is an error.
    pub async fn wasm_config(
        &self,
        reference: &Reference,
        resolved: &Resolved,
    ) -> Result<Option<artifact::WasmConfig>, RegistryError> {
        if resolved.layout != artifact::Layout::WasmV0 {
            return Ok(None);
        }
        let bytes = self
            .small_blob(reference, &resolved.manifest.config)
            .await?;
        let config: artifact::WasmConfig =
            serde_json::from_slice(&bytes).map_err(|e| RegistryError::Registry {
                reference: reference.whole(),
                why: format!(
                    "its config {} is not a Wasm config: {e}",
                    resolved.manifest.config.digest
                ),
            })?;
        Ok(Some(config))
    }

    /// The signatures stored for a manifest under cosign's `sha256-<hex>.sig` tag: each
    /// `(payload, base64 signature)`. None when the tag does not exist.
    pub async fn signatures(
        &self,
        reference: &Reference,
        manifest_digest: &str,
    ) -> Result<Vec<(Vec<u8>, String)>, RegistryError> {
        let sig_ref = Reference::with_tag(
            reference.registry().to_owned(),
            reference.repository().to_owned(),
            signature::signature_tag(manifest_digest),
        );
        let bytes = match self.manifest(&sig_ref).await {
            Ok((bytes, _)) => bytes,
            Err(RegistryError::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| RegistryError::Registry {
                reference: sig_ref.whole(),
                why: format!("the signature manifest is not an OCI image manifest: {e}"),
            })?;
        let mut found = Vec::new();
        for layer in manifest
            .layers
            .iter()
            .filter(|l| l.media_type == signature::SIMPLE_SIGNING)
        {
            let Some(sig) = layer.annotations.get(signature::SIGNATURE_ANNOTATION) else {
                continue;
            };
            let payload = self.small_blob(&sig_ref, layer).await?;
            found.push((payload, sig.clone()));
        }
        Ok(found)
    }

    /// Adds a signature to the manifest's `.sig` image (keeping any signatures already there, as
    /// cosign does).
    pub async fn push_signature(
        &self,
        reference: &Reference,
        manifest_digest: &str,
        payload: &[u8],
        signature_b64: &str,
    ) -> Result<String, RegistryError> {
        let sig_ref = Reference::with_tag(
            reference.registry().to_owned(),
            reference.repository().to_owned(),
            signature::signature_tag(manifest_digest),
        );
        let mut layers = match self.manifest(&sig_ref).await {
            Ok((bytes, _)) => serde_json::from_slice::<Manifest>(&bytes)
                .map(|m| m.layers)
                .unwrap_or_default(),
            Err(RegistryError::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        self.login(&sig_ref, RegistryOperation::Push).await?;
        let mut layer = Descriptor::of(signature::SIMPLE_SIGNING, payload);
        layer.annotations.insert(
            signature::SIGNATURE_ANNOTATION.into(),
            signature_b64.to_owned(),
        );
        layers.retain(|l| l != &layer);
        layers.push(layer.clone());
        // The image config cosign writes for a signature image: empty but for the layers' ids.
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "",
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>()},
            "config": {},
        }))
        .expect("serializes");
        let config_descriptor = Descriptor::of("application/vnd.oci.image.config.v1+json", &config);
        let err = |e| map_error(&sig_ref, e);
        self.client
            .push_blob(&sig_ref, payload.to_vec(), &layer.digest)
            .await
            .map_err(err)?;
        self.client
            .push_blob(&sig_ref, config, &config_descriptor.digest)
            .await
            .map_err(err)?;
        let manifest = serde_json::to_vec(&Manifest {
            schema_version: 2,
            media_type: Some(artifact::OCI_MANIFEST.into()),
            artifact_type: None,
            config: config_descriptor,
            layers,
            annotations: Default::default(),
        })
        .expect("serializes");
        self.client
            .push_manifest_raw(
                &sig_ref,
                manifest.clone(),
                artifact::OCI_MANIFEST.parse().expect("valid"),
            )
            .await
            .map_err(err)?;
        Ok(sig_ref.whole())
    }
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

/// Turns oci-client's errors into ours, telling authentication and absence apart.
fn map_error(reference: &Reference, e: OciDistributionError) -> RegistryError {
    let registry = reference.resolve_registry().to_owned();
    match &e {
        OciDistributionError::AuthenticationFailure(_)
        | OciDistributionError::UnauthorizedError { .. } => {
            return RegistryError::Auth {
                registry,
                why: e.to_string(),
            };
        }
        OciDistributionError::ServerError {
            code: 401 | 403, ..
        } => {
            return RegistryError::Auth {
                registry,
                why: e.to_string(),
            };
        }
        OciDistributionError::ServerError { code: 404, .. }
        | OciDistributionError::ImageManifestNotFoundError(_) => {
            return RegistryError::NotFound {
                reference: reference.whole(),
            };
        }
        OciDistributionError::RegistryError { envelope, .. } => {
            if envelope
                .errors
                .iter()
                .any(|x| matches!(x.code, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                return RegistryError::Auth {
                    registry,
                    why: e.to_string(),
                };
            }
            if envelope.errors.iter().any(|x| {
                matches!(
                    x.code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                )
            }) {
                return RegistryError::NotFound {
                    reference: reference.whole(),
                };
            }
        }
        OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError {
            expected,
            actual,
        }) => {
            return RegistryError::DigestMismatch {
                what: reference.whole(),
                expected: expected.clone(),
                actual: actual.clone(),
            };
        }
        _ => {}
    }
    // reqwest's error chain holds the useful part (connection refused, certificate unknown).
    let mut why = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        why.push_str(": ");
        why.push_str(&inner.to_string());
        source = inner.source();
    }
    RegistryError::Registry {
        reference: reference.whole(),
        why,
    }
}

/// Where the docker config lives: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(Path::new(&dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| Path::new(&home).join(".docker/config.json"))
}

/// Credentials for a registry from the docker config's `auths` (what `docker login` and
/// `skopeo login` write); anonymous when there are none. Credential helpers are not run.
fn docker_config_auth(registry: &str) -> Result<RegistryAuth, RegistryError> {
    let Some(path) = docker_config_path() else {
        return Ok(RegistryAuth::Anonymous);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(_) => return Ok(RegistryAuth::Anonymous),
    };
    auth_from_docker_config(&text, registry).map_err(|why| RegistryError::DockerConfig {
        path: path.display().to_string(),
        why,
    })
}

fn auth_from_docker_config(text: &str, registry: &str) -> Result<RegistryAuth, String> {
    let config: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("is not JSON: {e}"))?;
    let Some(auths) = config.get("auths").and_then(|a| a.as_object()) else {
        return Ok(RegistryAuth::Anonymous);
    };
    let host = |key: &str| {
        key.trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    let wanted = if registry == "index.docker.io" || registry == "docker.io" {
        vec![
            "index.docker.io".to_owned(),
            "docker.io".to_owned(),
            "registry-1.docker.io".to_owned(),
        ]
    } else {
        vec![registry.to_owned()]
    };
    let Some(entry) = auths
        .iter()
        .find(|(k, _)| wanted.contains(&host(k)))
        .map(|(_, v)| v)
    else {
        if config.get("credsStore").is_some() || config.get("credHelpers").is_some() {
            tracing::warn!(
                registry,
                "the docker config names a credential helper, which Corbel does not run; pass --username and --password-stdin"
            );
        }
        return Ok(RegistryAuth::Anonymous);
    };
    if let Some(token) = entry.get("registrytoken").and_then(|t| t.as_str()) {
        return Ok(RegistryAuth::Bearer(token.to_owned()));
    }
    if let (Some(user), Some(password)) = (
        entry.get("username").and_then(|u| u.as_str()),
        entry.get("password").and_then(|p| p.as_str()),
    ) {
        return Ok(RegistryAuth::Basic(user.to_owned(), password.to_owned()));
    }
    if let Some(auth) = entry.get("auth").and_then(|a| a.as_str()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| format!("auths.{registry}.auth is not base64: {e}"))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| format!("auths.{registry}.auth is not UTF-8"))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| format!("auths.{registry}.auth is not base64 of user:password"))?;
        return Ok(RegistryAuth::Basic(user.to_owned(), password.to_owned()));
    }
    Ok(RegistryAuth::Anonymous)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references_with_or_without_the_oci_scheme() {
        let r = parse_reference("oci://127.0.0.1:5000/policies/require-labels:v1").unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("127.0.0.1:5000", "policies/require-labels", Some("v1"))
        );
        assert_eq!(repository(&r), "127.0.0.1:5000/policies/require-labels");
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = parse_reference(&format!("127.0.0.1:5000/p@{digest}")).unwrap();
        assert_eq!(r.digest(), Some(digest.as_str()));
        assert!(parse_reference("127.0.0.1:5000/p@sha256:short").is_err());
    }

    #[test]
    fn reads_credentials_from_a_docker_config() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let config =
            format!(r#"{{"auths": {{"https://reg.example:5000": {{"auth": "{auth}"}}}}}}"#);
        match auth_from_docker_config(&config, "reg.example:5000").unwrap() {
            RegistryAuth::Basic(user, password) => {
                assert_eq!((user.as_str(), password.as_str()), ("alice", "s3cret"))
            }
            other => panic!("expected basic auth, got {other:?}"),
        }
        assert!(matches!(
            auth_from_docker_config(&config, "other:5000").unwrap(),
            RegistryAuth::Anonymous
        ));
        assert!(auth_from_docker_config(r#"{"auths": {"r": {"auth": "%%"}}}"#, "r").is_err());
    }
}
