//! From policy files to a [`Policy`]: follows `extends`, then validates the
//! merged settings, collecting every problem with its position.
//!
//! Merging: files are applied base first, so a key set in an extending file
//! overrides the base's; lists (allowed and denied globals, path rules,
//! exemptions) are concatenated, base entries first. Path rules therefore
//! keep their order, and a later rule overrides an earlier one key by key.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use toml::Spanned;

use super::diag::{Diagnostic, Severity};
use super::schema::{
    RawActions, RawExemption, RawPathRule, RawPickle, RawPolicy, RawRequireSignature,
};
use super::{
    Action, Actions, AllowedGlobal, Exemption, PathRule, Policy, Scope, SignatureRequirement,
};
use crate::scan::builtin_denial;
use crate::scan::{Limits, rules};

/// `extends` chains deeper than this are certainly a mistake.
const MAX_EXTENDS_DEPTH: usize = 16;

/// One parsed file of an `extends` chain.
pub struct LoadedFile {
    pub path: PathBuf,
    pub text: String,
    pub raw: RawPolicy,
}

impl LoadedFile {
    fn diag(
        &self,
        sev: Severity,
        span: Range<usize>,
        msg: impl Into<String>,
        help: Option<String>,
    ) -> Diagnostic {
        Diagnostic::at(sev, &self.path, &self.text, span, msg, help)
    }
}

/// How a policy file's text is read: from disk, or (git hooks) from what
/// a commit carries.
pub type ReadPolicy<'a> = &'a dyn Fn(&Path) -> std::io::Result<String>;

/// Reads `path` and everything it extends, base first, through `read`.
pub fn load_chain(
    path: &Path,
    read: ReadPolicy<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<LoadedFile> {
    let mut files = Vec::new();
    let mut stack = Vec::new();
    load_one(path, read, &mut stack, &mut files, diags);
    files
}

fn load_one(
    path: &Path,
    read: ReadPolicy<'_>,
    stack: &mut Vec<PathBuf>,
    files: &mut Vec<LoadedFile>,
    diags: &mut Vec<Diagnostic>,
) {
    let text = match read(path) {
        Ok(t) => t,
        Err(e) => {
            diags.push(Diagnostic::whole_file(
                Severity::Error,
                path,
                format!("cannot read policy file: {e}"),
                None,
            ));
            return;
        }
    };
    let parsed = parse_shape(&text, &mut |span, message| {
        let (msg, help) = explain_parse_error(message);
        diags.push(Diagnostic::at(
            Severity::Error,
            path,
            &text,
            span,
            msg,
            help,
        ));
    });
    let Some(raw) = parsed else {
        return;
    };
    stack.push(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()));
    let file = LoadedFile {
        path: path.to_path_buf(),
        text,
        raw,
    };
    if let Some(ext) = &file.raw.extends {
        let base = path.parent().unwrap_or(Path::new("")).join(ext.get_ref());
        let canonical = std::fs::canonicalize(&base);
        if ext.get_ref().trim().is_empty() {
            diags.push(file.diag(Severity::Error, ext.span(), "`extends` is empty", None));
        } else if let Ok(c) = canonical.as_ref().map(PathBuf::as_path)
            && stack.iter().any(|s| s == c)
        {
            let chain: Vec<String> = stack.iter().map(|p| p.display().to_string()).collect();
            diags.push(file.diag(
                Severity::Error,
                ext.span(),
                format!("`extends` cycle: {} → {}", chain.join(" → "), c.display()),
                Some("a policy cannot extend itself, directly or through other files".into()),
            ));
        } else if stack.len() >= MAX_EXTENDS_DEPTH {
            diags.push(file.diag(
                Severity::Error,
                ext.span(),
                format!("`extends` chain deeper than {MAX_EXTENDS_DEPTH} files"),
                None,
            ));
        } else if canonical.is_err() {
            diags.push(file.diag(
                Severity::Error,
                ext.span(),
                format!("extended policy `{}` not found", base.display()),
                Some("`extends` is relative to the file that contains it".into()),
            ));
        } else {
            load_one(&base, read, stack, files, diags);
        }
    }
    stack.pop();
    files.push(file);
}

/// More shape errors than this in one file is not a policy worth reading on.
const MAX_SHAPE_ERRORS: usize = 100;

/// Parses a policy file's text into its raw shape, reporting every shape
/// problem (unknown key, wrong type, missing field) rather than the first:
/// after each error the entry it points at is left out and the rest is read
/// again, so the remaining entries are still validated. `None` when the
/// text is not TOML at all (a syntax error leaves nothing to recover).
fn parse_shape(text: &str, report: &mut dyn FnMut(Range<usize>, &str)) -> Option<RawPolicy> {
    use serde::Deserialize;
    let mut root = match toml::de::DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            report(e.span().unwrap_or(0..0), e.message());
            return None;
        }
    };
    // Keys already left out, with the span of their table: the "missing
    // field" that follows leaving out a mistyped required key is the same
    // problem, said once.
    let mut removed = Vec::new();
    let whole = root.span();
    for _ in 0..MAX_SHAPE_ERRORS {
        match RawPolicy::deserialize(toml::de::Deserializer::from(root.clone())) {
            Ok(raw) => return Some(raw),
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let echo = e
                    .message()
                    .strip_prefix("missing field `")
                    .and_then(|m| m.split('`').next())
                    .is_some_and(|field| removed.contains(&(span.clone(), field.to_string())));
                if !echo {
                    report(span.clone(), e.message());
                }
                if !prune_table(root.get_mut(), &whole, &span, &mut removed) {
                    return None;
                }
            }
        }
    }
    None
}

/// A key left out, and the span of the table that held it.
type Removed = Vec<(Range<usize>, String)>;

fn covers(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    !inner.is_empty() && outer.start <= inner.start && inner.end <= outer.end
}

/// Removes the innermost entry of `table` that the error `span` points at
/// (its key, or a value holding the span); whether one was found.
fn prune_table(
    table: &mut toml::de::DeTable<'_>,
    table_span: &Range<usize>,
    span: &Range<usize>,
    removed: &mut Removed,
) -> bool {
    let mut hit = None;
    for (key, value) in table.iter_mut() {
        if prune_value(value, span, removed) {
            return true;
        }
        if covers(&key.span(), span) || covers(&value.span(), span) {
            hit = Some(key.clone());
            break;
        }
    }
    let Some(key) = hit else {
        return false;
    };
    removed.push((table_span.clone(), key.get_ref().to_string()));
    table.remove(&key).is_some()
}

/// [`prune_table`] inside a value: a table's entry or an array's element.
fn prune_value(
    value: &mut Spanned<toml::de::DeValue<'_>>,
    span: &Range<usize>,
    removed: &mut Removed,
) -> bool {
    use toml::de::{DeArray, DeValue};
    let value_span = value.span();
    match value.get_mut() {
        DeValue::Table(t) => prune_table(t, &value_span, span, removed),
        DeValue::Array(items) => {
            if items
                .iter_mut()
                .any(|item| prune_value(item, span, removed))
            {
                return true;
            }
            let Some(bad) = items.iter().position(|item| covers(&item.span(), span)) else {
                return false;
            };
            let mut kept = DeArray::new();
            for (i, item) in items.iter().enumerate() {
                if i != bad {
                    kept.push(item.clone());
                }
            }
            *items = kept;
            true
        }
        _ => false,
    }
}

/// toml's messages are good; add a help line for the common cases.
fn explain_parse_error(msg: &str) -> (String, Option<String>) {
    let msg = msg.trim().to_string();
    let help = if msg.starts_with("unknown field") {
        Some(
            "check the spelling against the commented template (`modelgate policy init`)"
                .to_string(),
        )
    } else if msg.starts_with("missing field `reason`") {
        Some("every exemption needs a `reason` saying why the file is trusted".to_string())
    } else {
        None
    };
    (msg, help)
}

/// Accumulates diagnostics while validating.
struct Checker {
    diags: Vec<Diagnostic>,
}

impl Checker {
    fn err(
        &mut self,
        f: &LoadedFile,
        span: Range<usize>,
        msg: impl Into<String>,
        help: Option<String>,
    ) {
        self.diags.push(f.diag(Severity::Error, span, msg, help));
    }

    fn warn(
        &mut self,
        f: &LoadedFile,
        span: Range<usize>,
        msg: impl Into<String>,
        help: Option<String>,
    ) {
        self.diags.push(f.diag(Severity::Warning, span, msg, help));
    }

    fn action(
        &mut self,
        f: &LoadedFile,
        v: &Option<Spanned<String>>,
        allowed: &[Action],
        table: &str,
    ) -> Option<Action> {
        let v = v.as_ref()?;
        let names: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
        match Action::parse(v.get_ref()) {
            Some(a) if allowed.contains(&a) => Some(a),
            Some(a) => {
                let help = if a == Action::Quarantine {
                    "`quarantine` is only meaningful for the daemon ([daemon])".to_string()
                } else {
                    format!("in {table} use one of {}", names.join(", "))
                };
                self.err(
                    f,
                    v.span(),
                    format!("action `{a}` is not available in {table}"),
                    Some(help),
                );
                None
            }
            None => {
                self.err(
                    f,
                    v.span(),
                    format!("unknown action `{}`", v.get_ref()),
                    Some(format!("use one of {}", names.join(", "))),
                );
                None
            }
        }
    }

    fn actions(
        &mut self,
        f: &LoadedFile,
        raw: &RawActions,
        into: &mut Actions,
        allowed: &[Action],
        table: &str,
    ) {
        let slots = [
            (&raw.malicious, &mut into.malicious),
            (&raw.suspicious, &mut into.suspicious),
            (&raw.info, &mut into.info),
            (&raw.unverifiable, &mut into.unverifiable),
        ];
        for (v, slot) in slots {
            if let Some(a) = self.action(f, v, allowed, table) {
                *slot = a;
            }
        }
    }
}

impl Checker {
    /// Resolves the key files relative to the policy file and parses them
    /// now, so that a typo in a key path fails `policy check` and every
    /// command, not the first file that needs a signature.
    fn require_signature(
        &mut self,
        f: &LoadedFile,
        raw: &Spanned<RawRequireSignature>,
        daemon: bool,
    ) -> Option<SignatureRequirement> {
        let r = raw.get_ref();
        let dir = policy_dir(&f.path);
        let key_files = trusted_key_files(dir, &r.keys, |span, msg, help| {
            self.err(f, span, msg, Some(help))
        });
        let mut ok = key_files.is_some();
        let (mut repos, mut repo_globs) = (Vec::new(), GlobSet::empty());
        match (&r.repos, daemon) {
            (Some(list), false) => {
                self.err(
                    f,
                    list.span(),
                    "`repos` only applies to `[daemon] require-signature`",
                    Some("a path rule is already scoped by its `globs`".into()),
                );
                ok = false;
            }
            (Some(list), true) => {
                match repo_glob_set(list.get_ref(), |g, msg| {
                    self.err(f, g.span(), msg, Some(REPO_GLOB_HELP.into()))
                }) {
                    Some((set, names)) => (repo_globs, repos) = (set, names),
                    None => ok = false,
                }
            }
            (None, _) => {}
        }
        let key_files = key_files.filter(|_| ok)?;
        let keys = crate::sign::TrustedKeys::from_files(&key_files).ok()?;
        Some(SignatureRequirement {
            key_files,
            keys,
            boundary: dir.to_path_buf(),
            repos,
            repo_globs,
        })
    }
}

const REPO_ACTIONS: &[Action] = &[Action::Allow, Action::Warn, Action::Block];
const DAEMON_ACTIONS: &[Action] = &[Action::Allow, Action::Warn, Action::Quarantine];

/// What the files say, merged in reading order: a later file overrides a
/// setting or adds to a list.
struct Merged {
    actions: Actions,
    daemon: Actions,
    daemon_signature: Option<Arc<SignatureRequirement>>,
    on_error: Action,
    limits: toml::Table,
    /// Each allowed global with the file and span it came from.
    allow: Vec<(AllowedGlobal, usize, Range<usize>)>,
    deny: Vec<(String, String)>,
    paths: Vec<PathRule>,
    scopes: Vec<Scope>,
    exemptions: Vec<Exemption>,
}

/// Validates and merges `files` (base first), one function per policy
/// table. Returns every error, or the policy with its warnings.
pub fn compile(files: &[LoadedFile], today: jiff::civil::Date) -> Result<Policy, Vec<Diagnostic>> {
    let mut c = Checker { diags: Vec::new() };
    let default_limits = toml::Table::try_from(Limits::default()).unwrap_or_default();
    let mut m = Merged {
        actions: Actions::REPOSITORY,
        daemon: Actions::DAEMON,
        daemon_signature: None,
        on_error: Action::Block,
        limits: default_limits.clone(),
        allow: Vec::new(),
        deny: Vec::new(),
        paths: Vec::new(),
        scopes: Vec::new(),
        exemptions: Vec::new(),
    };
    for (fi, f) in files.iter().enumerate() {
        let raw = &f.raw;
        if let Some(a) = &raw.actions {
            c.actions(f, a, &mut m.actions, REPO_ACTIONS, "[actions]");
        }
        if let Some(d) = &raw.daemon {
            c.actions(f, &d.actions(), &mut m.daemon, DAEMON_ACTIONS, "[daemon]");
            if let Some(r) = &d.require_signature {
                m.daemon_signature = c.require_signature(f, r, true).map(Arc::new);
            }
        }
        if let Some(h) = &raw.hook
            && let Some(a) = c.action(f, &h.on_error, REPO_ACTIONS, "[hook] on-error")
        {
            m.on_error = a;
        }
        if let Some(l) = &raw.limits {
            c.limits(f, l, &default_limits, &mut m.limits);
        }
        if let Some(p) = &raw.pickle {
            c.pickle(f, fi, p, &mut m.allow, &mut m.deny);
        }
        c.paths(f, &raw.paths, &mut m.paths, &mut m.scopes);
        for e in &raw.exemptions {
            m.exemptions.push(c.exemption(f, e, today));
        }
    }
    c.allowed_and_denied(files, &m.allow, &m.deny);
    c.finish(files, m, today)
}

impl Checker {
    /// `[limits]`: known keys, positive values of the right type.
    fn limits(
        &mut self,
        f: &LoadedFile,
        l: &BTreeMap<Spanned<String>, Spanned<toml::Value>>,
        default_limits: &toml::Table,
        limits: &mut toml::Table,
    ) {
        for (key, value) in l {
            if !default_limits.contains_key(key.get_ref()) {
                let known: Vec<&str> = default_limits.keys().map(String::as_str).collect();
                self.err(
                    f,
                    key.span(),
                    format!("unknown limit `{}`", key.get_ref()),
                    Some(format!("known limits: {}", known.join(", "))),
                );
                continue;
            }
            let mut one = toml::Table::new();
            one.insert(key.get_ref().clone(), value.get_ref().clone());
            match one.try_into::<Limits>() {
                Ok(_) if value.get_ref().as_integer() == Some(0) => self.err(
                    f,
                    value.span(),
                    format!("limit `{}` must be positive", key.get_ref()),
                    Some("a zero limit would make every file inconclusive".into()),
                ),
                Ok(_) => {
                    limits.insert(key.get_ref().clone(), value.get_ref().clone());
                }
                Err(e) => self.err(
                    f,
                    value.span(),
                    format!(
                        "invalid value for limit `{}`: {}",
                        key.get_ref(),
                        e.message().trim()
                    ),
                    Some("limits are positive integers (bytes, counts or milliseconds)".into()),
                ),
            }
        }
    }

    /// `[pickle]`: global names to deny and to allow (an allowed global on
    /// the built-in denylist needs `override` and a reason).
    fn pickle(
        &mut self,
        f: &LoadedFile,
        fi: usize,
        p: &RawPickle,
        allow: &mut Vec<(AllowedGlobal, usize, Range<usize>)>,
        deny: &mut Vec<(String, String)>,
    ) {
        for d in &p.deny {
            match split_global(d.get_ref()) {
                Some(g) => deny.push(g),
                None => self.err(
                    f,
                    d.span(),
                    format!("`{}` is not a global name", d.get_ref()),
                    Some(GLOBAL_HELP.into()),
                ),
            }
        }
        for a in &p.allow {
            let entry = a.get_ref();
            let span = if entry.global.span().is_empty() {
                a.span()
            } else {
                entry.global.span()
            };
            let Some((module, name)) = split_global(entry.global.get_ref()) else {
                self.err(
                    f,
                    span,
                    format!("`{}` is not a global name", entry.global.get_ref()),
                    Some(GLOBAL_HELP.into()),
                );
                continue;
            };
            let overrides = entry
                .override_builtin
                .as_ref()
                .is_some_and(|o| *o.get_ref());
            let reason = entry
                .reason
                .as_ref()
                .map(|r| r.get_ref().trim().to_string())
                .filter(|r| !r.is_empty());
            let mut override_reason = None;
            match builtin_denial(&module, &name) {
                Some(why) if !overrides => self.err(
                    f,
                    span.clone(),
                    format!("`{module}.{name}` is on the built-in denylist ({why}) and cannot simply be allowed"),
                    Some(format!(
                        "if you really trust it, write {{ global = \"{module}.{name}\", override = true, reason = \"...\" }}"
                    )),
                ),
                Some(_) if reason.is_none() => self.err(
                    f,
                    entry.override_builtin.as_ref().map_or(span.clone(), Spanned::span),
                    format!("overriding the built-in denylist for `{module}.{name}` needs a reason"),
                    Some("add reason = \"why this is safe for us\"".into()),
                ),
                Some(_) => override_reason = reason,
                None if overrides => self.warn(
                    f,
                    entry.override_builtin.as_ref().map_or(span.clone(), Spanned::span),
                    format!("`override = true` has no effect: `{module}.{name}` is not on the built-in denylist"),
                    None,
                ),
                None => {}
            }
            allow.push((
                AllowedGlobal {
                    module,
                    name,
                    override_reason,
                },
                fi,
                span,
            ));
        }
    }

    /// `[[paths]]`: one file's path rules, and the glob set that scopes them
    /// to the file's directory.
    fn paths(
        &mut self,
        f: &LoadedFile,
        rules: &[RawPathRule],
        paths: &mut Vec<PathRule>,
        scopes: &mut Vec<Scope>,
    ) {
        let base = super::resolve_dir(policy_dir(&f.path));
        let mut globs = GlobSetBuilder::new();
        let mut glob_owner = Vec::new();
        for rule in rules {
            let idx = paths.len();
            let name = rule
                .name
                .as_ref()
                .map_or_else(|| format!("paths[{idx}]"), |n| n.get_ref().clone());
            if rule.globs.get_ref().is_empty() {
                self.err(
                    f,
                    rule.globs.span(),
                    "a path rule needs at least one glob",
                    Some("e.g. globs = [\"models/**\"]".into()),
                );
            }
            let mut patterns = Vec::new();
            for g in rule.globs.get_ref() {
                match GlobBuilder::new(g.get_ref())
                    .literal_separator(true)
                    .build()
                {
                    Ok(glob) => {
                        globs.add(glob);
                        glob_owner.push(idx);
                        patterns.push(g.get_ref().clone());
                    }
                    Err(e) => self.err(
                        f,
                        g.span(),
                        format!("invalid glob `{}`: {}", g.get_ref(), e.kind()),
                        None,
                    ),
                }
            }
            let require_format = rule
                .require_format
                .as_ref()
                .map(|list| self.require_format(f, list));
            let require_signature = rule
                .require_signature
                .as_ref()
                .and_then(|r| self.require_signature(f, r, false))
                .map(Arc::new);
            let malicious = self.action(f, &rule.malicious, REPO_ACTIONS, "[[paths]]");
            let suspicious = self.action(f, &rule.suspicious, REPO_ACTIONS, "[[paths]]");
            let info = self.action(f, &rule.info, REPO_ACTIONS, "[[paths]]");
            let unverifiable = self.action(f, &rule.unverifiable, REPO_ACTIONS, "[[paths]]");
            let sets_nothing = [
                &rule.malicious,
                &rule.suspicious,
                &rule.info,
                &rule.unverifiable,
            ]
            .iter()
            .all(|v| v.is_none())
                && rule.require_format.is_none()
                && rule.require_signature.is_none();
            if sets_nothing {
                self.warn(
                    f,
                    rule.globs.span(),
                    format!("path rule `{name}` changes nothing"),
                    None,
                );
            }
            paths.push(PathRule {
                name,
                globs: patterns,
                base: base.clone(),
                malicious,
                suspicious,
                info,
                unverifiable,
                require_format,
                require_signature,
            });
        }
        if !glob_owner.is_empty() {
            match globs.build() {
                Ok(globs) => scopes.push(Scope {
                    dir: base,
                    globs,
                    owner: glob_owner,
                }),
                Err(e) => self.err(
                    f,
                    0..0,
                    format!("path globs could not be compiled: {e}"),
                    None,
                ),
            }
        }
    }

    /// A path rule's `require-format`: an empty list is an error (it would
    /// forbid every format), a name the scanner never reports a warning.
    fn require_format(
        &mut self,
        f: &LoadedFile,
        list: &Spanned<Vec<Spanned<String>>>,
    ) -> Vec<String> {
        if list.get_ref().is_empty() {
            self.err(
                f,
                list.span(),
                "`require-format` is empty, which would forbid every model format",
                Some("list the allowed formats, e.g. [\"safetensors\", \"gguf\", \"onnx\"]".into()),
            );
        }
        for fmt in list.get_ref() {
            if crate::scan::Kind::from_name(fmt.get_ref()).is_none() {
                self.warn(
                    f,
                    fmt.span(),
                    format!(
                        "`{}` is not a format name the scanner reports",
                        fmt.get_ref()
                    ),
                    Some(format!(
                        "known formats: {}",
                        crate::scan::Kind::ALL
                            .iter()
                            .map(|k| k.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                );
            }
        }
        list.get_ref().iter().map(|s| s.get_ref().clone()).collect()
    }

    /// One `[[exemptions]]` entry.
    fn exemption(
        &mut self,
        f: &LoadedFile,
        e: &RawExemption,
        today: jiff::civil::Date,
    ) -> Exemption {
        let line = f
            .text
            .get(..e.sha256.span().start)
            .map_or(0, |t| t.matches('\n').count())
            + 1;
        let origin = format!("{}:{line}", f.path.display());
        let sha = e.sha256.get_ref().trim().to_ascii_lowercase();
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            self.err(
                f,
                e.sha256.span(),
                "`sha256` must be 64 hexadecimal digits",
                Some("`sha256sum FILE` prints it; hooks print a ready-to-paste exemption".into()),
            );
        }
        let rule = match &e.rule {
            None => None,
            Some(r) => match rule_id(r.get_ref()) {
                Some(id) => Some(id),
                None => {
                    self.err(
                        f,
                        r.span(),
                        format!("unknown rule `{}`", r.get_ref()),
                        Some("`modelgate rules` lists the detection rules; POL001, POL002 and POL003 are policy rules".into()),
                    );
                    None
                }
            },
        };
        let reason = e.reason.get_ref().trim().to_string();
        if reason.is_empty() {
            self.err(
                f,
                e.reason.span(),
                "an exemption needs a non-empty reason",
                Some("say why this exact file is trusted".into()),
            );
        } else if super::is_placeholder_reason(&reason) {
            self.err(
                f,
                e.reason.span(),
                "the exemption's reason is still a placeholder",
                Some("replace it with why this exact file is trusted (who reviewed it, where it comes from)".into()),
            );
        }
        let expires = e
            .expires
            .as_ref()
            .and_then(|x| match parse_date(x.get_ref()) {
                Some(d) => Some(d),
                None => {
                    self.err(
                        f,
                        x.span(),
                        "`expires` must be a date",
                        Some("write expires = 2026-12-31".into()),
                    );
                    None
                }
            });
        if let Some(d) = expires
            && d < today
        {
            self.warn(
                f,
                e.expires.as_ref().map_or(0..0, Spanned::span),
                format!("exemption expired on {d} and no longer applies"),
                Some("re-review the file: renew `expires` or remove the exemption".into()),
            );
        }
        let note = e.note.as_ref().map(|n| n.get_ref().clone());
        Exemption {
            sha256: sha,
            rule,
            reason,
            expires,
            note,
            origin,
        }
    }

    /// A global both allowed and denied (in any files) is an error.
    fn allowed_and_denied(
        &mut self,
        files: &[LoadedFile],
        allow: &[(AllowedGlobal, usize, Range<usize>)],
        deny: &[(String, String)],
    ) {
        for (g, fi, span) in allow {
            if deny.iter().any(|(m, n)| *m == g.module && *n == g.name)
                && let Some(f) = files.get(*fi)
            {
                self.err(
                    f,
                    span.clone(),
                    format!("`{}.{}` is both allowed and denied", g.module, g.name),
                    Some("remove it from one of the lists".into()),
                );
            }
        }
    }

    /// The policy, or every error; diagnostics in reading order.
    fn finish(
        mut self,
        files: &[LoadedFile],
        m: Merged,
        today: jiff::civil::Date,
    ) -> Result<Policy, Vec<Diagnostic>> {
        let proxy = super::proxy::compile(files, &mut self.diags);
        // Every key was checked above, so this cannot fail.
        let limits = m.limits.try_into::<Limits>().unwrap_or_default();
        // Report in reading order whatever order the checks ran in.
        self.diags
            .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        if self.diags.iter().any(Diagnostic::is_error) {
            return Err(self.diags);
        }
        let used = m
            .exemptions
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect();
        Ok(Policy {
            files: files.iter().map(|f| f.path.clone()).collect(),
            actions: m.actions,
            daemon: m.daemon,
            daemon_signature: m.daemon_signature,
            on_error: m.on_error,
            limits,
            allow: m.allow.into_iter().map(|(g, _, _)| g).collect(),
            deny: m.deny,
            paths: m.paths,
            scopes: m.scopes,
            exemptions: m.exemptions,
            used,
            today,
            warnings: self.diags,
            proxy,
        })
    }
}

/// The trusted keys of a `require-signature`, resolved against the policy
/// file's folder; `None` after reporting, through `report(span, message,
/// help)`, an empty list or every key that cannot be used.
pub(super) fn trusted_key_files(
    dir: &Path,
    keys: &Spanned<Vec<Spanned<String>>>,
    mut report: impl FnMut(Range<usize>, String, String),
) -> Option<Vec<PathBuf>> {
    let mut ok = true;
    if keys.get_ref().is_empty() {
        report(
            keys.span(),
            "`require-signature` needs at least one trusted public key".into(),
            "e.g. keys = [\"keys/team.pub\"] (relative to this policy file)".into(),
        );
        ok = false;
    }
    let mut files = Vec::new();
    for k in keys.get_ref() {
        let path = dir.join(k.get_ref());
        match crate::sign::PublicKey::from_file(&path) {
            Ok(_) => files.push(path),
            Err(e) => {
                report(
                    k.span(),
                    format!("trusted key `{}` cannot be used: {e}", k.get_ref()),
                    "key paths are relative to the policy file; a key is a PEM public key \
                     (`modelgate sign` prints one)"
                        .into(),
                );
                ok = false;
            }
        }
    }
    ok.then_some(files)
}

/// What a bad repo glob's diagnostic suggests.
pub(super) const REPO_GLOB_HELP: &str =
    "write a Hugging Face repo id or glob: \"org/name\", \"org/*\"";

/// Compiles a list of repo-id globs (`/` is literal, as in repo ids), or
/// `None` after reporting every glob that does not compile through
/// `report(glob, message)`.
pub(super) fn repo_glob_set(
    list: &[Spanned<String>],
    mut report: impl FnMut(&Spanned<String>, String),
) -> Option<(GlobSet, Vec<String>)> {
    let mut builder = GlobSetBuilder::new();
    let mut names = Vec::new();
    let mut ok = true;
    for g in list {
        match GlobBuilder::new(g.get_ref())
            .literal_separator(true)
            .build()
        {
            Ok(glob) => {
                builder.add(glob);
                names.push(g.get_ref().clone());
            }
            Err(e) => {
                ok = false;
                report(
                    g,
                    format!("invalid repo glob `{}`: {}", g.get_ref(), e.kind()),
                );
            }
        }
    }
    if !ok {
        return None;
    }
    builder.build().ok().map(|set| (set, names))
}

/// The directory a policy file's relative paths (keys, `extends`, path
/// globs) start from.
pub(super) fn policy_dir(file: &Path) -> &Path {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

const GLOBAL_HELP: &str = "write `module.Name` (e.g. \"collections.OrderedDict\"), or `module:Qual.Name` when the name itself has dots";

/// Splits `module.Name` at the last dot, or `module:Qual.Name` at the colon.
fn split_global(s: &str) -> Option<(String, String)> {
    let (module, name) = match s.split_once(':') {
        Some(parts) => parts,
        None => s.rsplit_once('.')?,
    };
    let ident = |p: &str| {
        let mut chars = p.chars();
        chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
            && chars.all(|c| c.is_alphanumeric() || c == '_')
    };
    let dotted = |p: &str| p.split('.').all(ident);
    (dotted(module) && dotted(name)).then(|| (module.to_string(), name.to_string()))
}

/// Normalises a rule reference (id or name, any case) to its id.
fn rule_id(s: &str) -> Option<&'static str> {
    rules::find(s).map(|r| r.id)
}

fn parse_date(v: &toml::Value) -> Option<jiff::civil::Date> {
    match v {
        toml::Value::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => {
            let d = dt.date?;
            jiff::civil::Date::new(
                i16::try_from(d.year).ok()?,
                i8::try_from(d.month).ok()?,
                i8::try_from(d.day).ok()?,
            )
            .ok()
        }
        toml::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_names() {
        assert_eq!(
            split_global("os.system"),
            Some(("os".into(), "system".into()))
        );
        assert_eq!(
            split_global("torch._utils._rebuild_tensor_v2"),
            Some(("torch._utils".into(), "_rebuild_tensor_v2".into()))
        );
        assert_eq!(
            split_global("collections:OrderedDict.fromkeys"),
            Some(("collections".into(), "OrderedDict.fromkeys".into()))
        );
        assert_eq!(split_global("system"), None);
        assert_eq!(split_global("os."), None);
        assert_eq!(split_global("os.sys tem"), None);
    }
}
