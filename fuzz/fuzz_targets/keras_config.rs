//! The Keras v3 `config.json` analysis (its own JSON parser, duplicate keys,
//! Lambda bytecode, module references): the input becomes `config.json` of a
//! stored `.keras` zip built here, so every execution reaches the parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_scan::Scanner;

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn keras_zip(config: &[u8]) -> Vec<u8> {
    let metadata: &[u8] = br#"{"keras_version": "3.5.0", "date_saved": "2024-01-01@00:00:00"}"#;
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in [("metadata.json", metadata), ("config.json", config)] {
        let offset = out.len() as u32;
        let mut fields = Vec::new();
        fields.extend_from_slice(&20u16.to_le_bytes()); // needed
        fields.extend_from_slice(&0u16.to_le_bytes()); // flags
        fields.extend_from_slice(&0u16.to_le_bytes()); // stored
        fields.extend_from_slice(&[0; 4]); // time, date
        fields.extend_from_slice(&crc32(data).to_le_bytes());
        fields.extend_from_slice(&(data.len() as u32).to_le_bytes());
        fields.extend_from_slice(&(data.len() as u32).to_le_bytes());
        fields.extend_from_slice(&(name.len() as u16).to_le_bytes());
        fields.extend_from_slice(&0u16.to_le_bytes()); // extra
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&fields);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(b"PK\x01\x02");
        central.extend_from_slice(&20u16.to_le_bytes()); // made by
        central.extend_from_slice(&fields);
        central.extend_from_slice(&[0; 10]); // comment length, disk, attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0\x02\0\x02\0");
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() > 1 << 20 {
        return;
    }
    let _ = Scanner::default().scan_bytes("model.keras", &keras_zip(data));
});
