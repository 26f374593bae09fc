//! Git LFS pointers: the staged or pushed blob of an LFS-tracked file is a
//! ~130-byte text pointer; the real bytes sit in the local LFS store
//! (`<git common dir>/lfs/objects/aa/bb/<oid>`, moved by `lfs.storage`).
//!
//! Spec: <https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md>.
//! A pointer is UTF-8 `key value` lines, `version` first, under 1024 bytes,
//! with `oid sha256:<64 lowercase hex>` and `size <decimal>`. The parser is
//! strict: a blob that is not exactly a pointer is scanned as content, which
//! fails safe (the scanner sees whatever the bytes are).

use std::path::{Path, PathBuf};

/// Pointers are smaller than this (spec).
const MAX_POINTER: usize = 1024;

const VERSIONS: &[&str] = &[
    "https://git-lfs.github.com/spec/v1",
    "https://hawser.github.com/spec/v1",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    /// Lowercase hex sha256 of the real content.
    pub oid: String,
    pub size: u64,
}

/// Parses `data` as an LFS pointer, or returns `None` if it is not one.
pub fn parse_pointer(data: &[u8]) -> Option<Pointer> {
    if data.len() >= MAX_POINTER || !data.starts_with(b"version ") {
        return None;
    }
    let text = std::str::from_utf8(data).ok()?;
    let mut lines = text.split_terminator('\n');
    let version = lines.next()?.strip_prefix("version ")?;
    if !VERSIONS.contains(&version) {
        return None;
    }
    let (mut oid, mut size) = (None, None);
    for line in lines {
        let (key, value) = line.split_once(' ')?;
        match key {
            "oid" => {
                let hex = value.strip_prefix("sha256:")?;
                if hex.len() != 64
                    || !hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                {
                    return None;
                }
                oid = Some(hex.to_string());
            }
            "size" => size = Some(value.parse::<u64>().ok()?),
            // Extension lines (`ext-0-foo sha256:…`) are allowed by the spec.
            k if k.starts_with("ext-") => {}
            _ => return None,
        }
    }
    Some(Pointer {
        oid: oid?,
        size: size?,
    })
}

/// The directory holding LFS objects for a repository whose common git
/// directory is `common_dir`; `storage` is the `lfs.storage` setting.
pub fn objects_dir(common_dir: &Path, storage: Option<&str>) -> PathBuf {
    match storage {
        Some(s) if Path::new(s).is_absolute() => Path::new(s).join("objects"),
        Some(s) => common_dir.join(s).join("objects"),
        None => common_dir.join("lfs").join("objects"),
    }
}

/// Where the object of `p` would be, if it is present with the right size.
pub fn local_object(objects: &Path, p: &Pointer) -> Option<PathBuf> {
    let path = objects
        .join(p.oid.get(0..2)?)
        .join(p.oid.get(2..4)?)
        .join(&p.oid);
    let meta = std::fs::metadata(&path).ok()?;
    (meta.is_file() && meta.len() == p.size).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OID: &str = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393";

    #[test]
    fn parses_spec_pointer() {
        let p =
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\nsize 12345\n");
        assert_eq!(
            parse_pointer(p.as_bytes()),
            Some(Pointer {
                oid: OID.into(),
                size: 12345
            })
        );
    }

    #[test]
    fn rejects_near_misses() {
        let bad = [
            format!("version https://example.com/v1\noid sha256:{OID}\nsize 1\n"),
            format!(
                "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize 1\n",
                &OID[1..]
            ),
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\nsize -1\n"),
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\n"),
            format!(
                "version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\nsize 1\nrm -rf /\n"
            ),
        ];
        for b in bad {
            assert_eq!(parse_pointer(b.as_bytes()), None, "{b}");
        }
    }

    #[test]
    fn storage_location() {
        let c = Path::new("/r/.git");
        assert_eq!(objects_dir(c, None), Path::new("/r/.git/lfs/objects"));
        assert_eq!(
            objects_dir(c, Some("big")),
            Path::new("/r/.git/big/objects")
        );
        assert_eq!(
            objects_dir(c, Some("/srv/lfs")),
            Path::new("/srv/lfs/objects")
        );
    }
}
