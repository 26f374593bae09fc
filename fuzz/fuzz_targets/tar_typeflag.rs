//! The tar reader's type-flag handling (members `tarfile` reads as files,
//! directories and links whose data blocks `tarfile` parses as headers): the
//! first input byte is the type flag of a valid ustar header, the rest its
//! declared data, which may itself hold further headers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_scan::Scanner;

fuzz_target!(|data: &[u8]| {
    let Some((&typeflag, body)) = data.split_first() else {
        return;
    };
    let mut header = [0u8; 512];
    header[..9].copy_from_slice(b"model.pkl");
    header[100..107].copy_from_slice(b"0000644");
    header[124..135].copy_from_slice(format!("{:011o}", body.len()).as_bytes());
    header[136..147].copy_from_slice(b"00000000000");
    header[156] = typeflag;
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut file = header.to_vec();
    file.extend_from_slice(body);
    file.resize(file.len().div_ceil(512) * 512 + 1024, 0);
    let _ = Scanner::default().scan_bytes("model.tar", &file);
});
