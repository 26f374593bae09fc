//! The rule registry. A rule is data: a stable id, a default verdict, what it
//! detects, why it matters and how to fix it. One file per family; `all()`
//! lists every rule, and `modelgate rules` prints them.
//!
//! Rule ids never change meaning and are never reused: policies, exemptions
//! and SARIF fingerprints refer to them.

use super::finding::Verdict;

mod archive;
mod general;
mod gguf;
mod keras;
mod onnx;
mod pickle;
mod policy;
mod safetensors;
mod tensorflow;
mod torchscript;

pub use archive::*;
pub use general::*;
pub use gguf::*;
pub use keras::*;
pub use onnx::*;
pub use pickle::*;
pub use policy::*;
pub use safetensors::*;
pub use tensorflow::*;
pub use torchscript::*;

/// Every family's rule list, one per line.
const FAMILIES: &[&[&Rule]] = &[
    general::RULES,
    archive::RULES,
    pickle::RULES,
    keras::RULES,
    gguf::RULES,
    safetensors::RULES,
    onnx::RULES,
    tensorflow::RULES,
    torchscript::RULES,
    policy::RULES,
];

/// A rule: what the core finds, or what the policy enforces (POL).
#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    /// Stable id, e.g. `PKL001`.
    pub id: &'static str,
    /// Kebab-case name, e.g. `pickle-dangerous-global`.
    pub name: &'static str,
    /// Verdict of a finding of this rule unless the finding grades itself.
    pub verdict: Verdict,
    /// One line: what the rule detects.
    pub summary: &'static str,
    /// Why it is dangerous, for `modelgate rules ID` and SARIF help text.
    pub explanation: &'static str,
    /// What the user should do instead.
    pub remediation: &'static str,
    /// CVEs, advisories and specs behind the rule.
    pub references: &'static [&'static str],
}

/// Every rule the core can report, in id order.
pub fn all() -> Vec<&'static Rule> {
    let mut rules: Vec<&'static Rule> = FAMILIES.iter().flat_map(|f| f.iter().copied()).collect();
    rules.sort_by_key(|r| r.id);
    rules
}

/// Whether the policy, not the scanner, reports `rule` (the POL family):
/// such a rule fires on a file together with the policy that governs it.
pub fn enforced_by_policy(rule: &Rule) -> bool {
    policy::RULES.iter().any(|r| std::ptr::eq(*r, rule))
}

impl serde::Serialize for Rule {
    /// A rule crosses into reports as its stable id.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id)
    }
}

/// Looks a rule up by id (case-insensitive) or by name.
pub fn find(key: &str) -> Option<&'static Rule> {
    all()
        .into_iter()
        .find(|r| r.id.eq_ignore_ascii_case(key) || r.name == key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_and_names_are_unique_and_well_formed() {
        let mut ids = HashSet::new();
        let mut names = HashSet::new();
        for r in all() {
            assert!(ids.insert(r.id), "duplicate rule id {}", r.id);
            assert!(names.insert(r.name), "duplicate rule name {}", r.name);
            assert!(
                r.id.len() >= 5
                    && r.id
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            );
            assert!(r.name.chars().all(|c| c.is_ascii_lowercase() || c == '-'));
            assert_ne!(r.verdict, Verdict::Clean, "{} has no severity", r.id);
            for reference in r.references {
                assert!(
                    !reference.contains(char::is_whitespace),
                    "{}: references are ids or URLs: {reference:?}",
                    r.id
                );
            }
            for text in [r.summary, r.explanation, r.remediation] {
                assert!(!text.trim().is_empty(), "{} lacks text", r.id);
            }
        }
    }
}
