//! The policy file as written: serde types that mirror `policy.toml` one to
//! one, with every user-written value wrapped in [`Spanned`] so that the
//! validator can point at it.
//!
//! These types only enforce *shape* (known keys, the right TOML types):
//! `deny_unknown_fields` everywhere, so a typo such as `malicous` is an error
//! instead of a silently ignored key. Everything that needs judgement (is
//! `blok` an action, does the glob compile, is the date real, is the global
//! on the built-in denylist) is left to `compile`, which collects every
//! problem instead of stopping at the first.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use toml::Spanned;

/// One policy file, before `extends` is followed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawPolicy {
    pub extends: Option<Spanned<String>>,
    pub actions: Option<RawActions>,
    pub daemon: Option<RawDaemon>,
    pub hook: Option<RawHook>,
    /// Kept as a table so that each key can be checked (and merged across
    /// `extends`) individually, with its own span.
    pub limits: Option<BTreeMap<Spanned<String>, Spanned<toml::Value>>>,
    pub pickle: Option<RawPickle>,
    #[serde(default)]
    pub paths: Vec<RawPathRule>,
    #[serde(default)]
    pub exemptions: Vec<RawExemption>,
    /// `[proxy]`: the registry gate (`modelgate proxy`).
    pub proxy: Option<super::proxy::RawProxy>,
}

/// What to do per verdict. Action names are validated later so that every
/// misspelt one is reported.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawActions {
    pub malicious: Option<Spanned<String>>,
    pub suspicious: Option<Spanned<String>>,
    pub info: Option<Spanned<String>>,
    pub unverifiable: Option<Spanned<String>>,
}

/// `[daemon]`: the actions, plus a signature requirement scoped by Hugging
/// Face repo id (cache paths say nothing a repository glob could match).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawDaemon {
    pub malicious: Option<Spanned<String>>,
    pub suspicious: Option<Spanned<String>>,
    pub info: Option<Spanned<String>>,
    pub unverifiable: Option<Spanned<String>>,
    pub require_signature: Option<Spanned<RawRequireSignature>>,
}

impl RawDaemon {
    pub fn actions(&self) -> RawActions {
        RawActions {
            malicious: self.malicious.clone(),
            suspicious: self.suspicious.clone(),
            info: self.info.clone(),
            unverifiable: self.unverifiable.clone(),
        }
    }
}

/// `require-signature = { keys = [...] }`: files must carry a valid OpenSSF
/// Model Signing signature by one of these public keys (paths relative to
/// the policy file). `repos` is only accepted under `[daemon]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawRequireSignature {
    pub keys: Spanned<Vec<Spanned<String>>>,
    pub repos: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawHook {
    pub on_error: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawPickle {
    #[serde(default)]
    pub allow: Vec<Spanned<RawAllow>>,
    #[serde(default)]
    pub deny: Vec<Spanned<String>>,
}

/// An allowed global: either a bare `"module.Name"` string or a table that
/// can carry `override = true` and a `reason`.
#[derive(Debug)]
pub struct RawAllow {
    pub global: Spanned<String>,
    pub override_builtin: Option<Spanned<bool>>,
    pub reason: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawAllowTable {
    global: Spanned<String>,
    #[serde(rename = "override")]
    override_builtin: Option<Spanned<bool>>,
    reason: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawAllow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawAllow;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a global name \"module.Name\" or a table { global = \"module.Name\", override = true, reason = \"...\" }")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawAllow, E> {
                // The string's span is the enclosing `Spanned<RawAllow>`'s.
                Ok(RawAllow {
                    global: Spanned::new(0..0, s.to_string()),
                    override_builtin: None,
                    reason: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawAllow, A::Error> {
                let t = RawAllowTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawAllow {
                    global: t.global,
                    override_builtin: t.override_builtin,
                    reason: t.reason,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `[[paths]]`: settings for files whose repository path matches a glob.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawPathRule {
    pub name: Option<Spanned<String>>,
    pub globs: Spanned<Vec<Spanned<String>>>,
    pub malicious: Option<Spanned<String>>,
    pub suspicious: Option<Spanned<String>>,
    pub info: Option<Spanned<String>>,
    pub unverifiable: Option<Spanned<String>>,
    pub require_format: Option<Spanned<Vec<Spanned<String>>>>,
    pub require_signature: Option<Spanned<RawRequireSignature>>,
}

/// `[[exemptions]]`: a finding accepted for one exact file content.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawExemption {
    pub sha256: Spanned<String>,
    pub rule: Option<Spanned<String>>,
    pub reason: Spanned<String>,
    /// A TOML date (`2026-06-30`) or a string holding one.
    pub expires: Option<Spanned<toml::Value>>,
    /// Free text for humans (which file this was, who approved it).
    pub note: Option<Spanned<String>>,
}
