//! `modelgate install` / `modelgate uninstall`: wire the hooks into the
//! current repository (respecting `core.hooksPath`), chaining any hook that
//! is already there, and take them out again.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use modelgate::git::install::{self, Installed, Uninstalled};

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Hooks to install (default: pre-commit and pre-push; use pre-receive on a server).
    #[arg(long = "hook", value_name = "HOOK")]
    hooks: Vec<String>,
    /// The Hugging Face cache daemon's user service instead of the git
    /// hooks (same as `modelgate service install` / `uninstall`).
    #[arg(long, conflicts_with = "hooks")]
    service: bool,
}

#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Hooks to remove (default: pre-commit and pre-push).
    #[arg(long = "hook", value_name = "HOOK")]
    hooks: Vec<String>,
    /// The Hugging Face cache daemon's user service instead of the git
    /// hooks (same as `modelgate service uninstall`).
    #[arg(long, conflicts_with = "hooks")]
    service: bool,
}

fn selected(hooks: &[String]) -> anyhow::Result<Vec<&str>> {
    if hooks.is_empty() {
        return Ok(install::CLIENT_HOOKS.to_vec());
    }
    hooks
        .iter()
        .map(|h| match install::KNOWN_HOOKS.iter().find(|k| **k == h) {
            Some(k) => Ok(*k),
            None => bail!(
                "unknown hook `{h}`; choose from {}",
                install::KNOWN_HOOKS.join(", ")
            ),
        })
        .collect()
}

fn repo() -> anyhow::Result<git2::Repository> {
    git2::Repository::open_from_env().context("not inside a git repository")
}

pub fn run_install(args: InstallArgs) -> anyhow::Result<ExitCode> {
    if args.service {
        return super::service::install_default();
    }
    let hooks = selected(&args.hooks)?;
    let repo = repo()?;
    let dir = install::hooks_dir(&repo)?;
    let exe = std::env::current_exe().context("cannot locate the modelgate binary")?;
    for done in install::install(&dir, &hooks, &exe)? {
        match done {
            Installed::Fresh(p) => println!("installed {}", p.display()),
            Installed::Chained(p, old) => println!(
                "installed {} (the previous hook runs after it, kept as {})",
                p.display(),
                old.display()
            ),
            Installed::AlreadyInstalled(p) => println!("already installed: {}", p.display()),
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_uninstall(args: UninstallArgs) -> anyhow::Result<ExitCode> {
    if args.service {
        return super::service::uninstall_default();
    }
    let hooks = selected(&args.hooks)?;
    let repo = repo()?;
    let dir = install::hooks_dir(&repo)?;
    for done in install::uninstall(&dir, &hooks)? {
        match done {
            Uninstalled::Removed(p) => println!("removed {}", p.display()),
            Uninstalled::Restored(p) => println!(
                "removed modelgate from {} and restored the previous hook",
                p.display()
            ),
            Uninstalled::NotInstalled(p) => println!("not installed: {}", p.display()),
        }
    }
    Ok(ExitCode::SUCCESS)
}
