//! The team policy: what to *do* about what the scanner found.
//!
//! The detection core only finds; this module decides. Given a
//! [`FileReport`], the file's path in the repository, its sha256 and the
//! [`Context`] (a CLI scan, a git hook, the cache daemon), [`Policy::decide`]
//! returns a [`Decision`]: an [`Action`] (allow, warn, block, quarantine),
//! the findings and policy rules it is based on, and the exemptions that
//! were applied or had expired. The policy never parses model formats; it
//! sees findings, paths, format names and hashes only.
//!
//! The policy comes from `policy.toml` (see the commented template at the
//! repository root, which is also what `modelgate policy init` writes):
//! `--policy FILE`, else `MODELGATE_POLICY`, else the nearest
//! `.modelgate.toml` or `policy.toml` found walking up from the working
//! directory no further than the repository root, else the user default
//! `$XDG_CONFIG_HOME/modelgate/policy.toml`, else the built-in defaults,
//! which are the template's values (see [`locate`]). A file may `extends` a base file (relative to
//! itself), so an organisation can share one policy; cycles are errors.
//!
//! Loading is two-phase, in the manner of cargo-deny: the file is parsed
//! into spanned raw types ([`schema`]) that only check shape (unknown keys
//! are errors; after each shape error the entry at fault is left out and
//! the rest read again, so every one is reported), then validated as a
//! whole, collecting *every* problem as a
//! [`Diagnostic`] with file, line, column and a help line. Warnings
//! (an exemption that has expired, an override that overrides nothing) do
//! not stop loading and are available from [`Policy::warnings`].
//!
//! Invariants:
//! - fail closed: by default `malicious` and `suspicious` block, and a hook
//!   that fails internally blocks;
//! - a team cannot allow a pickle global the built-in tables deny without
//!   `override = true` and a reason;
//! - every exemption is pinned to one exact content (sha256), carries a
//!   reason, and stops applying after its `expires` date;
//! - path globs are relative to the directory of the policy file that
//!   declares them, whatever the working directory (see [`Place`]); they
//!   are compiled once into one `GlobSet` per such file, so deciding a file
//!   is a glob-set match per file plus a scan of its findings.

mod compile;
pub mod diag;
pub mod locate;
pub mod proxy;
mod schema;

use std::cell::LazyCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use globset::GlobSet;
use serde::Serialize;

use crate::scan::rules::{self, Rule};
use crate::scan::{FileReport, GlobalLists, Limits, ScanConfig, ScanStatus, Verdict};
use crate::sign::{self, Mismatch, SignError, TrustedKeys};
pub use diag::{Diagnostic, Severity};

/// The commented default policy (the repository's `policy.toml`).
pub const TEMPLATE: &str = include_str!("../../policy.toml");

/// File names looked for when no `--policy` is given, most specific first.
pub const FILE_NAMES: &[&str] = &[".modelgate.toml", "policy.toml"];

/// What an adapter does with a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Nothing to say.
    Allow,
    /// Report, but let the commit, push or download through.
    Warn,
    /// Refuse (a hook exits non-zero, `scan` fails).
    Block,
    /// Daemon only: move the file out of the cache and leave a tombstone.
    Quarantine,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Warn => "warn",
            Action::Block => "block",
            Action::Quarantine => "quarantine",
        }
    }

    fn parse(s: &str) -> Option<Action> {
        [
            Action::Allow,
            Action::Warn,
            Action::Block,
            Action::Quarantine,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }

    /// Whether the adapter must stop the file (block or quarantine).
    pub fn stops(self) -> bool {
        self >= Action::Block
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is asking. The daemon has its own defaults (`[daemon]`) and ignores
/// path rules: it decides downloads by content (and `[daemon]
/// require-signature` by repo id), and cache paths are nobody's project
/// layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Scan,
    Hook,
    Daemon,
}

/// Default action per verdict (and for unverifiable content) in one context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Actions {
    pub malicious: Action,
    pub suspicious: Action,
    pub info: Action,
    pub unverifiable: Action,
}

impl Actions {
    /// Repository defaults: fail closed on anything that cannot be shown safe.
    pub const REPOSITORY: Actions = Actions {
        malicious: Action::Block,
        suspicious: Action::Block,
        info: Action::Allow,
        unverifiable: Action::Warn,
    };
    /// Daemon defaults: quarantine what would run code, warn on the rest
    /// (quarantining every unusual-but-harmless download breaks work).
    pub const DAEMON: Actions = Actions {
        malicious: Action::Quarantine,
        suspicious: Action::Warn,
        info: Action::Allow,
        unverifiable: Action::Warn,
    };

    pub fn for_verdict(&self, v: Verdict) -> Action {
        match v {
            Verdict::Clean => Action::Allow,
            Verdict::Info => self.info,
            Verdict::Suspicious => self.suspicious,
            Verdict::Malicious => self.malicious,
        }
    }
}

/// `[[paths]]` after validation.
#[derive(Debug, Clone)]
pub struct PathRule {
    pub name: String,
    pub globs: Vec<String>,
    /// The directory the globs are relative to: that of the policy file
    /// declaring the rule.
    pub base: PathBuf,
    pub malicious: Option<Action>,
    pub suspicious: Option<Action>,
    pub info: Option<Action>,
    pub unverifiable: Option<Action>,
    pub require_format: Option<Vec<String>>,
    pub require_signature: Option<Arc<SignatureRequirement>>,
}

/// `require-signature` after validation: the trusted keys (already parsed)
/// and where to stop looking for a signature.
#[derive(Debug, Clone)]
pub struct SignatureRequirement {
    /// The key files as resolved, for display.
    pub key_files: Vec<PathBuf>,
    pub keys: TrustedKeys,
    /// The directory of the policy file that set the requirement: a
    /// `model.sig` above it does not belong to this repository.
    pub boundary: PathBuf,
    /// `[daemon]` only: the repo ids (`org/name`, globs) it applies to;
    /// empty means every repo.
    pub repos: Vec<String>,
    repo_globs: GlobSet,
}

impl SignatureRequirement {
    /// The trusted key files, for messages.
    pub fn describe_keys(&self) -> String {
        self.key_files
            .iter()
            .map(|k| k.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn applies_to_repo(&self, repo_id: &str) -> bool {
        self.repos.is_empty() || self.repo_globs.is_match(repo_id)
    }
}

/// The reason that generated exemptions carry (hook messages, `policy
/// baseline`) until a person writes a real one; the policy refuses it.
pub const REASON_PLACEHOLDER: &str = "TODO: why this file is trusted";

/// Whether an exemption reason is empty or still a placeholder: an
/// exemption is a reviewed decision, and a pasted template is not one.
pub fn is_placeholder_reason(reason: &str) -> bool {
    let r = reason
        .trim()
        .trim_matches(|c: char| c == '.' || c.is_whitespace());
    let upper = r.to_ascii_uppercase();
    r.is_empty()
        || ["TODO", "FIXME", "XXX", "TBD"]
            .iter()
            .any(|p| upper.starts_with(p))
        || reason.contains("why this file is trusted")
}

/// `[[exemptions]]` after validation.
#[derive(Debug, Clone, Serialize)]
pub struct Exemption {
    pub sha256: String,
    pub rule: Option<&'static str>,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<jiff::civil::Date>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// `file:line` of the entry, to point people at it.
    pub origin: String,
}

/// An extra allowed pickle global.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedGlobal {
    pub module: String,
    pub name: String,
    /// Set when the global is on the built-in denylist and the team chose to
    /// allow it anyway.
    pub override_reason: Option<String>,
}

/// The effective policy.
#[derive(Debug)]
pub struct Policy {
    files: Vec<PathBuf>,
    actions: Actions,
    daemon: Actions,
    daemon_signature: Option<Arc<SignatureRequirement>>,
    on_error: Action,
    limits: Limits,
    allow: Vec<AllowedGlobal>,
    deny: Vec<(String, String)>,
    paths: Vec<PathRule>,
    scopes: Vec<Scope>,
    exemptions: Vec<Exemption>,
    used: Vec<AtomicBool>,
    today: jiff::civil::Date,
    warnings: Vec<Diagnostic>,
    proxy: proxy::ProxyPolicy,
}

/// Where a file is, for the path rules (`[[paths]]`). Their globs are
/// matched against the file's path relative to the directory of the policy
/// file that declares them (as ruff does with its configuration), so that a
/// policy decides the same whatever directory a command runs from and
/// however the file is named on the command line. A file outside that
/// directory matches none of its path rules.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    /// How messages name the file (and, for a tree, where a signature is
    /// read from).
    pub shown: &'a str,
    at: At<'a>,
}

#[derive(Debug, Clone, Copy)]
enum At<'a> {
    Disk(&'a Path),
    Repo(Option<&'a Path>),
    Nowhere,
}

impl<'a> Place<'a> {
    /// A file on disk at `path` (absolute or relative to the working
    /// directory).
    pub fn disk(shown: &'a str, path: &'a Path) -> Place<'a> {
        Place {
            shown,
            at: At::Disk(path),
        }
    }

    /// `path` (`/`-separated) in a git repository whose work tree is
    /// `workdir` (`None` when it is bare). A policy file outside the work
    /// tree (a server's, `--policy` elsewhere, the user default) has no
    /// place in it to be relative to, so its globs match repository paths.
    pub fn repo(path: &'a str, workdir: Option<&'a Path>) -> Place<'a> {
        Place {
            shown: path,
            at: At::Repo(workdir),
        }
    }

    /// Content that is not a file (standard input): no path rule matches.
    pub fn nowhere(shown: &'a str) -> Place<'a> {
        Place {
            shown,
            at: At::Nowhere,
        }
    }
}

/// A path already relative to the policy file's folder (`/`-separated):
/// matched as it is.
impl<'a> From<&'a str> for Place<'a> {
    fn from(path: &'a str) -> Place<'a> {
        Place::repo(path, None)
    }
}

/// The path rules one policy file declares, matched against paths relative
/// to its directory.
#[derive(Debug)]
struct Scope {
    /// Absolute, with symbolic links resolved when it exists, so that a
    /// file reached through another spelling of the same folder matches.
    dir: PathBuf,
    globs: GlobSet,
    /// For each glob in `globs`, the index of its rule in `paths`.
    owner: Vec<usize>,
}

/// `place` resolved once for every scope: an absolute path on disk, or a
/// repository path with the work tree it belongs to.
enum Resolved<'a> {
    Disk(PathBuf),
    Repo(&'a str, Option<PathBuf>),
    Nowhere,
}

impl<'a> Resolved<'a> {
    fn of(place: Place<'a>) -> Resolved<'a> {
        match place.at {
            At::Disk(p) => Resolved::Disk(resolve_path(p)),
            At::Repo(workdir) => Resolved::Repo(place.shown, workdir.map(resolve_dir)),
            At::Nowhere => Resolved::Nowhere,
        }
    }

    /// The path relative to `dir`, `/`-separated; `None` outside it.
    fn relative_to(&self, dir: &Path) -> Option<String> {
        match self {
            Resolved::Disk(abs) => slash_path(abs.strip_prefix(dir).ok()?),
            Resolved::Repo(path, Some(workdir)) => match dir.strip_prefix(workdir) {
                Ok(prefix) => slash_path(Path::new(path).strip_prefix(prefix).ok()?),
                Err(_) => Some((*path).to_string()),
            },
            Resolved::Repo(path, None) => Some((*path).to_string()),
            Resolved::Nowhere => None,
        }
    }
}

fn slash_path(rel: &Path) -> Option<String> {
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Some(if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    })
}

/// An absolute spelling of `path` comparable with a [`Scope`]'s directory:
/// its parent's canonical path (the file itself may be a symlink whose
/// target says nothing about where it is placed), else the lexically
/// normalised absolute path.
pub(crate) fn resolve_path(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut normal = PathBuf::new();
    for c in absolute.components() {
        match c {
            std::path::Component::ParentDir => {
                normal.pop();
            }
            std::path::Component::CurDir => {}
            c => normal.push(c),
        }
    }
    if let (Some(parent), Some(name)) = (normal.parent(), normal.file_name())
        && let Ok(real) = std::fs::canonicalize(parent)
    {
        return real.join(name);
    }
    normal
}

/// [`resolve_path`] for a directory, itself resolved when it exists.
pub(crate) fn resolve_dir(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| resolve_path(dir))
}

/// The policy file could not be used. Every problem is listed.
#[derive(Debug, thiserror::Error)]
#[error("{}", diag::render(.0))]
pub struct PolicyError(pub Vec<Diagnostic>);

/// Why a decision came out the way it did.
#[derive(Debug, Clone, Serialize)]
pub struct Basis {
    pub rule: &'static Rule,
    pub verdict: Verdict,
    pub action: Action,
    /// Index into the report's findings; `None` for policy rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<usize>,
    pub message: String,
}

/// An exemption that removed a finding from the decision.
#[derive(Debug, Clone, Serialize)]
pub struct AppliedExemption {
    pub rule: &'static str,
    pub reason: String,
    pub origin: String,
}

/// The policy's verdict on one file.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub action: Action,
    /// What the action rests on, worst first. Includes allowed findings.
    pub basis: Vec<Basis>,
    pub exempted: Vec<AppliedExemption>,
    /// Exemptions that matched this file but have expired (not applied).
    pub expired: Vec<AppliedExemption>,
    /// Names of the path rules that matched.
    pub path_rules: Vec<String>,
    /// The content hash, when the decision needed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl Policy {
    /// The built-in defaults (identical to the template's values).
    pub fn builtin() -> Policy {
        compile::compile(&[], today()).unwrap_or_else(|_| unreachable!("the empty policy is valid"))
    }

    /// Loads `explicit`, or the policy [`locate`](locate::locate) finds
    /// from `cwd`, or the built-in defaults when there is none.
    pub fn load(explicit: Option<&Path>, cwd: &Path) -> Result<Policy, PolicyError> {
        Policy::load_source(&locate::locate(explicit, cwd)?)
    }

    /// Loads the policy `source` names.
    pub fn load_source(source: &locate::Source) -> Result<Policy, PolicyError> {
        match source.path() {
            Some(path) => Policy::load_file(path),
            None => Ok(Policy::builtin()),
        }
    }

    /// Loads one policy file (and what it extends).
    pub fn load_file(path: &Path) -> Result<Policy, PolicyError> {
        Policy::load_file_at(path, today())
    }

    /// Loads `path` and what it extends, reading each file's text through
    /// `read` (the git hooks read the version a commit carries).
    pub fn load_file_with(
        path: &Path,
        read: &dyn Fn(&Path) -> std::io::Result<String>,
    ) -> Result<Policy, PolicyError> {
        Policy::load_chain_at(path, read, today())
    }

    /// As [`Policy::load_file`], deciding expiry against `today`.
    pub fn load_file_at(path: &Path, today: jiff::civil::Date) -> Result<Policy, PolicyError> {
        Policy::load_chain_at(path, &|p| std::fs::read_to_string(p), today)
    }

    fn load_chain_at(
        path: &Path,
        read: compile::ReadPolicy<'_>,
        today: jiff::civil::Date,
    ) -> Result<Policy, PolicyError> {
        let mut diags = Vec::new();
        // Whatever could be read is validated even when part of the chain
        // could not, so that one run reports every problem.
        let files = compile::load_chain(path, read, &mut diags);
        let mut result = compile::compile(&files, today);
        match &mut result {
            Ok(p) => diags.append(&mut p.warnings),
            Err(more) => diags.append(more),
        }
        diags.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        match result {
            Ok(mut p) if !diags.iter().any(Diagnostic::is_error) => {
                p.warnings = diags;
                Ok(p)
            }
            _ => Err(PolicyError(diags)),
        }
    }

    /// The files this policy was read from, the base of any `extends` chain
    /// first. Empty for the built-in defaults.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Identifies what this policy says: the hash of its files' contents in
    /// `extends` order (`builtin` when there are none). Caches of decisions
    /// key on it so that editing the policy re-decides.
    pub fn fingerprint(&self) -> String {
        if self.files.is_empty() {
            return "builtin".to_string();
        }
        let mut all = Vec::new();
        for f in &self.files {
            all.extend(f.to_string_lossy().as_bytes());
            all.push(0);
            all.extend(std::fs::read(f).unwrap_or_default());
            all.push(0);
        }
        crate::digest::sha256_bytes(&all)
    }

    /// Non-fatal problems found while loading.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    pub fn actions(&self, context: Context) -> &Actions {
        match context {
            Context::Daemon => &self.daemon,
            Context::Scan | Context::Hook => &self.actions,
        }
    }

    /// What a hook does when it fails internally (cannot read the index…).
    pub fn on_error(&self) -> Action {
        self.on_error
    }

    /// The `[proxy]` table (`modelgate proxy`).
    pub fn proxy(&self) -> &proxy::ProxyPolicy {
        &self.proxy
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn allowed_globals(&self) -> &[AllowedGlobal] {
        &self.allow
    }

    pub fn denied_globals(&self) -> &[(String, String)] {
        &self.deny
    }

    pub fn path_rules(&self) -> &[PathRule] {
        &self.paths
    }

    pub fn exemptions(&self) -> &[Exemption] {
        &self.exemptions
    }

    /// Digest of the settings that change what the scanner finds (limits,
    /// pickle allow/deny additions): the verdict cache keys on it, so that
    /// editing them rescans while editing actions or exemptions does not.
    pub fn scan_settings_digest(&self) -> String {
        let allow: Vec<(String, String)> = self
            .allow
            .iter()
            .map(|g| (g.module.clone(), g.name.clone()))
            .collect();
        crate::cache::settings_digest(&self.limits, &allow, &self.deny)
    }

    /// The scanner configuration this policy asks for.
    pub fn scan_config(&self) -> ScanConfig {
        let allow = self
            .allow
            .iter()
            .map(|g| (g.module.clone(), g.name.clone()));
        ScanConfig {
            limits: self.limits,
            globals: GlobalLists::new(allow, self.deny.iter().cloned()),
        }
    }

    /// Decides what to do with a scanned file.
    pub fn decide<'p>(
        &self,
        report: &FileReport,
        place: impl Into<Place<'p>>,
        sha256: &str,
        context: Context,
    ) -> Decision {
        self.decide_with(report, place.into(), || sha256.to_string(), context)
    }

    /// As [`Policy::decide`], computing the hash only if an exemption could
    /// change the outcome: hashing a 10 GB checkpoint that nothing flagged
    /// would be wasted time in a hook. Without the file on disk a path
    /// rule's `require-signature` cannot be checked: see
    /// [`Policy::decide_signed`].
    pub fn decide_with<'p>(
        &self,
        report: &FileReport,
        place: impl Into<Place<'p>>,
        sha256: impl FnOnce() -> String,
        context: Context,
    ) -> Decision {
        self.decide_inner(report, place.into(), None, sha256, context)
    }

    /// As [`Policy::decide_with`], also enforcing the `require-signature`
    /// of the path rules that match `place` (POL003), with the signature
    /// looked up where the file is (`source`).
    pub fn decide_signed<'p>(
        &self,
        report: &FileReport,
        place: impl Into<Place<'p>>,
        source: SignatureSource<'_>,
        sha256: impl FnOnce() -> String,
        context: Context,
    ) -> Decision {
        self.decide_inner(report, place.into(), Some(source), sha256, context)
    }

    /// Judges a signature file a change adds, when a `require-signature`
    /// rule covers its path: one that no trusted key verifies would
    /// otherwise sit beside files the change does not touch (and so does
    /// not re-check) until someone edits them. `None` when no rule asks
    /// for a signature there or the signature verifies.
    pub fn decide_signature_file<'p>(
        &self,
        place: impl Into<Place<'p>>,
        bytes: &[u8],
        context: Context,
    ) -> Option<Decision> {
        let place = place.into();
        let (actions, _, Some(req), path_rules) = self.effective(place, context) else {
            return None;
        };
        let message = match sign::open_signature_bytes(bytes, &req.keys) {
            Ok(_) => return None,
            Err(e) => open_failure(req, place.shown, None, e),
        };
        let sha256 = crate::digest::sha256_bytes(bytes);
        Some(
            self.finish(vec![signature_basis(&actions, message)], path_rules, || {
                sha256
            }),
        )
    }

    /// The daemon's decision on the content of a finished download: its
    /// findings under the `[daemon]` actions, and exemptions by hash. Equal
    /// content decides equally wherever it lands, which is what lets the
    /// daemon cache this by hash; the signature requirement, which depends
    /// on where the file is, is [`Policy::decide_download_signature`].
    pub fn decide_download(&self, report: &FileReport, sha256: &str) -> Decision {
        let actions = *self.actions(Context::Daemon);
        let basis = self.finding_basis(report, &actions);
        self.finish(basis, Vec::new(), || sha256.to_string())
    }

    /// `[daemon] require-signature` for the file `shown` (its snapshot path,
    /// `<cache>/models--org--name/snapshots/<commit>/<path>`), whose
    /// content hashes to `sha256`: `None` when the requirement does not
    /// apply to the repo or a trusted signature in the snapshot covers the
    /// file, else the POL003 decision. Every file of the snapshot counts,
    /// configs too (an `auto_map` in `config.json` picks the code that
    /// runs), except what the signer left out. Never cache this: the
    /// signature can land after the file.
    pub fn decide_download_signature(&self, shown: &Path, sha256: &str) -> Option<Decision> {
        let req = self.daemon_signature.as_ref()?;
        let loc = crate::hfcache::locate(shown)?;
        if loc.repo_type != crate::hfcache::RepoType::Model
            || !req.applies_to_repo(&loc.repo_id)
            || loc.path_in_repo.ends_with(".sig")
        {
            return None;
        }
        let shown_name = format!("{}/{}", loc.repo_id, loc.path_in_repo);
        let message =
            signature_problem(req, shown, &shown_name, &loc.snapshot_dir(), Some(sha256))?;
        let actions = *self.actions(Context::Daemon);
        let decision = self.finish(vec![signature_basis(&actions, message)], Vec::new(), || {
            sha256.to_string()
        });
        (!decision.basis.is_empty()).then_some(decision)
    }

    /// `[daemon] require-signature`, if set.
    pub fn download_signature(&self) -> Option<&SignatureRequirement> {
        self.daemon_signature.as_deref()
    }

    fn finding_basis(&self, report: &FileReport, actions: &Actions) -> Vec<Basis> {
        report
            .findings
            .iter()
            .enumerate()
            .map(|(i, f)| Basis {
                rule: f.rule,
                verdict: f.verdict,
                action: actions.for_verdict(f.verdict),
                finding: Some(i),
                message: f.message.clone(),
            })
            .collect()
    }

    fn decide_inner(
        &self,
        report: &FileReport,
        place: Place<'_>,
        source: Option<SignatureSource<'_>>,
        sha256: impl FnOnce() -> String,
        context: Context,
    ) -> Decision {
        // Hashed at most once, and only if a signature or an exemption
        // needs the content hash.
        let sha256 = LazyCell::new(sha256);
        let path_in_repo = place.shown;
        let (actions, require, signature, path_rules) = self.effective(place, context);
        let mut basis = self.finding_basis(report, &actions);
        if let Some((rule_name, formats)) = require
            && is_model(report)
            && !formats.iter().any(|f| f == report.format.name())
        {
            basis.push(Basis {
                rule: &rules::FORMAT_NOT_ALLOWED,
                verdict: Verdict::Suspicious,
                action: Action::Block,
                finding: None,
                message: format!(
                    "format `{}` is not allowed here: path rule `{rule_name}` requires {}",
                    report.format,
                    formats.join(", ")
                ),
            });
        }
        if let (Some(req), Some(source)) = (signature, source)
            && is_model(report)
        {
            let problem = match source {
                SignatureSource::Disk(file) => {
                    signature_problem(req, file, path_in_repo, &req.boundary, None)
                }
                SignatureSource::Tree(read) => {
                    tree_signature_problem(req, path_in_repo, read, &sha256)
                }
            };
            if let Some(message) = problem {
                basis.push(signature_basis(&actions, message));
            }
        }
        self.finish(basis, path_rules, || String::clone(&sha256))
    }

    /// Decides about a file whose content could not be scanned (a Git LFS
    /// pointer whose object is not present). `sha256` is the content hash
    /// when known (the LFS oid), so an exemption can still apply.
    pub fn decide_unverifiable<'p>(
        &self,
        place: impl Into<Place<'p>>,
        sha256: Option<&str>,
        reason: &str,
        context: Context,
    ) -> Decision {
        let (actions, _, _, path_rules) = self.effective(place.into(), context);
        let basis = vec![Basis {
            rule: &rules::CONTENT_UNVERIFIABLE,
            verdict: Verdict::Suspicious,
            action: actions.unverifiable,
            finding: None,
            message: reason.to_string(),
        }];
        match sha256 {
            Some(h) => self.finish(basis, path_rules, || h.to_string()),
            None => {
                let action = actions.unverifiable;
                Decision {
                    action,
                    basis,
                    exempted: vec![],
                    expired: vec![],
                    path_rules,
                    sha256: None,
                }
            }
        }
    }

    /// Whether `place` is in the folder of a policy file that declares
    /// path rules (true when there are none): outside them no path rule
    /// can apply.
    pub fn path_rules_reach<'p>(&self, place: impl Into<Place<'p>>) -> bool {
        let resolved = Resolved::of(place.into());
        self.scopes.is_empty()
            || self
                .scopes
                .iter()
                .any(|s| resolved.relative_to(&s.dir).is_some())
    }

    /// The folders path rules apply in (those of the files declaring them).
    pub fn path_rule_folders(&self) -> Vec<&Path> {
        self.scopes.iter().map(|s| s.dir.as_path()).collect()
    }

    /// Exemptions that have not applied to any file since this policy was
    /// loaded (and have not expired): candidates for removal.
    pub fn unused_exemptions(&self) -> Vec<&Exemption> {
        self.exemptions
            .iter()
            .zip(&self.used)
            .filter(|(e, used)| !used.load(Ordering::Relaxed) && !self.is_expired(e))
            .map(|(e, _)| e)
            .collect()
    }

    /// Exemptions whose date has passed.
    pub fn expired_exemptions(&self) -> Vec<&Exemption> {
        self.exemptions
            .iter()
            .filter(|e| self.is_expired(e))
            .collect()
    }

    fn is_expired(&self, e: &Exemption) -> bool {
        e.expires.is_some_and(|d| d < self.today)
    }

    /// The actions, format requirement and matching rule names for a file.
    /// Later path rules override earlier ones key by key.
    fn effective(&self, place: Place<'_>, context: Context) -> Effective<'_> {
        let mut actions = *self.actions(context);
        let mut require = None;
        let mut signature = None;
        let mut names = Vec::new();
        if context == Context::Daemon || self.paths.is_empty() {
            return (actions, require, signature, names);
        }
        let resolved = Resolved::of(place);
        let mut matched: Vec<usize> = Vec::new();
        for scope in &self.scopes {
            if let Some(rel) = resolved.relative_to(&scope.dir) {
                matched.extend(
                    scope
                        .globs
                        .matches(&rel)
                        .into_iter()
                        .filter_map(|g| scope.owner.get(g).copied()),
                );
            }
        }
        matched.sort_unstable();
        matched.dedup();
        for rule in matched.iter().filter_map(|&i| self.paths.get(i)) {
            let set = |slot: &mut Action, v: Option<Action>| {
                if let Some(v) = v {
                    *slot = v;
                }
            };
            set(&mut actions.malicious, rule.malicious);
            set(&mut actions.suspicious, rule.suspicious);
            set(&mut actions.info, rule.info);
            set(&mut actions.unverifiable, rule.unverifiable);
            if let Some(formats) = &rule.require_format {
                require = Some((rule.name.as_str(), formats.as_slice()));
            }
            if let Some(req) = &rule.require_signature {
                signature = Some(req.as_ref());
            }
            names.push(rule.name.clone());
        }
        (actions, require, signature, names)
    }

    fn finish(
        &self,
        mut basis: Vec<Basis>,
        path_rules: Vec<String>,
        sha256: impl FnOnce() -> String,
    ) -> Decision {
        let mut exempted = Vec::new();
        let mut expired = Vec::new();
        let mut hash = None;
        if basis.iter().any(|b| b.action > Action::Allow) && !self.exemptions.is_empty() {
            let h = sha256().to_ascii_lowercase();
            basis.retain(|b| {
                if b.action == Action::Allow {
                    return true;
                }
                let mut keep = true;
                for (e, used) in self.exemptions.iter().zip(&self.used) {
                    if e.sha256 != h || e.rule.is_some_and(|r| r != b.rule.id) {
                        continue;
                    }
                    let applied = AppliedExemption {
                        rule: b.rule.id,
                        reason: e.reason.clone(),
                        origin: e.origin.clone(),
                    };
                    if self.is_expired(e) {
                        expired.push(applied);
                    } else {
                        used.store(true, Ordering::Relaxed);
                        if keep {
                            exempted.push(applied);
                        }
                        keep = false;
                    }
                }
                keep
            });
            hash = Some(h);
        }
        basis.sort_by(|a, b| b.action.cmp(&a.action).then(b.verdict.cmp(&a.verdict)));
        let action = basis
            .iter()
            .map(|b| b.action)
            .max()
            .unwrap_or(Action::Allow);
        Decision {
            action,
            basis,
            exempted,
            expired,
            path_rules,
            sha256: hash,
        }
    }
}

/// The settings that apply to one path: actions, the `require-format` list
/// with the name of the rule that set it, the signature requirement, and the
/// matching rule names.
type Effective<'p> = (
    Actions,
    Option<(&'p str, &'p [String])>,
    Option<&'p SignatureRequirement>,
    Vec<String>,
);

/// Files the scanner skipped (READMEs, JSON configs, the signature itself)
/// are not models: format and signature requirements are about models.
fn is_model(report: &FileReport) -> bool {
    !matches!(report.status, ScanStatus::Skipped { .. })
}

/// A missing or failed signature is "cannot be shown to be what the
/// publisher shipped": suspicious, so the context's `suspicious` action
/// applies (block in scans and hooks by default, `[daemon] suspicious` in
/// the daemon).
fn signature_basis(actions: &Actions, message: String) -> Basis {
    Basis {
        rule: &rules::SIGNATURE_REQUIRED,
        verdict: Verdict::Suspicious,
        action: actions.suspicious,
        finding: None,
        message,
    }
}

/// Where `require-signature` looks for the signature covering a file.
#[derive(Clone, Copy)]
pub enum SignatureSource<'a> {
    /// The file on disk (as opened): beside it and in its directories up
    /// to the rule's boundary.
    Disk(&'a Path),
    /// A tree that is not checked out (a staged index, a pushed commit),
    /// read by repository path: a signature on disk but not in the tree
    /// does not count.
    Tree(&'a dyn Fn(&str) -> Option<Vec<u8>>),
}

/// Why `file` (shown as `shown`) is not covered by a valid signature from
/// `req`'s keys, or `None` when it is. The signature is looked for next to
/// the file and in its directories up to `boundary`; the file is checked
/// alone against its signed digest (`known_sha` when the caller already
/// hashed it), so a partial download or a sparse checkout can be judged
/// file by file. Nothing here parses the model.
fn signature_problem(
    req: &SignatureRequirement,
    file: &Path,
    shown: &str,
    boundary: &Path,
    known_sha: Option<&str>,
) -> Option<String> {
    // Lexical, not canonical: a hub snapshot entry is a symlink into
    // `blobs/`, and the signature sits next to the link, not the blob.
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let boundary = std::path::absolute(boundary).unwrap_or_else(|_| boundary.to_path_buf());
    let stop = file.starts_with(&boundary).then_some(boundary.as_path());
    let Some(loc) = sign::find_signature(&file, stop) else {
        return Some(no_signature(req, shown));
    };
    let sig = loc.signature.display().to_string();
    let manifest = match sign::open_signature(&loc.signature, &req.keys) {
        Ok(m) => m,
        Err(e) => return Some(open_failure(req, &sig, Some(shown), e)),
    };
    let name = match file.strip_prefix(&loc.model) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".to_string(),
        Ok(rel) => rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
        Err(_) => ".".to_string(),
    };
    let checked = match known_sha {
        Some(actual) => compare_digest(&manifest, &name, actual),
        None => manifest.check_file(&name, &file),
    };
    describe_check(checked, shown, &sig, &name)
}

/// [`signature_problem`] for a file at `path` in a tree read through
/// `read`, whose content hashes to `sha256`; the tree's root bounds the
/// search.
fn tree_signature_problem(
    req: &SignatureRequirement,
    path: &str,
    read: &dyn Fn(&str) -> Option<Vec<u8>>,
    sha256: &str,
) -> Option<String> {
    let Some(found) = sign::find_signature_in(path, read) else {
        return Some(no_signature(req, path));
    };
    let manifest = match sign::open_signature_bytes(&found.bytes, &req.keys) {
        Ok(m) => m,
        Err(e) => return Some(open_failure(req, &found.path, Some(path), e)),
    };
    describe_check(
        compare_digest(&manifest, &found.name, sha256),
        path,
        &found.path,
        &found.name,
    )
}

fn no_signature(req: &SignatureRequirement, shown: &str) -> String {
    let name = shown.rsplit('/').next().unwrap_or(shown);
    format!(
        "no {} or {name}.sig covers {shown}: the policy requires a signature by {}",
        sign::SIGNATURE_FILE,
        req.describe_keys()
    )
}

/// Why the signature `sig` (judged for the file `covering`, or on its own)
/// cannot be used.
fn open_failure(
    req: &SignatureRequirement,
    sig: &str,
    covering: Option<&str>,
    e: SignError,
) -> String {
    let sig = match covering {
        Some(file) => format!("{sig} (covering {file})"),
        None => sig.to_string(),
    };
    match e {
        SignError::KeyMismatch { .. } | SignError::BadSignature => format!(
            "{sig} is not signed by a trusted key ({}): {e}",
            req.describe_keys()
        ),
        e => format!("{sig} cannot be verified: {e}"),
    }
}

/// Checks a file already hashed (`actual`) against the digest signed for
/// `name`.
fn compare_digest(
    manifest: &sign::SignedManifest,
    name: &str,
    actual: &str,
) -> Result<(), SignError> {
    if manifest.method != sign::Method::Files {
        return Err(SignError::Unsupported(
            "per-file checks need a files-mode signature".into(),
        ));
    }
    match manifest.digest_of(name) {
        None if manifest.leaves_out(name) => Ok(()),
        Some(expected) if expected.eq_ignore_ascii_case(actual) => Ok(()),
        Some(expected) => Err(SignError::Mismatch(vec![Mismatch::Changed {
            name: name.to_string(),
            expected: expected.to_string(),
            actual: actual.to_ascii_lowercase(),
        }])),
        None => Err(SignError::Mismatch(vec![Mismatch::Extra(name.to_string())])),
    }
}

fn describe_check(
    checked: Result<(), SignError>,
    shown: &str,
    sig: &str,
    name: &str,
) -> Option<String> {
    match checked {
        Ok(()) => None,
        Err(SignError::Mismatch(m)) => Some(match m.first() {
            Some(Mismatch::Changed {
                expected, actual, ..
            }) => format!(
                "{shown} changed since it was signed (signed sha256 {expected}, now {actual}; signature {sig})"
            ),
            _ => format!("{sig} does not cover {shown} (`{name}` is not among the signed files)"),
        }),
        Err(e) => Some(format!("{sig} (covering {shown}) cannot be verified: {e}")),
    }
}

fn today() -> jiff::civil::Date {
    jiff::Zoned::now().date()
}

#[cfg(test)]
mod tests;
