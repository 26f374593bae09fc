//! `modelgate service install | uninstall | print`: run `modelgate watch` as
//! a systemd user unit (Linux) or a launchd LaunchAgent (macOS).
//!
//! Services do not inherit the variables your shell rc exports, so the
//! variables that decide where huggingface_hub puts its cache (and where
//! modelgate keeps its state) are copied into the generated file at install
//! time. Nor do they start in the folder `service install` ran from: every
//! path given (`--cache`, `--local-dir`, `--policy`) is written absolute,
//! and the service runs in the home directory. Installing never starts
//! anything unless `--now` is given; without it the commands to run are
//! printed, ready to paste into a shell.

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
    /// Extra hub cache for the daemon to watch (must exist). Repeatable.
    #[arg(long = "cache", value_name = "DIR")]
    caches: Vec<PathBuf>,
    /// Extra local-dir download folder to watch (must exist). Repeatable.
    #[arg(long = "local-dir", value_name = "DIR")]
    local_dirs: Vec<PathBuf>,
    /// Policy file for the daemon (its `[daemon]` table decides what is
    /// quarantined); checked now. Without it the daemon looks for one from
    /// the home directory, then the user default, then the built-in
    /// defaults.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Verdict cache for the daemon, shared with `modelgate scan --cache
    /// DIR` (default: `verdicts/` under the daemon's state directory).
    #[arg(long, value_name = "DIR")]
    verdict_cache: Option<PathBuf>,
}

impl Target {
    /// The same target with every path absolute (a service does not run in
    /// the folder it was installed from); refuses roots that do not exist,
    /// as `watch` would, and a policy that does not load.
    fn resolved(self) -> anyhow::Result<Result<Target, ExitCode>> {
        let absolute = |p: &PathBuf| {
            std::path::absolute(p).with_context(|| format!("cannot resolve {}", p.display()))
        };
        let mut roots = Vec::new();
        for (flag, list) in [("--cache", &self.caches), ("--local-dir", &self.local_dirs)] {
            let mut abs = Vec::new();
            for p in list {
                super::watch::must_exist(flag, p)?;
                abs.push(absolute(p)?);
            }
            roots.push(abs);
        }
        let local_dirs = roots.pop().unwrap_or_default();
        let caches = roots.pop().unwrap_or_default();
        let policy = match &self.policy {
            Some(p) => {
                let p = absolute(p)?;
                if let Err(code) = super::load_policy(Some(&p))? {
                    return Ok(Err(code));
                }
                Some(p)
            }
            None => None,
        };
        let verdict_cache = self.verdict_cache.as_ref().map(absolute).transpose()?;
        Ok(Ok(Target {
            kind: self.kind,
            caches,
            local_dirs,
            policy,
            verdict_cache,
        }))
    }
}

#[derive(Debug, Subcommand)]
enum ServiceCommand {
    /// Print the service definition that `install` would write.
    Print(Target),
    /// Write the service definition (and with --now, enable and start it).
    Install {
        #[command(flatten)]
        target: Target,
        /// Also enable and start the service now (instead of printing the
        /// commands that do).
        #[arg(long)]
        now: bool,
    },
    /// Remove the service definition (and with --now, stop it first).
    Uninstall {
        /// Service manager; defaults to launchd on macOS, systemd elsewhere.
        #[arg(long, value_enum)]
        kind: Option<Kind>,
        /// Also stop and disable the running service (instead of printing
        /// the commands that do).
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
    if let Some(p) = &target.policy {
        args.push("--policy".into());
        args.push(p.display().to_string());
    }
    if let Some(v) = &target.verdict_cache {
        args.push("--verdict-cache".into());
        args.push(v.display().to_string());
    }
    args
}

/// Quotes one word for a POSIX shell, so that a printed command works when
/// pasted.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
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
    workdir: &Path,
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
            let cache = modelgate::hfcache::resolve_hub_cache(
                &|k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
                home().ok().as_deref(),
            );
            let state = modelgate::quarantine::default_state_dir();
            let rw: Vec<String> = cache
                .into_iter()
                .chain(state)
                .chain(target.caches.iter().cloned())
                .chain(target.local_dirs.iter().cloned())
                .chain(target.verdict_cache.iter().cloned())
                .map(|p| systemd_quote(&p.display().to_string()))
                .collect();
            // The rest of the line is the path: no quotes, `%` escaped.
            let workdir = workdir.display().to_string().replace('%', "%%");
            SYSTEMD_TEMPLATE
                .replace("@WORKING_DIRECTORY@", &workdir)
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
                .replace(
                    "@WORKING_DIRECTORY@",
                    &xml_escape(&workdir.display().to_string()),
                )
                .replace("@ENVIRONMENT@", &envs)
                .replace("@LOG_PATH@", &xml_escape(&log.display().to_string()))
        }
    })
}

/// A command `--now` runs, and the same command as printed for a shell.
struct Step {
    argv: Vec<String>,
    shown: String,
}

impl Step {
    fn plain(words: &[&str]) -> Step {
        Step {
            argv: words.iter().map(|w| w.to_string()).collect(),
            shown: words
                .iter()
                .map(|w| shell_quote(w))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// `launchctl VERB gui/<uid> PLIST`: the user's GUI domain needs the
    /// numeric uid, which the shell supplies (`$(id -u)`); the plist path
    /// goes in as a positional parameter, never spliced into the script.
    fn launchctl(verb: &str, plist: &Path) -> Step {
        let plist = plist.display().to_string();
        Step {
            shown: format!("launchctl {verb} gui/$(id -u) {}", shell_quote(&plist)),
            argv: vec![
                "sh".into(),
                "-c".into(),
                format!("launchctl {verb} \"gui/$(id -u)\" \"$1\""),
                "sh".into(),
                plist,
            ],
        }
    }
}

fn start_commands(kind: Kind, path: &Path) -> Vec<Step> {
    match kind {
        Kind::Systemd => vec![
            Step::plain(&["systemctl", "--user", "daemon-reload"]),
            Step::plain(&["systemctl", "--user", "enable", "--now", UNIT_NAME]),
        ],
        Kind::Launchd => vec![Step::launchctl("bootstrap", path)],
    }
}

fn stop_commands(kind: Kind, path: &Path) -> Vec<Step> {
    match kind {
        Kind::Systemd => vec![Step::plain(&[
            "systemctl",
            "--user",
            "disable",
            "--now",
            UNIT_NAME,
        ])],
        Kind::Launchd => vec![Step::launchctl("bootout", path)],
    }
}

fn run_all(cmds: &[Step]) -> anyhow::Result<()> {
    for c in cmds {
        let Some((prog, rest)) = c.argv.split_first() else {
            continue;
        };
        let status = std::process::Command::new(prog)
            .args(rest)
            .status()
            .with_context(|| format!("cannot run {prog}"))?;
        if !status.success() {
            bail!("`{}` failed ({status})", c.shown);
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
                policy: None,
                verdict_cache: None,
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
            let target = match target.resolved()? {
                Ok(t) => t,
                Err(code) => return Ok(code),
            };
            let exe = std::env::current_exe().context("cannot locate the modelgate binary")?;
            let kind = target.kind.unwrap_or_else(default_kind);
            write!(
                out,
                "{}",
                render(kind, &exe, &target, &env_pairs(), &home()?)?
            )?;
        }
        ServiceCommand::Install { target, now } => {
            let target = match target.resolved()? {
                Ok(t) => t,
                Err(code) => return Ok(code),
            };
            let exe = std::env::current_exe().context("cannot locate the modelgate binary")?;
            let kind = target.kind.unwrap_or_else(default_kind);
            let workdir = home()?;
            let text = render(kind, &exe, &target, &env_pairs(), &workdir)?;
            let path = unit_path(kind)?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            modelgate::quarantine::fsio::write_atomic(&path, text.as_bytes(), 0o644)
                .with_context(|| format!("cannot write {}", path.display()))?;
            writeln!(out, "wrote {}", path.display())?;
            match &target.policy {
                Some(p) => writeln!(out, "policy: {}", p.display())?,
                None => writeln!(
                    out,
                    "policy: as found from {} when the service starts (now: {}); \
                     --policy FILE pins one",
                    workdir.display(),
                    modelgate::policy::locate::locate(None, &workdir)
                        .map_or_else(|e| e.to_string(), |s| s.to_string())
                        .trim_end()
                )?,
            }
            let cmds = start_commands(kind, &path);
            if now {
                run_all(&cmds)?;
                writeln!(out, "started")?;
            } else {
                writeln!(out, "start it with:")?;
                for c in &cmds {
                    writeln!(out, "  {}", c.shown)?;
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
                    writeln!(out, "  {}", c.shown)?;
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
    fn printed_commands_survive_a_shell() {
        assert_eq!(shell_quote("/a/b.plist"), "/a/b.plist");
        assert_eq!(shell_quote("/my dir/it's"), "'/my dir/it'\\''s'");
        let step = Step::launchctl("bootstrap", Path::new("/Users/a b/x.plist"));
        assert_eq!(
            step.shown,
            "launchctl bootstrap gui/$(id -u) '/Users/a b/x.plist'"
        );
        assert_eq!(
            step.argv.last().map(String::as_str),
            Some("/Users/a b/x.plist")
        );
    }

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
            policy: Some(PathBuf::from("/etc/modelgate/policy.toml")),
            verdict_cache: Some(PathBuf::from("/srv/modelgate/verdicts")),
        };
        let env = vec![("HF_HOME".to_string(), "/data/hf".to_string())];
        let unit = render(
            Kind::Systemd,
            Path::new("/usr/bin/modelgate"),
            &target,
            &env,
            Path::new("/home/me"),
        )
        .unwrap();
        assert!(unit.contains(
            "ExecStart=\"/usr/bin/modelgate\" \"watch\" \"--cache\" \"/data/hf cache\" \"--policy\" \"/etc/modelgate/policy.toml\" \"--verdict-cache\" \"/srv/modelgate/verdicts\""
        ));
        assert!(unit.contains("WorkingDirectory=/home/me\n"));
        assert!(unit.contains("Environment=\"HF_HOME=/data/hf\""));
        assert!(unit.contains("Restart=on-failure"));
        assert!(unit.contains("Type=notify"));
        assert!(!unit.contains("@EXEC_START@") && !unit.contains("@ENVIRONMENT@"));
        let plist = render(
            Kind::Launchd,
            Path::new("/usr/bin/modelgate"),
            &target,
            &env,
            Path::new("/home/me"),
        )
        .unwrap();
        assert!(plist.contains("<string>/data/hf cache</string>"));
        assert!(plist.contains("<string>/srv/modelgate/verdicts</string>"));
        assert!(plist.contains("<key>HF_HOME</key>"));
        assert!(!plist.contains("@LABEL@") && !plist.contains("@ENVIRONMENT@"));
    }
}
