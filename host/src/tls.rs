//! Serving certificates. Either a certificate and key from files, checked for changes and
//! reloaded without a restart (as cert-manager or a mounted Secret renews them), or a development
//! CA and serving certificate created in a directory, whose `ca.crt` goes into `caBundle`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Paths of a certificate and its key.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What development mode wrote.
#[derive(Debug, Clone)]
pub struct DevCertificates {
    pub files: CertFiles,
    /// The CA certificate, PEM: the `caBundle` of a webhook configuration (base64 of this file).
    pub ca: PathBuf,
}

/// Creates (or reuses, when present and made for the same hosts) a development CA and a serving
/// certificate signed by it, valid for `hosts`.
pub fn development_certificates(dir: &Path, hosts: &[String]) -> anyhow::Result<DevCertificates> {
    let (ca, cert, key, hosts_file) = (
        dir.join("ca.crt"),
        dir.join("tls.crt"),
        dir.join("tls.key"),
        dir.join("hosts"),
    );
    let wanted = hosts.join("\n");
    let reusable = [&ca, &cert, &key].iter().all(|p| p.exists())
        && std::fs::read_to_string(&hosts_file)
            .map(|h| h == wanted)
            .unwrap_or(false);
    if !reusable {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        let ca_key = rcgen::KeyPair::generate()?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Corbel development CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let leaf_key = rcgen::KeyPair::generate()?;
        let mut leaf = rcgen::CertificateParams::new(hosts.to_vec())
            .context("invalid host name for the development certificate")?;
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, "corbel");
        leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;

        write_private(&key, leaf_key.serialize_pem().as_bytes())?;
        std::fs::write(&cert, format!("{}{}", leaf_cert.pem(), ca_cert.pem()))?;
        std::fs::write(&ca, ca_cert.pem())?;
        std::fs::write(&hosts_file, wanted)?;
    }
    Ok(DevCertificates {
        files: CertFiles { cert, key },
        ca,
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    crate::auth::write_private(path, bytes)
        .with_context(|| format!("failed to write {}", path.display()))
}

/// Reads a certificate chain and key into a rustls signing key.
pub fn load(files: &CertFiles) -> anyhow::Result<CertifiedKey> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("failed to read certificate {}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", files.cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{} holds no certificate", files.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("{} is not a PEM private key", files.key.display()))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider).with_context(|| {
        format!(
            "the key {} does not fit the certificate {}",
            files.key.display(),
            files.cert.display()
        )
    })
}

/// Hands rustls the current certificate; [`Reloader`] swaps it when the files change.
#[derive(Debug)]
pub struct CurrentCert(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// A rustls server configuration (HTTP/2 and HTTP/1.1) whose certificate can change while serving.
pub fn server_config(
    files: &CertFiles,
) -> anyhow::Result<(Arc<rustls::ServerConfig>, Arc<CurrentCert>)> {
    let current = Arc::new(CurrentCert(ArcSwap::from_pointee(load(files)?)));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_cert_resolver(current.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), current))
}

fn modified(files: &CertFiles) -> Option<(SystemTime, SystemTime)> {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((m(&files.cert)?, m(&files.key)?))
}

/// Watches the certificate files and swaps in the new certificate when they change. A file that
/// does not load (a half-written renewal, say) keeps the old certificate serving and is retried.
pub async fn reload_on_change(files: CertFiles, current: Arc<CurrentCert>, every: Duration) {
    let mut seen = modified(&files);
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let now = modified(&files);
        if now == seen {
            continue;
        }
        match load(&files) {
            Ok(key) => {
                current.0.store(Arc::new(key));
                seen = now;
                tracing::info!(cert = %files.cert.display(), "serving certificate reloaded");
            }
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "serving certificate changed but does not load; still serving the previous one"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_mode_makes_a_loadable_certificate_once() {
        let dir = std::env::temp_dir().join(format!("corbel-tls-test-{}", std::process::id()));
        let hosts = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let first = development_certificates(&dir, &hosts).unwrap();
        load(&first.files).unwrap();
        let ca = std::fs::read_to_string(&first.ca).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        development_certificates(&dir, &hosts).unwrap();
        assert_eq!(
            std::fs::read_to_string(&first.ca).unwrap(),
            ca,
            "a second start reuses the CA, so caBundle stays valid"
        );
        development_certificates(&dir, &["example.test".to_string()]).unwrap();
        assert_ne!(
            std::fs::read_to_string(&first.ca).unwrap(),
            ca,
            "other hosts get a new certificate"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_key_that_does_not_fit_is_refused() {
        let dir = std::env::temp_dir().join(format!("corbel-tls-mismatch-{}", std::process::id()));
        let a = development_certificates(&dir.join("a"), &["a.test".into()]).unwrap();
        let b = development_certificates(&dir.join("b"), &["b.test".into()]).unwrap();
        let err = load(&CertFiles {
            cert: a.files.cert,
            key: b.files.key,
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("does not fit"), "{err:#}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
