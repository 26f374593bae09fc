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

/// What importing a global means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// Exactly listed as safe.
    Safe,
    /// A class of a well-known library whose reconstruction is data only:
    /// harmless, but loading needs that library installed.
    Profile(&'static str),
    /// Known dangerous; the reason says what it does.
    Dangerous(String),
    /// Not known to be safe.
    Unknown,
}

impl Class {
    /// Safe to import and call once its [`Audit`] holds.
    pub fn is_trusted(&self) -> bool {
        matches!(self, Class::Safe | Class::Profile(_))
    }
}

/// Which of a trusted callable's arguments it calls, instantiates, imports
/// or opens (the allow table's `calls` column). An allow row is only sound
/// when the arguments named here cannot be steered to code: the walker
/// checks them at every call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audit {
    /// Uses its arguments as data only.
    Data,
    /// Calls (or instantiates, imports, opens) these arguments.
    Calls(Vec<CallSpec>),
}

/// One called argument: which one, and what it is called with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallSpec {
    /// The argument that gets called.
    pub arg: ArgPos,
    /// What it is called with.
    pub with: Forward,
}

/// Which argument of a call a [`CallSpec`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgPos {
    /// The argument at this position (0-based).
    At(usize),
    /// Every argument (`*`).
    Every,
}

/// What a called argument receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Arguments the file does not show (`N`).
    Unseen,
    /// Argument `M` alone (`N(M)`).
    One(usize),
    /// The items of the tuple in argument `M` (`N(*M)`).
    Star(usize),
    /// Arguments `M` onwards (`N(M..)`).
    From(usize),
    /// Argument `N` is a container whose items are called later, with
    /// arguments the file does not show (`N[]`: backward hooks).
    Items,
}

impl Audit {
    /// Parses the `calls` column: `none`, `*`, or a comma-separated list of
    /// `N`, `N(M)`, `N(*M)`, `N(M..)` and `N[]`.
    pub fn parse(text: &str) -> Option<Audit> {
        let text = text.trim();
        if text == "none" {
            return Some(Audit::Data);
        }
        let mut specs = Vec::new();
        for item in text.split(',') {
            let item = item.trim();
            if item == "*" {
                specs.push(CallSpec {
                    arg: ArgPos::Every,
                    with: Forward::Unseen,
                });
                continue;
            }
            let (pos, with) = match item.find(['(', '[']) {
                None => (item, Forward::Unseen),
                Some(i) => {
                    let (pos, rest) = item.split_at(i);
                    let with = if rest == "[]" {
                        Forward::Items
                    } else {
                        let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
                        if let Some(m) = inner.strip_prefix('*') {
                            Forward::Star(m.parse().ok()?)
                        } else if let Some(m) = inner.strip_suffix("..") {
                            Forward::From(m.parse().ok()?)
                        } else {
                            Forward::One(inner.parse().ok()?)
                        }
                    };
                    (pos, with)
                }
            };
            specs.push(CallSpec {
                arg: ArgPos::At(pos.parse().ok()?),
                with,
            });
        }
        (!specs.is_empty()).then_some(Audit::Calls(specs))
    }
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
    allow: HashMap<(&'static str, &'static str), Audit>,
    /// Library classes: `(audit, reason)`.
    profile: HashMap<(&'static str, &'static str), (Audit, &'static str)>,
    /// Exact qualnames (and attribute paths below them), keyed by full path.
    deny: HashMap<String, &'static str>,
    /// Module paths denied with everything under them.
    deny_module: HashMap<&'static str, &'static str>,
    /// Top-level names dangerous wherever they appear in a dotted path.
    deny_any: HashMap<&'static str, &'static str>,
    /// Attribute names that reach interpreter internals from any object.
    deny_attr: HashMap<&'static str, &'static str>,
    /// `_compat_pickle.NAME_MAPPING`.
    compat_names: HashMap<(&'static str, &'static str), (&'static str, &'static str)>,
    /// `_compat_pickle.IMPORT_MAPPING`.
    compat_modules: HashMap<&'static str, &'static str>,
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = Tables::default();
        for cols in crate::tables::PICKLE_GLOBALS.rows() {
            // Malformed rows are rejected by the table test; here they only
            // fail closed (an allow row without a readable audit allows
            // nothing).
            match cols.as_slice() {
                ["allow", module, name, calls, _reason] => {
                    if let Some(audit) = Audit::parse(calls) {
                        t.allow.insert((module, name), audit);
                    }
                }
                ["profile", module, name, calls, reason] => {
                    if let Some(audit) = Audit::parse(calls) {
                        t.profile.insert((module, name), (audit, reason));
                    }
                }
                ["deny", module, name, reason] => {
                    t.deny.insert(format!("{module}.{name}"), reason);
                }
                ["deny-module", module, _, reason] => {
                    t.deny_module.insert(module, reason);
                }
                ["deny-any", module, _, reason] => {
                    t.deny_module.insert(module, reason);
                    t.deny_any.insert(module, reason);
                }
                ["deny-attr", _, name, reason] => {
                    t.deny_attr.insert(name, reason);
                }
                _ => {}
            }
        }
        for cols in crate::tables::COMPAT_PICKLE.rows() {
            match cols.as_slice() {
                ["name", m, n, m3, n3] => {
                    t.compat_names.insert((m, n), (m3, n3));
                }
                ["module", m, m3] => {
                    t.compat_modules.insert(m, m3);
                }
                _ => {}
            }
        }
        t
    })
}

/// The global Python 3's unpickler really imports for a protocol 0–2
/// stream (`find_class` with `fix_imports`): an exact `NAME_MAPPING` pair
/// first, else the module through `IMPORT_MAPPING`. Unmapped names come back
/// unchanged.
pub fn fix_imports(module: &str, name: &str) -> (String, String) {
    let t = tables();
    if let Some((m, n)) = t.compat_names.get(&(module, name)) {
        return (m.to_string(), n.to_string());
    }
    match t.compat_modules.get(module) {
        Some(m) => (m.to_string(), name.to_string()),
        None => (module.to_string(), name.to_string()),
    }
}

/// Whether the built-in denylist rejects this global, and why. The policy
/// uses this to refuse allowing a dangerous global without an override;
/// the name is denied when it is dangerous as written or as Python 3
/// renames it from Python 2.
pub fn builtin_denial(module: &str, name: &str) -> Option<&'static str> {
    let (m3, n3) = fix_imports(module, name);
    denial_as_written(module, name).or_else(|| denial_as_written(&m3, &n3))
}

fn denial_as_written(module: &str, name: &str) -> Option<&'static str> {
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
    // A step may also be a module a module imported under another name
    // (`argparse._os`, `collections._sys`, `ipaddress.functools`): the rest
    // of the name is then an import from that module. Modules are lowercase
    // by convention and CPython's own aliases add leading underscores;
    // capitalised steps are classes (`Outer.Inner`), judged as they are.
    // Table keys are a few components long, so each step looks only that
    // far ahead: a hostile name of many steps costs linear time.
    let mut rest = name;
    while let Some((step, tail)) = rest.split_once('.') {
        let bare = step.trim_start_matches('_');
        if bare.starts_with(|c: char| c.is_ascii_lowercase()) {
            let ahead: Vec<&str> = tail.splitn(LOOKAHEAD + 1, '.').take(LOOKAHEAD).collect();
            for module in [step, bare] {
                if let Some(reason) = path_denial(&format!("{module}.{}", ahead.join("."))) {
                    return Some(reason);
                }
            }
        }
        rest = tail;
    }
    path_denial(&full)
}

/// How many steps after a module alias are matched against the table.
const LOOKAHEAD: usize = 6;

/// A dotted path denied as a module (and everything under it) or as an
/// exact qualname (and attributes reached through it), at every prefix.
fn path_denial(full: &str) -> Option<&'static str> {
    let t = tables();
    for (i, c) in full.char_indices() {
        if c == '.' {
            let prefix = full.get(..i).unwrap_or_default();
            if let Some(reason) = t.deny_module.get(prefix).or_else(|| t.deny.get(prefix)) {
                return Some(reason);
            }
        }
    }
    t.deny_module
        .get(full)
        .or_else(|| t.deny.get(full))
        .copied()
}

/// The audit of a trusted global: which arguments it calls. Globals the
/// team's policy allows are its own trusted code and count as data-only.
pub fn audit<'a>(module: &'a str, name: &'a str) -> &'a Audit {
    static DATA: Audit = Audit::Data;
    let t = tables();
    t.allow
        .get(&(module, name))
        .or_else(|| t.profile.get(&(module, name)).map(|(a, _)| a))
        .unwrap_or(&DATA)
}

/// The effective allowlist: every global an unpickler may import under
/// these team lists (the built-in allow and profile rows plus the lists'
/// allows, minus whatever [`classify`] denies), as sorted, deduplicated
/// `(module, qualname)` pairs. This is what enforcement outside the scanner
/// (an interpreter's `pickle.find_class` audit hook, fickling, skops,
/// `torch.serialization.add_safe_globals`) may allow: it cannot see
/// arguments, so it gets names only.
pub fn allowlist(extra: &GlobalLists) -> Vec<(String, String)> {
    let t = tables();
    let mut out: Vec<(String, String)> = t
        .allow
        .keys()
        .chain(t.profile.keys())
        .map(|(m, n)| (m.to_string(), n.to_string()))
        .chain(extra.allow.iter().cloned())
        .filter(|(m, n)| classify(m, n, extra).is_trusted())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The Python 2 spellings that Python 3's unpickler maps onto a global of
/// `allowed` for protocols 0-2 (`_compat_pickle`): what such a stream names
/// before `find_class` renames it, e.g. `__builtin__.set` for
/// `builtins.set`. Pairs of (as written, as imported); names the built-in
/// denylist rejects as written are left out.
pub fn python2_aliases(allowed: &[(String, String)]) -> Vec<((String, String), (String, String))> {
    let t = tables();
    let set: HashSet<(&str, &str)> = allowed
        .iter()
        .map(|(m, n)| (m.as_str(), n.as_str()))
        .collect();
    let mut out = Vec::new();
    let mut add = |m2: &str, n2: &str| {
        let (m3, n3) = fix_imports(m2, n2);
        if set.contains(&(m3.as_str(), n3.as_str())) && builtin_denial(m2, n2).is_none() {
            out.push(((m2.to_string(), n2.to_string()), (m3, n3)));
        }
    };
    for (m2, n2) in t.compat_names.keys() {
        add(m2, n2);
    }
    for (m2, m3) in &t.compat_modules {
        for (m, n) in allowed {
            if m == m3 {
                add(m2, n);
            }
        }
    }
    out.sort();
    out.dedup();
    out
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

/// Classifies one import exactly as named (the caller applies
/// [`fix_imports`] where the unpickler would).
pub fn classify(module: &str, name: &str, extra: &GlobalLists) -> Class {
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
    if let Some(reason) = denial_as_written(module, name) {
        return Class::Dangerous(reason.to_string());
    }
    let t = tables();
    if t.allow.contains_key(&(module, name)) {
        return Class::Safe;
    }
    if let Some((_, reason)) = t.profile.get(&(module, name)) {
        return Class::Profile(reason);
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
        for (i, line) in crate::tables::PICKLE_GLOBALS.text.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let cols: Vec<_> = line.split('\t').collect();
            let n = i + 1;
            assert!(
                seen.insert((cols[0], cols[1], cols.get(2).copied())),
                "line {n} repeats an earlier row"
            );
            assert!(
                [
                    "allow",
                    "profile",
                    "deny",
                    "deny-module",
                    "deny-any",
                    "deny-attr"
                ]
                .contains(&cols[0]),
                "line {n}"
            );
            let trusted = cols[0] == "allow" || cols[0] == "profile";
            assert_eq!(
                cols.len(),
                if trusted { 5 } else { 4 },
                "line {n}: {line:?}"
            );
            assert!(
                !cols[cols.len() - 1].trim().is_empty(),
                "line {n} has no reason"
            );
            if cols[0] == "deny-attr" {
                assert_eq!(cols[1], "*", "line {n}: attribute rows name no module");
            } else if cols[0].starts_with("deny-") {
                assert_eq!(cols[2], "*", "line {n}: module rows name no attribute");
            } else {
                assert_ne!(cols[2], "*", "line {n}: wildcards are for module rows only");
            }
        }
    }

    /// Issue 11 class 1(b): a global is only trusted together with the
    /// audit of which of its arguments it calls. A new allow or profile row
    /// without a readable `calls` column fails here.
    #[test]
    fn every_trusted_row_records_which_arguments_it_calls() {
        let mut trusted = 0;
        for (i, line) in crate::tables::PICKLE_GLOBALS.text.lines().enumerate() {
            let cols: Vec<_> = line.split('\t').collect();
            if !matches!(cols.first(), Some(&"allow" | &"profile")) {
                continue;
            }
            trusted += 1;
            let calls = cols.get(3).copied().unwrap_or_default();
            assert!(
                Audit::parse(calls).is_some(),
                "line {}: `{}.{}` has no readable calls audit ({calls:?}); write `none`, `*`, \
                 or the called argument positions (`0`, `1(0)`, `0(*2)`, `1(2..)`, `5[]`)",
                i + 1,
                cols.get(1).copied().unwrap_or_default(),
                cols.get(2).copied().unwrap_or_default(),
            );
        }
        assert_eq!(trusted, tables().allow.len() + tables().profile.len());
    }

    #[test]
    fn audits_parse() {
        assert_eq!(Audit::parse("none"), Some(Audit::Data));
        assert_eq!(
            Audit::parse("0(*2),1"),
            Some(Audit::Calls(vec![
                CallSpec {
                    arg: ArgPos::At(0),
                    with: Forward::Star(2)
                },
                CallSpec {
                    arg: ArgPos::At(1),
                    with: Forward::Unseen
                },
            ]))
        );
        assert_eq!(
            Audit::parse("1(0),0(1..),5[],*"),
            Some(Audit::Calls(vec![
                CallSpec {
                    arg: ArgPos::At(1),
                    with: Forward::One(0)
                },
                CallSpec {
                    arg: ArgPos::At(0),
                    with: Forward::From(1)
                },
                CallSpec {
                    arg: ArgPos::At(5),
                    with: Forward::Items
                },
                CallSpec {
                    arg: ArgPos::Every,
                    with: Forward::Unseen
                },
            ]))
        );
        for bad in ["", "x", "0(", "0(a)", "-1", "0[1]"] {
            assert_eq!(Audit::parse(bad), None, "{bad:?}");
        }
    }

    /// Known gadgets carry the audit the real source implies
    /// (torch/_tensor.py, numpy/random/_pickle.py, Lib/copyreg.py).
    #[test]
    fn known_gadgets_are_audited() {
        for (m, n) in [
            ("torch._tensor", "_rebuild_from_type"),
            ("torch._tensor", "_rebuild_from_type_v2"),
            ("numpy.random._pickle", "__randomstate_ctor"),
            ("numpy.random._pickle", "__generator_ctor"),
            ("numpy.random._pickle", "__bit_generator_ctor"),
            ("copyreg", "_reconstructor"),
            ("copyreg", "__newobj__"),
            ("collections", "defaultdict"),
            ("functools", "partial"),
            ("torch._utils", "_rebuild_tensor_v2"),
            ("torch._utils", "_rebuild_parameter"),
        ] {
            assert_ne!(audit(m, n), &Audit::Data, "{m}.{n}");
        }
    }

    /// The generated `_compat_pickle` table equals the running CPython's
    /// mapping (the generator's `--check` mode compares them).
    #[test]
    fn compat_table_matches_cpython() {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/gen/compat_pickle.py"
        );
        let out = std::process::Command::new("python3")
            .arg(script)
            .arg("--check")
            .output()
            .expect("python3 runs the generator's check");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(tables().compat_names.len(), 88);
        assert_eq!(tables().compat_modules.len(), 55);
    }

    #[test]
    fn python2_names_are_judged_as_python3_imports_them() {
        let mapped = |m: &str, n: &str| {
            let (m, n) = fix_imports(m, n);
            class(&m, &n)
        };
        assert!(matches!(
            mapped("__builtin__", "reduce"),
            Class::Dangerous(_)
        ));
        assert_eq!(mapped("__builtin__", "long"), Class::Safe);
        assert_eq!(mapped("__builtin__", "xrange"), Class::Safe);
        assert_eq!(mapped("copy_reg", "_reconstructor"), Class::Safe);
        assert_eq!(mapped("UserString", "defaultdict"), Class::Safe);
        assert!(matches!(
            mapped("__builtin__", "intern"),
            Class::Dangerous(_)
        ));
        assert_eq!(
            fix_imports("exceptions", "ValueError"),
            ("builtins".to_string(), "ValueError".to_string())
        );
        assert!(builtin_denial("__builtin__", "reduce").is_some());
        assert!(builtin_denial("__builtin__", "eval").is_some());
    }

    #[test]
    fn exact_allow() {
        assert_eq!(class("torch._utils", "_rebuild_tensor_v2"), Class::Safe);
        assert_eq!(class("collections", "OrderedDict"), Class::Safe);
        assert_eq!(class("builtins", "set"), Class::Safe);
        assert_eq!(class("copyreg", "_reconstructor"), Class::Safe);
    }

    #[test]
    fn deny_by_module_and_alias() {
        assert!(matches!(class("os", "system"), Class::Dangerous(_)));
        assert!(matches!(class("posix", "system"), Class::Dangerous(_)));
        assert!(builtin_denial("__builtin__", "eval").is_some());
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
    fn dotted_name_through_an_imported_module_is_that_import() {
        for (m, n) in [
            ("argparse", "_os.system"),
            ("collections", "_sys.modules"),
            ("ipaddress", "functools.reduce"),
            ("enum", "_functools.partialmethod"),
            ("argparse", "_re.copyreg.os.system"),
        ] {
            assert!(matches!(class(m, n), Class::Dangerous(_)), "{m}.{n}");
        }
        assert_eq!(class("collections", "OrderedDict.fromkeys"), Class::Unknown);
        assert_eq!(class("mymodule", "Outer.Inner"), Class::Unknown);
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
    fn allowlist_is_the_trusted_rows_plus_the_team_minus_denials() {
        let base = allowlist(&GlobalLists::default());
        let has =
            |l: &[(String, String)], m: &str, n: &str| l.iter().any(|(a, b)| a == m && b == n);
        assert!(has(&base, "collections", "OrderedDict"));
        assert!(has(&base, "torch._utils", "_rebuild_tensor_v2"));
        assert!(!has(&base, "os", "system"));
        assert!(base.windows(2).all(|w| w[0] < w[1]));
        let extra = GlobalLists::new(
            [("mypkg.models".to_string(), "TinyNet".to_string())],
            [("collections".to_string(), "OrderedDict".to_string())],
        );
        let team = allowlist(&extra);
        assert!(has(&team, "mypkg.models", "TinyNet"));
        assert!(!has(&team, "collections", "OrderedDict"));
        let aliases = python2_aliases(&base);
        let alias = |m: &str, n: &str| {
            aliases
                .iter()
                .find(|(w, _)| w.0 == m && w.1 == n)
                .map(|(_, i)| (i.0.as_str(), i.1.as_str()))
        };
        assert_eq!(alias("__builtin__", "set"), Some(("builtins", "set")));
        assert_eq!(
            alias("copy_reg", "_reconstructor"),
            Some(("copyreg", "_reconstructor"))
        );
        assert_eq!(alias("__builtin__", "eval"), None);
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
