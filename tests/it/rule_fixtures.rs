//! Every rule has fixtures that trigger it and near-misses that must not:
//! `tests/fixtures/rules/<RULE>/bad_*` and `good_*`. This test walks the rule
//! registry, so a rule without fixtures, or a fixture that stops matching,
//! fails the build. A policy rule's fixture is a directory holding the
//! `policy.toml` that governs its files, scanned by the real binary.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use modelgate::scan::walk::is_saved_model_dir;
use modelgate::scan::{FileReport, Scanner, rules};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules")
}

fn scan(scanner: &Scanner, path: &Path) -> FileReport {
    let display = path.file_name().unwrap().to_string_lossy().into_owned();
    if path.is_dir() && is_saved_model_dir(path) {
        scanner.scan_model_dir(path, &display).unwrap()
    } else {
        scanner.scan_file(path, &display).unwrap()
    }
}

#[test]
fn every_rule_has_triggering_and_near_miss_fixtures() {
    let scanner = Scanner::default();
    let mut problems = Vec::new();
    for rule in rules::all() {
        let dir = fixtures_dir().join(rule.id);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            problems.push(format!(
                "{}: no fixture directory {}",
                rule.id,
                dir.display()
            ));
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        let (mut bad, mut good) = (0, 0);
        for path in paths {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let (fired, details) = if rules::enforced_by_policy(rule) {
                let fired = policy_rules_fired(&path);
                let details = format!("{fired:?}");
                (fired.iter().any(|id| id == rule.id), details)
            } else {
                let report = scan(&scanner, &path);
                let fired = report.findings.iter().any(|f| f.rule.id == rule.id);
                (fired, format!("{:#?}", report.findings))
            };
            if name.starts_with("bad") {
                bad += 1;
                if !fired {
                    problems.push(format!(
                        "{}: {name} does not trigger it: {details}",
                        rule.id
                    ));
                }
            } else if name.starts_with("good") {
                good += 1;
                if fired {
                    problems.push(format!("{}: {name} triggers it", rule.id));
                }
            }
        }
        if bad == 0 || good == 0 {
            problems.push(format!(
                "{}: needs at least one bad_* and one good_* fixture",
                rule.id
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every finding of every detection-rule fixture, one line each: a change
/// in what a rule reports (a new finding beside the intended one, a moved
/// offset, a reworded message) shows up in review, as ruff keeps one
/// snapshot per rule and fixture.
#[test]
fn fixture_findings_snapshot() {
    let scanner = Scanner::default();
    let mut lines = Vec::new();
    for rule in rules::all() {
        if rules::enforced_by_policy(rule) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(fixtures_dir().join(rule.id)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let report = scan(&scanner, &path);
            lines.push(format!(
                "{}/{name}: {:?} {}",
                rule.id, report.verdict, report.format
            ));
            for f in &report.findings {
                lines.push(format!(
                    "  {:?}[{}] {} @ {:?}/{:?}",
                    f.verdict, f.rule.id, f.message, f.location.members, f.location.offset
                ));
            }
        }
    }
    insta::assert_snapshot!(lines.join("\n"));
}

/// The policy rules `modelgate scan` reports for the fixture directory
/// `dir` under its own `policy.toml`.
fn policy_rules_fired(dir: &Path) -> Vec<String> {
    let out = Command::cargo_bin("modelgate")
        .unwrap()
        .current_dir(dir)
        .args(["scan", "--policy", "policy.toml", "--format", "json", "."])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["policy"].as_array().cloned().unwrap_or_default())
        .map(|p| p["rule"].as_str().unwrap().to_string())
        .collect()
}

/// Fixture directories must belong to a rule: a renamed rule leaves none behind.
#[test]
fn no_orphan_fixture_directories() {
    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            rules::find(&name).is_some(),
            "fixtures for unknown rule {name}"
        );
    }
}
