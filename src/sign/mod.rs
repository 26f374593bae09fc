//! Verifying (and making) OpenSSF Model Signing signatures, offline.
//!
//! A `model.sig` written by `model_signing sign key` (sigstore/model-
//! transparency 1.x) is a Sigstore bundle whose DSSE envelope signs an
//! in-toto statement listing every file of the model with its SHA-256. This
//! module checks such a signature against keys the caller trusts, then
//! re-hashes the model on disk and requires an exact match: no missing file,
//! no extra file, no changed byte. A scan says "this file would not run code
//! when loaded"; a signature says "these are the bytes the publisher
//! shipped". Policy can require both.
//!
//! What it checks, in order ([`verify_model_with`]):
//! 1. the bundle is a v0.3 Sigstore bundle in key mode (keyless and
//!    certificate bundles are refused with a clear [`SignError::Unsupported`]:
//!    keyless needs Sigstore's online trust roots; nothing is fetched);
//! 2. the key hint, when present, names one of the trusted keys;
//! 3. an ECDSA signature over the DSSE pre-authentication encoding of the
//!    exact payload bytes verifies with that key (P-256/SHA-256,
//!    P-384/SHA-384, P-521/SHA-512);
//! 4. the payload is an in-toto Statement v1 with the model-signing v1.0
//!    predicate and one subject whose digest is the SHA-256 over the listed
//!    resource digests;
//! 5. the model's files, hashed as the signer's `serialization` says
//!    (files or shards, SHA-256, the signer's `ignore_paths` re-applied),
//!    equal the resource list name for name.
//!
//! What it refuses to do: load, parse or scan model content (that is the
//! scanner's job: a validly signed pickle can still run code), trust the key
//! embedded in a bundle, or follow a symlink out of the model (see [`tree`]).
//! BLAKE2b and BLAKE3 manifests are reported as unsupported rather than
//! half-checked.
//!
//! Adapters (policy `require-signature`, git hooks, the cache daemon) use
//! [`find_signature`] to learn whether a model carries a signature and
//! [`verify_model`] / [`verify_model_with`] to check it; [`open_signature`]
//! checks a bundle without touching the model, for callers that hash bytes
//! themselves (git blobs).
//!
//! Spec and reference: sigstore/model-transparency `docs/model_signing_format.md`
//! and `src/model_signing/_signing/sign_ec_key.py`; DSSE `protocol.md`.

pub mod bundle;
pub mod keys;
pub mod tree;

use std::path::{Path, PathBuf};

pub use keys::{Curve, PublicKey, SigningKey, TrustedKeys};
pub use tree::{IgnoreSet, Method};

use bundle::{Predicate, Resource, Serialization, Statement, Subject, SubjectDigest};

/// The conventional signature file name inside a model directory (the
/// reference tool's default).
pub const SIGNATURE_FILE: &str = "model.sig";
/// Largest signature file read; a bundle listing 100k files is ~20 MB.
pub const MAX_SIGNATURE_BYTES: u64 = 64 << 20;

/// Why a model could not be signed or verified.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{key}: {reason}")]
    Key { key: String, reason: String },
    #[error("malformed signature: {0}")]
    Malformed(String),
    #[error("unsupported signature: {0}")]
    Unsupported(String),
    #[error("signed with a different key: the bundle's key hint is {hint}, trusted keys have {}", .trusted.join(", "))]
    KeyMismatch { hint: String, trusted: Vec<String> },
    #[error(
        "the signature does not verify with the trusted key(s): the bundle was altered or signed by another key"
    )]
    BadSignature,
    #[error("invalid signed statement: {0}")]
    Statement(String),
    #[error("the model does not match its signature: {}", summarize(.0))]
    Mismatch(Vec<Mismatch>),
    #[error("{0}")]
    Tree(String),
}

impl SignError {
    /// True when the outcome is "not verified" (a tampered model, a bad or
    /// foreign signature); false when verification could not be attempted
    /// (unreadable files, a bad key file, an unsupported signature mode).
    /// The CLI maps these to exit codes 1 and 2.
    pub fn is_verification_failure(&self) -> bool {
        !matches!(
            self,
            SignError::Io { .. } | SignError::Key { .. } | SignError::Unsupported(_)
        )
    }
}

/// One difference between the model on disk and its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// Signed, but absent from disk.
    Missing(String),
    /// On disk, not signed (and not ignored).
    Extra(String),
    /// Present in both with different content.
    Changed {
        name: String,
        expected: String,
        actual: String,
    },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::Missing(n) => write!(f, "missing file {n}"),
            Mismatch::Extra(n) => write!(f, "unsigned extra file {n}"),
            Mismatch::Changed {
                name,
                expected,
                actual,
            } => write!(
                f,
                "changed file {name} (signed sha256 {expected}, now {actual})"
            ),
        }
    }
}

fn summarize(m: &[Mismatch]) -> String {
    const SHOWN: usize = 5;
    let mut parts: Vec<String> = m.iter().take(SHOWN).map(ToString::to_string).collect();
    if m.len() > SHOWN {
        parts.push(format!("and {} more", m.len() - SHOWN));
    }
    parts.join("; ")
}

/// Extra verification settings. The default matches the reference
/// verifier's CLI defaults.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// More paths to leave out, relative to the model root (on top of the
    /// signer's recorded `ignore_paths`, the git paths and the signature file
    /// itself when it sits inside the model).
    pub ignore_paths: Vec<String>,
}

/// A bundle whose signature checked out: what the publisher signed.
#[derive(Debug, Clone)]
pub struct SignedManifest {
    /// The subject name (the model directory's name when signed).
    pub model_name: String,
    /// The subject digest (SHA-256 over the resource digests).
    pub root_digest: String,
    pub method: Method,
    /// Resource name → lowercase hex SHA-256, in signed order.
    pub resources: Vec<(String, String)>,
    /// The signer's recorded ignore paths.
    pub ignore_paths: Vec<String>,
    /// The trusted key that verified the signature.
    pub key: PublicKey,
}

impl SignedManifest {
    /// The signed digest of a file (files mode) by its relative POSIX name.
    pub fn digest_of(&self, name: &str) -> Option<&str> {
        self.resources
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.as_str())
    }

    /// Checks one file against its signed digest (files mode), for callers
    /// that see a model one file at a time (the cache daemon on a partial
    /// snapshot). `name` is the POSIX path relative to the model root.
    pub fn check_file(&self, name: &str, file: &Path) -> Result<(), SignError> {
        if self.method != Method::Files {
            return Err(SignError::Unsupported(
                "per-file checks need a files-mode signature".into(),
            ));
        }
        let Some(expected) = self.digest_of(name) else {
            if self.leaves_out(name) {
                return Ok(());
            }
            return Err(SignError::Mismatch(vec![Mismatch::Extra(name.to_string())]));
        };
        let size = std::fs::metadata(file)
            .map_err(|source| SignError::Io {
                path: file.to_path_buf(),
                source,
            })?
            .len();
        let actual = tree::hash_file(file, size)?;
        if actual != expected {
            return Err(SignError::Mismatch(vec![Mismatch::Changed {
                name: name.to_string(),
                expected: expected.to_string(),
                actual,
            }]));
        }
        Ok(())
    }

    /// Whether the signature leaves `name` (relative to the model) out on
    /// purpose: the signer's ignore paths, the git paths, and the
    /// signature file itself.
    pub fn leaves_out(&self, name: &str) -> bool {
        self.ignore_set(&[SIGNATURE_FILE])
            .is_ok_and(|set| set.matches(&name.split('/').collect::<Vec<_>>()))
    }

    fn ignore_set(&self, extra: &[&str]) -> Result<IgnoreSet, SignError> {
        let mut ignore = IgnoreSet::default();
        for p in self
            .ignore_paths
            .iter()
            .map(String::as_str)
            .chain(tree::DEFAULT_IGNORES)
            .chain(extra.iter().copied())
        {
            ignore.add(p).map_err(SignError::Statement)?;
        }
        Ok(ignore)
    }

    /// Compares a complete listing of the model, hashed by the caller, with
    /// the signature: `(name, lowercase hex sha256)` for every file, e.g. the
    /// staged git blobs under the model directory. The signer's ignore paths
    /// and the git paths are applied to `files`, and `extra_ignores` (such as
    /// the signature's own name) on top. Files mode only.
    pub fn compare_listing(
        &self,
        files: &[(String, String)],
        extra_ignores: &[&str],
    ) -> Result<Vec<Mismatch>, SignError> {
        if self.method != Method::Files {
            return Err(SignError::Unsupported(
                "listing checks need a files-mode signature".into(),
            ));
        }
        let ignore = self.ignore_set(extra_ignores)?;
        let actual: Vec<tree::Hashed> = files
            .iter()
            .filter(|(n, _)| !ignore.matches(&n.split('/').collect::<Vec<_>>()))
            .map(|(n, d)| tree::Hashed {
                name: n.clone(),
                digest: d.to_ascii_lowercase(),
            })
            .collect();
        Ok(compare(&self.resources, &actual))
    }
}

/// A successful verification.
#[derive(Debug, Clone)]
pub struct Verified {
    pub manifest: SignedManifest,
    /// Files (or shards) hashed and matched.
    pub resources: usize,
    /// Bytes hashed.
    pub bytes: u64,
    /// Files on disk left out by an ignore rule: not covered by the
    /// signature, so still worth scanning.
    pub ignored_files: Vec<String>,
}

/// Where a signature for a model was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLocation {
    /// The signature file.
    pub signature: PathBuf,
    /// The model it covers: a directory, or the file itself.
    pub model: PathBuf,
}

/// Finds the signature covering `path`, by convention: for a file, a
/// sibling `<file>.sig` (a single-file signature), else `model.sig` in its
/// directory or the nearest ancestor directory, up to `stop_at` (inclusive;
/// e.g. the repository root or the cache snapshot folder); for a directory,
/// `model.sig` in it or an ancestor in the same way. `None` when the model
/// carries no signature.
pub fn find_signature(path: &Path, stop_at: Option<&Path>) -> Option<SignatureLocation> {
    const MAX_LEVELS: usize = 16;
    if path.is_file()
        && let Some(name) = path.file_name()
    {
        let mut sig_name = name.to_os_string();
        sig_name.push(".sig");
        let sig = path.with_file_name(sig_name);
        if sig.is_file() {
            return Some(SignatureLocation {
                signature: sig,
                model: path.to_path_buf(),
            });
        }
    }
    let start = if path.is_dir() {
        Some(path)
    } else {
        path.parent()
    };
    let mut dir = start;
    for _ in 0..MAX_LEVELS {
        let d = dir?;
        let sig = d.join(SIGNATURE_FILE);
        if sig.is_file() {
            return Some(SignatureLocation {
                signature: sig,
                model: if d.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    d.to_path_buf()
                },
            });
        }
        if stop_at.is_some_and(|s| s == d) {
            return None;
        }
        dir = d.parent();
    }
    None
}

/// A signature found by [`find_signature_in`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundSignature {
    /// The signature's path in the tree.
    pub path: String,
    /// The looked-up file's name relative to the model the signature
    /// covers, as signed: `.` for a single-file signature.
    pub name: String,
    pub bytes: Vec<u8>,
}

/// [`find_signature`] for a file in a tree that is not on disk (a git index
/// or commit), addressed by `/`-separated paths from its root, which is
/// where the search stops: `read` returns the content of the file at a
/// path, if there is one.
pub fn find_signature_in(
    path: &str,
    mut read: impl FnMut(&str) -> Option<Vec<u8>>,
) -> Option<FoundSignature> {
    const MAX_LEVELS: usize = 16;
    let single = format!("{path}.sig");
    if let Some(bytes) = read(&single) {
        return Some(FoundSignature {
            path: single,
            name: ".".into(),
            bytes,
        });
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for depth in (0..parts.len()).rev().take(MAX_LEVELS) {
        let dir = parts[..depth].join("/");
        let sig = if dir.is_empty() {
            SIGNATURE_FILE.to_string()
        } else {
            format!("{dir}/{SIGNATURE_FILE}")
        };
        if let Some(bytes) = read(&sig) {
            return Some(FoundSignature {
                path: sig,
                name: parts[depth..].join("/"),
                bytes,
            });
        }
    }
    None
}

/// The default place `modelgate sign` writes a signature: `model.sig` in a
/// model directory, `<file>.sig` next to a single-file model.
pub fn default_signature_path(model: &Path) -> PathBuf {
    if model.is_dir() {
        return model.join(SIGNATURE_FILE);
    }
    let mut name = model.file_name().unwrap_or_default().to_os_string();
    name.push(".sig");
    model.with_file_name(name)
}

/// Verifies the signature [`find_signature`] finds for `model`.
pub fn verify_model(model: &Path, keys: &TrustedKeys) -> Result<Verified, SignError> {
    let loc = find_signature(model, None).ok_or_else(|| {
        SignError::Malformed(format!("no signature found for {}", model.display()))
    })?;
    verify_model_with(&loc.model, &loc.signature, keys, &VerifyOptions::default())
}

/// Reads and checks a signature file without touching the model.
pub fn open_signature(signature: &Path, keys: &TrustedKeys) -> Result<SignedManifest, SignError> {
    let bytes = read_signature(signature)?;
    open_signature_bytes(&bytes, keys)
}

/// [`open_signature`] on bytes already in memory (e.g. a git blob).
pub fn open_signature_bytes(bytes: &[u8], keys: &TrustedKeys) -> Result<SignedManifest, SignError> {
    if keys.is_empty() {
        return Err(SignError::Key {
            key: "trusted keys".into(),
            reason: "no trusted public key configured".into(),
        });
    }
    let opened = bundle::open(bytes, keys)?;
    let st = opened.statement;
    let ser = &st.predicate.serialization;
    if ser.hash_type != "sha256" {
        return Err(SignError::Unsupported(format!(
            "hash type {:?}: modelgate verifies SHA-256 manifests only",
            ser.hash_type
        )));
    }
    let method = match (ser.method.as_str(), ser.shard_size()) {
        ("files", _) => Method::Files,
        ("shards", Some(size)) if size > 0 => Method::Shards(size),
        ("shards", size) => {
            return Err(SignError::Statement(format!(
                "shard size {size:?} is missing or zero"
            )));
        }
        (m, _) => {
            return Err(SignError::Unsupported(format!(
                "serialization method {m:?}"
            )));
        }
    };
    if st.predicate.resources.len() > tree::MAX_ENTRIES {
        return Err(SignError::Statement(format!(
            "{} resources listed",
            st.predicate.resources.len()
        )));
    }
    let algorithm = method.algorithm();
    let mut resources = Vec::with_capacity(st.predicate.resources.len());
    let mut seen = std::collections::HashSet::new();
    for r in &st.predicate.resources {
        if r.algorithm != algorithm {
            return Err(SignError::Statement(format!(
                "resource {:?} uses algorithm {:?}, the serialization says {algorithm:?}",
                r.name, r.algorithm
            )));
        }
        if !seen.insert(r.name.as_str()) {
            return Err(SignError::Statement(format!(
                "resource {:?} is listed twice",
                r.name
            )));
        }
        resources.push((r.name.clone(), r.digest.to_ascii_lowercase()));
    }
    let model_name = st
        .subject
        .first()
        .map(|s| s.name.clone())
        .unwrap_or_default();
    let root_digest = st
        .subject
        .first()
        .map(|s| s.digest.sha256.to_ascii_lowercase())
        .unwrap_or_default();
    Ok(SignedManifest {
        model_name,
        root_digest,
        method,
        resources,
        ignore_paths: ser.ignore_paths.clone(),
        key: opened.key,
    })
}

/// Verifies `model` (a directory or one file) against `signature`.
pub fn verify_model_with(
    model: &Path,
    signature: &Path,
    keys: &TrustedKeys,
    opts: &VerifyOptions,
) -> Result<Verified, SignError> {
    let manifest = open_signature(signature, keys)?;
    let mut ignore = IgnoreSet::default();
    for p in manifest.ignore_paths.iter().chain(&opts.ignore_paths) {
        ignore.add(p).map_err(SignError::Statement)?;
    }
    let own = add_default_ignores(&mut ignore, model, signature);
    let mut tree = tree::collect(model, &ignore)?;
    tree.ignored.retain(|n| Some(n) != own.as_ref());
    let actual = tree::hash(&tree, manifest.method)?;
    let mismatches = compare(&manifest.resources, &actual);
    if !mismatches.is_empty() {
        return Err(SignError::Mismatch(mismatches));
    }
    Ok(Verified {
        resources: actual.len(),
        bytes: tree.total_bytes(),
        ignored_files: tree.ignored,
        manifest,
    })
}

/// The git paths, and the signature file when it lies inside the model.
/// Returns the signature's name relative to the model when it is inside.
fn add_default_ignores(ignore: &mut IgnoreSet, model: &Path, signature: &Path) -> Option<String> {
    for p in tree::DEFAULT_IGNORES {
        let _ = ignore.add(p);
    }
    // When signing, the signature does not exist yet: resolve its directory.
    let sig = match (signature.parent(), signature.file_name()) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            std::fs::canonicalize(dir).map(|d| d.join(name))
        }
        _ => std::fs::canonicalize(signature),
    };
    if let (Ok(m), Ok(s)) = (std::fs::canonicalize(model), sig)
        && let Ok(rel) = s.strip_prefix(&m)
        && let Some(rel) = rel.to_str()
    {
        let _ = ignore.add(rel);
        return Some(rel.to_string());
    }
    None
}

fn compare(expected: &[(String, String)], actual: &[tree::Hashed]) -> Vec<Mismatch> {
    use std::collections::BTreeMap;
    let exp: BTreeMap<&str, &str> = expected
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_str()))
        .collect();
    let act: BTreeMap<&str, &str> = actual
        .iter()
        .map(|h| (h.name.as_str(), h.digest.as_str()))
        .collect();
    let mut out = Vec::new();
    for (name, digest) in &exp {
        match act.get(name) {
            None => out.push(Mismatch::Missing((*name).to_string())),
            Some(a) if a != digest => out.push(Mismatch::Changed {
                name: (*name).to_string(),
                expected: (*digest).to_string(),
                actual: (*a).to_string(),
            }),
            Some(_) => {}
        }
    }
    for name in act.keys() {
        if !exp.contains_key(name) {
            out.push(Mismatch::Extra((*name).to_string()));
        }
    }
    out
}

/// Signing settings.
#[derive(Debug, Clone)]
pub struct SignOptions {
    /// Paths to leave out, relative to the model root.
    pub ignore_paths: Vec<String>,
    /// Where the signature will be written; left out of the manifest when
    /// it lies inside the model.
    pub signature_path: PathBuf,
    pub method: Method,
}

/// Hashes `model` and returns a signed bundle (JSON text) in the format the
/// reference `model_signing verify key` accepts.
pub fn sign_model(model: &Path, key: &SigningKey, opts: &SignOptions) -> Result<String, SignError> {
    let mut ignore = IgnoreSet::default();
    for p in &opts.ignore_paths {
        ignore.add(p).map_err(SignError::Tree)?;
    }
    if model.is_dir() {
        let _ = add_default_ignores(&mut ignore, model, &opts.signature_path);
    } else {
        // The reference signer records the git paths for single files too.
        for p in tree::DEFAULT_IGNORES {
            let _ = ignore.add(p);
        }
    }
    if opts.method == Method::Shards(0) {
        return Err(SignError::Tree("shard size must be positive".into()));
    }
    let tree = tree::collect(model, &ignore)?;
    let hashed = tree::hash(&tree, opts.method)?;
    let algorithm = opts.method.algorithm();
    let resources: Vec<Resource> = hashed
        .into_iter()
        .map(|h| Resource {
            algorithm: algorithm.clone(),
            digest: h.digest,
            name: h.name,
        })
        .collect();
    let root = bundle::root_digest(&resources)?;
    let name = model_name(model)?;
    let statement = Statement {
        type_: bundle::STATEMENT_TYPE.into(),
        subject: vec![Subject {
            name,
            digest: SubjectDigest { sha256: root },
        }],
        predicate_type: bundle::PREDICATE_TYPE.into(),
        predicate: Predicate {
            resources,
            serialization: Serialization {
                method: match opts.method {
                    Method::Files => "files".into(),
                    Method::Shards(_) => "shards".into(),
                },
                hash_type: "sha256".into(),
                allow_symlinks: serde_json::Value::Bool(false),
                ignore_paths: ignore.to_strings(),
                shard_size: match opts.method {
                    Method::Files => None,
                    Method::Shards(s) => Some(s.into()),
                },
            },
        },
    };
    bundle::seal(&statement, key)
}

/// The subject name: the model's final path component, as the reference
/// signer takes it (resolving `.` and `..`).
fn model_name(model: &Path) -> Result<String, SignError> {
    let canon = std::fs::canonicalize(model).map_err(|source| SignError::Io {
        path: model.to_path_buf(),
        source,
    })?;
    let name = match model.file_name() {
        Some(n) => n.to_string_lossy().into_owned(),
        None => canon
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    Ok(name)
}

fn read_signature(path: &Path) -> Result<Vec<u8>, SignError> {
    let io = |source| SignError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(SignError::Malformed(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    if meta.len() > MAX_SIGNATURE_BYTES {
        return Err(SignError::Malformed(format!(
            "{} is {} bytes, over the {MAX_SIGNATURE_BYTES}-byte limit",
            path.display(),
            meta.len()
        )));
    }
    std::fs::read(path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(path: &str, present: &[&str]) -> Option<(String, String)> {
        find_signature_in(path, |p| present.contains(&p).then(Vec::new)).map(|f| (f.path, f.name))
    }

    #[test]
    fn tree_lookup_prefers_a_single_file_signature_then_the_nearest_directory() {
        let found = |p: &str, name: &str| Some((p.to_string(), name.to_string()));
        let all = ["m/a/w.bin.sig", "m/a/model.sig", "m/model.sig", "model.sig"];
        assert_eq!(lookup("m/a/w.bin", &all), found("m/a/w.bin.sig", "."));
        assert_eq!(
            lookup("m/a/w.bin", &all[1..]),
            found("m/a/model.sig", "w.bin")
        );
        assert_eq!(
            lookup("m/a/w.bin", &all[2..]),
            found("m/model.sig", "a/w.bin")
        );
        assert_eq!(
            lookup("m/a/w.bin", &all[3..]),
            found("model.sig", "m/a/w.bin")
        );
        assert_eq!(lookup("m/a/w.bin", &[]), None);
        // A sibling directory's signature does not cover the file.
        assert_eq!(lookup("m/a/w.bin", &["m/b/model.sig"]), None);
    }
}
