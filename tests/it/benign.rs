//! Benign models as people publish them (tests/fixtures/benign) must scan
//! clean: fitted scikit-learn estimators, pandas tables and NumPy values as
//! protocol-2 pickles and compressed joblib files
//! (tests/fixtures/gen/sklearn_benign.py), and real Keras 3 models as
//! `.keras`, `.h5` and `.weights.h5` (tests/fixtures/gen/keras_benign.py).
//! An allowlist-first scanner that flags these teaches people to ignore it.

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
