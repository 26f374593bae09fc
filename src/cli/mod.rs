//! The command-line adapter: parses arguments with clap and calls one
//! function per subcommand. Exit codes are a published contract:
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | nothing at or above the failure threshold |
//! | 1 | findings at or above the threshold (or a hook blocked) |
//! | 2 | operational error: unreadable path, bad arguments |
//! | 3 | configuration error: the policy file is invalid |

mod bom;
mod cache;
mod completions;
mod guard;
mod hook;
mod install;
mod policy;
mod proxy;
mod quarantine;
mod remote;
mod rules;
mod scaleout;
mod scan;
mod service;
mod sign;
mod verify;
mod watch;

use clap::{Parser, Subcommand, ValueEnum};
use modelgate::policy::Policy;
use std::process::ExitCode;
use std::sync::OnceLock;

/// Exit code for findings at or above the threshold.
pub const EXIT_FINDINGS: u8 = 1;
/// Exit code for operational errors (I/O, arguments).
pub const EXIT_ERROR: u8 = 2;
/// Exit code for an invalid policy file.
pub const EXIT_CONFIG: u8 = 3;
/// Exit code when the reader of our output went away (`| head`): the
/// shell's code for a process ended by SIGPIPE, so a pipeline under
/// `pipefail` does not read an unfinished scan as a pass.
pub const EXIT_BROKEN_PIPE: u8 = 141;

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// When the output is a terminal, `NO_COLOR` is unset and `TERM` is not `dumb`.
    Auto,
    /// Always, even into a pipe or a file.
    Always,
    /// Never.
    Never,
}

/// Output format of the commands that print a report or a listing (`scan`
/// adds SARIF, `bom` has its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Text for people.
    Human,
    /// One JSON document with a `schema_version`, for programs.
    Json,
}

static COLOR: OnceLock<ColorChoice> = OnceLock::new();

/// Whether to colour a stream, by `--color` and the conventions of
/// no-color.org and `TERM=dumb`.
pub fn color_enabled(stream_is_terminal: bool) -> bool {
    match COLOR.get().copied().unwrap_or(ColorChoice::Auto) {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            stream_is_terminal
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
        }
    }
}

#[derive(Debug, Parser)]
#[command(name = "modelgate", version, about = "A firewall for machine-learning model files", long_about = None)]
pub struct Cli {
    /// When to colour the output (scan reports, watch logs).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scan model files and directories for code that runs when they are loaded.
    Scan(scan::ScanArgs),
    /// List the detection rules, or explain one.
    Rules(rules::RulesArgs),
    /// Watch the Hugging Face cache and quarantine unsafe downloads.
    Watch(watch::WatchArgs),
    /// List, inspect, restore or delete quarantined files.
    Quarantine(quarantine::QuarantineArgs),
    /// Install the watch daemon as a systemd user unit or launchd agent.
    Service(service::ServiceArgs),
    /// Run as a git hook (called by the installed hook scripts).
    Hook(hook::HookArgs),
    /// Install the git hooks into the current repository, chaining existing ones.
    Install(install::InstallArgs),
    /// Remove the git hooks and restore the ones they chained.
    Uninstall(install::UninstallArgs),
    /// Validate the policy file or write the commented template.
    Policy(policy::PolicyArgs),
    /// Verify a model against its OpenSSF Model Signing signature (key mode, offline).
    Verify(verify::VerifyArgs),
    /// Sign a model (OpenSSF Model Signing, key mode).
    Sign(sign::SignArgs),
    /// Write an AI bill of materials (CycloneDX 1.6 ML-BOM).
    Bom(bom::BomArgs),
    /// Guard a Python environment: check pickle imports and model files at load time.
    Guard(guard::GuardArgs),
    /// Write a manifest (JSON lines: path, sha256, size) of files, hashing in parallel.
    Manifest(scaleout::ManifestArgs),
    /// Fold shard results (`scan --results`) into one report; exits like `scan`.
    Merge(scaleout::MergeArgs),
    /// Show or prune the verdict cache.
    Cache(cache::CacheArgs),
    /// Gate a team or a cluster: a Hugging Face pull-through proxy (HF_ENDPOINT) that scans every file before serving it.
    Proxy(proxy::ProxyArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff), e.g. `modelgate man > modelgate.1`.
    Man,
}

/// Loads `--policy FILE`, else the `policy.toml` / `.modelgate.toml` found
/// walking up from the working directory, else the built-in defaults. An
/// invalid policy is printed with its diagnostics and becomes
/// `Err(EXIT_CONFIG)`: never silently replaced by defaults.
fn load_policy(explicit: Option<&std::path::Path>) -> anyhow::Result<Result<Policy, ExitCode>> {
    let cwd = std::env::current_dir()?;
    match Policy::load(explicit, &cwd) {
        Ok(policy) => {
            if !policy.warnings().is_empty() {
                eprint!("{}", modelgate::policy::diag::render(policy.warnings()));
            }
            Ok(Ok(policy))
        }
        Err(e) => {
            eprint!("{e}");
            eprintln!("modelgate: error: the policy is invalid");
            Ok(Err(ExitCode::from(EXIT_CONFIG)))
        }
    }
}

/// Runs the CLI and maps every outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = COLOR.set(cli.color);
    let result = match cli.command {
        Command::Scan(args) => scan::run(args),
        Command::Rules(args) => rules::run(args),
        Command::Watch(args) => watch::run(args),
        Command::Quarantine(args) => quarantine::run(args),
        Command::Service(args) => service::run(args),
        Command::Hook(args) => hook::run(args),
        Command::Install(args) => install::run_install(args),
        Command::Uninstall(args) => install::run_uninstall(args),
        Command::Policy(args) => policy::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Sign(args) => sign::run(args),
        Command::Bom(args) => bom::run(args),
        Command::Guard(args) => guard::run(args),
        Command::Manifest(args) => scaleout::manifest(args),
        Command::Merge(args) => scaleout::merge(args),
        Command::Cache(args) => cache::run(args),
        Command::Proxy(args) => proxy::run(args),
        Command::Completions(args) => completions::run_completions(args),
        Command::Man => completions::run_man(),
    };
    match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::from(EXIT_BROKEN_PIPE),
        Err(err) => {
            eprintln!("modelgate: error: {}", describe(&err));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// An error and its causes on one line, each said once. Many error types
/// already print their source in their own message, so anyhow's `{:#}`
/// would say "No such file or directory" twice; libgit2's errors are given
/// by their message, without the `; class=…; code=…` tail.
fn describe(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = match cause.downcast_ref::<git2::Error>() {
            Some(git) => git.message().to_string(),
            None => cause.to_string(),
        };
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every option and positional argument of every subcommand says what
    /// it is for in `--help` (clap's own --help and --version aside).
    #[test]
    fn every_argument_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                let has_help = arg
                    .get_help()
                    .is_some_and(|h| !h.to_string().trim().is_empty());
                if !has_help && !arg.is_hide_set() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() == "help" {
                    continue;
                }
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (no description)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "modelgate", &mut missing);
        assert!(
            missing.is_empty(),
            "arguments without help text:\n{}",
            missing.join("\n")
        );
    }
}
