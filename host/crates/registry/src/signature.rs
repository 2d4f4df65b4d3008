//! Signatures in cosign's keyed format, so that keys made with `cosign generate-key-pair` and
//! signatures made with `cosign sign --key` work here, and the other way round:
//!
//! - ECDSA P-256 over SHA-256, the signature ASN.1 DER encoded, then base64;
//! - the signed payload is the "simple signing" JSON naming the manifest digest
//!   (`{"critical":{"identity":{"docker-reference":…},"image":{"docker-manifest-digest":…},"type":"cosign container image signature"},"optional":null}`);
//! - stored as an OCI image in the same repository, tagged `sha256-<hex>.sig`, one layer per
//!   signature, of media type `application/vnd.dev.cosign.simplesigning.v1+json` whose bytes are
//!   the payload and whose annotation `dev.cosignproject.cosign/signature` holds the signature.
//!
//! Keys: public keys as PEM `PUBLIC KEY` (SPKI, what `cosign.pub` is); private keys as PEM
//! `PRIVATE KEY` (PKCS#8), `EC PRIVATE KEY` (SEC1), or cosign's `ENCRYPTED SIGSTORE PRIVATE KEY`
//! (also the older `ENCRYPTED COSIGN PRIVATE KEY` label): JSON holding scrypt parameters and a
//! NaCl secretbox sealing the PKCS#8 key, opened with the password in `COSIGN_PASSWORD`.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::RegistryError;

pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const SIGNATURE_TYPE: &str = "cosign container image signature";

/// The tag cosign stores a manifest's signatures under: `sha256-<hex>.sig`.
pub fn signature_tag(manifest_digest: &str) -> String {
    format!("{}.sig", manifest_digest.replacen(':', "-", 1))
}

/// The simple-signing payload, field for field as cosign writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub critical: Critical,
    pub optional: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Critical {
    pub identity: Identity,
    pub image: Image,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

/// The payload signing `manifest_digest` of `repository` (`host/path`, no tag, as cosign writes).
pub fn payload(repository: &str, manifest_digest: &str) -> Vec<u8> {
    serde_json::to_vec(&Payload {
        critical: Critical {
            identity: Identity {
                docker_reference: repository.to_owned(),
            },
            image: Image {
                docker_manifest_digest: manifest_digest.to_owned(),
            },
            kind: SIGNATURE_TYPE.into(),
        },
        optional: None,
    })
    .expect("the payload always serializes")
}

/// A public key trusted to sign plugins.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// Where it came from, for messages.
    pub source: String,
    pub key: VerifyingKey,
}

impl TrustedKey {
    /// `sha256:<hex>` of the key's SPKI encoding: how the lock file and messages name it.
    pub fn fingerprint(&self) -> String {
        let der = self
            .key
            .to_public_key_der()
            .expect("a P-256 key always encodes");
        format!("sha256:{}", hex::encode(Sha256::digest(der.as_bytes())))
    }
}

fn key_error(path: &Path, why: impl Into<String>) -> RegistryError {
    RegistryError::Key {
        path: path.display().to_string(),
        why: why.into(),
    }
}

/// Reads a PEM `PUBLIC KEY` (SPKI) holding a P-256 key, such as `cosign.pub`.
pub fn read_public_key(path: &Path) -> Result<TrustedKey, RegistryError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| key_error(path, format!("cannot be read: {e}")))?;
    let key = VerifyingKey::from_public_key_pem(&text).map_err(|e| {
        key_error(
            path,
            format!("is not a PEM `PUBLIC KEY` holding an ECDSA P-256 key ({e}); give cosign.pub or `openssl pkey -pubout` output"),
        )
    })?;
    Ok(TrustedKey {
        source: path.display().to_string(),
        key,
    })
}

/// Reads a private key: PKCS#8 or SEC1 PEM, or cosign's encrypted format (password from
/// `password`, normally `COSIGN_PASSWORD`).
pub fn read_private_key(path: &Path, password: Option<&str>) -> Result<SigningKey, RegistryError> {
    let text = std::fs::read(path).map_err(|e| key_error(path, format!("cannot be read: {e}")))?;
    let (label, der) = pem_rfc7468::decode_vec(&text)
        .map_err(|e| key_error(path, format!("is not a PEM file ({e})")))?;
    match label {
        "PRIVATE KEY" => SigningKey::from_pkcs8_der(&der).map_err(|e| {
            key_error(
                path,
                format!("is not a PKCS#8 ECDSA P-256 private key ({e})"),
            )
        }),
        "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(&der)
            .map(SigningKey::from)
            .map_err(|e| key_error(path, format!("is not a SEC1 P-256 private key ({e})"))),
        "ENCRYPTED SIGSTORE PRIVATE KEY" | "ENCRYPTED COSIGN PRIVATE KEY" => {
            let Some(password) = password else {
                return Err(key_error(
                    path,
                    "is an encrypted cosign key: set COSIGN_PASSWORD to its password",
                ));
            };
            let pkcs8 = decrypt_cosign_key(&der, password.as_bytes())
                .map_err(|why| key_error(path, why))?;
            SigningKey::from_pkcs8_der(&pkcs8).map_err(|e| {
                key_error(
                    path,
                    format!("decrypts to something that is not a PKCS#8 P-256 key ({e})"),
                )
            })
        }
        other => Err(key_error(
            path,
            format!(
                "is a PEM {other:?}; give a `PRIVATE KEY` (PKCS#8), `EC PRIVATE KEY` or cosign `ENCRYPTED SIGSTORE PRIVATE KEY`"
            ),
        )),
    }
}

/// The JSON inside cosign's encrypted key PEM (from secure-systems-lab's `encrypted` package).
#[derive(Debug, Serialize, Deserialize)]
struct EncryptedKey {
    kdf: Kdf,
    cipher: Cipher,
    #[serde(with = "b64")]
    ciphertext: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    #[serde(with = "b64")]
    salt: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Cipher {
    name: String,
    #[serde(with = "b64")]
    nonce: Vec<u8>,
}

/// Go's `encoding/json` writes `[]byte` as standard base64.
mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::STANDARD.encode(bytes))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        super::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

fn scrypt_key(params: &ScryptParams, salt: &[u8], password: &[u8]) -> Result<[u8; 32], String> {
    if !params.n.is_power_of_two() || params.n < 2 {
        return Err(format!(
            "has scrypt N = {}, which is not a power of two",
            params.n
        ));
    }
    let log_n = params.n.trailing_zeros() as u8;
    let params = scrypt::Params::new(log_n, params.r, params.p, 32)
        .map_err(|e| format!("has scrypt parameters this host refuses ({e})"))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password, salt, &params, &mut key).map_err(|e| format!("scrypt failed: {e}"))?;
    Ok(key)
}

fn decrypt_cosign_key(json: &[u8], password: &[u8]) -> Result<Vec<u8>, String> {
    use crypto_secretbox::aead::{Aead, KeyInit};
    let key: EncryptedKey = serde_json::from_slice(json)
        .map_err(|e| format!("is not cosign's encrypted key JSON ({e})"))?;
    if key.kdf.name != "scrypt" || key.cipher.name != "nacl/secretbox" {
        return Err(format!(
            "uses kdf {:?} and cipher {:?}; cosign keys use scrypt and nacl/secretbox",
            key.kdf.name, key.cipher.name
        ));
    }
    if key.cipher.nonce.len() != 24 {
        return Err("has a secretbox nonce that is not 24 bytes".into());
    }
    let secret = scrypt_key(&key.kdf.params, &key.kdf.salt, password)?;
    let cipher = crypto_secretbox::XSalsa20Poly1305::new(&secret.into());
    let nonce = crypto_secretbox::Nonce::from_slice(&key.cipher.nonce);
    cipher
        .decrypt(nonce, key.ciphertext.as_slice())
        .map_err(|_| "cannot be decrypted: wrong COSIGN_PASSWORD (or a damaged key file)".into())
}

/// Encrypts a PKCS#8 key in cosign's format (scrypt N=32768, r=8, p=1; secretbox), PEM-encoded.
/// Used by tests to check decryption end to end; cosign uses the same parameters.
#[doc(hidden)]
pub fn encrypt_cosign_key(pkcs8_der: &[u8], password: &[u8]) -> String {
    use crypto_secretbox::aead::{Aead, KeyInit};
    let mut salt = [0u8; 32];
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut salt).expect("the OS has randomness");
    getrandom::fill(&mut nonce).expect("the OS has randomness");
    let params = ScryptParams {
        n: 32768,
        r: 8,
        p: 1,
    };
    let secret = scrypt_key(&params, &salt, password).expect("valid parameters");
    let cipher = crypto_secretbox::XSalsa20Poly1305::new(&secret.into());
    let ciphertext = cipher
        .encrypt(crypto_secretbox::Nonce::from_slice(&nonce), pkcs8_der)
        .expect("secretbox encrypts any input");
    let json = serde_json::to_vec(&EncryptedKey {
        kdf: Kdf {
            name: "scrypt".into(),
            params,
            salt: salt.to_vec(),
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: nonce.to_vec(),
        },
        ciphertext,
    })
    .expect("serializes");
    pem_rfc7468::encode_string(
        "ENCRYPTED SIGSTORE PRIVATE KEY",
        pem_rfc7468::LineEnding::LF,
        &json,
    )
    .expect("PEM encodes")
}

/// Signs a payload: base64 of the ASN.1 DER ECDSA signature, as cosign's annotation holds it.
pub fn sign(key: &SigningKey, payload: &[u8]) -> String {
    let signature: Signature = key.sign(payload);
    STANDARD.encode(signature.to_der().as_bytes())
}

/// Why one signature layer did not verify.
pub fn verify(
    keys: &[TrustedKey],
    payload_bytes: &[u8],
    signature_b64: &str,
    manifest_digest: &str,
) -> Result<TrustedKey, String> {
    let payload: Payload = serde_json::from_slice(payload_bytes)
        .map_err(|e| format!("its payload is not cosign simple-signing JSON ({e})"))?;
    if payload.critical.kind != SIGNATURE_TYPE {
        return Err(format!("its payload type is {:?}", payload.critical.kind));
    }
    if payload.critical.image.docker_manifest_digest != manifest_digest {
        return Err(format!(
            "it signs {}, not this manifest ({manifest_digest})",
            payload.critical.image.docker_manifest_digest
        ));
    }
    let raw = STANDARD
        .decode(signature_b64.trim())
        .map_err(|e| format!("its signature is not base64 ({e})"))?;
    // cosign writes DER; accept the fixed-size r||s form too, which some signers produce.
    let signature = match Signature::from_der(&raw) {
        Ok(signature) => signature,
        Err(_) => Signature::from_slice(&raw)
            .map_err(|_| "its signature is neither DER nor r||s ECDSA".to_owned())?,
    };
    keys.iter()
        .find(|k| k.key.verify(payload_bytes, &signature).is_ok())
        .cloned()
        .ok_or_else(|| "it is not signed by any trusted key".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::{EncodePrivateKey, LineEnding};

    fn keypair(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf, SigningKey) {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).unwrap();
        let key = SigningKey::from_slice(&secret).unwrap();
        let private = dir.join(format!("{name}.key"));
        let public = dir.join(format!("{name}.pub"));
        std::fs::write(
            &private,
            key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
        )
        .unwrap();
        std::fs::write(
            &public,
            key.verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap(),
        )
        .unwrap();
        (private, public, key)
    }

    #[test]
    fn the_payload_is_byte_for_byte_what_cosign_writes() {
        assert_eq!(
            String::from_utf8(payload("registry.example/policies/p", "sha256:abc")).unwrap(),
            r#"{"critical":{"identity":{"docker-reference":"registry.example/policies/p"},"image":{"docker-manifest-digest":"sha256:abc"},"type":"cosign container image signature"},"optional":null}"#
        );
        assert_eq!(signature_tag("sha256:abc"), "sha256-abc.sig");
    }

    #[test]
    fn verifies_with_the_signing_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public, _) = keypair(dir.path(), "good");
        let (_, other, _) = keypair(dir.path(), "other");
        let signer = read_private_key(&private, None).unwrap();
        let digest = "sha256:0123";
        let body = payload("r/p", digest);
        let signature = sign(&signer, &body);
        let trusted = [read_public_key(&public).unwrap()];
        assert!(verify(&trusted, &body, &signature, digest).is_ok());
        let wrong = [read_public_key(&other).unwrap()];
        assert!(
            verify(&wrong, &body, &signature, digest)
                .unwrap_err()
                .contains("not signed by any trusted key")
        );
        assert!(
            verify(&trusted, &body, &signature, "sha256:9999")
                .unwrap_err()
                .contains("not this manifest")
        );
    }

    #[test]
    fn reads_cosign_encrypted_keys_with_the_right_password() {
        let dir = tempfile::tempdir().unwrap();
        let (_, _, key) = keypair(dir.path(), "k");
        let path = dir.path().join("cosign.key");
        std::fs::write(
            &path,
            encrypt_cosign_key(key.to_pkcs8_der().unwrap().as_bytes(), b"hunter2"),
        )
        .unwrap();
        let read = read_private_key(&path, Some("hunter2")).unwrap();
        assert_eq!(read.verifying_key(), key.verifying_key());
        let wrong = read_private_key(&path, Some("nope"))
            .unwrap_err()
            .to_string();
        assert!(wrong.contains("wrong COSIGN_PASSWORD"), "{wrong}");
        let none = read_private_key(&path, None).unwrap_err().to_string();
        assert!(none.contains("set COSIGN_PASSWORD"), "{none}");
    }
}
