//! Chat templates as models publish them must scan clean, both as template
//! files and inside a `tokenizer_config.json` (tests/fixtures/templates/real,
//! see its README for where they come from). The template checker judges
//! data flow; these pin that real tool-calling, thinking and multimodal
//! templates stay below every threshold.

use std::path::{Path, PathBuf};

use modelgate::scan::Scanner;

fn real_templates() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates/real");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    out
}

#[test]
fn published_chat_templates_scan_clean() {
    let scanner = Scanner::default();
    let templates = real_templates();
    assert!(templates.len() > 100, "only {} templates", templates.len());
    let mut alarms = Vec::new();
    for path in &templates {
        let text = std::fs::read_to_string(path).unwrap();
        let config = serde_json::json!({ "chat_template": text }).to_string();
        for report in [
            scanner.scan_file(path, &path.to_string_lossy()).unwrap(),
            scanner.scan_bytes("tokenizer_config.json", config.as_bytes()),
        ] {
            for f in &report.findings {
                alarms.push(format!("{}: {} {}", path.display(), f.rule.id, f.message));
            }
        }
    }
    assert!(alarms.is_empty(), "false alarms:\n{}", alarms.join("\n"));
}
