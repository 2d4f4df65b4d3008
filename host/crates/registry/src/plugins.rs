//! Installed plugins: install (resolve, verify, pull, compile, lock), list, remove, and the
//! component an `oci://` binding names, read from the lock file and the cache with no network.

use std::path::PathBuf;

use super::artifact::{self, Layout};
use super::cache::Cache;
use super::client::{self, Options, Registry};
use super::lock::{LockEntry, LockFile};
use super::signature::{self, TrustedKey};
use super::{RegistryError, Result};
use corbel_runtime::Runtime;

/// The registry settings in force: the configuration's, with command-line flags applied.
#[derive(Debug, Clone)]
pub struct Settings {
    pub cache_dir: PathBuf,
    pub lock_file: PathBuf,
    pub trusted_keys: Vec<PathBuf>,
    /// Repositories (`host/path`, or a prefix ending in `/*`) whose plugins may be unsigned.
    pub allow_unsigned: Vec<String>,
    pub options: Options,
}

impl Settings {
    fn unsigned_allowed(&self, reference: &oci_client::Reference) -> bool {
        let repository = client::repository(reference);
        self.allow_unsigned.iter().any(|pattern| {
            let pattern = pattern.strip_prefix("oci://").unwrap_or(pattern);
            match pattern.strip_suffix("/*") {
                Some(prefix) => repository.starts_with(&format!("{prefix}/")),
                None => pattern == "*" || pattern == repository || pattern == reference.whole(),
            }
        })
    }

    fn keys(&self) -> Result<Vec<TrustedKey>> {
        self.trusted_keys
            .iter()
            .map(|p| signature::read_public_key(p))
            .collect()
    }
}

/// What `install` did.
#[derive(Debug, Clone)]
pub struct Installed {
    pub entry: LockEntry,
    pub layout: Layout,
    /// The component was already in the cache (nothing was downloaded).
    pub was_cached: bool,
}

/// The name a plugin is listed under by default: the last segment of its repository.
pub fn default_name(reference: &oci_client::Reference) -> String {
    reference
        .repository()
        .rsplit('/')
        .next()
        .unwrap_or("plugin")
        .to_owned()
}

/// Checks the manifest's signatures against the trusted keys; returns the verifying key's
/// fingerprint, or None when the repository may be unsigned and is.
async fn verify(
    settings: &Settings,
    registry: &Registry,
    reference: &oci_client::Reference,
    manifest_digest: &str,
) -> Result<Option<String>> {
    let keys = settings.keys()?;
    let allowed = settings.unsigned_allowed(reference);
    if keys.is_empty() {
        if allowed {
            return Ok(None);
        }
        return Err(RegistryError::NoTrustedKeys {
            reference: reference.whole(),
        });
    }
    let signatures = registry.signatures(reference, manifest_digest).await?;
    if signatures.is_empty() {
        if allowed {
            tracing::warn!(reference = %reference.whole(), "installing an unsigned plugin: its repository is in registry.allowUnsigned");
            return Ok(None);
        }
        return Err(RegistryError::Unsigned {
            reference: reference.whole(),
            digest: manifest_digest.to_owned(),
        });
    }
    let mut reasons = Vec::new();
    for (payload, sig) in &signatures {
        match signature::verify(&keys, payload, sig, manifest_digest) {
            Ok(key) => {
                tracing::info!(reference = %reference.whole(), key = %key.source, "signature verified");
                return Ok(Some(key.fingerprint()));
            }
            Err(why) => reasons.push(why),
        }
    }
    if allowed {
        tracing::warn!(reference = %reference.whole(), reasons = ?reasons, "no signature verifies, installing anyway: its repository is in registry.allowUnsigned");
        return Ok(None);
    }
    reasons.sort();
    reasons.dedup();
    Err(RegistryError::BadSignature {
        reference: reference.whole(),
        digest: manifest_digest.to_owned(),
        why: reasons.join("; "),
    })
}

/// Installs a plugin: resolves the reference to a digest, verifies its signature, pulls the
/// component into the cache (digest-checked), compiles it (so the next start is warm and a plugin
/// this host cannot load is refused now), and records the digest in the lock file.
pub async fn install(
    settings: &Settings,
    runtime: &Runtime,
    reference_text: &str,
    name: Option<&str>,
    progress: bool,
) -> anyhow::Result<Installed> {
    let reference = client::parse_reference(reference_text)?;
    let registry = Registry::new(settings.options.clone())?;
    let resolved = registry.resolve(&reference).await?;
    let signed_by = verify(settings, &registry, &reference, &resolved.manifest_digest).await?;

    let cache = Cache::open(&settings.cache_dir)?;
    let digest = resolved.layer.digest.clone();
    let (bytes, was_cached) = match cache.read_blob(&digest)? {
        Some(bytes) => (bytes, true),
        None => {
            registry
                .pull_blob(&reference, &resolved.layer, &cache, progress)
                .await?;
            let bytes = cache
                .read_blob(&digest)?
                .ok_or_else(|| RegistryError::NotInstalled {
                    reference: reference.whole(),
                })?;
            (bytes, false)
        }
    };
    if let Err(e) = artifact::check_component(&reference.whole(), &bytes) {
        cache.remove_blob(&digest)?;
        return Err(e.into());
    }
    let name = name
        .map(str::to_owned)
        .unwrap_or_else(|| default_name(&reference));
    let (component, _) = cache
        .compile(runtime, &digest, &bytes)
        .map_err(|e| anyhow::anyhow!("{} does not load: {e}", reference.whole()))?;
    runtime
        .load_component(&name, component)
        .map_err(|e| anyhow::anyhow!("{} does not load: {e}", reference.whole()))?;

    let entry = LockEntry {
        name,
        reference: reference.whole(),
        digest,
        manifest_digest: resolved.manifest_digest,
        size: bytes.len() as u64,
        signed_by,
        installed_at: jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .map(|t| t.to_string())
            .unwrap_or_default(),
    };
    let mut lock = LockFile::read(&settings.lock_file)?;
    lock.upsert(entry.clone());
    lock.write(&settings.lock_file)?;
    Ok(Installed {
        entry,
        layout: resolved.layout,
        was_cached,
    })
}

/// The installed plugins, each with whether its component is in the cache.
pub fn list(settings: &Settings) -> Result<Vec<(LockEntry, bool)>> {
    let lock = LockFile::read(&settings.lock_file)?;
    let cache = Cache::open(&settings.cache_dir)?;
    Ok(lock
        .plugins
        .into_iter()
        .map(|p| {
            let cached = cache.has_blob(&p.digest);
            (p, cached)
        })
        .collect())
}

/// Removes a plugin from the lock file, and its component and compiled artifacts from the cache
/// unless another installed reference uses the same component.
pub fn remove(settings: &Settings, name: &str) -> Result<LockEntry> {
    let mut lock = LockFile::read(&settings.lock_file)?;
    let entry = lock
        .remove(name)
        .ok_or_else(|| RegistryError::UnknownName {
            name: name.to_owned(),
        })?;
    lock.write(&settings.lock_file)?;
    if !lock.plugins.iter().any(|p| p.digest == entry.digest) {
        Cache::open(&settings.cache_dir)?.remove_blob(&entry.digest)?;
    }
    Ok(entry)
}

/// The component an installed reference names: its lock entry and bytes, from the lock file and
/// the cache, without any network. A digest reference matches an entry by manifest digest.
pub fn installed(
    lock: &LockFile,
    cache: &Cache,
    reference_text: &str,
) -> Result<(LockEntry, Vec<u8>)> {
    let reference = client::parse_reference(reference_text)?;
    let whole = reference.whole();
    let repository = client::repository(&reference);
    let entry = lock
        .find_reference(&whole)
        .or_else(|| {
            let digest = reference.digest()?;
            lock.plugins.iter().find(|p| {
                p.manifest_digest == digest
                    && client::parse_reference(&p.reference)
                        .is_ok_and(|r| client::repository(&r) == repository)
            })
        })
        .ok_or_else(|| RegistryError::NotInstalled {
            reference: whole.clone(),
        })?;
    let bytes = cache
        .read_blob(&entry.digest)?
        .ok_or_else(|| RegistryError::NotInstalled {
            reference: format!(
                "{whole} (its component {} is missing from the cache {})",
                entry.digest,
                cache.root().display()
            ),
        })?;
    Ok((entry.clone(), bytes))
}

/// Reads and compiles the plugins that bindings name: a file path, or an installed `oci://`
/// reference from the lock file and cache. With a cache, compiled artifacts are reused (keyed by
/// the component's digest, for files too), which is what makes a warm start fast.
#[derive(Debug, Default)]
pub struct Loader {
    cache: Option<Cache>,
    lock: LockFile,
}

impl Loader {
    /// No cache: every plugin file is compiled; `oci://` references cannot be loaded.
    pub fn uncached() -> Self {
        Self::default()
    }

    pub fn new(cache: Cache, lock: LockFile) -> Self {
        Self {
            cache: Some(cache),
            lock,
        }
    }

    /// For commands that load plugin files without a configuration (`corbel eval`, `corbel test`):
    /// compiled artifacts through the cache at `cache_dir`, so a large component (a JavaScript or
    /// Python one takes seconds to compile) is compiled once per version. A cache that cannot be
    /// opened is not an error: every file is then compiled.
    pub fn for_files(cache_dir: &std::path::Path) -> Self {
        match Cache::open(cache_dir) {
            Ok(cache) => Self::new(cache, LockFile::default()),
            Err(e) => {
                tracing::warn!(error = %e, "the plugin cache cannot be opened: compiling without it");
                Self::uncached()
            }
        }
    }

    /// Opens the cache and reads the lock file named by the settings.
    pub fn open(settings: &Settings) -> Result<Self> {
        Ok(Self::new(
            Cache::open(&settings.cache_dir)?,
            LockFile::read(&settings.lock_file)?,
        ))
    }

    /// Compiles (or loads from the cache) and pre-links one plugin. Blocking: call it off the
    /// async threads. The error is a message for `/readyz` and the log.
    pub fn load(
        &self,
        runtime: &Runtime,
        plugin: &std::path::Path,
    ) -> std::result::Result<corbel_runtime::Plugin, String> {
        let started = std::time::Instant::now();
        let text = plugin.to_string_lossy();
        let (name, digest, bytes) = if text.starts_with("oci://") {
            let Some(cache) = &self.cache else {
                return Err(
                    "oci:// references need the plugin cache (corbel serve opens it)".into(),
                );
            };
            let (entry, bytes) = installed(&self.lock, cache, &text).map_err(|e| e.to_string())?;
            let short = &entry.manifest_digest[..entry.manifest_digest.len().min(19)];
            (format!("{}@{short}", entry.name), entry.digest, bytes)
        } else {
            let bytes = std::fs::read(plugin)
                .map_err(|e| format!("failed to read {}: {e}", plugin.display()))?;
            let name = plugin
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "plugin".into());
            (name, artifact::sha256_digest(&bytes), bytes)
        };
        let (component, how) = match &self.cache {
            Some(cache) => cache
                .compile(runtime, &digest, &bytes)
                .map_err(|e| e.to_string())?,
            None => (
                runtime.compile(&bytes).map_err(|e| e.to_string())?,
                super::cache::Compiled::Fresh,
            ),
        };
        let loaded = runtime
            .load_component(&name, component)
            .map_err(|e| e.to_string())?;
        tracing::info!(plugin = %name, digest, compiled = ?how, elapsed_ms = started.elapsed().as_millis() as u64, "plugin loaded");
        Ok(loaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(allow: &[&str]) -> Settings {
        Settings {
            cache_dir: "/nonexistent".into(),
            lock_file: "/nonexistent".into(),
            trusted_keys: vec![],
            allow_unsigned: allow.iter().map(|s| s.to_string()).collect(),
            options: Options::default(),
        }
    }

    #[test]
    fn allows_unsigned_plugins_only_from_listed_repositories() {
        let r = client::parse_reference("reg:5000/dev/policy:v1").unwrap();
        assert!(settings(&["reg:5000/dev/policy"]).unsigned_allowed(&r));
        assert!(settings(&["oci://reg:5000/dev/*"]).unsigned_allowed(&r));
        assert!(!settings(&["reg:5000/dev/other"]).unsigned_allowed(&r));
        assert!(!settings(&["reg:5000/de*"]).unsigned_allowed(&r));
        assert!(!settings(&[]).unsigned_allowed(&r));
    }
}
