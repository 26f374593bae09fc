//! The command-line adapter: parses arguments with clap and calls one
//! function per subcommand. Exit codes are a published contract:
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | nothing at or above the failure threshold |
//! | 1 | findings at or above the threshold (or a hook blocked) |
//! | 2 | operational error: unreadable path, bad arguments |
//! | 3 | configuration error: the policy file is invalid |

mod hook;
mod install;
mod policy;
mod quarantine;
mod rules;
mod scan;
mod service;
mod watch;

use clap::{Parser, Subcommand};
use modelgate::policy::Policy;
use std::process::ExitCode;

/// Exit code for findings at or above the threshold.
pub const EXIT_FINDINGS: u8 = 1;
/// Exit code for operational errors (I/O, arguments).
pub const EXIT_ERROR: u8 = 2;
/// Exit code for an invalid policy file.
pub const EXIT_CONFIG: u8 = 3;

#[derive(Debug, Parser)]
#[command(name = "modelgate", version, about = "A firewall for machine-learning model files", long_about = None)]
pub struct Cli {
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
    Uninstall(install::InstallArgs),
    /// Validate the policy file or write the commented template.
    Policy(policy::PolicyArgs),
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
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("modelgate: error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
