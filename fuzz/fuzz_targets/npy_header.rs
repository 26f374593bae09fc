//! The `.npy` header parser (a Python-literal parser mirroring
//! `ast.literal_eval` and `descr_to_dtype`): the input is the header text,
//! wrapped in a version 1.0 preamble so every byte reaches the parser; what
//! follows a 64 KiB header is the data the dtype decides about.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_scan::Scanner;

fuzz_target!(|data: &[u8]| {
    let header_len = data.len().min(u16::MAX as usize);
    let mut file = b"\x93NUMPY\x01\x00".to_vec();
    file.extend_from_slice(&(header_len as u16).to_le_bytes());
    file.extend_from_slice(data);
    let _ = Scanner::default().scan_bytes("array.npy", &file);
});
