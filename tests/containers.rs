//! Container evasions from tests/fixtures/containers/ (written by
//! tests/fixtures/gen/container_fixtures.py and shown to run their harmless
//! payload under real NumPy and tarfile by verify_container_fixtures.py):
//! the scanner must reach the payload pickle in every one, and must not
//! mistake a structured field *named* `O` for an object dtype.

use std::path::Path;

use modelgate::scan::{FileReport, Scanner, Verdict};

fn scan(name: &str) -> FileReport {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/containers")
        .join(name);
    Scanner::default().scan_file(&path, name).unwrap()
}

/// The payload calls `builtins.print`, a global no allowlist holds.
fn reaches_payload(r: &FileReport) -> bool {
    r.findings
        .iter()
        .any(|f| f.rule.id.starts_with("PKL") && f.verdict >= Verdict::Suspicious)
}

#[test]
fn every_evasion_reaches_the_payload() {
    let mut missed = Vec::new();
    for name in [
        "npy_hex_escape.npy",
        "npy_unicode_escape.npy",
        "npy_octal_escape.npy",
        "npy_named_escape.npy",
        "npy_concatenated.npy",
        "npy_o8.npy",
        "npy_duplicate_key.npy",
        "npy_nested_field.npy",
        "npy_string_field.npy",
        "npz_zip64_locator.npz",
        "tar_conttype.tar",
        "joblib_zfile.pkl",
        "tflite_metadata_pickle.tflite",
    ] {
        let r = scan(name);
        if !reaches_payload(&r) {
            missed.push(format!("{name}: {:#?}", r.findings));
        }
    }
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}

#[test]
fn a_field_named_o_is_not_an_object_dtype() {
    let r = scan("npy_field_named_o.npy");
    assert_eq!(r.verdict, Verdict::Clean, "{:#?}", r.findings);
}

#[test]
fn mediapipe_task_bundles_of_tflite_with_metadata_are_clean() {
    let r = scan("good_mediapipe.task");
    assert_eq!(r.verdict, Verdict::Clean, "{:#?}", r.findings);
}

/// Printable doc_string fields in front of the graph make the first 8 KiB
/// look like text; the protobuf structure still decides, whatever the name.
#[test]
fn a_text_looking_prefix_does_not_hide_an_onnx_model() {
    let r = scan("onnx_text_prefix.bin");
    assert_eq!(r.format, "onnx");
    assert!(
        r.findings.iter().any(|f| f.rule.id == "ONNX003"),
        "{:#?}",
        r.findings
    );
}
