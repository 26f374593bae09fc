//! `modelgate bom PATH... | --hf-cache`: writes a CycloneDX 1.6 ML-BOM
//! (one `machine-learning-model` component per model) to stdout or a file.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};

use modelgate::bom::{self, BomOptions, ModelInput};
use modelgate::hfcache;
use modelgate::scan::Scanner;
use modelgate::sign::TrustedKeys;

use super::EXIT_ERROR;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BomFormat {
    CyclonedxJson,
}

#[derive(Debug, Args)]
pub struct BomArgs {
    /// Models: a file or a model folder is one model component; a folder
    /// of model folders (`models/bert`, `models/gpt2`) is one per model.
    #[arg(required_unless_present = "hf_cache")]
    paths: Vec<PathBuf>,
    /// Describe every model snapshot in the Hugging Face cache (resolved
    /// like huggingface_hub: HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE,
    /// $HF_HOME/hub, $XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub).
    #[arg(long)]
    hf_cache: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = BomFormat::CyclonedxJson)]
    format: BomFormat,
    /// Write to this file instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Trusted public key(s) for checking model signatures that are present.
    #[arg(long = "key")]
    keys: Vec<PathBuf>,
    /// Policy file whose scan settings (limits, allowed and denied pickle
    /// globals) the verdicts follow (default: found as for `scan`).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
}

pub fn run(args: BomArgs) -> anyhow::Result<ExitCode> {
    let mut models: Vec<ModelInput> = Vec::new();
    for p in &args.paths {
        if !p.exists() {
            eprintln!(
                "modelgate: error: {}: no such file or directory",
                p.display()
            );
            return Ok(ExitCode::from(EXIT_ERROR));
        }
        models.extend(bom::expand(p));
    }
    if args.hf_cache {
        let root = hfcache::default_hub_cache().context("cannot locate the Hugging Face cache")?;
        if root.is_dir() {
            let snaps = hfcache::model_snapshots(&root)
                .with_context(|| format!("listing {}", root.display()))?;
            models.extend(snaps.into_iter().map(|s| ModelInput {
                path: s.snapshot_dir(),
            }));
        } else {
            eprintln!(
                "modelgate: note: no Hugging Face cache at {}",
                root.display()
            );
        }
    }
    let keys = if args.keys.is_empty() {
        None
    } else {
        Some(TrustedKeys::from_files(&args.keys).context("loading trusted keys")?)
    };
    let policy = match super::load_policy(args.policy.as_deref())? {
        Ok(policy) => policy,
        Err(code) => return Ok(code),
    };
    let scanner = Scanner::new(policy.scan_config());
    let doc = match args.format {
        BomFormat::CyclonedxJson => bom::build(&models, &scanner, &BomOptions { keys }),
    };
    let mut text = serde_json::to_string_pretty(&doc)?;
    text.push('\n');
    match &args.output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
