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
    assert_eq!(r.format, modelgate::scan::Kind::Onnx);
    assert!(
        r.findings.iter().any(|f| f.rule.id == "ONNX003"),
        "{:#?}",
        r.findings
    );
}

/// Directories that declare data make Python's tarfile read headers where
/// other readers skip; the archive is re-read from the first one only, so a
/// chain of them costs a chain of reads, not a tree.
#[test]
fn a_chain_of_directories_with_data_stays_cheap() {
    fn header(name: &str, typeflag: u8, size: usize) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000755");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = typeflag;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }
    let mut tar = Vec::new();
    for i in 0..64 {
        tar.extend_from_slice(&header(&format!("d{i}/"), b'5', 512));
    }
    tar.resize(tar.len() + 1024, 0);
    let started = std::time::Instant::now();
    let r = Scanner::default().scan_bytes("model.tar", &tar);
    assert!(started.elapsed().as_secs() < 5);
    assert!(r.findings.iter().any(|f| f.rule.id == "ARC007"));
}
