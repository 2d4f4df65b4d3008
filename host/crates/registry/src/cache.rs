//! The local plugin cache: content-addressed, opened with cap-std so that no name taken from a
//! registry or a configuration can reach outside it, and written so that nothing half-written is
//! ever read.
//!
//! ```text
//! {cacheDir}/
//!   blobs/sha256/<hex>                      a component, exactly the bytes whose sha256 is <hex>
//!   compiled/<engine>/<hex>.cwasm           its compiled artifact for one engine configuration
//!   tmp/                                    writes in progress (a crash leaves only these behind)
//! ```
//!
//! `<engine>` is derived from wasmtime's `Engine::precompile_compatibility_hash`, so a new wasmtime
//! version or engine setting compiles afresh instead of loading an artifact it cannot use. A
//! compiled entry starts with a header holding its length and sha256: a truncated or altered entry
//! is detected, removed and rebuilt, never handed to `Component::deserialize`. Components are
//! checked against their digest every time they are read.

use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};
use sha2::{Digest as _, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::RegistryError;
use super::artifact::{is_sha256_digest, sha256_digest};
use corbel_runtime::{LoadError, Runtime};

const COMPILED_MAGIC: &[u8; 8] = b"CORBELC1";
const HEADER: usize = 8 + 8 + 32;

/// The cache directory, opened as a capability.
#[derive(Debug)]
pub struct Cache {
    dir: Dir,
    root: PathBuf,
}

/// Where a compiled artifact came from, for logs and the start-up benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compiled {
    /// Deserialized from the cache.
    Cached,
    /// Compiled now (and stored for next time).
    Fresh,
}

impl Cache {
    /// Opens (creating it if needed) the cache at `root`.
    pub fn open(root: &Path) -> Result<Self, RegistryError> {
        let io = |source| RegistryError::Cache {
            path: root.display().to_string(),
            source,
        };
        std::fs::create_dir_all(root).map_err(io)?;
        let dir = Dir::open_ambient_dir(root, ambient_authority()).map_err(io)?;
        for sub in ["blobs/sha256", "compiled", "tmp"] {
            dir.create_dir_all(sub).map_err(io)?;
        }
        Ok(Self {
            dir,
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn io(&self, path: &str) -> impl FnOnce(std::io::Error) -> RegistryError {
        let path = self.root.join(path).display().to_string();
        move |source| RegistryError::Cache { path, source }
    }

    /// The cache-relative path of a blob; refuses anything but a sha256 digest, so no digest
    /// string from a registry becomes a path of its choosing.
    fn blob_path(digest: &str) -> Result<String, RegistryError> {
        if !is_sha256_digest(digest) {
            return Err(RegistryError::InvalidDigest(digest.to_owned()));
        }
        Ok(format!("blobs/sha256/{}", &digest["sha256:".len()..]))
    }

    /// Whether a blob is present (not whether it is intact: [`Cache::read_blob`] checks that).
    pub fn has_blob(&self, digest: &str) -> bool {
        Self::blob_path(digest).is_ok_and(|p| self.dir.exists(p))
    }

    /// Reads a blob and checks it against its digest. A blob whose bytes no longer match (disk
    /// corruption, a hand edit) is removed and reported as absent.
    pub fn read_blob(&self, digest: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        let path = Self::blob_path(digest)?;
        let bytes = match self.dir.read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(&path)(e)),
        };
        let actual = sha256_digest(&bytes);
        if actual != digest {
            tracing::warn!(digest, actual = %actual, path = %self.root.join(&path).display(), "cached component is corrupt (its bytes do not match its digest): removed");
            let _ = self.dir.remove_file(&path);
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    /// Stores a blob whose digest has been checked by the caller.
    pub fn put_blob(&self, digest: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        let mut writer = self.blob_writer(digest)?;
        writer.write(bytes)?;
        writer.finish()
    }

    /// Starts writing a blob into `tmp/`; [`BlobWriter::finish`] checks the digest and moves it
    /// into place. Dropping the writer unfinished removes the temporary file.
    pub fn blob_writer(&self, digest: &str) -> Result<BlobWriter<'_>, RegistryError> {
        let path = Self::blob_path(digest)?;
        let (tmp, file) = self.temp_file()?;
        Ok(BlobWriter {
            cache: self,
            expected: digest.to_owned(),
            path,
            tmp,
            file: Some(file),
            hasher: Sha256::new(),
            written: 0,
        })
    }

    pub fn remove_blob(&self, digest: &str) -> Result<(), RegistryError> {
        let path = Self::blob_path(digest)?;
        match self.dir.remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.io(&path)(e)),
            _ => Ok(()),
        }?;
        // Compiled artifacts of every engine go with their component.
        let name = format!("{}.cwasm", &digest["sha256:".len()..]);
        if let Ok(engines) = self.dir.read_dir("compiled") {
            for engine in engines.flatten() {
                let _ = self
                    .dir
                    .remove_file(Path::new("compiled").join(engine.file_name()).join(&name));
            }
        }
        Ok(())
    }

    fn temp_file(&self) -> Result<(String, cap_std::fs::File), RegistryError> {
        let tmp = format!("tmp/{}.partial", uuid::Uuid::new_v4());
        let file = self
            .dir
            .open_with(&tmp, OpenOptions::new().write(true).create_new(true))
            .map_err(self.io(&tmp))?;
        Ok((tmp, file))
    }

    /// fsyncs a finished temporary file, renames it into place and fsyncs the directory, so a
    /// crash leaves either the whole entry or none of it.
    fn commit(&self, tmp: &str, file: cap_std::fs::File, path: &str) -> Result<(), RegistryError> {
        file.sync_all().map_err(self.io(tmp))?;
        drop(file);
        let parent = Path::new(path).parent().unwrap_or(Path::new("."));
        self.dir.create_dir_all(parent).map_err(self.io(path))?;
        self.dir
            .rename(tmp, &self.dir, path)
            .map_err(self.io(path))?;
        if let Ok(parent) = self.dir.open_dir(parent) {
            let _ = parent.into_std_file().sync_all();
        }
        Ok(())
    }

    fn compiled_path(engine: &Engine, digest: &str) -> Result<String, RegistryError> {
        Self::blob_path(digest)?;
        Ok(format!(
            "compiled/{}/{}.cwasm",
            engine_key(engine),
            &digest["sha256:".len()..]
        ))
    }

    /// The compiled artifact of a component for this engine, when the cache holds an intact one.
    fn read_compiled(&self, engine: &Engine, digest: &str) -> Option<Vec<u8>> {
        let path = Self::compiled_path(engine, digest).ok()?;
        let mut bytes = self.dir.read(&path).ok()?;
        let intact = bytes.len() >= HEADER
            && &bytes[..8] == COMPILED_MAGIC
            && u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize
                == bytes.len() - HEADER
            && Sha256::digest(&bytes[HEADER..]).as_slice() == &bytes[16..HEADER];
        if !intact {
            tracing::warn!(digest, path = %self.root.join(&path).display(), "cached compiled artifact is corrupt or truncated: removed, compiling again");
            let _ = self.dir.remove_file(&path);
            return None;
        }
        bytes.drain(..HEADER);
        Some(bytes)
    }

    fn put_compiled(
        &self,
        engine: &Engine,
        digest: &str,
        artifact: &[u8],
    ) -> Result<(), RegistryError> {
        let path = Self::compiled_path(engine, digest)?;
        let (tmp, mut file) = self.temp_file()?;
        let written = (|| {
            file.write_all(COMPILED_MAGIC)?;
            file.write_all(&(artifact.len() as u64).to_le_bytes())?;
            file.write_all(&Sha256::digest(artifact))?;
            file.write_all(artifact)
        })();
        if let Err(e) = written {
            let _ = self.dir.remove_file(&tmp);
            return Err(self.io(&tmp)(e));
        }
        let result = self.commit(&tmp, file, &path);
        if result.is_err() {
            let _ = self.dir.remove_file(&tmp);
        }
        result
    }

    /// The component with this digest, compiled for the runtime's engine: deserialized from the
    /// cache when an intact artifact is there, otherwise compiled from `bytes` and stored.
    pub fn compile(
        &self,
        runtime: &Runtime,
        digest: &str,
        bytes: &[u8],
    ) -> Result<(Component, Compiled), LoadError> {
        let engine = runtime.engine();
        if let Some(artifact) = self.read_compiled(engine, digest) {
            // SAFETY: `deserialize` trusts its input to be an artifact wasmtime produced. This one
            // is: it was written by `put_compiled` below from `Component::serialize`, into a
            // directory only Corbel writes, and its length and sha256 were just checked, so a
            // truncated or altered file never gets here. wasmtime itself refuses an artifact
            // from an incompatible engine, and the path is keyed by the engine's hash too.
            match unsafe { Component::deserialize(engine, &artifact) } {
                Ok(component) => return Ok((component, Compiled::Cached)),
                Err(e) => {
                    tracing::warn!(digest, error = %e, "cached compiled artifact does not load: compiling again");
                }
            }
        }
        let component = runtime.compile(bytes)?;
        match component.serialize() {
            Ok(artifact) => {
                if let Err(e) = self.put_compiled(engine, digest, &artifact) {
                    tracing::warn!(digest, error = %e, "could not store the compiled artifact (the next start compiles again)");
                }
            }
            Err(e) => {
                tracing::warn!(digest, error = %e, "could not serialize the compiled artifact")
            }
        }
        Ok((component, Compiled::Fresh))
    }
}

/// A blob being written into the cache: hashed as it is written, checked on `finish`.
pub struct BlobWriter<'a> {
    cache: &'a Cache,
    expected: String,
    path: String,
    tmp: String,
    file: Option<cap_std::fs::File>,
    hasher: Sha256,
    written: u64,
}

impl BlobWriter<'_> {
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), RegistryError> {
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        let file = self.file.as_mut().expect("not finished");
        file.write_all(bytes).map_err(self.cache.io(&self.tmp))
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// The digest of what was written so far.
    pub fn actual_digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.clone().finalize()))
    }

    /// Checks the digest and moves the blob into place; on a mismatch the temporary file is
    /// removed and the error names both digests.
    pub fn finish(mut self) -> Result<(), RegistryError> {
        let actual = self.actual_digest();
        if actual != self.expected {
            return Err(RegistryError::DigestMismatch {
                what: "blob".into(),
                expected: self.expected.clone(),
                actual,
            });
        }
        let file = self.file.take().expect("not finished");
        self.cache.commit(&self.tmp, file, &self.path)
    }
}

impl Drop for BlobWriter<'_> {
    fn drop(&mut self) {
        // Unfinished or refused: leave nothing behind (the rename already moved a finished one).
        self.file.take();
        let _ = self.cache.dir.remove_file(&self.tmp);
    }
}

/// A short, stable name for an engine configuration: the sha256 of its compatibility hash.
pub fn engine_key(engine: &Engine) -> String {
    use std::hash::Hash;
    struct Sha(Sha256);
    impl Hasher for Sha {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut hasher = Sha(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use corbel_runtime::RuntimeConfig;

    fn runtime() -> Runtime {
        Runtime::new(&RuntimeConfig {
            max_instances: 2,
            max_memory: 64 << 20,
        })
        .unwrap()
    }

    /// The smallest component: compiles in microseconds.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    #[test]
    fn refuses_a_blob_whose_bytes_do_not_match_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let digest = sha256_digest(b"the real bytes");
        let err = cache.put_blob(&digest, b"other bytes").unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&digest) && message.contains(&sha256_digest(b"other bytes")),
            "{message}"
        );
        assert!(!cache.has_blob(&digest));
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn drops_a_blob_corrupted_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let digest = sha256_digest(b"component");
        cache.put_blob(&digest, b"component").unwrap();
        assert_eq!(cache.read_blob(&digest).unwrap().unwrap(), b"component");
        let path = dir.path().join("blobs/sha256").join(&digest[7..]);
        std::fs::write(&path, b"compromised").unwrap();
        assert_eq!(cache.read_blob(&digest).unwrap(), None);
        assert!(!path.exists());
    }

    #[test]
    fn never_takes_a_path_from_a_digest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        assert!(cache.put_blob("sha256:../../../escape", b"x").is_err());
        assert!(!cache.has_blob("sha256:../../tmp"));
    }

    #[test]
    fn compiles_once_then_loads_the_cached_artifact_and_rebuilds_a_truncated_one() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let runtime = runtime();
        let digest = sha256_digest(EMPTY_COMPONENT);
        let (_, first) = cache.compile(&runtime, &digest, EMPTY_COMPONENT).unwrap();
        let (_, second) = cache.compile(&runtime, &digest, EMPTY_COMPONENT).unwrap();
        assert_eq!((first, second), (Compiled::Fresh, Compiled::Cached));

        let path = dir
            .path()
            .join(Cache::compiled_path(runtime.engine(), &digest).unwrap());
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let (_, third) = cache.compile(&runtime, &digest, EMPTY_COMPONENT).unwrap();
        assert_eq!(third, Compiled::Fresh, "a truncated artifact is rebuilt");
        let (_, fourth) = cache.compile(&runtime, &digest, EMPTY_COMPONENT).unwrap();
        assert_eq!(fourth, Compiled::Cached);
    }
}
