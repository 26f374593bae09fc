//! Git LFS pointers: the staged or pushed blob of an LFS-tracked file is a
//! ~130-byte text pointer; the real bytes sit in the local LFS store
//! (`<git common dir>/lfs/objects/aa/bb/<oid>`, moved by `lfs.storage`).
//!
//! What counts as a pointer is what git-lfs itself turns into the payload
//! on checkout, not what the spec's canonical form looks like: anything
//! looser here would let a pointer through as harmless text. The rules are
//! those of git-lfs's `lfs/pointer.go` (`DecodeFrom`, `decodeKV`,
//! `decodeKVData`, unchanged from 3.3 to 3.6):
//!
//! - the smudge filter reads the first [`BLOB_SIZE_CUTOFF`] bytes and
//!   decodes those, whatever follows them (so a larger blob whose first
//!   1024 bytes decode is smudged too);
//! - the bytes are trimmed of leading and trailing white space (Go's
//!   `bytes.TrimSpace`: Unicode `White_Space`), split on `\n`, one trailing
//!   `\r` is dropped from each line, and empty lines are skipped;
//! - each line is `key value` split at the first space; `version`, `oid`,
//!   `size` must come in that order, each once, and nothing may follow
//!   `size`; a key out of order that starts `ext-<digit>-<word char>` is an
//!   extension, wherever it appears before `size`;
//! - `version` is one of three URLs ([`VERSIONS`]); `oid` and extension
//!   values are `sha256:` and 64 lowercase hex digits; `size` is a Go
//!   `ParseInt` (optional sign, decimal) that is not negative; extension
//!   priorities are distinct;
//! - the key text must contain `git-media`, `hawser` or `git-lfs`
//!   (implied by the version check).
//!
//! An empty blob is git-lfs's empty pointer; it has no content to check
//! and is not reported as one.

use std::path::{Path, PathBuf};

/// git-lfs decodes at most this many leading bytes (`BlobSizeCutoff`).
pub const BLOB_SIZE_CUTOFF: usize = 1024;

/// Every version URL git-lfs accepts (`v1Aliases`).
const VERSIONS: &[&str] = &[
    "http://git-media.io/v/2",
    "https://hawser.github.com/spec/v1",
    "https://git-lfs.github.com/spec/v1",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    /// Lowercase hex sha256 of the stored object.
    pub oid: String,
    pub size: u64,
    /// Names of the git-lfs extensions (`ext-<n>-<name>`), in priority
    /// order. With any, the checked-out file is what those configured
    /// programs make of the object, not the object itself.
    pub extensions: Vec<String>,
}

/// Decodes the start of a blob as git-lfs's smudge filter would: `prefix`
/// holds the blob's first bytes (any more than [`BLOB_SIZE_CUTOFF`] are
/// ignored). `None` when git-lfs would pass the blob through unchanged.
pub fn parse_pointer(prefix: &[u8]) -> Option<Pointer> {
    let data = prefix.get(..BLOB_SIZE_CUTOFF).unwrap_or(prefix);
    let data = trim_space(data);
    if data.is_empty() {
        return None;
    }
    let matcher = |n: &[u8]| data.windows(n.len()).any(|w| w == n);
    if !(matcher(b"git-media") || matcher(b"hawser") || matcher(b"git-lfs")) {
        return None;
    }
    const KEYS: [&[u8]; 3] = [b"version", b"oid", b"size"];
    let mut values: [Option<&[u8]>; 3] = [None; 3];
    let mut next = 0;
    let mut priorities = Vec::new();
    let mut extensions: Vec<(&[u8], &[u8])> = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let space = line.iter().position(|&b| b == b' ')?;
        let (key, value) = (line.get(..space)?, line.get(space + 1..)?);
        let expected = KEYS.get(next)?;
        if key == *expected {
            *values.get_mut(next)? = Some(value);
            next += 1;
            continue;
        }
        if !is_extension_key(key) {
            return None;
        }
        // Go keeps extensions in a map: a repeated key keeps its last value.
        match extensions.iter_mut().find(|(k, _)| *k == key) {
            Some(e) => e.1 = value,
            None => extensions.push((key, value)),
        }
    }
    if values
        .first()
        .copied()
        .flatten()
        .and_then(|v| std::str::from_utf8(v).ok())
        .is_none_or(|v| !VERSIONS.contains(&v))
    {
        return None;
    }
    let oid = parse_oid(values.get(1).copied().flatten()?)?;
    let size = parse_go_int(values.get(2).copied().flatten().unwrap_or_default())?;
    let mut named = Vec::new();
    for (key, value) in extensions {
        // `ext-<priority>-<name>`: strconv.Atoi of the part between dashes.
        let rest = key.get(4..)?;
        let dash = rest.iter().position(|&b| b == b'-')?;
        let priority = parse_go_int(rest.get(..dash)?)?;
        parse_oid(value)?;
        if priorities.contains(&priority) {
            return None;
        }
        priorities.push(priority);
        named.push((
            priority,
            String::from_utf8_lossy(rest.get(dash + 1..)?).into_owned(),
        ));
    }
    named.sort();
    Some(Pointer {
        oid,
        size,
        extensions: named.into_iter().map(|(_, n)| n).collect(),
    })
}

/// `\Aext-\d{1}-\w+` (RE2: ASCII digits and word characters), a prefix match.
fn is_extension_key(key: &[u8]) -> bool {
    matches!(key, [b'e', b'x', b't', b'-', d, b'-', w, ..]
        if d.is_ascii_digit() && (w.is_ascii_alphanumeric() || *w == b'_'))
}

/// `sha256:` and 64 lowercase hex digits.
fn parse_oid(value: &[u8]) -> Option<String> {
    let hex = value.strip_prefix(b"sha256:")?;
    let ok = hex.len() == 64
        && hex
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
    ok.then(|| String::from_utf8_lossy(hex).into_owned())
}

/// Go's `strconv.ParseInt(s, 10, 64)` (an optional sign, then decimal
/// digits, no underscores), refused when negative.
fn parse_go_int(s: &[u8]) -> Option<u64> {
    let digits = s.strip_prefix(b"+").unwrap_or(s);
    let (negative, digits) = match digits.strip_prefix(b"-") {
        Some(d) if digits.len() == s.len() => (true, d),
        _ => (false, digits),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: i64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    if negative {
        (n == 0).then_some(0)
    } else {
        u64::try_from(n).ok()
    }
}

/// Go's `bytes.TrimSpace`: Unicode white space at both ends; an invalid
/// UTF-8 sequence is not space and stops the trim.
fn trim_space(mut data: &[u8]) -> &[u8] {
    while let Some(c) = first_char(data)
        && c.is_whitespace()
    {
        data = data.get(c.len_utf8()..).unwrap_or_default();
    }
    while let Some(c) = last_char(data)
        && c.is_whitespace()
    {
        data = data.get(..data.len() - c.len_utf8()).unwrap_or_default();
    }
    data
}

fn first_char(data: &[u8]) -> Option<char> {
    (1..=4).find_map(|w| single_char(data.get(..w)?))
}

fn last_char(data: &[u8]) -> Option<char> {
    (1..=4).find_map(|w| single_char(data.get(data.len().checked_sub(w)?..)?))
}

fn single_char(bytes: &[u8]) -> Option<char> {
    let mut chars = std::str::from_utf8(bytes).ok()?.chars();
    let c = chars.next()?;
    chars.next().is_none().then_some(c)
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
                size: 12345,
                extensions: Vec::new(),
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

    /// Each of these is smudged into the object by git-lfs 3.x.
    #[test]
    fn accepts_what_git_lfs_decodes() {
        let v1 = "version https://git-lfs.github.com/spec/v1";
        let ext = format!("ext-0-foo sha256:{OID}");
        let good = [
            format!("{v1}\r\noid sha256:{OID}\r\nsize 12345\r\n"),
            format!("\n\n  {v1}\noid sha256:{OID}\nsize 12345"),
            format!("{v1}\n\n\r\noid sha256:{OID}\n\nsize 12345\n \t\u{a0}"),
            format!("version http://git-media.io/v/2\noid sha256:{OID}\nsize 12345\n"),
            format!("version https://hawser.github.com/spec/v1\noid sha256:{OID}\nsize +12345\n"),
            format!("{ext}\n{v1}\noid sha256:{OID}\nsize 12345\n"),
            format!("{v1}\next-1-b\u{e9}r sha256:{OID}\noid sha256:{OID}\nsize 012345\n"),
            // Only the first 1024 bytes are decoded.
            format!(
                "{v1}\noid sha256:{OID}\nsize 12345\n{}garbage",
                " ".repeat(1024)
            ),
        ];
        for g in good {
            let p = parse_pointer(g.as_bytes());
            assert_eq!(
                p.as_ref().map(|p| (p.oid.as_str(), p.size)),
                Some((OID, 12345)),
                "{g:?}"
            );
        }
    }

    #[test]
    fn rejects_what_git_lfs_passes_through() {
        let v1 = "version https://git-lfs.github.com/spec/v1";
        let bad = [
            String::new(),
            format!("{v1}\noid sha256:{OID}\nsize 1\next-0-foo sha256:{OID}\n"),
            format!("ext-0-a sha256:{OID}\next-0-b sha256:{OID}\n{v1}\noid sha256:{OID}\nsize 1"),
            format!("{v1}\noid sha256:{OID}\n   \nsize 1\n"),
            format!("{v1}\noid sha256:{OID}\nsize 1 \nx"),
            format!("{v1}\noid  sha256:{OID}\nsize 1\n"),
            format!("{v1}\noid sha256:{}\nsize 1\n", OID.to_uppercase()),
            format!("{v1}\nsize 1\noid sha256:{OID}\n"),
            format!("{v1}\noid sha256:{OID}\nsize 1_0\n"),
            format!("{v1}\r\r\noid sha256:{OID}\nsize 1\n"),
            format!("{}{v1}\noid sha256:{OID}\nsize 1\n", " ".repeat(1000)),
        ];
        for b in bad {
            assert_eq!(parse_pointer(b.as_bytes()), None, "{b:?}");
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
