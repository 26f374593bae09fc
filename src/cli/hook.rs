//! `modelgate hook pre-commit|pre-push|pre-receive`: the git hook entry
//! points (called by the scripts in `hooks/` or those `modelgate install`
//! writes; `pre-merge-commit` checks a merge like `pre-commit` checks a
//! commit). Exit 0 lets git proceed, 1 blocks (policy), 2 blocks on an
//! internal error unless the policy says `[hook] on-error = "warn"`,
//! 3 blocks on an invalid policy.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use modelgate::cache::Cache;
use modelgate::git::{self, GitError, Outcome, push, render, staged};
use modelgate::policy::locate::{self, Source};
use modelgate::policy::{Policy, PolicyError, diag};

use super::{EXIT_CONFIG, EXIT_ERROR, EXIT_FINDINGS, Format};

#[derive(Debug, Args)]
pub struct HookArgs {
    #[command(subcommand)]
    hook: Hook,
    /// Policy file (default: MODELGATE_POLICY, else the repository's
    /// .modelgate.toml or policy.toml as the commit carries it).
    #[arg(long, global = true, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Output format; JSON goes to stdout, human messages to stderr.
    #[arg(long, value_enum, default_value_t = Format::Human, global = true)]
    format: Format,
    /// Verdict cache directory shared with `scan`, the daemon and other
    /// hooks: content judged before is not scanned again, and an LFS
    /// object is found by its pointer's sha256 without being read (useful
    /// on a server's pre-receive). Off unless given.
    #[arg(long, global = true, value_name = "DIR")]
    cache: Option<PathBuf>,
}

// The variants are git's hook names.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Subcommand)]
enum Hook {
    /// Check the staged content (the index, honouring GIT_INDEX_FILE).
    PreCommit,
    /// Check the merge result before `git merge` records it (the index).
    PreMergeCommit,
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
            Hook::PreMergeCommit => "pre-merge-commit",
            Hook::PrePush { .. } => "pre-push",
            Hook::PreReceive => "pre-receive",
        }
    }
}

pub fn run(args: HookArgs) -> anyhow::Result<ExitCode> {
    let name = args.hook.name();
    let cwd = std::env::current_dir()?;
    let (policy, described) = match hook_policy(&args.hook, args.policy.as_deref(), &cwd) {
        Ok(p) => p,
        Err(e) => {
            eprint!("{e}");
            eprintln!(
                "modelgate {name}: the policy is invalid or unusable; refusing (fail closed)"
            );
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    // A cache that cannot be opened is an error like any other failure to
    // check: `[hook] on-error` decides, nothing is let through unseen.
    let cache = match args
        .cache
        .as_deref()
        .map(|d| Cache::open(d, None))
        .transpose()
    {
        Ok(c) => c,
        Err(e) => {
            let e = GitError::Input(format!("cannot open the verdict cache: {e}"));
            return report(name, args.format, &policy, &described, Err(e));
        }
    };
    let result = match &args.hook {
        Hook::PreCommit | Hook::PreMergeCommit => {
            git::open().and_then(|repo| staged::check_index(&repo, &policy, cache))
        }
        Hook::PrePush { .. } => git::open().and_then(|repo| {
            let updates = push::parse_pre_push(&repo, std::io::stdin().lock())?;
            push::check_updates(&repo, &policy, &updates, push::Known::Advertised, cache)
        }),
        Hook::PreReceive => push::open_receiving().and_then(|repo| {
            let updates = push::parse_pre_receive(&repo, std::io::stdin().lock())?;
            push::check_updates(&repo, &policy, &updates, push::Known::AllRefs, cache)
        }),
    };
    report(name, args.format, &policy, &described, result)
}

/// The policy a hook applies, with a sentence saying which one and why.
///
/// A policy file found in the repository counts only as the commit carries
/// it: pre-commit reads the version staged in the index, pre-push the one
/// committed at HEAD. An untracked file, or unstaged edits, would otherwise
/// decide a commit that does not contain them (an exemption that exists
/// only on one machine). A policy named explicitly (`--policy`,
/// `MODELGATE_POLICY`), the user default and the server's own file
/// (pre-receive) are read from disk.
fn hook_policy(
    hook: &Hook,
    explicit: Option<&Path>,
    cwd: &Path,
) -> Result<(Policy, Described), PolicyError> {
    let source = locate::locate(explicit, cwd)?;
    let Source::Discovered {
        path,
        root,
        in_repository: true,
    } = &source
    else {
        return Ok((Policy::load_source(&source)?, Described::plain(&source)));
    };
    let snapshot = match hook {
        Hook::PreCommit | Hook::PreMergeCommit => git::open()
            .ok()
            .and_then(|r| Some(Snapshot::Index(r.index().ok()?, r))),
        Hook::PrePush { .. } => git::open().ok().and_then(|r| {
            let tree = r.head().ok()?.peel_to_tree().ok()?.id();
            Some(Snapshot::Tree(tree, r))
        }),
        Hook::PreReceive => None,
    };
    let Some(snapshot) = snapshot else {
        return Ok((Policy::load_source(&source)?, Described::plain(&source)));
    };
    let carried = snapshot.where_();
    match snapshot.read(path) {
        Some(Ok(text)) => {
            let mut notes = Vec::new();
            if std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str()) {
                notes.push(format!(
                    "{} differs from the version {carried}; the changes not {carried} do not apply",
                    path.display()
                ));
            }
            let read = |p: &Path| match snapshot.read(p) {
                Some(r) => r,
                None => std::fs::read_to_string(p),
            };
            let policy = Policy::load_file_with(path, &read)?;
            Ok((
                policy,
                Described {
                    text: format!("{} as {carried}", path.display()),
                    notes,
                },
            ))
        }
        None => Ok((Policy::load_source(&source)?, Described::plain(&source))),
        Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            let fallback = locate::fallback(root.clone())?;
            let policy = Policy::load_source(&fallback)?;
            let verb = if carried == "staged" {
                "`git add` it"
            } else {
                "commit it"
            };
            let notes = vec![format!(
                "{} is not {carried}, so this commit does not carry it and it does not apply \
                 (its exemptions and settings are ignored); {verb}, or name a policy with \
                 --policy or {}",
                path.display(),
                locate::ENV_VAR
            )];
            Ok((
                policy,
                Described {
                    text: fallback.to_string(),
                    notes,
                },
            ))
        }
        Some(Err(e)) => Err(PolicyError(vec![diag::Diagnostic::whole_file(
            diag::Severity::Error,
            path,
            format!("cannot read the policy {carried}: {e}"),
            None,
        )])),
    }
}

/// What a hook says about its policy.
struct Described {
    text: String,
    /// Things the user must know (an untracked or edited policy file).
    notes: Vec<String>,
}

impl Described {
    fn plain(source: &Source) -> Described {
        Described {
            text: source.to_string(),
            notes: Vec::new(),
        }
    }
}

/// What is being committed or pushed, as far as the policy file goes.
enum Snapshot {
    Index(git2::Index, git2::Repository),
    Tree(git2::Oid, git2::Repository),
}

impl Snapshot {
    fn where_(&self) -> &'static str {
        match self {
            Snapshot::Index(..) => "staged",
            Snapshot::Tree(..) => "committed at HEAD",
        }
    }

    /// The text of `path` in the snapshot: `None` when `path` is outside
    /// the work tree, `Some(Err(NotFound))` when the snapshot lacks it.
    fn read(&self, path: &Path) -> Option<std::io::Result<String>> {
        let repo = match self {
            Snapshot::Index(_, r) | Snapshot::Tree(_, r) => r,
        };
        let workdir = std::fs::canonicalize(repo.workdir()?).ok()?;
        let parent = std::fs::canonicalize(path.parent()?).ok()?;
        let rel = parent.strip_prefix(&workdir).ok()?.join(path.file_name()?);
        let id = match self {
            Snapshot::Index(index, _) => index.get_path(&rel, 0).map(|e| e.id),
            Snapshot::Tree(tree, _) => repo
                .find_tree(*tree)
                .ok()
                .and_then(|t| t.get_path(&rel).ok())
                .map(|e| e.id()),
        };
        let Some(id) = id else {
            return Some(Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} is not {}", rel.display(), self.where_()),
            )));
        };
        Some(
            repo.find_blob(id)
                .map_err(std::io::Error::other)
                .and_then(|b| {
                    String::from_utf8(b.content().to_vec()).map_err(std::io::Error::other)
                }),
        )
    }
}

fn report(
    name: &str,
    format: Format,
    policy: &Policy,
    described: &Described,
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
        Format::Json => render::json(
            &mut std::io::stdout().lock(),
            name,
            action,
            &described.text,
            &outcome,
            error.as_deref(),
        )?,
        Format::Human => {
            let mut err = std::io::stderr().lock();
            if !policy.warnings().is_empty() {
                write!(err, "{}", diag::render(policy.warnings()))?;
            }
            for note in &described.notes {
                writeln!(err, "modelgate {name}: warning: {note}")?;
            }
            if !outcome.files.is_empty() || error.is_some() || !described.notes.is_empty() {
                writeln!(err, "modelgate {name}: policy: {}", described.text)?;
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
    // Findings decide first (exit 1); failures to check stop with exit 2
    // when `on-error` says so.
    Ok(if outcome.judged_action().stops() {
        ExitCode::from(EXIT_FINDINGS)
    } else if action.stops() {
        ExitCode::from(EXIT_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}
