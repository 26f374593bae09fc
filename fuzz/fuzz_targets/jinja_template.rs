//! The Jinja chat-template check: the input becomes the
//! `tokenizer.chat_template` value of a GGUF v3 header built here, so every
//! execution reaches the template parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_scan::Scanner;

fn gguf_with_template(template: &[u8]) -> Vec<u8> {
    let key = b"tokenizer.chat_template";
    let mut g = b"GGUF".to_vec();
    g.extend_from_slice(&3u32.to_le_bytes()); // version
    g.extend_from_slice(&0u64.to_le_bytes()); // tensors
    g.extend_from_slice(&1u64.to_le_bytes()); // metadata entries
    g.extend_from_slice(&(key.len() as u64).to_le_bytes());
    g.extend_from_slice(key);
    g.extend_from_slice(&8u32.to_le_bytes()); // string
    g.extend_from_slice(&(template.len() as u64).to_le_bytes());
    g.extend_from_slice(template);
    g
}

fuzz_target!(|data: &[u8]| {
    if data.len() > 1 << 16 {
        return;
    }
    let _ = Scanner::default().scan_bytes("model.gguf", &gguf_with_template(data));
});
