//! The symbolic pickle walker on raw bytes, without the scanner around it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_scan::pickle::walker;
use modelgate_scan::{GlobalLists, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let globals = GlobalLists::default();
    let mut pos = 0;
    // Walk every stream, as the scanner does for concatenated pickles.
    for _ in 0..16 {
        let stream = walker::walk(data, pos, &limits, &globals);
        match stream.end {
            walker::End::Stop { next } if next > pos && next < data.len() => pos = next,
            _ => break,
        }
    }
});
