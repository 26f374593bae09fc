//! The TorchScript code walker: the input becomes `m/code/__torch__.py` of a
//! stored zip that also holds `m/constants.pkl`, so the archive is a
//! TorchScript archive and every execution reaches the code tokenizer and
//! walker through the real zip path.
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

fn stored_zip(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in members {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let fixed = |sig: &[u8], v: &mut Vec<u8>| {
            v.extend_from_slice(sig);
            if sig == b"PK\x01\x02" {
                v.extend_from_slice(&20u16.to_le_bytes()); // made by
            }
            v.extend_from_slice(&20u16.to_le_bytes()); // needed
            v.extend_from_slice(&0u16.to_le_bytes()); // flags
            v.extend_from_slice(&0u16.to_le_bytes()); // stored
            v.extend_from_slice(&0u32.to_le_bytes()); // time, date
            v.extend_from_slice(&crc.to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(name.len() as u16).to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes()); // extra
        };
        fixed(b"PK\x03\x04", &mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        fixed(b"PK\x01\x02", &mut central);
        central.extend_from_slice(&[0; 8]); // comment, disk, attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() > 1 << 18 {
        return;
    }
    let archive = stored_zip(&[
        ("m/constants.pkl", b"\x80\x02).".as_slice()),
        ("m/code/__torch__.py", data),
    ]);
    let _ = Scanner::default().scan_bytes("model.pt", &archive);
});
