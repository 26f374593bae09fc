//! `Scanner::scan_bytes` with the name hint `model.gguf`; the seed corpus
//! (see run.sh) holds real files of this format, and content decides the
//! parser, so mutations also reach the sniffer and every other parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_scan::Scanner;

fuzz_target!(|data: &[u8]| {
    let _ = Scanner::default().scan_bytes("model.gguf", data);
});
