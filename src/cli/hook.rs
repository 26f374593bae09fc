//! `modelgate hook pre-commit|pre-push|pre-receive`: the git hook entry
//! points (called by the scripts in `hooks/` or those `modelgate install`
//! writes). Exit 0 lets git proceed, 1 blocks (policy), 2 blocks on an
//! internal error unless the policy says `[hook] on-error = "warn"`,
//! 3 blocks on an invalid policy.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use modelgate::git::{self, GitError, Outcome, push, render, staged};
use modelgate::policy::{Action, Policy, diag};

use super::{EXIT_CONFIG, EXIT_ERROR, EXIT_FINDINGS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HookFormat {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct HookArgs {
    #[command(subcommand)]
    hook: Hook,
    /// Policy file (default: the nearest .modelgate.toml or policy.toml).
    #[arg(long, global = true)]
    policy: Option<PathBuf>,
    /// Output format; JSON goes to stdout, human messages to stderr.
    #[arg(long, value_enum, default_value_t = HookFormat::Human, global = true)]
    format: HookFormat,
}

// The variants are git's hook names.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Subcommand)]
enum Hook {
    /// Check the staged content (the index, honouring GIT_INDEX_FILE).
    PreCommit,
    /// Check every blob of every commit being pushed (ref lines on stdin).
    PrePush {
        /// Name of the remote (or its URL when pushing to a URL).
        remote: String,
        /// URL of the remote.
        url: Option<String>,
    },
    /// Server side: check every blob of every pushed commit (ref lines on stdin).
    PreReceive,
}

impl Hook {
    fn name(&self) -> &'static str {
        match self {
            Hook::PreCommit => "pre-commit",
            Hook::PrePush { .. } => "pre-push",
            Hook::PreReceive => "pre-receive",
        }
    }
}

pub fn run(args: HookArgs) -> anyhow::Result<ExitCode> {
    let name = args.hook.name();
    let cwd = std::env::current_dir()?;
    let policy = match Policy::load(args.policy.as_deref(), &cwd) {
        Ok(p) => p,
        Err(e) => {
            eprint!("{e}");
            eprintln!("modelgate {name}: the policy is invalid; refusing (fail closed)");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let result = match &args.hook {
        Hook::PreCommit => git::open().and_then(|repo| staged::check_index(&repo, &policy)),
        Hook::PrePush { remote, .. } => git::open().and_then(|repo| {
            let updates = push::parse_pre_push(&repo, std::io::stdin().lock())?;
            push::check_updates(&repo, &policy, &updates, push::Known::Remote(remote))
        }),
        Hook::PreReceive => push::open_receiving().and_then(|repo| {
            let updates = push::parse_pre_receive(&repo, std::io::stdin().lock())?;
            push::check_updates(&repo, &policy, &updates, push::Known::AllRefs)
        }),
    };
    report(name, args.format, &policy, result)
}

fn report(
    name: &str,
    format: HookFormat,
    policy: &Policy,
    result: Result<Outcome, GitError>,
) -> anyhow::Result<ExitCode> {
    let (outcome, error) = match result {
        Ok(o) => (o, None),
        Err(e) => (Outcome::default(), Some(e.to_string())),
    };
    let mut action = outcome.action();
    if error.is_some() {
        action = action.max(policy.on_error());
    }
    match format {
        HookFormat::Json => render::json(
            &mut std::io::stdout().lock(),
            name,
            action,
            &outcome,
            error.as_deref(),
        )?,
        HookFormat::Human => {
            let mut err = std::io::stderr().lock();
            if !policy.warnings().is_empty() {
                write!(err, "{}", diag::render(policy.warnings()))?;
            }
            render::human(&mut err, name, &outcome)?;
            if let Some(e) = &error {
                let what = if policy.on_error().stops() {
                    "refusing (fail closed)"
                } else {
                    "letting it through ([hook] on-error)"
                };
                writeln!(err, "modelgate {name}: internal error: {e}; {what}")?;
            }
        }
    }
    Ok(match (error.is_some(), action) {
        (true, a) if a.stops() && outcome.action() < Action::Block => ExitCode::from(EXIT_ERROR),
        (_, a) if a.stops() => ExitCode::from(EXIT_FINDINGS),
        _ => ExitCode::SUCCESS,
    })
}
