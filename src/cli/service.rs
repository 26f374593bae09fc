//! `modelgate service install | uninstall | print`: run `modelgate watch` as
//! a systemd user unit (Linux) or a launchd LaunchAgent (macOS).
//!
//! Services do not inherit the variables your shell rc exports, so the
//! variables that decide where huggingface_hub puts its cache (and where
//! modelgate keeps its state) are copied into the generated file at install
//! time. Installing never starts anything unless `--now` is given; without it
//! the commands to run are printed.

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const SYSTEMD_TEMPLATE: &str = include_str!("../../service/modelgate-watch.service.in");
const LAUNCHD_TEMPLATE: &str = include_str!("../../service/dev.modelgate.watch.plist.in");
const UNIT_NAME: &str = "modelgate-watch.service";
const LABEL: &str = "dev.modelgate.watch";

/// Variables copied into the service definition when set.
const PASSED_ENV: &[&str] = &[
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_HOME",
    "XDG_CACHE_HOME",
    "XDG_STATE_HOME",
    "MODELGATE_STATE_DIR",
    "MODELGATE_LOG",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Systemd,
    Launchd,
}

#[derive(Debug, Args)]
pub struct ServiceArgs {
    #[command(subcommand)]
    command: ServiceCommand,
}

#[derive(Debug, Args)]
struct Target {
    /// Service manager; defaults to launchd on macOS, systemd elsewhere.
    #[arg(long, value_enum)]
    kind: Option<Kind>,
    /// Extra hub cache for the daemon to watch. Repeatable.
    #[arg(long = "cache", value_name = "DIR")]
    caches: Vec<PathBuf>,
    /// Extra local-dir download folder to watch. Repeatable.
    #[arg(long = "local-dir", value_name = "DIR")]
    local_dirs: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum ServiceCommand {
    /// Print the service definition that `install` would write.
    Print(Target),
    /// Write the service definition (and with --now, enable and start it).
    Install {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        now: bool,
    },
    /// Remove the service definition (and with --now, stop it first).
    Uninstall {
        #[arg(long, value_enum)]
        kind: Option<Kind>,
        #[arg(long)]
        now: bool,
    },
}

fn default_kind() -> Kind {
    if cfg!(target_os = "macos") {
        Kind::Launchd
    } else {
        Kind::Systemd
    }
}

fn home() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .context("HOME is not set")
}

fn unit_path(kind: Kind) -> anyhow::Result<PathBuf> {
    Ok(match kind {
        Kind::Systemd => {
            let config = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
                Some(c) => PathBuf::from(c),
                None => home()?.join(".config"),
            };
            config.join("systemd/user").join(UNIT_NAME)
        }
        Kind::Launchd => home()?
            .join("Library/LaunchAgents")
            .join(format!("{LABEL}.plist")),
    })
}

fn watch_args(target: &Target) -> Vec<String> {
    let mut args = vec!["watch".to_string()];
    for c in &target.caches {
        args.push("--cache".into());
        args.push(c.display().to_string());
    }
    for d in &target.local_dirs {
        args.push("--local-dir".into());
        args.push(d.display().to_string());
    }
    args
}

/// Quotes one word for a systemd command line or Environment= value:
/// double quotes, backslash escapes, and `%`/`$` doubled so that systemd
/// neither expands specifiers nor variables in it.
fn systemd_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn env_pairs() -> Vec<(String, String)> {
    PASSED_ENV
        .iter()
        .filter_map(|k| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.is_empty())
                .map(|v| (k.to_string(), v))
        })
        .collect()
}

fn render(
    kind: Kind,
    exe: &Path,
    target: &Target,
    env: &[(String, String)],
) -> anyhow::Result<String> {
    let mut argv = vec![exe.display().to_string()];
    argv.extend(watch_args(target));
    Ok(match kind {
        Kind::Systemd => {
            let exec = argv
                .iter()
                .map(|a| systemd_quote(a))
                .collect::<Vec<_>>()
                .join(" ");
            let envs = env
                .iter()
                .map(|(k, v)| format!("Environment={}", systemd_quote(&format!("{k}={v}"))))
                .collect::<Vec<_>>()
                .join("\n");
            let cache = modelgate::watch::hf_cache::resolve_hub_cache(
                &|k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
                home().ok().as_deref(),
            );
            let state = modelgate::quarantine::default_state_dir();
            let rw: Vec<String> = cache
                .into_iter()
                .chain(state)
                .chain(target.caches.iter().cloned())
                .chain(target.local_dirs.iter().cloned())
                .map(|p| systemd_quote(&p.display().to_string()))
                .collect();
            SYSTEMD_TEMPLATE
                .replace("@EXEC_START@", &exec)
                .replace("@ENVIRONMENT@", &envs)
                .replace("@READ_WRITE_PATHS@", &rw.join(" "))
        }
        Kind::Launchd => {
            let args = argv
                .iter()
                .map(|a| format!("    <string>{}</string>", xml_escape(a)))
                .collect::<Vec<_>>()
                .join("\n");
            let envs = env
                .iter()
                .map(|(k, v)| {
                    format!(
                        "    <key>{}</key>\n    <string>{}</string>",
                        xml_escape(k),
                        xml_escape(v)
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            let log = home()?.join("Library/Logs/modelgate-watch.log");
            LAUNCHD_TEMPLATE
                .replace("@LABEL@", LABEL)
                .replace("@PROGRAM_ARGUMENTS@", &args)
                .replace("@ENVIRONMENT@", &envs)
                .replace("@LOG_PATH@", &xml_escape(&log.display().to_string()))
        }
    })
}

fn start_commands(kind: Kind, path: &Path) -> Vec<Vec<String>> {
    let p = path.display().to_string();
    match kind {
        Kind::Systemd => vec![
            vec!["systemctl".into(), "--user".into(), "daemon-reload".into()],
            vec![
                "systemctl".into(),
                "--user".into(),
                "enable".into(),
                "--now".into(),
                UNIT_NAME.into(),
            ],
        ],
        Kind::Launchd => vec![vec![
            "sh".into(),
            "-c".into(),
            format!("launchctl bootstrap gui/$(id -u) '{p}'"),
        ]],
    }
}

fn stop_commands(kind: Kind, path: &Path) -> Vec<Vec<String>> {
    let p = path.display().to_string();
    match kind {
        Kind::Systemd => vec![vec![
            "systemctl".into(),
            "--user".into(),
            "disable".into(),
            "--now".into(),
            UNIT_NAME.into(),
        ]],
        Kind::Launchd => vec![vec![
            "sh".into(),
            "-c".into(),
            format!("launchctl bootout gui/$(id -u) '{p}'"),
        ]],
    }
}

fn run_all(cmds: &[Vec<String>]) -> anyhow::Result<()> {
    for c in cmds {
        let Some((prog, rest)) = c.split_first() else {
            continue;
        };
        let status = std::process::Command::new(prog)
            .args(rest)
            .status()
            .with_context(|| format!("cannot run {prog}"))?;
        if !status.success() {
            bail!("`{}` failed ({status})", c.join(" "));
        }
    }
    Ok(())
}

/// `modelgate install --service`: the same as `service install` with the
/// defaults (the platform's service manager, the resolved cache, not started).
pub fn install_default() -> anyhow::Result<ExitCode> {
    run(ServiceArgs {
        command: ServiceCommand::Install {
            target: Target {
                kind: None,
                caches: Vec::new(),
                local_dirs: Vec::new(),
            },
            now: false,
        },
    })
}

/// `modelgate uninstall --service`: the same as `service uninstall`.
pub fn uninstall_default() -> anyhow::Result<ExitCode> {
    run(ServiceArgs {
        command: ServiceCommand::Uninstall {
            kind: None,
            now: false,
        },
    })
}

pub fn run(args: ServiceArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match args.command {
        ServiceCommand::Print(target) => {
            let exe = std::env::current_exe().context("cannot locate the modelgate binary")?;
            let kind = target.kind.unwrap_or_else(default_kind);
            write!(out, "{}", render(kind, &exe, &target, &env_pairs())?)?;
        }
        ServiceCommand::Install { target, now } => {
            let exe = std::env::current_exe().context("cannot locate the modelgate binary")?;
            let kind = target.kind.unwrap_or_else(default_kind);
            let text = render(kind, &exe, &target, &env_pairs())?;
            let path = unit_path(kind)?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            modelgate::quarantine::fsio::write_atomic(&path, text.as_bytes(), 0o644)
                .with_context(|| format!("cannot write {}", path.display()))?;
            writeln!(out, "wrote {}", path.display())?;
            let cmds = start_commands(kind, &path);
            if now {
                run_all(&cmds)?;
                writeln!(out, "started")?;
            } else {
                writeln!(out, "start it with:")?;
                for c in &cmds {
                    writeln!(out, "  {}", c.join(" "))?;
                }
            }
        }
        ServiceCommand::Uninstall { kind, now } => {
            let kind = kind.unwrap_or_else(default_kind);
            let path = unit_path(kind)?;
            let cmds = stop_commands(kind, &path);
            if now {
                run_all(&cmds)?;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => writeln!(out, "removed {}", path.display())?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    writeln!(out, "{} was not installed", path.display())?
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot remove {}", path.display()));
                }
            }
            if !now {
                writeln!(out, "if it is running, stop it with:")?;
                for c in &cmds {
                    writeln!(out, "  {}", c.join(" "))?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_quoting_blocks_expansion() {
        assert_eq!(systemd_quote("a b"), "\"a b\"");
        assert_eq!(systemd_quote("100%$HOME\"\\"), "\"100%%$$HOME\\\"\\\\\"");
    }

    #[test]
    fn unit_carries_environment_and_arguments() {
        let target = Target {
            kind: None,
            caches: vec![PathBuf::from("/data/hf cache")],
            local_dirs: vec![],
        };
        let env = vec![("HF_HOME".to_string(), "/data/hf".to_string())];
        let unit = render(
            Kind::Systemd,
            Path::new("/usr/bin/modelgate"),
            &target,
            &env,
        )
        .unwrap();
        assert!(
            unit.contains(
                "ExecStart=\"/usr/bin/modelgate\" \"watch\" \"--cache\" \"/data/hf cache\""
            )
        );
        assert!(unit.contains("Environment=\"HF_HOME=/data/hf\""));
        assert!(unit.contains("Restart=on-failure"));
        assert!(unit.contains("Type=notify"));
        assert!(!unit.contains("@EXEC_START@") && !unit.contains("@ENVIRONMENT@"));
        let plist = render(
            Kind::Launchd,
            Path::new("/usr/bin/modelgate"),
            &target,
            &env,
        )
        .unwrap();
        assert!(plist.contains("<string>/data/hf cache</string>"));
        assert!(plist.contains("<key>HF_HOME</key>"));
        assert!(!plist.contains("@LABEL@") && !plist.contains("@ENVIRONMENT@"));
    }
}
