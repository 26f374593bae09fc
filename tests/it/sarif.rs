//! `modelgate scan --format sarif`: valid SARIF 2.1.0 (checked against the
//! official OASIS schema vendored in tests/schemas/), every rule described,
//! relative URIs and fingerprints that survive re-scans and shifted offsets.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

use modelgate::report::sarif;
use modelgate::scan::{FileReport, Finding, Location, ScanStatus, Verdict, rules};

fn schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas/sarif-schema-2.1.0.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn assert_valid(log: &Value) {
    let validator = jsonschema::draft4::new(&schema()).expect("the SARIF schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(log)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "SARIF schema violations:\n{}",
        errors.join("\n")
    );
}

fn scan_sarif(dir: &Path, args: &[&str]) -> Value {
    let out = Command::cargo_bin("modelgate")
        .unwrap()
        .current_dir(dir)
        .arg("scan")
        .arg("--format")
        .arg("sarif")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn rule_fixtures_scan_to_schema_valid_sarif() {
    let log = scan_sarif(&root(), &["tests/fixtures/rules"]);
    assert_valid(&log);
    assert_eq!(log["version"], "2.1.0");
    let run = &log["runs"][0];

    // The driver describes every rule of the core.
    let described = run["tool"]["driver"]["rules"].as_array().unwrap();
    let all = rules::all();
    assert_eq!(described.len(), all.len());
    for (d, r) in described.iter().zip(&all) {
        assert_eq!(d["id"], r.id);
        assert_eq!(d["name"], r.name);
        assert_eq!(d["shortDescription"]["text"], r.summary);
        assert_eq!(d["fullDescription"]["text"], r.explanation);
        assert!(d["help"]["text"].as_str().unwrap().contains(r.remediation));
        let level = match r.verdict {
            Verdict::Malicious => "error",
            Verdict::Suspicious => "warning",
            _ => "note",
        };
        assert_eq!(d["defaultConfiguration"]["level"], level, "{}", r.id);
    }

    // Results point at their rule, with relative URIs under %SRCROOT%.
    let results = run["results"].as_array().unwrap();
    assert!(results.len() > 20, "the bad_* fixtures produce findings");
    let mut rules_seen = HashSet::new();
    for res in results {
        let id = res["ruleId"].as_str().unwrap();
        let index = res["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(described[index]["id"], id);
        rules_seen.insert(id.to_string());
        assert!(["error", "warning", "note"].contains(&res["level"].as_str().unwrap()));
        let loc = &res["locations"][0]["physicalLocation"];
        let uri = loc["artifactLocation"]["uri"].as_str().unwrap();
        assert!(uri.starts_with("tests/fixtures/rules/"), "{uri}");
        assert_eq!(loc["artifactLocation"]["uriBaseId"], "%SRCROOT%");
        assert_eq!(loc["region"]["startLine"], 1);
        let fp = res["partialFingerprints"]["modelgateFinding/v1"]
            .as_str()
            .unwrap();
        assert_eq!(fp.len(), 64);
    }
    for expected in ["PKL001", "ARC001", "KRS001"] {
        assert!(rules_seen.contains(expected), "no {expected} result");
    }
    let base = run["originalUriBaseIds"]["%SRCROOT%"]["uri"]
        .as_str()
        .unwrap();
    assert!(base.starts_with("file:///") && base.ends_with('/'));
}

#[test]
fn fingerprints_are_stable_across_runs() {
    let fps = |log: &Value| -> Vec<String> {
        log["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["partialFingerprints"]["modelgateFinding/v1"].to_string())
            .collect()
    };
    let a = scan_sarif(&root(), &["tests/fixtures/rules"]);
    let b = scan_sarif(&root(), &["tests/fixtures/rules"]);
    assert_eq!(fps(&a), fps(&b));
}

#[test]
fn members_become_logical_locations_and_offsets_stay_in_their_member() {
    let log = scan_sarif(&root(), &["tests/fixtures/rules"]);
    let results = log["runs"][0]["results"].as_array().unwrap();
    let nested: Vec<&Value> = results
        .iter()
        .filter(|r| r["properties"]["memberChain"].is_array())
        .collect();
    assert!(
        !nested.is_empty(),
        "some fixture findings sit inside archive members"
    );
    for r in nested {
        let chain: Vec<&str> = r["properties"]["memberChain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap())
            .collect();
        let logical = &r["locations"][0]["logicalLocations"][0];
        let fqn = logical["fullyQualifiedName"].as_str().unwrap();
        assert!(fqn.ends_with(&chain.join("/")), "{fqn} vs {chain:?}");
        assert_eq!(logical["name"], *chain.last().unwrap());
        // An offset inside a member is not an offset in the file.
        assert!(r["locations"][0]["physicalLocation"]["region"]["byteOffset"].is_null());
    }
    let top_level_offsets = results.iter().any(|r| {
        r["properties"]["memberChain"].is_null()
            && r["locations"][0]["physicalLocation"]["region"]["byteOffset"].is_u64()
    });
    assert!(
        top_level_offsets,
        "top-level findings carry their byte offset"
    );
}

#[test]
fn files_outside_the_working_directory_are_relative_to_their_root() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("my models");
    std::fs::create_dir_all(models.join("sub")).unwrap();
    std::fs::write(
        models.join("sub/evil.pkl"),
        b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00idq\x00\x85R.",
    )
    .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let log = scan_sarif(elsewhere.path(), &[models.to_str().unwrap()]);
    assert_valid(&log);
    let run = &log["runs"][0];
    let loc = &run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"];
    assert_eq!(loc["uri"], "sub/evil.pkl");
    assert_eq!(loc["uriBaseId"], "ROOT0");
    let base = run["originalUriBaseIds"]["ROOT0"]["uri"].as_str().unwrap();
    assert!(base.ends_with("/my%20models/"), "{base}");
    assert_eq!(run["results"][0]["level"], "error");
}

#[test]
fn unreadable_paths_are_tool_notifications() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("modelgate")
        .unwrap()
        .current_dir(tmp.path())
        .args(["scan", "--format", "sarif", "missing.pt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let log: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid(&log);
    let inv = &log["runs"][0]["invocations"][0];
    assert_eq!(inv["executionSuccessful"], false);
    assert_eq!(inv["toolExecutionNotifications"][0]["level"], "error");
}

fn finding(rule: &'static rules::Rule, offset: u64, members: &[&str]) -> Finding {
    Finding {
        rule,
        verdict: rule.verdict,
        message: "imports os.system".to_string(),
        location: Location {
            members: members.iter().map(|m| m.to_string()).collect(),
            offset: Some(offset),
        },
        evidence: Some("os.system".to_string()),
    }
}

fn report(findings: Vec<Finding>) -> FileReport {
    FileReport {
        path: "models/m.pt".to_string(),
        format: modelgate::scan::Kind::PytorchZip,
        size: 1,
        verdict: FileReport::compute_verdict(&findings),
        status: ScanStatus::Complete,
        findings,
    }
}

#[test]
fn fingerprints_ignore_offsets_but_not_what_was_found() {
    let cwd = Path::new("/repo");
    let fp_of = |f: Finding| -> String {
        let log = sarif::document(
            &[report(vec![f])],
            &[],
            &[],
            &[PathBuf::from("models")],
            cwd,
        );
        let v = serde_json::to_value(&log).unwrap();
        v["runs"][0]["results"][0]["partialFingerprints"]["modelgateFinding/v1"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let chain = ["archive/data.pkl"];
    let base = fp_of(finding(&rules::DANGEROUS_GLOBAL, 10, &chain));
    assert_eq!(base, fp_of(finding(&rules::DANGEROUS_GLOBAL, 9999, &chain)));
    assert_ne!(base, fp_of(finding(&rules::UNKNOWN_GLOBAL, 10, &chain)));
    assert_ne!(
        base,
        fp_of(finding(&rules::DANGEROUS_GLOBAL, 10, &["other.pkl"]))
    );
    let mut other_evidence = finding(&rules::DANGEROUS_GLOBAL, 10, &chain);
    other_evidence.evidence = Some("subprocess.Popen".to_string());
    assert_ne!(base, fp_of(other_evidence));

    let mut seen = HashMap::new();
    let log = sarif::document(
        &[report(vec![
            finding(&rules::DANGEROUS_GLOBAL, 1, &chain),
            finding(&rules::UNKNOWN_GLOBAL, 2, &[]),
        ])],
        &[vec![sarif::Exempted {
            rule: "PKL002",
            justification: "our own class",
        }]],
        &[],
        &[],
        cwd,
    );
    let v = serde_json::to_value(&log).unwrap();
    assert_valid(&v);
    let results = v["runs"][0]["results"].as_array().unwrap();
    assert!(results[0]["suppressions"].is_null());
    assert_eq!(results[1]["suppressions"][0]["kind"], "external");
    assert_eq!(
        results[1]["suppressions"][0]["justification"],
        "our own class"
    );
    for r in results {
        let fp = r["partialFingerprints"]["modelgateFinding/v1"].to_string();
        assert!(seen.insert(fp, r["ruleId"].clone()).is_none());
    }
}
