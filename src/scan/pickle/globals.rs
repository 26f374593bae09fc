//! Which imports an unpickler may perform. The knowledge lives in
//! `data/pickle_globals.tsv` (one row per entry, each with a reason); this
//! module parses it once and classifies `(module, name)` pairs.
//!
//! Order matters and is fixed: deny rows first (the policy's extra denies,
//! then the built-in ones), then exact allow rows, and everything else is
//! unknown. Names are matched the way `pickle.Unpickler.find_class` resolves
//! them: the module is imported and a dotted name is walked attribute by
//! attribute, so `("posixpath", "os.system")` is `os.system` and
//! `("torch", "hub.load")` is `torch.hub.load`.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

const TABLE: &str = include_str!("../data/pickle_globals.tsv");

/// What importing a global means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// Exactly listed as safe.
    Safe,
    /// Known dangerous; the reason says what it does.
    Dangerous(String),
    /// Not known to be safe.
    Unknown,
}

/// Globals allowed or denied on top of the built-in tables, as
/// `module.qualname` strings split into their two parts by the adapter that
/// built them (the policy).
#[derive(Debug, Clone, Default)]
pub struct GlobalLists {
    allow: HashSet<(String, String)>,
    deny: Vec<(String, String)>,
}

impl GlobalLists {
    /// `allow` and `deny` hold `(module, qualname)` pairs. Allowed pairs
    /// win over the built-in denylist: the policy only lets a team allow a
    /// built-in-denied global with an explicit override and a reason
    /// (see [`builtin_denial`]).
    pub fn new(
        allow: impl IntoIterator<Item = (String, String)>,
        deny: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        GlobalLists {
            allow: allow.into_iter().collect(),
            deny: deny.into_iter().collect(),
        }
    }

    fn allows(&self, module: &str, name: &str) -> bool {
        self.allow.iter().any(|(m, n)| m == module && n == name)
    }
}

#[derive(Debug, Default)]
struct Tables {
    allow: HashSet<(&'static str, &'static str)>,
    /// Exact qualnames (and attribute paths below them), keyed by full path.
    deny: HashMap<String, &'static str>,
    /// Module paths denied with everything under them.
    deny_module: HashMap<&'static str, &'static str>,
    /// Top-level names dangerous wherever they appear in a dotted path.
    deny_any: HashMap<&'static str, &'static str>,
    /// Attribute names that reach interpreter internals from any object.
    deny_attr: HashMap<&'static str, &'static str>,
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = Tables::default();
        for line in TABLE.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let mut cols = line.split('\t');
            let (Some(kind), Some(module), Some(name), Some(reason)) =
                (cols.next(), cols.next(), cols.next(), cols.next())
            else {
                continue; // malformed rows are caught by the table test
            };
            match kind {
                "allow" => {
                    t.allow.insert((module, name));
                }
                "deny" => {
                    t.deny.insert(format!("{module}.{name}"), reason);
                }
                "deny-module" => {
                    t.deny_module.insert(module, reason);
                }
                "deny-any" => {
                    t.deny_module.insert(module, reason);
                    t.deny_any.insert(module, reason);
                }
                "deny-attr" => {
                    t.deny_attr.insert(name, reason);
                }
                _ => {}
            }
        }
        t
    })
}

/// Maps Python 2 module names to the ones Python 3's unpickler imports
/// (`_compat_pickle.IMPORT_MAPPING`, the part that matters here).
pub fn normalize_module(module: &str) -> &str {
    match module {
        "__builtin__" | "exceptions" => "builtins",
        "copy_reg" => "copyreg",
        "cPickle" => "pickle",
        "commands" => "subprocess",
        "urllib2" => "urllib.request",
        "httplib" => "http.client",
        "thread" => "_thread",
        "Queue" => "queue",
        _ => module,
    }
}

/// Whether the built-in denylist rejects this global, and why. The policy
/// uses this to refuse allowing a dangerous global without an override.
pub fn builtin_denial(module: &str, name: &str) -> Option<&'static str> {
    let module = normalize_module(module);
    let full = format!("{module}.{name}");
    let t = tables();
    // The name is walked attribute by attribute from the imported module:
    // any step naming a deny-any module (`posixpath` + `os.system`,
    // `numpy` + `sys.modules`) reaches that module. Module paths themselves
    // are matched by prefix below (`numpy.random._pickle` is not `_pickle`).
    // Attributes such as `__builtins__` or `__globals__` lead from any
    // harmless object to eval and every module, whatever the import.
    for part in name.split('.') {
        if let Some(reason) = t.deny_any.get(part).or_else(|| t.deny_attr.get(part)) {
            return Some(reason);
        }
    }
    // Module paths and their submodules / attributes, at every prefix.
    for (i, c) in full.char_indices() {
        if c == '.' {
            let prefix = &full[..i];
            if let Some(reason) = t.deny_module.get(prefix).or_else(|| t.deny.get(prefix)) {
                return Some(reason);
            }
        }
    }
    t.deny_module
        .get(full.as_str())
        .or_else(|| t.deny.get(&full))
        .copied()
}

/// Which unpickler resolves a pickle's imports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Resolver {
    /// Python's `find_class`: whatever is named gets imported.
    #[default]
    Python,
    /// TorchScript's (`torch.jit.load`, which `torch.load` hands TorchScript
    /// archives to): `__torch__.*` names are classes compiled from the
    /// archive's own TorchScript code, not Python imports.
    TorchScript,
}

/// [`classify`] as `resolver` would resolve the import.
pub fn classify_for(module: &str, name: &str, extra: &GlobalLists, resolver: Resolver) -> Class {
    let class = classify(module, name, extra);
    let torchscript_class = module == "__torch__" || module.starts_with("__torch__.");
    if class == Class::Unknown && resolver == Resolver::TorchScript && torchscript_class {
        return Class::Safe;
    }
    class
}

/// Classifies one import the unpickler would perform.
pub fn classify(module: &str, name: &str, extra: &GlobalLists) -> Class {
    let module = normalize_module(module);
    let full = format!("{module}.{name}");
    for (m, n) in &extra.deny {
        let denied = format!("{m}.{n}");
        if full == denied || full.starts_with(&format!("{denied}.")) {
            return Class::Dangerous("denied by the team policy".to_string());
        }
    }
    if extra.allows(module, name) {
        return Class::Safe;
    }
    if let Some(reason) = builtin_denial(module, name) {
        return Class::Dangerous(reason.to_string());
    }
    if tables().allow.contains(&(module, name)) {
        return Class::Safe;
    }
    Class::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(m: &str, n: &str) -> Class {
        classify(m, n, &GlobalLists::default())
    }

    #[test]
    fn every_row_is_well_formed() {
        let mut seen = HashSet::new();
        for (i, line) in TABLE.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let cols: Vec<_> = line.split('\t').collect();
            assert!(
                seen.insert((cols[0], cols[1], cols.get(2).copied())),
                "line {} repeats an earlier row",
                i + 1
            );
            assert_eq!(cols.len(), 4, "line {}: {line:?}", i + 1);
            assert!(
                ["allow", "deny", "deny-module", "deny-any", "deny-attr"].contains(&cols[0]),
                "line {}",
                i + 1
            );
            assert!(!cols[3].trim().is_empty(), "line {} has no reason", i + 1);
            if cols[0] == "deny-attr" {
                assert_eq!(
                    cols[1],
                    "*",
                    "line {}: attribute rows name no module",
                    i + 1
                );
            } else if cols[0].starts_with("deny-") {
                assert_eq!(
                    cols[2],
                    "*",
                    "line {}: module rows name no attribute",
                    i + 1
                );
            } else {
                assert_ne!(
                    cols[2],
                    "*",
                    "line {}: wildcards are for module rows only",
                    i + 1
                );
            }
        }
    }

    /// Allow rows must never be shadowed by deny rows: an entry in both
    /// would mean the table says two things.
    #[test]
    fn no_allowed_global_is_denied() {
        for &(m, n) in &tables().allow {
            assert_eq!(
                builtin_denial(m, n),
                None,
                "{m}.{n} is both allowed and denied"
            );
        }
    }

    #[test]
    fn exact_allow() {
        assert_eq!(class("torch._utils", "_rebuild_tensor_v2"), Class::Safe);
        assert_eq!(class("collections", "OrderedDict"), Class::Safe);
        assert_eq!(class("__builtin__", "set"), Class::Safe);
        assert_eq!(class("copy_reg", "_reconstructor"), Class::Safe);
    }

    #[test]
    fn deny_by_module_and_alias() {
        assert!(matches!(class("os", "system"), Class::Dangerous(_)));
        assert!(matches!(class("posix", "system"), Class::Dangerous(_)));
        assert!(matches!(class("__builtin__", "eval"), Class::Dangerous(_)));
        assert!(matches!(
            class("asyncio.unix_events", "_UnixSubprocessTransport._start"),
            Class::Dangerous(_)
        ));
        assert!(matches!(class("torch.hub", "load"), Class::Dangerous(_)));
        assert!(matches!(class("torch", "hub.load"), Class::Dangerous(_)));
    }

    /// GHSA-5j3x-jp52-966f: a dotted name walks into another module.
    #[test]
    fn dotted_name_components_are_checked() {
        assert!(matches!(
            class("posixpath", "os.system"),
            Class::Dangerous(_)
        ));
        assert!(matches!(class("numpy", "sys.modules"), Class::Dangerous(_)));
        assert!(matches!(
            class("torch", "serialization.load"),
            Class::Dangerous(_)
        ));
    }

    #[test]
    fn dotted_name_of_allowed_class_is_not_allowed() {
        assert_eq!(class("collections", "OrderedDict.fromkeys"), Class::Unknown);
    }

    #[test]
    fn torchscript_classes_are_the_archives_own() {
        let ts =
            |m: &str, n: &str| classify_for(m, n, &GlobalLists::default(), Resolver::TorchScript);
        assert_eq!(
            ts("__torch__.torchvision.models.resnet", "ResNet"),
            Class::Safe
        );
        assert_eq!(ts("__torch__", "Net"), Class::Safe);
        assert!(matches!(
            ts("__torch__", "Net.__globals__"),
            Class::Dangerous(_)
        ));
        assert!(matches!(ts("os", "system"), Class::Dangerous(_)));
        let py = classify_for(
            "__torch__",
            "Net",
            &GlobalLists::default(),
            Resolver::Python,
        );
        assert_eq!(py, Class::Unknown);
    }

    #[test]
    fn unknown_is_unknown() {
        assert_eq!(class("mypkg.models", "TinyNet"), Class::Unknown);
        assert_eq!(class("__main__", "TrainConfig"), Class::Unknown);
    }

    #[test]
    fn team_lists() {
        let extra = GlobalLists::new(
            [("mypkg.models".to_string(), "TinyNet".to_string())],
            [("numpy".to_string(), "dtype".to_string())],
        );
        assert_eq!(classify("mypkg.models", "TinyNet", &extra), Class::Safe);
        assert!(matches!(
            classify("numpy", "dtype", &extra),
            Class::Dangerous(_)
        ));
    }
}
