//! safetensors: an 8-byte little-endian header length, a JSON header, then
//! raw tensor bytes (<https://github.com/huggingface/safetensors#format>).
//!
//! The format cannot run code; a hostile file attacks the loader instead.
//! This parser reads the length and the JSON header and nothing else: it
//! never touches tensor bytes, so a 1 GB file costs its header. It checks
//! what the reference implementation checks and reports every violation, not
//! only the first:
//!
//! * the header length against the file size and `max_header_bytes` (the
//!   reference caps it at 100 MB) before anything is allocated;
//! * JSON validity, with a duplicate-preserving walker: `serde_json` maps keep
//!   the last of two equal keys, the very ambiguity a differential attack
//!   needs, so the header is parsed into an ordered list of pairs instead
//!   (nesting is capped by serde_json's recursion limit of 128);
//! * the schema (`dtype`, `shape`, `data_offsets`), known dtypes, and
//!   `__metadata__` being a map of strings;
//! * `end - begin == dtype bits × Π shape / 8` with checked arithmetic, offsets
//!   inside the data section, no overlap and no unused bytes.
//!
//! Verdicts: out-of-range offsets, overlaps, size mismatches and impossible
//! header lengths attack memory safety (malicious); schema breaks, duplicate
//! keys, unknown dtypes, gaps and odd metadata are suspicious.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::{Ctx, rules};

/// The reference implementation's header cap (`MAX_HEADER_SIZE`).
const REFERENCE_MAX_HEADER: u64 = 100_000_000;

/// A JSON value that keeps object members in order, duplicates included.
#[derive(Debug)]
enum Json {
    Null,
    Bool,
    Unsigned(u64),
    Signed(i64),
    Float,
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool => "a boolean",
            Json::Unsigned(_) | Json::Signed(_) | Json::Float => "a number",
            Json::Str(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Json, E> {
        Ok(Json::Bool)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Unsigned(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Signed(v))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Json, E> {
        Ok(Json::Float)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Json>()? {
            members.push((k, v));
        }
        Ok(Json::Object(members))
    }
}

/// Element size in bits of each safetensors dtype.
fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        _ => return None,
    })
}

struct Tensor {
    name: String,
    begin: u64,
    end: u64,
}

/// Scans a safetensors file: its length prefix and JSON header, never the
/// tensor bytes.
pub fn scan(cx: &mut Ctx, data: &[u8]) {
    let Some(len_bytes) = data.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
        cx.inconclusive(
            &rules::UNPARSEABLE,
            Some(0),
            "safetensors file shorter than its 8-byte header length",
        );
        return;
    };
    let header_len = u64::from_le_bytes(len_bytes);
    let file_len = data.len() as u64;
    let available = file_len - 8;
    let cap = cx.limits().max_header_bytes;
    if header_len > available {
        cx.report(
            &rules::SFT_HEADER_LENGTH,
            Some(0),
            format!("header length {header_len} points past the end of the file ({available} bytes follow)"),
            Some(format!("{header_len}")),
        );
        return;
    }
    if header_len > cap {
        cx.report(
            &rules::SFT_HEADER_LENGTH,
            Some(0),
            format!("header length {header_len} exceeds the {cap}-byte limit for headers"),
            Some(format!("{header_len}")),
        );
        return;
    }
    if header_len > REFERENCE_MAX_HEADER {
        cx.report(
            &rules::SFT_HEADER_LENGTH,
            Some(0),
            format!("header length {header_len} exceeds the 100 MB the reference loader accepts"),
            Some(format!("{header_len}")),
        );
    }
    // Both bounds were checked above; `get` keeps that local.
    let Some(header) = data.get(8..8 + header_len as usize) else {
        return;
    };
    let data_len = available - header_len;
    let json: Json = match serde_json::from_slice(header) {
        Ok(j) => j,
        Err(e) => {
            cx.inconclusive(
                &rules::SFT_INVALID_HEADER,
                Some(8),
                format!("safetensors header is not valid JSON: {e}"),
            );
            return;
        }
    };
    let Json::Object(members) = json else {
        cx.inconclusive(
            &rules::SFT_INVALID_HEADER,
            Some(8),
            format!("safetensors header is {}, not a JSON object", json.kind()),
        );
        return;
    };
    report_duplicates(cx, &members, "", 0);

    let mut tensors = Vec::new();
    let mut unplaced = false;
    for (name, value) in &members {
        if !cx.in_time() {
            return;
        }
        if name == "__metadata__" {
            check_metadata(cx, value);
            continue;
        }
        match check_tensor(cx, name, value, data_len) {
            Some(t) => tensors.push(t),
            None => unplaced = true,
        }
    }
    // Like the reference loader, the last of two equal names is the tensor;
    // the duplicate itself is already reported.
    let mut last = std::collections::HashMap::new();
    for (i, t) in tensors.iter().enumerate() {
        last.insert(t.name.clone(), i);
    }
    let tensors: Vec<Tensor> = tensors
        .into_iter()
        .enumerate()
        .filter(|(i, t)| last.get(&t.name) == Some(i))
        .map(|(_, t)| t)
        .collect();
    check_layout(cx, tensors, data_len, 8 + header_len, data, unplaced);
}

fn invalid(cx: &mut Ctx, what: String, name: &str) {
    cx.report(
        &rules::SFT_INVALID_HEADER,
        Some(8),
        what,
        Some(name.to_string()),
    );
}

fn report_duplicates(cx: &mut Ctx, members: &[(String, Json)], path: &str, depth: usize) {
    if depth > 2 {
        return;
    }
    let mut seen = HashSet::new();
    for (k, v) in members {
        if !seen.insert(k.as_str()) {
            cx.report(
                &rules::SFT_DUPLICATE_KEY,
                Some(8),
                format!("key `{path}{k}` occurs more than once in the header; loaders disagree on which one counts"),
                Some(format!("{path}{k}")),
            );
        }
        if let Json::Object(inner) = v {
            report_duplicates(cx, inner, &format!("{path}{k}."), depth + 1);
        }
    }
}

fn check_metadata(cx: &mut Ctx, value: &Json) {
    let Json::Object(entries) = value else {
        cx.report(
            &rules::SFT_METADATA_TYPE,
            Some(8),
            format!("`__metadata__` is {}, not a map of strings", value.kind()),
            None,
        );
        return;
    };
    for (k, v) in entries {
        if !matches!(v, Json::Str(_)) {
            cx.report(
                &rules::SFT_METADATA_TYPE,
                Some(8),
                format!("`__metadata__.{k}` is {}, not a string", v.kind()),
                Some(k.clone()),
            );
        }
    }
}

fn unsigned_list(v: &Json) -> Option<Vec<Result<u64, &Json>>> {
    let Json::Array(items) = v else { return None };
    Some(
        items
            .iter()
            .map(|i| match i {
                Json::Unsigned(u) => Ok(*u),
                other => Err(other),
            })
            .collect(),
    )
}

fn check_tensor(cx: &mut Ctx, name: &str, value: &Json, data_len: u64) -> Option<Tensor> {
    let Json::Object(fields) = value else {
        invalid(
            cx,
            format!("tensor `{name}` is {}, not an object", value.kind()),
            name,
        );
        return None;
    };
    let field = |key: &str| fields.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v);
    let (Some(dtype), Some(shape), Some(offsets)) =
        (field("dtype"), field("shape"), field("data_offsets"))
    else {
        invalid(
            cx,
            format!("tensor `{name}` lacks dtype, shape or data_offsets"),
            name,
        );
        return None;
    };
    let Json::Str(dtype) = dtype else {
        invalid(
            cx,
            format!("tensor `{name}` has a dtype that is {}", dtype.kind()),
            name,
        );
        return None;
    };
    let Some(offsets) = unsigned_list(offsets) else {
        invalid(
            cx,
            format!("tensor `{name}` has data_offsets that are not a list"),
            name,
        );
        return None;
    };
    let (begin, end) = match offsets.as_slice() {
        [Ok(b), Ok(e)] => (*b, *e),
        [b, e] if [b, e].iter().any(|x| matches!(x, Err(Json::Signed(_)))) => {
            let show = |x: &Result<u64, &Json>| match x {
                Ok(u) => u.to_string(),
                Err(Json::Signed(i)) => i.to_string(),
                Err(j) => j.kind().to_string(),
            };
            cx.report(
                &rules::SFT_OFFSETS_OUT_OF_RANGE,
                Some(8),
                format!(
                    "tensor `{name}` has negative data_offsets [{}, {}]",
                    show(b),
                    show(e)
                ),
                Some(name.to_string()),
            );
            return None;
        }
        _ => {
            invalid(
                cx,
                format!("tensor `{name}` needs data_offsets [begin, end] of unsigned integers"),
                name,
            );
            return None;
        }
    };
    if begin > end || end > data_len {
        cx.report(
            &rules::SFT_OFFSETS_OUT_OF_RANGE,
            Some(8),
            format!("tensor `{name}` data_offsets [{begin}, {end}) lie outside the {data_len}-byte data section"),
            Some(name.to_string()),
        );
        return None;
    }
    let Some(shape) = unsigned_list(shape) else {
        invalid(
            cx,
            format!("tensor `{name}` has a shape that is not a list"),
            name,
        );
        return None;
    };
    let Some(shape) = shape.into_iter().collect::<Result<Vec<u64>, _>>().ok() else {
        invalid(
            cx,
            format!("tensor `{name}` has a shape with non-integer or negative entries"),
            name,
        );
        return None;
    };
    let tensor = Tensor {
        name: name.to_string(),
        begin,
        end,
    };
    let Some(bits) = dtype_bits(dtype) else {
        cx.report(
            &rules::SFT_UNKNOWN_DTYPE,
            Some(8),
            format!("tensor `{name}` has unknown dtype `{dtype}`; its size cannot be checked"),
            Some(dtype.clone()),
        );
        return Some(tensor);
    };
    let expected = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_mul(bits))
        .filter(|b| b % 8 == 0)
        .map(|b| b / 8);
    let shown: Vec<String> = shape.iter().map(u64::to_string).collect();
    match expected {
        Some(n) if n == end - begin => {}
        Some(n) => cx.report(
            &rules::SFT_SIZE_MISMATCH,
            Some(8),
            format!(
                "tensor `{name}` is {dtype}[{}] = {n} bytes, but its data_offsets span {} bytes",
                shown.join(", "),
                end - begin
            ),
            Some(name.to_string()),
        ),
        None => cx.report(
            &rules::SFT_SIZE_MISMATCH,
            Some(8),
            format!(
                "tensor `{name}`'s size {dtype}[{}] overflows or is not a whole number of bytes",
                shown.join(", ")
            ),
            Some(name.to_string()),
        ),
    }
    Some(tensor)
}

/// Overlaps always count; gaps only when every tensor could be placed (an
/// entry with broken offsets already explains the bytes nobody covers).
fn check_layout(
    cx: &mut Ctx,
    mut tensors: Vec<Tensor>,
    data_len: u64,
    data_start: u64,
    data: &[u8],
    unplaced: bool,
) {
    tensors.sort_by_key(|t| (t.begin, t.end));
    let mut covered = 0u64;
    let mut covered_by = "";
    let mut gap_reported = false;
    for t in &tensors {
        if t.begin < covered && t.begin < t.end {
            cx.report(
                &rules::SFT_OVERLAP,
                Some(8),
                format!(
                    "tensor `{}` [{}, {}) overlaps tensor `{covered_by}` (ends at {covered})",
                    t.name, t.begin, t.end
                ),
                Some(t.name.clone()),
            );
        } else if t.begin > covered && !gap_reported && !unplaced {
            gap_reported = true;
            cx.report(
                &rules::SFT_GAP,
                Some(data_start + covered),
                format!(
                    "{} bytes before tensor `{}` belong to no tensor",
                    t.begin - covered,
                    t.name
                ),
                Some(t.name.clone()),
            );
        }
        if t.end > covered {
            covered = t.end;
            covered_by = &t.name;
        }
    }
    if covered < data_len && !unplaced {
        cx.report(
            &rules::SFT_GAP,
            Some(data_start + covered),
            format!(
                "{} bytes after the last tensor belong to no tensor",
                data_len - covered
            ),
            None,
        );
        // Appended bytes are not tensor data: a pickle or archive smuggled
        // there is scanned for what it is.
        if let Some(tail) = usize::try_from(data_start + covered)
            .ok()
            .and_then(|s| data.get(s..))
        {
            cx.scan_member("data after the last safetensors tensor", tail);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{FileReport, ScanStatus, Scanner, Verdict};
    use proptest::prelude::*;

    /// Scans `total` bytes whose first 64 KiB hold `head` and whose rest is
    /// mapped without read permission: touching it kills the test process,
    /// so a clean run proves the parser read nothing past the head.
    pub(crate) fn scan_with_unreadable_tail(head: &[u8], total: usize) -> FileReport {
        use rustix::mm::{MapFlags, MprotectFlags, ProtFlags, mmap_anonymous, mprotect, munmap};
        const READABLE: usize = 64 << 10;
        assert!(head.len() <= READABLE && total > READABLE);
        // SAFETY: a fresh private anonymous mapping owned by this function;
        // the slice is dropped before the unmap.
        unsafe {
            let base = mmap_anonymous(
                std::ptr::null_mut(),
                total,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
            .expect("reserve address space");
            mprotect(base, READABLE, MprotectFlags::READ | MprotectFlags::WRITE)
                .expect("open the head");
            std::ptr::copy_nonoverlapping(head.as_ptr(), base.cast::<u8>(), head.len());
            let data = std::slice::from_raw_parts(base.cast::<u8>(), total);
            let report = Scanner::default().scan_bytes("sparse", data);
            munmap(base, total).expect("unmap");
            report
        }
    }

    fn file(header: &str, data_len: usize) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.resize(out.len() + data_len, 0);
        out
    }

    fn ids(data: &[u8]) -> Vec<&'static str> {
        let scanner = Scanner::default();
        let mut cx = Ctx::new(&scanner, None);
        scan(&mut cx, data);
        cx.finish("t", data.len() as u64)
            .findings
            .iter()
            .map(|f| f.rule.id)
            .collect()
    }

    /// The first 128 bytes of a `total`-byte file holding one U8 tensor
    /// that fills everything after the (space-padded) header.
    fn sparse_head(total: u64) -> Vec<u8> {
        let n = total - 128;
        let header = format!(r#"{{"w":{{"dtype":"U8","shape":[{n}],"data_offsets":[0,{n}]}}}}"#);
        let mut head = 120u64.to_le_bytes().to_vec();
        head.extend_from_slice(header.as_bytes());
        head.resize(128, b' ');
        head
    }

    #[test]
    fn valid_files_are_clean() {
        let h = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]},"e":{"dtype":"I64","shape":[0],"data_offsets":[22,22]},"f4":{"dtype":"F4","shape":[4],"data_offsets":[22,24]}}"#;
        let report = Scanner::default().scan_bytes("t", &file(h, 24));
        assert!(report.findings.is_empty(), "{:#?}", report.findings);
        assert_eq!(report.status, ScanStatus::Complete);
        assert!(ids(&file("{}", 0)).is_empty());
    }

    #[test]
    fn each_violation_has_its_rule() {
        let t = |dtype: &str, shape: &str, off: &str| {
            format!(r#""t":{{"dtype":"{dtype}","shape":{shape},"data_offsets":{off}}}"#)
        };
        let cases: Vec<(String, usize, &str)> = vec![
            ("{\"a\":1".to_string(), 0, "SFT002"),
            ("[]".to_string(), 0, "SFT002"),
            (format!("{{{}}}", t("F32", "[1]", "[0]")), 4, "SFT002"),
            (
                format!(
                    "{{{},{}}}",
                    t("F32", "[1]", "[0,4]"),
                    t("F32", "[1]", "[0,4]")
                ),
                4,
                "SFT003",
            ),
            (format!("{{{}}}", t("Q4", "[1]", "[0,4]")), 4, "SFT004"),
            (format!("{{{}}}", t("F32", "[1]", "[0,8]")), 4, "SFT005"),
            (format!("{{{}}}", t("F32", "[1]", "[4,0]")), 4, "SFT005"),
            (format!("{{{}}}", t("F32", "[1]", "[-4,0]")), 4, "SFT005"),
            (
                format!(
                    r#"{{{},"u":{{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}}}"#,
                    t("F32", "[1]", "[0,4]")
                ),
                6,
                "SFT006",
            ),
            (format!("{{{}}}", t("F32", "[1]", "[0,4]")), 8, "SFT007"),
            (format!("{{{}}}", t("F32", "[1]", "[4,8]")), 8, "SFT007"),
            (format!("{{{}}}", t("F32", "[3]", "[0,4]")), 4, "SFT008"),
            (
                format!("{{{}}}", t("F32", "[4294967296,4294967296]", "[0,4]")),
                4,
                "SFT008",
            ),
            (
                format!(
                    r#"{{"__metadata__":{{"n":1}},{}}}"#,
                    t("F32", "[1]", "[0,4]")
                ),
                4,
                "SFT009",
            ),
        ];
        for (header, data_len, rule) in cases {
            let got = ids(&file(&header, data_len));
            assert!(
                got.contains(&rule),
                "{header}: expected {rule}, got {got:?}"
            );
        }
    }

    #[test]
    fn impossible_header_lengths_are_malicious_without_allocation() {
        let mut data = (1u64 << 62).to_le_bytes().to_vec();
        data.extend_from_slice(b"{\"a\":{}}");
        let report = Scanner::default().scan_bytes("t", &data);
        assert_eq!(report.verdict, Verdict::Malicious);
        assert_eq!(report.findings[0].rule.id, "SFT001");
    }

    #[test]
    fn trailing_pickle_is_scanned() {
        let mut data = file(
            r#"{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#,
            1,
        );
        data.extend_from_slice(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94.");
        let report = Scanner::default().scan_bytes("t", &data);
        assert!(report.findings.iter().any(|f| f.rule.id == "SFT007"));
    }

    #[test]
    fn a_gigabyte_file_costs_only_its_header() {
        let total = 1usize << 30;
        let report = scan_with_unreadable_tail(&sparse_head(total as u64), total);
        assert!(report.findings.is_empty(), "{:#?}", report.findings);
        assert_eq!(report.status, ScanStatus::Complete);
    }

    #[test]
    fn sparse_file_on_disk_is_clean() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let total: u64 = 1 << 30;
        std::fs::write(&path, sparse_head(total)).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(total)
            .unwrap();
        let report = Scanner::default()
            .scan_file(&path, "model.safetensors")
            .unwrap();
        assert!(report.findings.is_empty(), "{:#?}", report.findings);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let scanner = Scanner::default();
            let mut cx = Ctx::new(&scanner, None);
            scan(&mut cx, &data);
        }

        #[test]
        fn mutated_headers_never_panic(cut in 0usize..200, flips in proptest::collection::vec((0usize..200, any::<u8>()), 0..8)) {
            let mut data = file(r#"{"__metadata__":{"a":"b"},"x":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},"y":{"dtype":"I8","shape":[4],"data_offsets":[12,16]}}"#, 16);
            for (i, b) in flips {
                if let Some(x) = data.get_mut(i) { *x = b; }
            }
            data.truncate(cut.min(data.len()));
            let scanner = Scanner::default();
            let mut cx = Ctx::new(&scanner, None);
            scan(&mut cx, &data);
        }
    }
}
