//! The `[proxy]` table: what `modelgate proxy` does with each verdict, which
//! repositories may be pulled through it at all, which model formats it
//! lets through, and which repositories must come signed.
//!
//! Merged across `extends` key by key (the later file wins), validated with
//! the same diagnostics as the rest of the policy.

use std::ops::Range;
use std::path::PathBuf;

use globset::GlobSet;
use serde::Deserialize;
use toml::Spanned;

use super::compile::LoadedFile;
use super::schema::RawRequireSignature;
use super::{Action, Diagnostic, Severity};
use crate::scan::{FileReport, ScanStatus, Verdict};

/// `[proxy]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawProxy {
    pub malicious: Option<Spanned<String>>,
    pub suspicious: Option<Spanned<String>>,
    pub info: Option<Spanned<String>>,
    pub unverifiable: Option<Spanned<String>>,
    pub allow_repos: Option<Spanned<Vec<Spanned<String>>>>,
    pub deny_repos: Option<Spanned<Vec<Spanned<String>>>>,
    pub require_format: Option<Spanned<Vec<Spanned<String>>>>,
    pub require_signature: Option<Spanned<RawRequireSignature>>,
}

/// Signed snapshots required for some repositories.
#[derive(Debug)]
pub struct ProxySignature {
    pub keys: crate::sign::TrustedKeys,
    pub key_files: Vec<PathBuf>,
    repos: GlobSet,
    pub repo_globs: Vec<String>,
}

impl ProxySignature {
    pub fn applies_to(&self, repo: &str) -> bool {
        self.repos.is_match(repo)
    }
}

/// The compiled `[proxy]` table.
#[derive(Debug)]
pub struct ProxyPolicy {
    pub malicious: Action,
    pub suspicious: Action,
    pub info: Action,
    pub unverifiable: Action,
    allow: Option<(GlobSet, Vec<String>)>,
    deny: Option<(GlobSet, Vec<String>)>,
    require_format: Option<Vec<String>>,
    pub require_signature: Option<ProxySignature>,
}

impl Default for ProxyPolicy {
    fn default() -> Self {
        ProxyPolicy {
            malicious: Action::Block,
            suspicious: Action::Block,
            info: Action::Allow,
            unverifiable: Action::Warn,
            allow: None,
            deny: None,
            require_format: None,
            require_signature: None,
        }
    }
}

/// Why the proxy refuses a file, or lets it through with a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateDecision {
    pub action: Action,
    pub reason: String,
}

const GATE_ACTIONS: &[Action] = &[Action::Allow, Action::Warn, Action::Block];

struct Diags<'a> {
    out: &'a mut Vec<Diagnostic>,
}

impl Diags<'_> {
    fn push(
        &mut self,
        sev: Severity,
        f: &LoadedFile,
        span: Range<usize>,
        msg: String,
        help: Option<String>,
    ) {
        self.out
            .push(Diagnostic::at(sev, &f.path, &f.text, span, msg, help));
    }

    fn action(&mut self, f: &LoadedFile, v: &Option<Spanned<String>>) -> Option<Action> {
        let v = v.as_ref()?;
        match GATE_ACTIONS.iter().find(|a| a.as_str() == v.get_ref()) {
            Some(a) => Some(*a),
            None => {
                let help = if v.get_ref() == "quarantine" {
                    "`quarantine` is only meaningful for the daemon ([daemon]); the proxy blocks"
                } else {
                    "in [proxy] use one of `allow`, `warn`, `block`"
                };
                self.push(
                    Severity::Error,
                    f,
                    v.span(),
                    format!("unknown action `{}` in [proxy]", v.get_ref()),
                    Some(help.into()),
                );
                None
            }
        }
    }

    fn repo_globs(
        &mut self,
        f: &LoadedFile,
        list: &Spanned<Vec<Spanned<String>>>,
    ) -> Option<(GlobSet, Vec<String>)> {
        super::compile::repo_glob_set(list.get_ref(), |g, msg| {
            self.push(
                Severity::Error,
                f,
                g.span(),
                msg,
                Some(super::compile::REPO_GLOB_HELP.into()),
            )
        })
    }

    fn signature(
        &mut self,
        f: &LoadedFile,
        raw: &Spanned<RawRequireSignature>,
    ) -> Option<ProxySignature> {
        let r = raw.get_ref();
        let dir = super::compile::policy_dir(&f.path);
        let key_files = super::compile::trusted_key_files(dir, &r.keys, |span, msg, help| {
            self.push(Severity::Error, f, span, msg, Some(help))
        });
        let Some(repos) = &r.repos else {
            self.push(
                Severity::Error,
                f,
                raw.span(),
                "`[proxy] require-signature` needs `repos`".into(),
                Some("say which repositories must come signed, e.g. repos = [\"acme/*\"]".into()),
            );
            return None;
        };
        let globs = self.repo_globs(f, repos);
        let (repos, repo_globs) = globs?;
        let key_files = key_files?;
        let keys = crate::sign::TrustedKeys::from_files(&key_files).ok()?;
        Some(ProxySignature {
            keys,
            key_files,
            repos,
            repo_globs,
        })
    }
}

/// Compiles the `[proxy]` tables of `files` (base first) into one.
pub(super) fn compile(files: &[LoadedFile], diags: &mut Vec<Diagnostic>) -> ProxyPolicy {
    let mut d = Diags { out: diags };
    let mut p = ProxyPolicy::default();
    for f in files {
        let Some(t) = &f.raw.proxy else { continue };
        let slots = [
            (&t.malicious, &mut p.malicious),
            (&t.suspicious, &mut p.suspicious),
            (&t.info, &mut p.info),
            (&t.unverifiable, &mut p.unverifiable),
        ];
        for (v, slot) in slots {
            if let Some(a) = d.action(f, v) {
                *slot = a;
            }
        }
        if let Some(l) = &t.allow_repos {
            if l.get_ref().is_empty() {
                d.push(
                    Severity::Error,
                    f,
                    l.span(),
                    "`allow-repos` is empty, which would refuse every repository".into(),
                    Some("leave it out to allow every repository not denied".into()),
                );
            }
            p.allow = d.repo_globs(f, l);
        }
        if let Some(l) = &t.deny_repos {
            p.deny = d.repo_globs(f, l);
        }
        if let Some(l) = &t.require_format {
            if l.get_ref().is_empty() {
                d.push(
                    Severity::Error,
                    f,
                    l.span(),
                    "`require-format` is empty, which would forbid every model format".into(),
                    Some("list the allowed formats, e.g. [\"safetensors\", \"gguf\"]".into()),
                );
            }
            for fmt in l.get_ref() {
                if crate::scan::Kind::from_name(fmt.get_ref()).is_none() {
                    d.push(
                        Severity::Warning,
                        f,
                        fmt.span(),
                        format!(
                            "`{}` is not a format name the scanner reports",
                            fmt.get_ref()
                        ),
                        None,
                    );
                }
            }
            p.require_format = Some(l.get_ref().iter().map(|s| s.get_ref().clone()).collect());
        }
        if let Some(r) = &t.require_signature {
            p.require_signature = d.signature(f, r);
        }
    }
    p
}

impl ProxyPolicy {
    /// The table in a few lines, for `modelgate policy`.
    pub fn describe(&self) -> Vec<String> {
        let mut out = vec![format!(
            "proxy: malicious → {}, suspicious → {}, info → {}, unverifiable → {}",
            self.malicious, self.suspicious, self.info, self.unverifiable
        )];
        if let Some((_, globs)) = &self.allow {
            out.push(format!("proxy: only repos {}", globs.join(", ")));
        }
        if let Some((_, globs)) = &self.deny {
            out.push(format!("proxy: never repos {}", globs.join(", ")));
        }
        if let Some(f) = &self.require_format {
            out.push(format!("proxy: model formats {} only", f.join(", ")));
        }
        if let Some(sig) = &self.require_signature {
            let keys: Vec<String> = sig
                .key_files
                .iter()
                .map(|k| k.display().to_string())
                .collect();
            out.push(format!(
                "proxy: snapshots of {} signed by {}",
                sig.repo_globs.join(", "),
                keys.join(", ")
            ));
        }
        out
    }

    /// Why `repo` may not be pulled at all, if it may not.
    pub fn repo_refusal(&self, repo: &str) -> Option<String> {
        if let Some((set, _)) = &self.deny
            && set.is_match(repo)
        {
            return Some(format!(
                "repository {repo} is on the proxy's deny list (deny-repos)"
            ));
        }
        match &self.allow {
            Some((set, _)) if !set.is_match(repo) => Some(format!(
                "repository {repo} is not on the proxy's allow list (allow-repos)"
            )),
            _ => None,
        }
    }

    /// The action for a scanned file. An inconclusive scan takes the
    /// `unverifiable` action when that is stricter than its verdict's: the
    /// gate cannot vouch for what it could not read.
    pub fn decide(&self, report: &FileReport) -> GateDecision {
        let mut action = match report.verdict {
            Verdict::Clean => Action::Allow,
            Verdict::Info => self.info,
            Verdict::Suspicious => self.suspicious,
            Verdict::Malicious => self.malicious,
        };
        let mut reason = format!("verdict {}", report.verdict);
        if let ScanStatus::Inconclusive { .. } = report.status
            && self.unverifiable > action
        {
            action = self.unverifiable;
            reason = "the scan was inconclusive".to_string();
        }
        let is_model = !matches!(report.status, ScanStatus::Skipped { .. });
        if let Some(formats) = &self.require_format
            && is_model
            && !formats
                .iter()
                .any(|f| f.eq_ignore_ascii_case(report.format.name()))
        {
            action = Action::Block;
            reason = format!(
                "format {} is not in [proxy] require-format ({})",
                report.format,
                formats.join(", ")
            );
        }
        GateDecision { action, reason }
    }
}
