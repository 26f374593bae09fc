//! `modelgate sign MODEL --key private.pem [--signature model.sig]`: signs a
//! model in OpenSSF Model Signing key mode; the reference
//! `model_signing verify key` accepts the result.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use modelgate::sign::{self, Method, SignOptions, SigningKey};

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The model: a directory or a single file.
    model: PathBuf,
    /// EC private key in PEM (PKCS#8 or SEC1; P-256, P-384 or P-521).
    #[arg(long)]
    key: PathBuf,
    /// Where to write the signature (the file `verify --signature` reads).
    /// Default: `model.sig` in the model directory, `<file>.sig` next to a
    /// single file.
    #[arg(long, value_name = "FILE", alias = "output", short_alias = 'o')]
    signature: Option<PathBuf>,
    /// Paths (relative to the model) to leave out of the signature.
    #[arg(long = "ignore-path")]
    ignore_paths: Vec<String>,
    /// Hash files in shards of this many bytes instead of whole.
    #[arg(long)]
    shard_size: Option<u64>,
}

pub fn run(args: SignArgs) -> anyhow::Result<ExitCode> {
    let key = SigningKey::from_file(&args.key).context("loading the private key")?;
    let output = args
        .signature
        .unwrap_or_else(|| sign::default_signature_path(&args.model));
    let opts = SignOptions {
        ignore_paths: args.ignore_paths,
        signature_path: output.clone(),
        method: args.shard_size.map_or(Method::Files, Method::Shards),
    };
    let bundle = sign::sign_model(&args.model, &key, &opts)
        .with_context(|| format!("signing {}", args.model.display()))?;
    std::fs::write(&output, bundle).with_context(|| format!("writing {}", output.display()))?;
    println!(
        "signed {} with {} key {} -> {}",
        args.model.display(),
        key.public_key().curve().name(),
        key.public_key().hint(),
        output.display()
    );
    Ok(ExitCode::SUCCESS)
}
