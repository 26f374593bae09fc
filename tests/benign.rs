//! Benign models as people publish them (tests/fixtures/benign, made by
//! tests/fixtures/gen/sklearn_benign.py: fitted scikit-learn estimators,
//! pandas tables, NumPy values, as protocol-2 pickles and compressed joblib
//! files) must scan clean. An allowlist-first scanner that flags these
//! teaches people to ignore it.

use std::path::Path;

use modelgate::scan::{Scanner, Verdict};

#[test]
fn published_benign_models_scan_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/benign");
    let scanner = Scanner::default();
    let mut scanned = 0;
    let mut alarms = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let report = scanner.scan_file(&path, &path.to_string_lossy()).unwrap();
        scanned += 1;
        if report.verdict > Verdict::Info {
            let why: Vec<String> = report
                .findings
                .iter()
                .filter(|f| f.verdict > Verdict::Info)
                .map(|f| format!("{} {}", f.rule.id, f.message))
                .collect();
            alarms.push(format!("{}: {}", path.display(), why.join("; ")));
        }
    }
    assert!(scanned > 150, "only {scanned} benign fixtures found");
    assert!(alarms.is_empty(), "false alarms:\n{}", alarms.join("\n"));
}
