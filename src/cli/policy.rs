//! `modelgate policy check [FILE]` and `modelgate policy init`: validate a
//! policy and explain what it does, or write the commented template.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use modelgate::policy::{self, Context, Policy, diag};

use super::{EXIT_CONFIG, EXIT_ERROR};

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validate a policy (FILE, or the one found from the current directory)
    /// and print the effective settings.
    Check {
        /// The policy file to check (default: the one the other commands
        /// would use here: MODELGATE_POLICY, else the nearest
        /// .modelgate.toml or policy.toml up to the repository root, else
        /// the user default).
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        /// Same as FILE, spelt as on the other commands.
        #[arg(long, value_name = "FILE", conflicts_with = "file")]
        policy: Option<PathBuf>,
    },
    /// Print `[[exemptions]]` entries for every file flagged today, to
    /// adopt modelgate on an existing tree. Each carries a placeholder
    /// reason that `policy check` refuses until a person replaces it.
    Baseline(super::scan::BaselineArgs),
    /// Print the effective pickle allowlist (built-in tables plus the
    /// policy's allows, minus its denials) for other tools.
    Export(super::guard::ExportArgs),
    /// Write the commented default policy.
    Init {
        /// Where to write it.
        #[arg(default_value = "policy.toml")]
        file: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
}

pub fn run(args: PolicyArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        PolicyCommand::Check { file, policy } => check(file.or(policy)),
        PolicyCommand::Init { file, force } => init(file, force),
        PolicyCommand::Baseline(args) => super::scan::baseline(args),
        PolicyCommand::Export(args) => super::guard::export(args),
    }
}

fn init(file: PathBuf, force: bool) -> anyhow::Result<ExitCode> {
    if file.exists() && !force {
        eprintln!(
            "modelgate: {} already exists; use --force to overwrite it",
            file.display()
        );
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    std::fs::write(&file, policy::TEMPLATE)
        .with_context(|| format!("cannot write {}", file.display()))?;
    println!(
        "wrote {}; `modelgate policy check` validates your edits",
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn check(file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let loaded = policy::locate::locate(file.as_deref(), &cwd)
        .and_then(|source| Ok((Policy::load_source(&source)?, source)));
    let (policy, source) = match loaded {
        Ok(p) => p,
        Err(e) => {
            eprint!("{e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    if !policy.warnings().is_empty() {
        eprint!("{}", diag::render(policy.warnings()));
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "using: {source}")?;
    summarize(&mut out, &policy)?;
    Ok(ExitCode::SUCCESS)
}

/// The effective policy, in the order a reviewer would ask about it.
fn summarize(out: &mut dyn Write, p: &Policy) -> std::io::Result<()> {
    if p.files().is_empty() {
        writeln!(out, "policy: built-in defaults (no policy file found)")?;
    } else {
        let files: Vec<String> = p
            .files()
            .iter()
            .rev()
            .map(|f| f.display().to_string())
            .collect();
        writeln!(out, "policy: {} (valid)", files.join(" extends "))?;
    }
    for (label, cx) in [
        ("scan and hooks", Context::Hook),
        ("daemon", Context::Daemon),
    ] {
        let a = p.actions(cx);
        writeln!(
            out,
            "  {label}: malicious → {}, suspicious → {}, info → {}, unverifiable → {}",
            a.malicious, a.suspicious, a.info, a.unverifiable
        )?;
    }
    for line in p.proxy().describe() {
        writeln!(out, "  {line}")?;
    }
    writeln!(out, "  hook internal error → {}", p.on_error())?;
    let table = |l: &modelgate::scan::Limits| toml::Table::try_from(l).unwrap_or_default();
    let (ours, defaults) = (
        table(p.limits()),
        table(&modelgate::scan::Limits::default()),
    );
    let changed: Vec<String> = ours
        .iter()
        .filter(|(k, v)| defaults.get(*k) != Some(*v))
        .map(|(k, v)| {
            format!(
                "{k} = {v} (default {})",
                defaults.get(k).map(ToString::to_string).unwrap_or_default()
            )
        })
        .collect();
    if changed.is_empty() {
        writeln!(out, "  limits: defaults")?;
    } else {
        writeln!(out, "  limits: {}", changed.join(", "))?;
    }
    for g in p.allowed_globals() {
        match &g.override_reason {
            Some(r) => writeln!(
                out,
                "  pickle allow {}.{} (overrides the built-in denylist: {r})",
                g.module, g.name
            )?,
            None => writeln!(out, "  pickle allow {}.{}", g.module, g.name)?,
        }
    }
    for (m, n) in p.denied_globals() {
        writeln!(out, "  pickle deny {m}.{n}")?;
    }
    if let Some(req) = p.download_signature() {
        let repos = if req.repos.is_empty() {
            "every repo".to_string()
        } else {
            req.repos.join(", ")
        };
        writeln!(
            out,
            "  daemon: snapshots of {repos} signed by {}",
            req.describe_keys()
        )?;
    }
    for r in p.path_rules() {
        let mut parts = Vec::new();
        for (k, v) in [
            ("malicious", r.malicious),
            ("suspicious", r.suspicious),
            ("info", r.info),
            ("unverifiable", r.unverifiable),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k} → {v}"));
            }
        }
        if let Some(f) = &r.require_format {
            parts.push(format!("only {}", f.join(", ")));
        }
        if let Some(req) = &r.require_signature {
            parts.push(format!("signed by {}", req.describe_keys()));
        }
        // Globs are relative to the folder of the file declaring them.
        let under = std::env::current_dir()
            .ok()
            .and_then(|cwd| std::fs::canonicalize(cwd).ok())
            .and_then(|cwd| r.base.strip_prefix(cwd).ok().map(Path::to_path_buf))
            .map_or_else(
                || r.base.display().to_string(),
                |rel| {
                    if rel.as_os_str().is_empty() {
                        ".".to_string()
                    } else {
                        rel.display().to_string()
                    }
                },
            );
        writeln!(
            out,
            "  path rule {} [{}] under {under}: {}",
            r.name,
            r.globs.join(", "),
            parts.join(", ")
        )?;
    }
    let expired = p.expired_exemptions();
    for e in p.exemptions() {
        let rule = e.rule.unwrap_or("all rules");
        let state = if expired.iter().any(|x| std::ptr::eq(*x, e)) {
            " EXPIRED"
        } else {
            ""
        };
        let until = e.expires.map(|d| format!(" until {d}")).unwrap_or_default();
        writeln!(
            out,
            "  exemption {} ({rule}){until}{state}: {} [{}]",
            e.sha256, e.reason, e.origin
        )?;
    }
    Ok(())
}
