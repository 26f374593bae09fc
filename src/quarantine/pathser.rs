//! Paths in quarantine records, losslessly. A file name is bytes on Unix
//! and need not be UTF-8 (a repo author chooses it); JSON strings must be.
//! A UTF-8 path is stored as a plain string, as before, and any other as
//! `{"unix_bytes_hex": "..."}`, so that restore puts the bytes back under
//! exactly the name they had.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Repr {
    Text(String),
    Bytes { unix_bytes_hex: String },
}

/// The JSON form of a path (for lines written outside a record).
pub fn to_value(path: &Path) -> serde_json::Value {
    serialize(path, serde_json::value::Serializer).unwrap_or(serde_json::Value::Null)
}

pub fn serialize<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    match path.to_str() {
        Some(t) => Repr::Text(t.to_string()),
        None => Repr::Bytes {
            unix_bytes_hex: crate::digest::hex(path.as_os_str().as_bytes()),
        },
    }
    .serialize(s)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    match Repr::deserialize(d)? {
        Repr::Text(t) => Ok(PathBuf::from(t)),
        Repr::Bytes { unix_bytes_hex } => {
            let hex = unix_bytes_hex.as_bytes();
            if hex.len() % 2 != 0 {
                return Err(serde::de::Error::custom("odd-length hex path"));
            }
            let mut out = Vec::with_capacity(hex.len() / 2);
            for pair in hex.chunks_exact(2) {
                let s = std::str::from_utf8(pair).map_err(serde::de::Error::custom)?;
                out.push(u8::from_str_radix(s, 16).map_err(serde::de::Error::custom)?);
            }
            Ok(PathBuf::from(OsString::from_vec(out)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct W(#[serde(with = "super")] PathBuf);

    #[test]
    fn round_trips_non_utf8() {
        let p = W(PathBuf::from(OsString::from_vec(
            b"/c/x\xff\n.bin".to_vec(),
        )));
        let j = serde_json::to_string(&p).unwrap();
        assert!(j.contains("unix_bytes_hex"), "{j}");
        assert_eq!(serde_json::from_str::<W>(&j).unwrap(), p);
        let t = W(PathBuf::from("/c/plain"));
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"/c/plain\"");
    }
}
