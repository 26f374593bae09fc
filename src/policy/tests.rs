use super::*;
use crate::scan::Scanner;

fn date(s: &str) -> jiff::civil::Date {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Writes `files` into a temp dir and loads the first one.
fn load(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<Policy, PolicyError>) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (name, text) in files {
        let p = dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
    }
    let first = dir
        .path()
        .join(files.first().map_or("policy.toml", |f| f.0));
    let result = Policy::load_file_at(&first, date("2026-01-15"));
    (dir, result)
}

fn ok(files: &[(&str, &str)]) -> (tempfile::TempDir, Policy) {
    let (d, r) = load(files);
    match r {
        Ok(p) => (d, p),
        Err(e) => panic!("policy should load:\n{e}"),
    }
}

fn errors(text: &str) -> Vec<Diagnostic> {
    match load(&[("policy.toml", text)]).1 {
        Ok(_) => panic!("policy should be invalid:\n{text}"),
        Err(PolicyError(d)) => d.into_iter().filter(Diagnostic::is_error).collect(),
    }
}

const PICKLE_RCE: &[u8] =
    b"\x80\x02cos\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.";

fn safetensors() -> Vec<u8> {
    let header = br#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header);
    v.extend_from_slice(&[0; 4]);
    v
}

#[test]
fn template_is_the_builtin_default() {
    let (_d, p) = ok(&[("policy.toml", TEMPLATE)]);
    let b = Policy::builtin();
    assert_eq!(p.actions(Context::Hook), b.actions(Context::Hook));
    assert_eq!(p.actions(Context::Daemon), b.actions(Context::Daemon));
    assert_eq!(p.limits(), b.limits());
    assert_eq!(p.on_error(), Action::Block);
    assert!(p.warnings().is_empty(), "{:?}", p.warnings());
    assert!(p.path_rules().is_empty() && p.exemptions().is_empty());
}

#[test]
fn defaults_fail_closed() {
    let p = Policy::builtin();
    let a = p.actions(Context::Hook);
    assert_eq!(
        (a.malicious, a.suspicious, a.info),
        (Action::Block, Action::Block, Action::Allow)
    );
    let d = p.actions(Context::Daemon);
    assert_eq!(
        (d.malicious, d.suspicious),
        (Action::Quarantine, Action::Warn)
    );
}

#[test]
fn malicious_pickle_is_blocked_and_exemption_by_hash_applies() {
    let report = Scanner::default().scan_bytes("model.pkl", PICKLE_RCE);
    let p = Policy::builtin();
    let d = p.decide(&report, "model.pkl", "ab", Context::Hook);
    assert_eq!(d.action, Action::Block, "{d:?}");
    let rule = d.basis.first().map(|b| b.rule.id).unwrap_or_default();

    let sha = "a".repeat(64);
    let text =
        format!("[[exemptions]]\nsha256 = \"{sha}\"\nrule = \"{rule}\"\nreason = \"reviewed\"\n");
    let (_d, p) = ok(&[("policy.toml", &text)]);
    assert_eq!(p.unused_exemptions().len(), 1);
    let other = p.decide(&report, "model.pkl", &"b".repeat(64), Context::Hook);
    assert_eq!(other.action, Action::Block);
    let d = p.decide(&report, "model.pkl", &sha, Context::Hook);
    assert_eq!(d.action, Action::Allow, "{d:?}");
    assert_eq!(d.exempted.len(), 1);
    assert!(p.unused_exemptions().is_empty());
}

#[test]
fn expired_exemption_does_not_apply() {
    let report = Scanner::default().scan_bytes("model.pkl", PICKLE_RCE);
    let sha = "c".repeat(64);
    let text = format!(
        "[[exemptions]]\nsha256 = \"{sha}\"\nreason = \"temporary\"\nexpires = 2025-12-31\n"
    );
    let (_d, p) = ok(&[("policy.toml", &text)]);
    assert_eq!(p.warnings().len(), 1, "{}", diag::render(p.warnings()));
    assert!(p.warnings()[0].message.contains("expired"));
    let d = p.decide(&report, "model.pkl", &sha, Context::Hook);
    assert_eq!(d.action, Action::Block);
    assert_eq!(d.expired.len(), 1);
    assert_eq!(p.expired_exemptions().len(), 1);
    assert!(p.unused_exemptions().is_empty());
}

#[test]
fn path_rules_override_in_order_and_require_format() {
    let text = r#"
[[paths]]
name = "models"
globs = ["models/**"]
require-format = ["safetensors"]
info = "warn"

[[paths]]
name = "fixtures"
globs = ["tests/fixtures/**"]
malicious = "warn"
suspicious = "warn"
"#;
    let (_d, p) = ok(&[("policy.toml", text)]);
    let rce = Scanner::default().scan_bytes("x.pkl", PICKLE_RCE);
    assert_eq!(
        p.decide(&rce, "tests/fixtures/x.pkl", "", Context::Hook)
            .action,
        Action::Warn
    );
    assert_eq!(
        p.decide(&rce, "x.pkl", "", Context::Hook).action,
        Action::Block
    );
    // `*` and `**` semantics: models/** covers nested paths only under models/.
    let st = Scanner::default().scan_bytes("m.safetensors", &safetensors());
    assert_eq!(
        p.decide(&st, "models/a/m.safetensors", "", Context::Hook)
            .action,
        Action::Allow
    );
    let benign_pickle = Scanner::default().scan_bytes("m.pkl", b"\x80\x02}q\x00.");
    let d = p.decide(&benign_pickle, "models/a/m.pkl", "", Context::Hook);
    assert_eq!(d.action, Action::Block, "{d:?}");
    assert_eq!(d.basis.first().map(|b| b.rule.id), Some("POL001"));
    assert_eq!(d.path_rules, vec!["models".to_string()]);
    assert_eq!(
        p.decide(&benign_pickle, "other/m.pkl", "", Context::Hook)
            .action,
        Action::Allow
    );
    // Text is not a model format: README files under models/ are fine.
    let text = Scanner::default().scan_bytes("models/README.md", b"# hi\n");
    assert_eq!(
        p.decide(&text, "models/README.md", "", Context::Hook)
            .action,
        Action::Allow
    );
    // The daemon ignores repository path rules.
    assert_eq!(
        p.decide(&rce, "tests/fixtures/x.pkl", "", Context::Daemon)
            .action,
        Action::Quarantine
    );
}

#[test]
fn unverifiable_content_defaults_to_warn() {
    let p = Policy::builtin();
    let d = p.decide_unverifiable(
        "big.bin",
        Some(&"d".repeat(64)),
        "LFS object not present",
        Context::Hook,
    );
    assert_eq!(d.action, Action::Warn);
    assert_eq!(d.basis.first().map(|b| b.rule.id), Some("POL002"));
}

#[test]
fn hash_is_computed_only_when_needed() {
    let text = format!(
        "[[exemptions]]\nsha256 = \"{}\"\nreason = \"x\"\n",
        "e".repeat(64)
    );
    let (_d, p) = ok(&[("policy.toml", &text)]);
    let st = Scanner::default().scan_bytes("m.safetensors", &safetensors());
    let d = p.decide_with(
        &st,
        "m.safetensors",
        || panic!("hash of a clean file"),
        Context::Hook,
    );
    assert_eq!(d.action, Action::Allow);
}

#[test]
fn extra_globals_reach_the_scanner() {
    let text = "[pickle]\nallow = [\"mypkg.models.Net\"]\ndeny = [\"collections.OrderedDict\"]\n";
    let (_d, p) = ok(&[("policy.toml", text)]);
    let scanner = Scanner::new(p.scan_config());
    let ordered = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01.";
    let r = scanner.scan_bytes("a.pkl", ordered);
    assert_eq!(r.verdict, Verdict::Malicious, "{r:?}");
    let net = b"\x80\x02cmypkg.models\nNet\nq\x00)Rq\x01.";
    assert!(Scanner::default().scan_bytes("b.pkl", net).verdict >= Verdict::Suspicious);
    assert!(scanner.scan_bytes("b.pkl", net).verdict < Verdict::Suspicious);
}

#[test]
fn builtin_denied_global_needs_override_and_reason() {
    let e = errors("[pickle]\nallow = [\"os.system\"]\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].message.contains("built-in denylist"), "{}", e[0]);
    assert_eq!((e[0].line, e[0].column), (2, 10));
    let e = errors("[pickle]\nallow = [{ global = \"os.system\", override = true }]\n");
    assert!(e[0].message.contains("needs a reason"), "{}", e[0]);
    let text = "[pickle]\nallow = [{ global = \"os.system\", override = true, reason = \"sandboxed CI\" }]\n";
    let (_d, p) = ok(&[("policy.toml", text)]);
    assert_eq!(
        p.allowed_globals()[0].override_reason.as_deref(),
        Some("sandboxed CI")
    );
}

#[test]
fn every_problem_is_reported() {
    let text = r#"[actions]
malicious = "blok"
info = "quarantine"

[limits]
max-scan-millis = 0
max-nesting-depth = -1
max-bogus = 3

[pickle]
deny = ["nodot"]

[[paths]]
globs = ["models/[", "ok/**"]
require-format = []

[[exemptions]]
sha256 = "xyz"
rule = "NOPE01"
reason = "  "
expires = "soon"
"#;
    let e = errors(text);
    let got: Vec<(usize, usize)> = e.iter().map(|d| (d.line, d.column)).collect();
    assert_eq!(
        got,
        vec![
            (2, 13),
            (3, 8),
            (6, 19),
            (7, 21),
            (8, 1),
            (11, 9),
            (14, 10),
            (15, 18),
            (18, 10),
            (19, 8),
            (20, 10),
            (21, 11)
        ],
        "{}",
        diag::render(&e)
    );
}

#[test]
fn unknown_keys_are_errors_with_position() {
    let e = errors("[actions]\nmalicous = \"block\"\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].message.contains("unknown field `malicous`"),
        "{}",
        e[0]
    );
    assert_eq!((e[0].line, e[0].column), (2, 1));
    let e = errors("[[exemptions]]\nsha256 = \"ab\"\n");
    assert!(e[0].message.contains("reason"), "{}", e[0]);
}

#[test]
fn extends_merges_and_detects_cycles() {
    let base = "[actions]\nsuspicious = \"warn\"\n[pickle]\ndeny = [\"a.b\"]\n[limits]\nmax-scan-millis = 5\n";
    let child =
        "extends = \"org/base.toml\"\n[actions]\ninfo = \"warn\"\n[pickle]\ndeny = [\"c.d\"]\n";
    let (_d, p) = ok(&[("policy.toml", child), ("org/base.toml", base)]);
    let a = p.actions(Context::Hook);
    assert_eq!(
        (a.suspicious, a.info, a.malicious),
        (Action::Warn, Action::Warn, Action::Block)
    );
    assert_eq!(p.denied_globals().len(), 2);
    assert_eq!(p.limits().max_scan_millis, 5);
    assert_eq!(p.files().len(), 2);

    let (_d, r) = load(&[
        ("a.toml", "extends = \"b.toml\"\n"),
        ("b.toml", "extends = \"a.toml\"\n"),
    ]);
    let Err(PolicyError(e)) = r else {
        panic!("cycle accepted")
    };
    assert!(e[0].message.contains("cycle"), "{}", e[0]);

    let (_d, r) = load(&[("a.toml", "extends = \"missing.toml\"\n")]);
    let Err(PolicyError(e)) = r else {
        panic!("missing base accepted")
    };
    assert_eq!((e[0].line, e[0].column), (1, 11));
}

#[test]
fn discovery_walks_up() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let sub = dir.path().join("a/b");
    std::fs::create_dir_all(&sub).unwrap_or_else(|e| panic!("{e}"));
    let found = |start: &std::path::Path| {
        super::locate::locate_with(None, start, &|_| None)
            .ok()
            .and_then(|s| s.path().map(std::path::Path::to_path_buf))
    };
    assert!(found(&sub).is_none_or(|p| !p.starts_with(dir.path())));
    std::fs::write(
        dir.path().join("policy.toml"),
        "[actions]\ninfo = \"warn\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(found(&sub), Some(dir.path().join("policy.toml")));
    let p = Policy::load(None, &sub).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.actions(Context::Scan).info, Action::Warn);
}

#[test]
fn path_globs_are_relative_to_the_declaring_policy_file() {
    let text = "[[paths]]\nname = \"models\"\nglobs = [\"models/**\"]\nrequire-format = [\"safetensors\"]\n";
    let (dir, p) = ok(&[
        ("pr/policy.toml", "extends = \"../base.toml\"\n"),
        ("base.toml", text),
    ]);
    let root = dir.path();
    let pickle = Scanner::default().scan_bytes("m.pkl", b"\x80\x02}q\x00.");
    let decide = |place: Place<'_>| p.decide(&pickle, place, "", Context::Scan).action;
    // Declared in base.toml at the root: `models/` is the root's.
    let file = root.join("models/m.pkl");
    assert_eq!(decide(Place::disk("m.pkl", &file)), Action::Block);
    let dotted = root.join("pr/../models/m.pkl");
    assert_eq!(decide(Place::disk("m.pkl", &dotted)), Action::Block);
    let nested = root.join("pr/models/m.pkl");
    assert_eq!(decide(Place::disk("m.pkl", &nested)), Action::Allow);
    // Outside the declaring file's directory nothing matches.
    let (other, q) = ok(&[("pr/policy.toml", text)]);
    let outside = other.path().join("models/m.pkl");
    assert_eq!(
        q.decide(&pickle, Place::disk("m.pkl", &outside), "", Context::Scan)
            .action,
        Action::Allow
    );
    // Repository paths: relative to the policy's folder inside the work
    // tree, and taken as they are when the policy is elsewhere.
    let workdir = other.path();
    let in_repo = |path: &str, workdir: Option<&Path>| {
        q.decide(&pickle, Place::repo(path, workdir), "", Context::Hook)
            .action
    };
    assert_eq!(in_repo("pr/models/m.pkl", Some(workdir)), Action::Block);
    assert_eq!(in_repo("models/m.pkl", Some(workdir)), Action::Allow);
    assert_eq!(
        in_repo("models/m.pkl", Some(&workdir.join("elsewhere"))),
        Action::Block
    );
    assert_eq!(in_repo("models/m.pkl", None), Action::Block);
    assert_eq!(
        q.decide(&pickle, Place::nowhere("-"), "", Context::Scan)
            .action,
        Action::Allow
    );
}

/// Every name the scanner reports is a valid `require-format` entry (the
/// list comes from the core's `Kind` table, so `npz` and the refined kinds
/// draw no warning); a typo still does.
#[test]
fn require_format_accepts_every_reported_kind() {
    for kind in crate::scan::Kind::ALL {
        let text = format!(
            "[[paths]]\nname = \"models\"\nglobs = [\"models/**\"]\nrequire-format = [\"{}\"]\n",
            kind.name()
        );
        let (_d, p) = ok(&[("policy.toml", &text)]);
        assert!(
            p.warnings().is_empty(),
            "{}: {:?}",
            kind.name(),
            p.warnings()
        );
    }
    let text = "[[paths]]\nname = \"models\"\nglobs = [\"models/**\"]\nrequire-format = [\"npz\", \"pytorch\"]\n";
    let (_d, p) = ok(&[("policy.toml", text)]);
    assert_eq!(p.warnings().len(), 1, "{:?}", p.warnings());
}
