//! Scans every entry of the labelled corpus (`../shared/corpus`, or
//! `$MODELGATE_CORPUS`) with the real binary and fails on any miss or false
//! alarm: `malicious` must be flagged (malicious or suspicious), `benign`
//! must have no finding above info, `suspicious` must be suspicious.

use std::collections::HashMap;
use std::path::PathBuf;

use assert_cmd::Command;
use serde_json::Value;

/// The corpus directory, or `None` (with a printed notice) when the default
/// location is absent, as in a fresh clone. An explicit `MODELGATE_CORPUS`
/// that does not exist is an error, not a skip.
fn corpus_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("MODELGATE_CORPUS") {
        return Some(PathBuf::from(dir));
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    if dir.join("manifest.jsonl").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED corpus test: no labelled corpus at {} (set MODELGATE_CORPUS to its folder)",
            dir.display()
        );
        None
    }
}

#[test]
fn corpus_verdicts_match_labels() {
    let Some(corpus) = corpus_dir() else {
        return;
    };
    let manifest = std::fs::read_to_string(corpus.join("manifest.jsonl")).unwrap_or_else(|e| {
        panic!(
            "corpus manifest at {}: {e} (set MODELGATE_CORPUS)",
            corpus.display()
        )
    });
    let entries: Vec<Value> = manifest
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(entries.len() > 100, "corpus unexpectedly small");
    let paths: Vec<String> = entries
        .iter()
        .map(|e| {
            e["path"]
                .as_str()
                .unwrap()
                .trim_end_matches('/')
                .to_string()
        })
        .collect();

    let output = Command::cargo_bin("modelgate")
        .unwrap()
        .current_dir(&corpus)
        .args(["scan", "--format", "json"])
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "scan failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        doc["errors"].as_array().unwrap().len(),
        0,
        "errors: {}",
        doc["errors"]
    );
    let by_path: HashMap<&str, &Value> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap(), f))
        .collect();

    let mut failures = Vec::new();
    let mut counts: HashMap<(String, String), usize> = HashMap::new();
    for (entry, path) in entries.iter().zip(&paths) {
        let expect = entry["expect"].as_str().unwrap();
        let format = entry["format"].as_str().unwrap();
        let Some(file) = by_path.get(path.as_str()) else {
            failures.push(format!("{path}: not in the report"));
            continue;
        };
        let verdict = file["verdict"].as_str().unwrap();
        let ok = match expect {
            "malicious" => matches!(verdict, "malicious" | "suspicious"),
            "suspicious" => verdict == "suspicious",
            _ => matches!(verdict, "clean" | "info"),
        };
        *counts
            .entry((
                format.to_string(),
                if ok { "ok".into() } else { "wrong".into() },
            ))
            .or_default() += 1;
        if !ok {
            let rules: Vec<&str> = file["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["rule"].as_str().unwrap())
                .collect();
            failures.push(format!(
                "{path} ({format}, {}): expected {expect}, got {verdict} {rules:?}",
                entry["technique"]
            ));
        }
    }
    let mut summary: Vec<_> = counts.into_iter().collect();
    summary.sort();
    eprintln!("corpus results per format: {summary:?}");
    assert!(
        failures.is_empty(),
        "{} corpus entries wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
