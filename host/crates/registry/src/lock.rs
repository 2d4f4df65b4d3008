//! The lock file (`corbel.lock`, beside the configuration): which digest each installed reference
//! resolved to, so that a start uses exactly what was installed, even if a tag moved since.
//!
//! ```json
//! {
//!   "version": 1,
//!   "plugins": [
//!     { "name": "require-labels",
//!       "reference": "registry.example:5000/policies/require-labels:v1",
//!       "digest": "sha256:…",            // the component (layer) digest: what the cache holds
//!       "manifestDigest": "sha256:…",    // what the tag pointed at, and what was signed
//!       "size": 212345,
//!       "signedBy": "SHA256:…",          // fingerprint of the key that verified it, or null
//!       "installedAt": "2026-11-21T14:00:00Z" }
//!   ]
//! }
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::RegistryError;

const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockEntry {
    /// What `corbel plugin list` shows and `corbel plugin remove` takes.
    pub name: String,
    /// The reference as installed (normalized), tag or digest.
    pub reference: String,
    /// The component's digest (the artifact's Wasm layer).
    pub digest: String,
    /// The manifest's digest: what a tag resolved to and what a signature covers.
    pub manifest_digest: String,
    pub size: u64,
    #[serde(default)]
    pub signed_by: Option<String>,
    pub installed_at: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockFile {
    pub version: u32,
    pub plugins: Vec<LockEntry>,
}

impl LockFile {
    /// Reads the lock file; a missing file is an empty lock.
    pub fn read(path: &Path) -> Result<Self, RegistryError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self {
                    version: VERSION,
                    plugins: Vec::new(),
                });
            }
            Err(e) => return Err(lock_error(path, format!("cannot be read: {e}"))),
        };
        let lock: LockFile = serde_json::from_str(&text).map_err(|e| {
            lock_error(
                path,
                format!("is not a Corbel lock file ({e}); fix it or remove it and install again"),
            )
        })?;
        if lock.version != VERSION {
            return Err(lock_error(
                path,
                format!(
                    "has version {}, and this Corbel reads version {VERSION}; upgrade Corbel or install again",
                    lock.version
                ),
            ));
        }
        Ok(lock)
    }

    /// Writes the lock file atomically (a temporary file beside it, fsynced, then renamed).
    pub fn write(&self, path: &Path) -> Result<(), RegistryError> {
        let mut sorted = self.clone();
        sorted
            .plugins
            .sort_by(|a, b| a.name.cmp(&b.name).then(a.reference.cmp(&b.reference)));
        let text = serde_json::to_string_pretty(&sorted).expect("the lock file always serializes");
        let tmp = temp_beside(path);
        let result = (|| {
            use std::io::Write;
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        result.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            lock_error(path, format!("cannot be written: {e}"))
        })
    }

    /// The entry installed for this (normalized) reference.
    pub fn find_reference(&self, reference: &str) -> Option<&LockEntry> {
        self.plugins.iter().find(|p| p.reference == reference)
    }

    /// Adds an entry, replacing one with the same reference or name.
    pub fn upsert(&mut self, entry: LockEntry) {
        self.plugins
            .retain(|p| p.reference != entry.reference && p.name != entry.name);
        self.plugins.push(entry);
    }

    /// Removes the entry with this name; returns it.
    pub fn remove(&mut self, name: &str) -> Option<LockEntry> {
        let index = self.plugins.iter().position(|p| p.name == name)?;
        Some(self.plugins.remove(index))
    }
}

fn temp_beside(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

fn lock_error(path: &Path, why: String) -> RegistryError {
    RegistryError::Lock {
        path: path.display().to_string(),
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, reference: &str) -> LockEntry {
        LockEntry {
            name: name.into(),
            reference: reference.into(),
            digest: "sha256:00".into(),
            manifest_digest: "sha256:11".into(),
            size: 1,
            signed_by: None,
            installed_at: "2026-11-21T00:00:00Z".into(),
        }
    }

    #[test]
    fn a_missing_lock_file_is_empty_and_a_written_one_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corbel.lock");
        let mut lock = LockFile::read(&path).unwrap();
        assert!(lock.plugins.is_empty());
        lock.upsert(entry("b", "r/b:v1"));
        lock.upsert(entry("a", "r/a:v1"));
        lock.upsert(entry("a", "r/a:v2"));
        lock.write(&path).unwrap();
        let read = LockFile::read(&path).unwrap();
        let names: Vec<_> = read
            .plugins
            .iter()
            .map(|p| (p.name.as_str(), p.reference.as_str()))
            .collect();
        assert_eq!(names, [("a", "r/a:v2"), ("b", "r/b:v1")]);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file is left"
        );
    }

    #[test]
    fn refuses_a_lock_file_of_another_version_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corbel.lock");
        std::fs::write(&path, r#"{"version": 9, "plugins": []}"#).unwrap();
        let err = LockFile::read(&path).unwrap_err().to_string();
        assert!(
            err.contains("version 9") && err.contains("install again"),
            "{err}"
        );
    }
}
