//! The zip reader's two views (PyTorch's miniz, Python's zipfile) and their
//! comparison: the zipfile view on its own, then the whole scan of the
//! bytes as an `.npz` (both views, union scan, disagreement reports).
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_scan::Scanner;
use modelgate_scan::archive::zip::read_zipfile_view;

fuzz_target!(|data: &[u8]| {
    let _ = read_zipfile_view(data, 10_000);
    let _ = Scanner::default().scan_bytes("weights.npz", data);
});
