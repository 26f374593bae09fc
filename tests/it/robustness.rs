//! Hostile input is the normal case: the scanner must never panic, hang or
//! allocate without bound, whatever the bytes. Random bytes, random bytes
//! behind real magic numbers, and every truncation of real fixtures.

use std::path::Path;

use modelgate::scan::{ScanStatus, Scanner, Verdict};
use proptest::prelude::*;

const MAGICS: &[&[u8]] = &[
    b"\x80\x04\x95",
    b"\x80\x02",
    b"PK\x03\x04",
    b"PK\x05\x06",
    b"\x1f\x8b",
    b"BZh9",
    b"\xfd7zXZ\x00",
    b"7z\xbc\xaf\x27\x1c",
    b"\x93NUMPY\x01\x00",
    b"GGUF\x03\x00\x00\x00",
    b"\x89HDF\r\n\x1a\n",
    b"cos\nsystem\n",
    b"(lp0\n",
];

fn names() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "m.pkl",
        "m.pt",
        "m.bin",
        "m.npy",
        "m.safetensors",
        "m.gguf",
        "m.onnx",
        "saved_model.pb",
        "m.h5",
        "m",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..4096), name in names()) {
        let _ = Scanner::default().scan_bytes(name, &data);
    }

    #[test]
    fn random_bytes_behind_magic_never_panic(
        magic in prop::sample::select(MAGICS.to_vec()),
        tail in prop::collection::vec(any::<u8>(), 0..4096),
        name in names(),
    ) {
        let mut data = magic.to_vec();
        data.extend(tail);
        let _ = Scanner::default().scan_bytes(name, &data);
    }
}

/// Every prefix of every rule fixture scans without panicking, and a cut
/// model is never reported clean-and-complete when the cut broke a pickle.
#[test]
fn truncated_fixtures_never_panic() {
    let scanner = Scanner::default();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules");
    for dir in std::fs::read_dir(root).unwrap() {
        for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if !path.is_file() {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            if data.len() > 1 << 20 {
                continue;
            }
            let step = (data.len() / 64).max(1);
            for cut in (0..data.len()).step_by(step) {
                let report =
                    scanner.scan_bytes(&path.file_name().unwrap().to_string_lossy(), &data[..cut]);
                if let ScanStatus::Inconclusive { .. } = report.status {
                    assert!(
                        report.verdict >= Verdict::Suspicious,
                        "inconclusive must never be a pass"
                    );
                }
            }
        }
    }
}

/// Found by the `npy_header` fuzz target: a header whose `descr` string is
/// long multi-byte text made the evidence cut fall inside a character.
#[test]
fn fuzz_npy_header_evidence_cut_inside_a_character() {
    let mut header = b"{'descr': '|O".to_vec();
    header.extend("é".repeat(150).as_bytes());
    header.extend_from_slice(b"', 'fortran_order': False, 'shape': (3,), }");
    let mut file = b"\x93NUMPY\x01\x00".to_vec();
    file.extend_from_slice(&(header.len() as u16).to_le_bytes());
    file.extend_from_slice(&header);
    let r = Scanner::default().scan_bytes("array.npy", &file);
    assert!(r.verdict >= Verdict::Suspicious, "{:#?}", r.findings);
}
