//! ECDSA keys for model-signing key mode: the three NIST curves that
//! `model-signing` accepts (`_check_supported_ec_key`), each with the hash the
//! reference implementation pairs with it (`get_ec_key_hash`): P-256 with
//! SHA-256, P-384 with SHA-384, P-521 with SHA-512. Signatures are ASN.1 DER,
//! as Python `cryptography` writes them.
//!
//! The key *hint* recorded in a bundle is the SHA-256 of the public key
//! re-encoded as PEM exactly as `cryptography` does it (64-character base64
//! lines, LF endings): neither the DER nor the bytes of the user's key file
//! give the same value. It is advisory: DSSE says a key id must not decide
//! anything on its own, so a matching hint only selects which trusted key to
//! try, and the signature check is what counts.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use sha2::{Digest, Sha256};

use super::SignError;
pub(crate) use crate::digest::hex;

/// Largest key file read; a PEM EC key is well under 1 KiB.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// The curve of a key, which also fixes the signature's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256 (SHA-256)",
            Curve::P384 => "P-384 (SHA-384)",
            Curve::P521 => "P-521 (SHA-512)",
        }
    }
}

#[derive(Clone)]
enum Verifying {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
}

/// A trusted public key.
#[derive(Clone)]
pub struct PublicKey {
    key: Verifying,
    hint: String,
    /// Where the key came from, for messages.
    pub label: String,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("curve", &self.curve())
            .field("hint", &self.hint)
            .field("label", &self.label)
            .finish()
    }
}

impl PublicKey {
    /// Parses a SubjectPublicKeyInfo in PEM (`BEGIN PUBLIC KEY`) or DER.
    pub fn from_bytes(data: &[u8], label: &str) -> Result<Self, SignError> {
        let bad = |reason: String| SignError::Key {
            key: label.to_string(),
            reason,
        };
        let der = spki_der(data).map_err(bad)?;
        let key = if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(&der) {
            Verifying::P256(k)
        } else if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_der(&der) {
            Verifying::P384(k)
        } else if let Ok(k) = p521::ecdsa::VerifyingKey::from_public_key_der(&der) {
            Verifying::P521(k)
        } else {
            return Err(bad(
                "not an ECDSA P-256, P-384 or P-521 public key (the curves model-signing accepts)"
                    .into(),
            ));
        };
        Ok(PublicKey {
            key,
            hint: hint_of_der(&der),
            label: label.to_string(),
        })
    }

    /// Reads a public key file.
    pub fn from_file(path: &Path) -> Result<Self, SignError> {
        let data = read_key_file(path)?;
        Self::from_bytes(&data, &path.display().to_string())
    }

    pub fn curve(&self) -> Curve {
        match self.key {
            Verifying::P256(_) => Curve::P256,
            Verifying::P384(_) => Curve::P384,
            Verifying::P521(_) => Curve::P521,
        }
    }

    /// The model-signing key hint: hex SHA-256 of the re-encoded PEM.
    pub fn hint(&self) -> &str {
        &self.hint
    }

    /// Checks a DER signature over `message`, hashing with the curve's hash.
    pub fn verify(&self, message: &[u8], der_signature: &[u8]) -> bool {
        match &self.key {
            Verifying::P256(k) => p256::ecdsa::Signature::from_der(der_signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
            Verifying::P384(k) => p384::ecdsa::Signature::from_der(der_signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
            Verifying::P521(k) => p521::ecdsa::Signature::from_der(der_signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
        }
    }
}

/// The keys a verification accepts. A signature verifies when it checks out
/// under any one of them.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<PublicKey>,
}

impl TrustedKeys {
    pub fn new() -> Self {
        TrustedKeys::default()
    }

    /// Loads one public key per file.
    pub fn from_files<P: AsRef<Path>>(paths: &[P]) -> Result<Self, SignError> {
        let mut keys = TrustedKeys::new();
        for p in paths {
            keys.push(PublicKey::from_file(p.as_ref())?);
        }
        Ok(keys)
    }

    pub fn push(&mut self, key: PublicKey) {
        self.keys.push(key);
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &PublicKey> {
        self.keys.iter()
    }
}

enum Signing {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    P521(p521::ecdsa::SigningKey),
}

/// A private key for `modelgate sign`. Signatures are deterministic
/// (RFC 6979), so signing needs no random number generator.
pub struct SigningKey {
    key: Signing,
    public: PublicKey,
}

impl SigningKey {
    /// Parses an unencrypted EC private key in PEM: PKCS#8 (`BEGIN PRIVATE
    /// KEY`) or SEC1 (`BEGIN EC PRIVATE KEY`).
    pub fn from_pem(text: &str, label: &str) -> Result<Self, SignError> {
        let bad = |reason: &str| SignError::Key {
            key: label.to_string(),
            reason: reason.to_string(),
        };
        if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
            return Err(bad(
                "encrypted private keys are not supported; decrypt it first (openssl pkey -in KEY -out PLAIN)",
            ));
        }
        let key = if let Ok(k) = p256::SecretKey::from_pkcs8_pem(text) {
            Signing::P256(k.into())
        } else if let Ok(k) = p384::SecretKey::from_pkcs8_pem(text) {
            Signing::P384(k.into())
        } else if let Ok(k) = p521::SecretKey::from_pkcs8_pem(text) {
            Signing::P521(k.into())
        } else if let Ok(k) = p256::SecretKey::from_sec1_pem(text) {
            Signing::P256(k.into())
        } else if let Ok(k) = p384::SecretKey::from_sec1_pem(text) {
            Signing::P384(k.into())
        } else if let Ok(k) = p521::SecretKey::from_sec1_pem(text) {
            Signing::P521(k.into())
        } else {
            return Err(bad(
                "not an unencrypted ECDSA P-256, P-384 or P-521 private key in PEM (PKCS#8 or SEC1)",
            ));
        };
        let der = match &key {
            Signing::P256(k) => k.verifying_key().to_public_key_der(),
            Signing::P384(k) => k.verifying_key().to_public_key_der(),
            Signing::P521(k) => k.verifying_key().to_public_key_der(),
        }
        .map_err(|e| bad(&format!("cannot encode the public key: {e}")))?;
        let public = PublicKey::from_bytes(der.as_bytes(), label)?;
        Ok(SigningKey { key, public })
    }

    pub fn from_file(path: &Path) -> Result<Self, SignError> {
        let data = read_key_file(path)?;
        let label = path.display().to_string();
        let text = std::str::from_utf8(&data).map_err(|_| SignError::Key {
            key: label.clone(),
            reason: "not a PEM file".into(),
        })?;
        Self::from_pem(text, &label)
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `message` (hashing with the curve's hash); returns DER.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.key {
            Signing::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign(message);
                s.to_der().as_bytes().to_vec()
            }
            Signing::P384(k) => {
                let s: p384::ecdsa::Signature = k.sign(message);
                s.to_der().as_bytes().to_vec()
            }
            Signing::P521(k) => {
                let s: p521::ecdsa::Signature = k.sign(message);
                s.to_der().as_bytes().to_vec()
            }
        }
    }

    /// The public key in PEM, as `cryptography` writes it.
    pub fn public_key_pem(&self) -> Result<String, SignError> {
        let der = match &self.key {
            Signing::P256(k) => k.verifying_key().to_public_key_der(),
            Signing::P384(k) => k.verifying_key().to_public_key_der(),
            Signing::P521(k) => k.verifying_key().to_public_key_der(),
        }
        .map_err(|e| SignError::Key {
            key: self.public.label.clone(),
            reason: format!("cannot encode the public key: {e}"),
        })?;
        Ok(pem_of_der(der.as_bytes()))
    }
}

fn read_key_file(path: &Path) -> Result<Vec<u8>, SignError> {
    let io = |source| SignError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_KEY_FILE_BYTES {
        return Err(SignError::Key {
            key: path.display().to_string(),
            reason: format!("{} bytes is too large for a key file", meta.len()),
        });
    }
    std::fs::read(path).map_err(io)
}

/// Extracts the DER of a `PUBLIC KEY` PEM block, or passes DER through.
fn spki_der(data: &[u8]) -> Result<Vec<u8>, String> {
    const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
    const END: &str = "-----END PUBLIC KEY-----";
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(data.to_vec());
    };
    if !text.contains("-----BEGIN") {
        return Ok(data.to_vec());
    }
    let start = text
        .find(BEGIN)
        .ok_or("no `BEGIN PUBLIC KEY` block (a private key or certificate was given?)")?;
    let body = text.get(start + BEGIN.len()..).unwrap_or_default();
    let end = body.find(END).ok_or("unterminated PEM block")?;
    let b64: String = body
        .get(..end)
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(b64)
        .map_err(|e| format!("bad base64 in PEM: {e}"))
}

/// PEM as Python `cryptography` writes a SubjectPublicKeyInfo.
fn pem_of_der(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem
}

fn hint_of_der(der: &[u8]) -> String {
    hex(&Sha256::digest(pem_of_der(der).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify_each_curve() {
        for (pem, curve) in [
            (
                include_str!("../../tests/fixtures/sign/keys/p256.pem"),
                Curve::P256,
            ),
            (
                include_str!("../../tests/fixtures/sign/keys/p384.pem"),
                Curve::P384,
            ),
            (
                include_str!("../../tests/fixtures/sign/keys/p521.pem"),
                Curve::P521,
            ),
            (
                include_str!("../../tests/fixtures/sign/keys/p256-sec1.pem"),
                Curve::P256,
            ),
        ] {
            let key = SigningKey::from_pem(pem, "test").unwrap();
            assert_eq!(key.public_key().curve(), curve);
            let sig = key.sign(b"message");
            assert!(key.public_key().verify(b"message", &sig));
            assert!(!key.public_key().verify(b"messagf", &sig));
            assert!(!key.public_key().verify(b"message", &sig[1..]));
        }
    }

    #[test]
    fn hint_matches_reencoded_pem() {
        let pub_pem = include_str!("../../tests/fixtures/sign/keys/p256.pub");
        let key = PublicKey::from_bytes(pub_pem.as_bytes(), "p256.pub").unwrap();
        // openssl writes the same layout as cryptography for a P-256 key, so
        // the file's own hash is the hint here.
        assert_eq!(key.hint(), hex(&Sha256::digest(pub_pem.as_bytes())));
        let private = SigningKey::from_pem(
            include_str!("../../tests/fixtures/sign/keys/p256.pem"),
            "p256.pem",
        )
        .unwrap();
        assert_eq!(private.public_key().hint(), key.hint());
        assert_eq!(private.public_key_pem().unwrap(), pub_pem);
    }

    #[test]
    fn rejects_non_keys() {
        assert!(PublicKey::from_bytes(b"garbage", "x").is_err());
        assert!(
            PublicKey::from_bytes(
                include_str!("../../tests/fixtures/sign/keys/p256.pem").as_bytes(),
                "x"
            )
            .is_err()
        );
        assert!(SigningKey::from_pem("-----BEGIN ENCRYPTED PRIVATE KEY-----\n", "x").is_err());
        assert!(SigningKey::from_pem("", "x").is_err());
    }
}
