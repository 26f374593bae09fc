//! `modelgate verify MODEL --key publisher.pub [--signature model.sig]`:
//! checks an OpenSSF Model Signing signature (key mode) offline and that the
//! model on disk is exactly what was signed. Exit 0 verified, 1 not
//! verified (tampered model, wrong key, altered signature), 2 could not
//! verify (unreadable files, bad key, unsupported signature mode).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use modelgate::sign::{self, SignError, TrustedKeys, VerifyOptions};

use super::{EXIT_ERROR, EXIT_FINDINGS};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The model: a directory or a single file.
    model: PathBuf,
    /// The signature (Sigstore bundle). Default: `model.sig` in the model
    /// directory (or `<file>.sig` for a single file), else the nearest
    /// `model.sig` above it.
    #[arg(long)]
    signature: Option<PathBuf>,
    /// Trusted public key (PEM), repeatable: any one of them may have signed.
    #[arg(long = "key", required = true)]
    keys: Vec<PathBuf>,
    /// Extra paths (relative to the model) to leave out of the comparison.
    #[arg(long = "ignore-path")]
    ignore_paths: Vec<String>,
}

pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let keys = TrustedKeys::from_files(&args.keys).context("loading trusted keys")?;
    let (model, signature) = match args.signature {
        Some(sig) => (args.model.clone(), sig),
        None => match sign::find_signature(&args.model, None) {
            // The nearest signature may cover a directory above the path
            // given; the whole directory is what it vouches for.
            Some(loc) => (loc.model, loc.signature),
            None => {
                eprintln!(
                    "modelgate: error: no signature found for {} (looked for {}); pass --signature",
                    args.model.display(),
                    sign::default_signature_path(&args.model).display()
                );
                return Ok(ExitCode::from(EXIT_ERROR));
            }
        },
    };
    let opts = VerifyOptions {
        ignore_paths: args.ignore_paths,
    };
    match sign::verify_model_with(&model, &signature, &keys, &opts) {
        Ok(v) => {
            println!(
                "verified: {} ({} {}, {} bytes) signed by {} key {} [{}]",
                model.display(),
                v.resources,
                match v.manifest.method {
                    sign::Method::Files => "files",
                    sign::Method::Shards(_) => "shards",
                },
                v.bytes,
                v.manifest.key.curve().name(),
                v.manifest.key.hint(),
                v.manifest.key.label,
            );
            if !v.ignored_files.is_empty() {
                println!(
                    "note: not covered by the signature (ignored by the signer's rules): {}",
                    v.ignored_files.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(SignError::Mismatch(list)) => {
            println!(
                "NOT verified: {} does not match its signature",
                model.display()
            );
            for m in &list {
                println!("  {m}");
            }
            Ok(ExitCode::from(EXIT_FINDINGS))
        }
        Err(e) if e.is_verification_failure() => {
            println!("NOT verified: {}: {e}", model.display());
            Ok(ExitCode::from(EXIT_FINDINGS))
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("verifying {}", model.display()))),
    }
}
