//! GGUF (llama.cpp / ggml model files): header, metadata and tensor infos.
//!
//! Layout (<https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>):
//! magic `GGUF`, version (1–3), tensor count, metadata count, then the
//! metadata key/value pairs, the tensor infos (name, dims, ggml type, offset
//! into the data section), padding to `general.alignment` (default 32) and
//! the tensor data. Version 1 uses 32-bit counts, lengths and dims; later
//! versions 64-bit. Files are little-endian, except big-endian conversions
//! for s390x, recognised by a byte-swapped version field.
//!
//! What this parser does: walks every key/value (all value types, arrays
//! nested up to `max_structure_depth`) and every tensor info, checks each
//! declared length against the bytes left *before* using it, computes every
//! tensor's byte size from its type and shape with checked arithmetic, and
//! checks that tensor data lies inside the file, aligned, without overlap or
//! gaps. Chat templates (`tokenizer.chat_template`, `...chat_template.*`) are
//! handed to [`super::jinja`] for static SSTI analysis.
//!
//! What it refuses to do: read tensor data (a 50 GB file costs its header),
//! allocate from a declared count (nothing is allocated per declared element
//! beyond the tensor list, which is bounded by the bytes present), or recurse
//! without a depth cap.
//!
//! Verdicts: a declared count or length that no file could satisfy (beyond
//! the hard caps and beyond the bytes present), unknown value types, more
//! than four dims (GGML_MAX_DIMS), size overflows and tensor data placed out
//! of bounds are lies aimed at loaders (GGUF001/GGUF002, malicious; cf. the
//! llama.cpp GGUF heap overflows CVE-2024-21836, CVE-2024-25664). A file that
//! simply ends early, with plausible lengths and a regular tensor layout, is
//! a truncated download: GEN001, inconclusive.

use std::collections::HashSet;

use super::jinja;
use crate::{Ctx, rules};

/// llama.cpp's GGML_MAX_DIMS.
const MAX_DIMS: u32 = 4;
/// `general.alignment` when the key is absent.
const DEFAULT_ALIGNMENT: u64 = 32;

/// Metadata value types.
const T_UINT8: u32 = 0;
const T_INT8: u32 = 1;
const T_UINT16: u32 = 2;
const T_INT16: u32 = 3;
const T_UINT32: u32 = 4;
const T_INT32: u32 = 5;
const T_FLOAT32: u32 = 6;
const T_BOOL: u32 = 7;
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;
const T_UINT64: u32 = 10;
const T_INT64: u32 = 11;
const T_FLOAT64: u32 = 12;

/// (block size in elements, bytes per block) of a ggml tensor type, from
/// ggml's type traits. Removed types (Q4_2, Q4_3, Q4_0_4_4, ...) are unknown.
fn ggml_type(t: u32) -> Option<(&'static str, u64, u64)> {
    Some(match t {
        0 => ("F32", 1, 4),
        1 => ("F16", 1, 2),
        2 => ("Q4_0", 32, 18),
        3 => ("Q4_1", 32, 20),
        6 => ("Q5_0", 32, 22),
        7 => ("Q5_1", 32, 24),
        8 => ("Q8_0", 32, 34),
        9 => ("Q8_1", 32, 36),
        10 => ("Q2_K", 256, 84),
        11 => ("Q3_K", 256, 110),
        12 => ("Q4_K", 256, 144),
        13 => ("Q5_K", 256, 176),
        14 => ("Q6_K", 256, 210),
        15 => ("Q8_K", 256, 292),
        16 => ("IQ2_XXS", 256, 66),
        17 => ("IQ2_XS", 256, 74),
        18 => ("IQ3_XXS", 256, 98),
        19 => ("IQ1_S", 256, 50),
        20 => ("IQ4_NL", 32, 18),
        21 => ("IQ3_S", 256, 110),
        22 => ("IQ2_S", 256, 82),
        23 => ("IQ4_XS", 256, 136),
        24 => ("I8", 1, 1),
        25 => ("I16", 1, 2),
        26 => ("I32", 1, 4),
        27 => ("I64", 1, 8),
        28 => ("F64", 1, 8),
        29 => ("IQ1_M", 256, 56),
        30 => ("BF16", 1, 2),
        34 => ("TQ1_0", 256, 54),
        35 => ("TQ2_0", 256, 66),
        39 => ("MXFP4", 32, 17),
        _ => return None,
    })
}

/// Why parsing stopped.
enum Stop {
    /// The file ends inside a structure whose declared size is plausible.
    Truncated { at: usize, what: String },
    /// A declared size or value no real file has (GGUF001).
    Lie { at: usize, what: String },
    /// Within the file but over a configured limit (GEN002).
    Limit { at: usize, what: String },
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    big_endian: bool,
    v1: bool,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Stop> {
        let bytes = self
            .pos
            .checked_add(n)
            .and_then(|end| self.data.get(self.pos..end))
            .ok_or_else(|| Stop::Truncated {
                at: self.pos,
                what: format!("{what} ({n} bytes)"),
            })?;
        self.pos += n;
        Ok(bytes)
    }

    fn fixed<const N: usize>(&mut self, what: &str) -> Result<[u8; N], Stop> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        if self.big_endian {
            out.reverse();
        }
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32, Stop> {
        self.fixed::<4>(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, Stop> {
        self.fixed::<8>(what).map(u64::from_le_bytes)
    }

    /// A count, length or dim: 32 bits in GGUF v1, 64 bits after.
    fn size(&mut self, what: &str) -> Result<u64, Stop> {
        if self.v1 {
            self.u32(what).map(u64::from)
        } else {
            self.u64(what)
        }
    }

    fn size_width(&self) -> u64 {
        if self.v1 { 4 } else { 8 }
    }

    /// Checks that `count` items of at least `min_each` bytes fit in what is
    /// left, telling a lie (count over `cap`) from a truncation.
    fn fits(&self, at: usize, count: u64, min_each: u64, cap: u64, what: &str) -> Result<(), Stop> {
        let need = count.checked_mul(min_each);
        if need.is_some_and(|n| n <= self.remaining() as u64) {
            return Ok(());
        }
        let left = self.remaining();
        if count > cap || need.is_none() {
            Err(Stop::Lie {
                at,
                what: format!("{what} declares {count}, but only {left} bytes remain in the file"),
            })
        } else {
            Err(Stop::Truncated {
                at,
                what: format!("{what} ({count} declared, {left} bytes left)"),
            })
        }
    }

    /// A length-prefixed string, borrowed from the input.
    fn string(&mut self, cap: u64, what: &str) -> Result<(usize, &'a [u8]), Stop> {
        let at = self.pos;
        let len = self.size(what)?;
        self.fits(at, len, 1, cap, &format!("{what} length"))?;
        let start = self.pos;
        let n = usize::try_from(len).map_err(|_| Stop::Lie {
            at,
            what: format!("{what} length {len}"),
        })?;
        Ok((start, self.take(n, what)?))
    }
}

/// What the metadata says that the tensor checks need.
struct Meta<'a> {
    alignment: u64,
    templates: Vec<(String, usize, &'a [u8])>,
}

/// Scans a GGUF file: header, metadata (chat templates included) and
/// tensor infos, never the tensor data.
pub fn scan(cx: &mut Ctx, data: &[u8]) {
    let mut r = Reader {
        data,
        pos: 0,
        big_endian: false,
        v1: false,
    };
    if let Err(stop) = parse(cx, &mut r) {
        match stop {
            Stop::Truncated { at, what } => cx.inconclusive(
                &rules::UNPARSEABLE,
                Some(at as u64),
                format!("GGUF file ends early: truncated in {what}"),
            ),
            Stop::Lie { at, what } => {
                cx.report(
                    &rules::GGUF_IMPOSSIBLE_HEADER,
                    Some(at as u64),
                    format!("GGUF header lies: {what}"),
                    None,
                );
            }
            Stop::Limit { at, what } => {
                cx.inconclusive(&rules::LIMIT_EXCEEDED, Some(at as u64), what)
            }
        }
    }
}

fn parse(cx: &mut Ctx, r: &mut Reader) -> Result<(), Stop> {
    let magic = r.take(4, "magic")?;
    if magic != b"GGUF" {
        return Err(Stop::Truncated {
            at: 0,
            what: "the GGUF magic".into(),
        });
    }
    let raw_version = r.u32("version")?;
    let version = if raw_version & 0xffff == 0 && (1..=3).contains(&raw_version.swap_bytes()) {
        r.big_endian = true;
        cx.set_kind(crate::Kind::GgufBigEndian);
        raw_version.swap_bytes()
    } else {
        raw_version
    };
    if !(1..=3).contains(&version) {
        cx.inconclusive(
            &rules::UNPARSEABLE,
            Some(4),
            format!("GGUF version {raw_version} is not one of the known versions 1-3"),
        );
        return Ok(());
    }
    r.v1 = version == 1;
    let tensor_count_at = r.pos;
    let tensor_count = r.size("tensor count")?;
    let kv_count_at = r.pos;
    let kv_count = r.size("metadata count")?;
    let limits = *cx.limits();
    // The smallest key/value is an empty key, a type and one byte; the
    // smallest tensor info an empty name, n_dims, type and offset.
    let w = r.size_width();
    r.fits(
        kv_count_at,
        kv_count,
        w + 4 + 1,
        limits.max_array_len,
        "the metadata count",
    )?;
    r.fits(
        tensor_count_at,
        tensor_count,
        w + 4 + 4 + 8,
        limits.max_array_len,
        "the tensor count",
    )?;

    let meta = parse_metadata(cx, r, kv_count)?;
    let tensors = parse_tensor_infos(cx, r, tensor_count)?;
    for (key, at, text) in &meta.templates {
        jinja::scan_template(cx, key, text, *at as u64);
    }
    check_layout(cx, r, &meta, &tensors);
    Ok(())
}

fn parse_metadata<'a>(cx: &mut Ctx, r: &mut Reader<'a>, count: u64) -> Result<Meta<'a>, Stop> {
    let limits = *cx.limits();
    let mut meta = Meta {
        alignment: DEFAULT_ALIGNMENT,
        templates: Vec::new(),
    };
    let mut seen: HashSet<&[u8]> = HashSet::new();
    for _ in 0..count {
        if !cx.in_time() {
            return Ok(meta);
        }
        let (key_at, key) = r.string(limits.max_string_bytes, "a metadata key")?;
        let key_text = String::from_utf8_lossy(key).into_owned();
        if !seen.insert(key) {
            cx.report(
                &rules::GGUF_DUPLICATE_NAME,
                Some(key_at as u64),
                format!("metadata key `{key_text}` occurs more than once"),
                Some(key_text.clone()),
            );
        }
        let type_at = r.pos;
        let ty = r.u32("a metadata value type")?;
        let value_at = r.pos;
        let is_template = key_text == "tokenizer.chat_template"
            || key_text.starts_with("tokenizer.chat_template.");
        match (key_text.as_str(), ty) {
            ("general.alignment", T_UINT32) => {
                let a = u64::from(r.u32("general.alignment")?);
                if a == 0 || !a.is_power_of_two() {
                    return Err(Stop::Lie {
                        at: value_at,
                        what: format!("general.alignment is {a}, not a power of two"),
                    });
                }
                meta.alignment = a;
            }
            ("general.alignment", _) => {
                return Err(Stop::Lie {
                    at: type_at,
                    what: format!("general.alignment has value type {ty}, not uint32"),
                });
            }
            (_, T_STRING) if is_template => {
                let (at, text) = r.string(limits.max_string_bytes, "the chat template")?;
                meta.templates.push((key_text, at, text));
            }
            _ => {
                if is_template {
                    cx.report(
                        &rules::TEMPLATE_UNPARSEABLE,
                        Some(type_at as u64),
                        format!("{key_text} has value type {ty}, not a string"),
                        None,
                    );
                }
                skip_value(r, ty, type_at, 0, &limits)?;
            }
        }
    }
    Ok(meta)
}

/// Steps over one value without copying it. Fixed-size arrays are skipped
/// in one bounds-checked step, so a huge numeric array costs nothing.
fn skip_value(
    r: &mut Reader,
    ty: u32,
    type_at: usize,
    depth: u32,
    limits: &crate::Limits,
) -> Result<(), Stop> {
    if let Some(n) = fixed_size(ty) {
        r.take(n, "a metadata value")?;
        return Ok(());
    }
    match ty {
        T_STRING => r
            .string(limits.max_string_bytes, "a string value")
            .map(|_| ()),
        T_ARRAY => {
            if depth >= limits.max_structure_depth {
                return Err(Stop::Lie {
                    at: type_at,
                    what: format!(
                        "metadata arrays nested deeper than {} levels",
                        limits.max_structure_depth
                    ),
                });
            }
            let elem_at = r.pos;
            let elem = r.u32("an array element type")?;
            let count_at = r.pos;
            let count = r.size("an array length")?;
            if let Some(n) = fixed_size(elem) {
                r.fits(
                    count_at,
                    count,
                    n as u64,
                    limits.max_array_len,
                    "an array length",
                )?;
                r.take((count * n as u64) as usize, "array elements")?;
                return Ok(());
            }
            let min_each = match elem {
                T_STRING => r.size_width(),
                T_ARRAY => 4 + r.size_width(),
                _ => {
                    return Err(Stop::Lie {
                        at: elem_at,
                        what: format!("array element type {elem} does not exist"),
                    });
                }
            };
            r.fits(
                count_at,
                count,
                min_each,
                limits.max_array_len,
                "an array length",
            )?;
            if count > limits.max_array_len {
                return Err(Stop::Limit {
                    at: count_at,
                    what: format!(
                        "GGUF array of {count} elements exceeds the limit of {}",
                        limits.max_array_len
                    ),
                });
            }
            for _ in 0..count {
                skip_value(r, elem, elem_at, depth + 1, limits)?;
            }
            Ok(())
        }
        _ => Err(Stop::Lie {
            at: type_at,
            what: format!("metadata value type {ty} does not exist"),
        }),
    }
}

fn fixed_size(ty: u32) -> Option<usize> {
    match ty {
        T_UINT8 | T_INT8 | T_BOOL => Some(1),
        T_UINT16 | T_INT16 => Some(2),
        T_UINT32 | T_INT32 | T_FLOAT32 => Some(4),
        T_UINT64 | T_INT64 | T_FLOAT64 => Some(8),
        _ => None,
    }
}

struct TensorInfo {
    name: String,
    /// Offset of the tensor info in the file (for findings).
    at: usize,
    offset: u64,
    /// Byte size, `None` for unknown types.
    size: Option<u64>,
}

fn parse_tensor_infos(cx: &mut Ctx, r: &mut Reader, count: u64) -> Result<Vec<TensorInfo>, Stop> {
    let limits = *cx.limits();
    if count > limits.max_array_len {
        return Err(Stop::Limit {
            at: 16,
            what: format!(
                "GGUF declares {count} tensors, over the limit of {}",
                limits.max_array_len
            ),
        });
    }
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    // `count` was checked against the bytes left, so this is bounded by them.
    let mut tensors = Vec::with_capacity(count as usize);
    for _ in 0..count {
        if !cx.in_time() {
            break;
        }
        let (at, name) = r.string(limits.max_string_bytes, "a tensor name")?;
        let name_text = String::from_utf8_lossy(name).into_owned();
        if !seen.insert(name.to_vec()) {
            cx.report(
                &rules::GGUF_DUPLICATE_NAME,
                Some(at as u64),
                format!("tensor name `{name_text}` occurs more than once"),
                Some(name_text.clone()),
            );
        }
        let dims_at = r.pos;
        let n_dims = r.u32("a tensor's dimension count")?;
        if n_dims > MAX_DIMS {
            return Err(Stop::Lie {
                at: dims_at,
                what: format!(
                    "tensor `{name_text}` has {n_dims} dimensions, ggml supports at most {MAX_DIMS}"
                ),
            });
        }
        let mut elements: u64 = 1;
        let mut first_dim = 1;
        for i in 0..n_dims {
            let d = r.size("a tensor dimension")?;
            if d > i64::MAX as u64 {
                return Err(Stop::Lie {
                    at: dims_at,
                    what: format!("tensor `{name_text}` has dimension {d}"),
                });
            }
            if i == 0 {
                first_dim = d;
            }
            elements = elements.checked_mul(d).ok_or_else(|| Stop::Lie {
                at: dims_at,
                what: format!("tensor `{name_text}`'s element count overflows 64 bits"),
            })?;
        }
        let type_at = r.pos;
        let ty = r.u32("a tensor type")?;
        let offset = r.u64("a tensor offset")?;
        let size = match ggml_type(ty) {
            Some((type_name, block, bytes)) => {
                if first_dim % block != 0 {
                    return Err(Stop::Lie {
                        at: dims_at,
                        what: format!(
                            "tensor `{name_text}` of type {type_name} has a first dimension {first_dim} that is not a multiple of its block size {block}"
                        ),
                    });
                }
                Some(
                    (elements / block)
                        .checked_mul(bytes)
                        .ok_or_else(|| Stop::Lie {
                            at: dims_at,
                            what: format!("tensor `{name_text}`'s byte size overflows 64 bits"),
                        })?,
                )
            }
            None => {
                cx.report(
                    &rules::GGUF_UNKNOWN_TENSOR_TYPE,
                    Some(type_at as u64),
                    format!("tensor `{name_text}` has ggml type {ty}; its size and bounds cannot be checked"),
                    Some(name_text.clone()),
                );
                None
            }
        };
        tensors.push(TensorInfo {
            name: name_text,
            at,
            offset,
            size,
        });
    }
    Ok(tensors)
}

fn align_up(x: u64, alignment: u64) -> Option<u64> {
    x.checked_add(alignment - 1)
        .map(|v| v / alignment * alignment)
}

/// Checks where tensor data lies, from the infos alone.
fn check_layout(cx: &mut Ctx, r: &Reader, meta: &Meta, tensors: &[TensorInfo]) {
    let file_len = r.data.len() as u64;
    let alignment = meta.alignment;
    let Some(data_start) = align_up(r.pos as u64, alignment) else {
        return;
    };
    // Tensor data is written in declaration order, each padded to the
    // alignment; `regular` stays true while the file follows that layout.
    let mut expected = 0u64;
    let mut regular = true;
    let mut misaligned_reported = false;
    for t in tensors {
        if t.offset % alignment != 0 && !misaligned_reported {
            misaligned_reported = true;
            cx.report(
                &rules::GGUF_TENSOR_LAYOUT,
                Some(t.at as u64),
                format!(
                    "tensor `{}` has offset {} that is not a multiple of the alignment {alignment}",
                    t.name, t.offset
                ),
                Some(t.name.clone()),
            );
        }
        let Some(size) = t.size else {
            regular = false;
            continue;
        };
        if t.offset != expected {
            regular = false;
        }
        expected = t
            .offset
            .checked_add(size)
            .and_then(|e| align_up(e, alignment))
            .unwrap_or(u64::MAX);
    }

    let mut spans: Vec<(u64, u64, &TensorInfo)> = Vec::new();
    let mut truncated_at: Option<u64> = None;
    for t in tensors {
        let Some(size) = t.size else { continue };
        let end = t
            .offset
            .checked_add(size)
            .and_then(|e| e.checked_add(data_start));
        match end {
            Some(end) if end <= file_len => spans.push((t.offset, t.offset + size, t)),
            Some(end) if regular => {
                truncated_at.get_or_insert(end);
            }
            _ => cx.report(
                &rules::GGUF_TENSOR_OUT_OF_BOUNDS,
                Some(t.at as u64),
                format!(
                    "tensor `{}` claims {size} bytes at data offset {}, past the end of the {file_len}-byte file",
                    t.name, t.offset
                ),
                Some(t.name.clone()),
            ),
        }
    }
    if let Some(end) = truncated_at {
        cx.inconclusive(
            &rules::UNPARSEABLE,
            Some(file_len),
            format!(
                "GGUF file is truncated: tensor data runs to byte {end}, the file has {file_len}"
            ),
        );
        return;
    }

    spans.sort_by_key(|&(b, e, _)| (b, e));
    let mut prev_end = 0u64;
    let mut prev_name = "";
    let mut gap_reported = false;
    for &(begin, end, t) in &spans {
        if begin < prev_end && begin < end {
            cx.report(
                &rules::GGUF_TENSOR_OUT_OF_BOUNDS,
                Some(t.at as u64),
                format!(
                    "tensor `{}` data [{begin}, {end}) overlaps tensor `{prev_name}`",
                    t.name
                ),
                Some(t.name.clone()),
            );
        } else if begin > align_up(prev_end, alignment).unwrap_or(u64::MAX) && !gap_reported {
            gap_reported = true;
            cx.report(
                &rules::GGUF_TENSOR_LAYOUT,
                Some(t.at as u64),
                format!(
                    "{} unused bytes before tensor `{}` in the data section",
                    begin - prev_end,
                    t.name
                ),
                Some(t.name.clone()),
            );
        }
        if end > prev_end {
            prev_end = end;
            prev_name = &t.name;
        }
    }
    let data_end = data_start.saturating_add(align_up(prev_end, alignment).unwrap_or(u64::MAX));
    if regular && tensors.iter().all(|t| t.size.is_some()) && file_len > data_end {
        let trailing = file_len - data_end;
        cx.report(
            &rules::GGUF_TENSOR_LAYOUT,
            Some(data_end),
            format!("{trailing} bytes after the last tensor belong to no tensor"),
            None,
        );
        if let Some(tail) = usize::try_from(data_end).ok().and_then(|s| r.data.get(s..)) {
            cx.scan_member("data after the last GGUF tensor", tail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::safetensors::tests::scan_with_unreadable_tail;
    use crate::{FileReport, ScanStatus, Scanner, Verdict};
    use proptest::prelude::*;

    fn string(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s);
    }

    /// A GGUF v3 header: metadata entries as (key, type, raw value bytes),
    /// tensors as (name, dims, ggml type, offset), padded to 32 bytes.
    fn gguf(kvs: &[(&str, u32, Vec<u8>)], tensors: &[(&str, &[u64], u32, u64)]) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
        for (k, ty, v) in kvs {
            string(&mut out, k.as_bytes());
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(v);
        }
        for (name, dims, ty, off) in tensors {
            string(&mut out, name.as_bytes());
            out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            dims.iter()
                .for_each(|d| out.extend_from_slice(&d.to_le_bytes()));
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(&off.to_le_bytes());
        }
        out.resize(out.len().div_ceil(32) * 32, 0);
        out
    }

    fn str_value(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        string(&mut v, s.as_bytes());
        v
    }

    fn report(data: &[u8]) -> FileReport {
        Scanner::default().scan_bytes("t", data)
    }

    fn ids(data: &[u8]) -> Vec<&'static str> {
        report(data).findings.iter().map(|f| f.rule.id).collect()
    }

    fn with_data(mut header: Vec<u8>, n: usize) -> Vec<u8> {
        header.resize(header.len() + n, 0);
        header
    }

    #[test]
    fn valid_file_is_clean() {
        let tokens = {
            let mut v = T_STRING.to_le_bytes().to_vec();
            v.extend_from_slice(&2u64.to_le_bytes());
            string(&mut v, b"<s>");
            string(&mut v, b"</s>");
            v
        };
        let nested = {
            let mut v = T_ARRAY.to_le_bytes().to_vec();
            v.extend_from_slice(&1u64.to_le_bytes());
            v.extend_from_slice(&T_UINT8.to_le_bytes());
            v.extend_from_slice(&3u64.to_le_bytes());
            v.extend_from_slice(&[1, 2, 3]);
            v
        };
        let h = gguf(
            &[
                ("general.architecture", T_STRING, str_value("llama")),
                ("general.alignment", T_UINT32, 32u32.to_le_bytes().to_vec()),
                ("tokenizer.ggml.tokens", T_ARRAY, tokens),
                ("x.nested", T_ARRAY, nested),
                (
                    "tokenizer.chat_template",
                    T_STRING,
                    str_value("{{ messages[0]['content'] }}"),
                ),
            ],
            &[
                ("a", &[64, 2], 0, 0),
                ("b", &[256], 12, 512),
                ("c", &[3], 1, 672),
            ],
        );
        let r = report(&with_data(h, 704));
        assert!(r.findings.is_empty(), "{:#?}", r.findings);
        assert_eq!(r.status, ScanStatus::Complete);
    }

    #[test]
    fn template_payload_is_malicious() {
        let h = gguf(
            &[(
                "tokenizer.chat_template",
                T_STRING,
                str_value("{{ cycler.__init__.__globals__.os.popen('id') }}"),
            )],
            &[],
        );
        let r = report(&h);
        assert_eq!(r.verdict, Verdict::Malicious);
        assert!(r.findings.iter().all(|f| f.rule.id == "GGUF010"));
        let named = gguf(
            &[(
                "tokenizer.chat_template.tool_use",
                T_STRING,
                str_value("{{ x.__class__ }}"),
            )],
            &[],
        );
        assert!(ids(&named).contains(&"GGUF010"));
    }

    #[test]
    fn absurd_counts_are_lies_found_at_once() {
        let mut h = b"GGUF".to_vec();
        h.extend_from_slice(&3u32.to_le_bytes());
        h.extend_from_slice(&(1u64 << 60).to_le_bytes());
        h.extend_from_slice(&0u64.to_le_bytes());
        let started = std::time::Instant::now();
        assert_eq!(ids(&h), ["GGUF001"]);
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        let long_key = {
            let mut h = b"GGUF".to_vec();
            h.extend_from_slice(&3u32.to_le_bytes());
            h.extend_from_slice(&0u64.to_le_bytes());
            h.extend_from_slice(&1u64.to_le_bytes());
            h.extend_from_slice(&u64::MAX.to_le_bytes());
            h.extend_from_slice(&[0; 16]);
            h
        };
        assert_eq!(ids(&long_key), ["GGUF001"]);
    }

    #[test]
    fn header_lies_are_gguf001() {
        let arr = |elem: u32, n: u64| {
            let mut v = elem.to_le_bytes().to_vec();
            v.extend_from_slice(&n.to_le_bytes());
            v
        };
        for h in [
            gguf(&[("k", 99, vec![0; 8])], &[]),
            gguf(&[("k", T_ARRAY, arr(T_UINT32, u64::MAX / 2))], &[]),
            gguf(&[("k", T_ARRAY, arr(77, 1))], &[]),
            gguf(
                &[("general.alignment", T_UINT32, 3u32.to_le_bytes().to_vec())],
                &[],
            ),
            gguf(
                &[("general.alignment", T_UINT64, 32u64.to_le_bytes().to_vec())],
                &[],
            ),
            gguf(&[], &[("t", &[1, 1, 1, 1, 1], 0, 0)]),
            gguf(&[], &[("t", &[u64::MAX / 2, 4], 0, 0)]),
            gguf(&[], &[("t", &[33], 2, 0)]),
        ] {
            assert!(ids(&h).contains(&"GGUF001"), "{:?}", ids(&h));
        }
        // Arrays of arrays deeper than the structure limit.
        let mut deep = Vec::new();
        for _ in 0..200 {
            deep.extend_from_slice(&arr(T_ARRAY, 1));
        }
        deep.extend_from_slice(&arr(T_UINT8, 0));
        let mut value = deep[..4].to_vec();
        value.extend_from_slice(&deep[4..]);
        assert!(ids(&gguf(&[("k", T_ARRAY, value[..].to_vec())], &[])).contains(&"GGUF001"));
    }

    #[test]
    fn tensor_placement_rules() {
        let oob = with_data(gguf(&[], &[("a", &[4], 0, 0), ("b", &[4], 0, 1 << 40)]), 64);
        assert!(ids(&oob).contains(&"GGUF002"));
        let overlap = with_data(gguf(&[], &[("a", &[16], 0, 0), ("b", &[16], 0, 32)]), 128);
        assert!(ids(&overlap).contains(&"GGUF002"));
        let misaligned = with_data(gguf(&[], &[("a", &[4], 0, 0), ("b", &[4], 0, 20)]), 64);
        assert!(ids(&misaligned).contains(&"GGUF004"));
        let gap = with_data(gguf(&[], &[("a", &[4], 0, 0), ("b", &[4], 0, 64)]), 96);
        assert_eq!(ids(&gap), ["GGUF004"]);
        let trailing = with_data(gguf(&[], &[("a", &[8], 0, 0)]), 4096);
        assert_eq!(ids(&trailing), ["GGUF004"]);
        let dup = with_data(
            gguf(
                &[("k", T_UINT8, vec![1]), ("k", T_UINT8, vec![2])],
                &[("a", &[8], 0, 0), ("a", &[8], 0, 32)],
            ),
            64,
        );
        assert_eq!(ids(&dup), ["GGUF003", "GGUF003"]);
        let unknown = with_data(gguf(&[], &[("a", &[8], 4, 0)]), 64);
        assert_eq!(ids(&unknown), ["GGUF005"]);
    }

    #[test]
    fn truncation_is_inconclusive_not_malicious() {
        let full = with_data(
            gguf(
                &[("general.name", T_STRING, str_value("m"))],
                &[("a", &[64], 0, 0), ("b", &[64], 0, 256)],
            ),
            512,
        );
        let cut = &full[..full.len() - 100];
        let r = report(cut);
        assert_eq!(r.verdict, Verdict::Suspicious);
        assert_eq!(
            r.findings.iter().map(|f| f.rule.id).collect::<Vec<_>>(),
            ["GEN001"]
        );
        assert!(matches!(r.status, ScanStatus::Inconclusive { .. }));
        let r = report(&full[..40]);
        assert_eq!(
            r.findings.iter().map(|f| f.rule.id).collect::<Vec<_>>(),
            ["GEN001"]
        );
    }

    #[test]
    fn big_endian_and_v1_files_parse() {
        let mut be = b"GGUF".to_vec();
        be.extend_from_slice(&3u32.to_be_bytes());
        be.extend_from_slice(&0u64.to_be_bytes());
        be.extend_from_slice(&1u64.to_be_bytes());
        be.extend_from_slice(&4u64.to_be_bytes());
        be.extend_from_slice(b"name");
        be.extend_from_slice(&T_UINT32.to_be_bytes());
        be.extend_from_slice(&7u32.to_be_bytes());
        let r = report(&be);
        assert!(r.findings.is_empty(), "{:#?}", r.findings);
        assert_eq!(r.format, crate::Kind::GgufBigEndian);

        let mut v1 = b"GGUF".to_vec();
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&0u32.to_le_bytes());
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(b"k");
        v1.extend_from_slice(&T_UINT8.to_le_bytes());
        v1.push(1);
        assert!(ids(&v1).is_empty());
    }

    #[test]
    fn a_gigabyte_file_costs_only_its_header() {
        let total = 1usize << 30;
        let head = gguf(
            &[("general.name", T_STRING, str_value("big"))],
            &[("w", &[(total as u64 - 4096) / 4], 0, 0)],
        );
        assert!(head.len() <= 4096);
        let mut head = head;
        // Move the tensor so it ends exactly at the end of the file.
        let data_start = head.len() as u64;
        let n = (total as u64 - data_start) / 4;
        head = gguf(
            &[("general.name", T_STRING, str_value("big"))],
            &[("w", &[n], 0, 0)],
        );
        assert_eq!(head.len() as u64, data_start);
        let r = scan_with_unreadable_tail(&head, total);
        assert!(r.findings.is_empty(), "{:#?}", r.findings);
        assert_eq!(r.status, ScanStatus::Complete);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut data = b"GGUF".to_vec();
            data.extend_from_slice(&tail);
            scan(&mut crate::Ctx::new(&Scanner::default(), None), &data);
        }

        #[test]
        fn mutated_files_never_panic(cut in 0usize..400, flips in proptest::collection::vec((0usize..400, any::<u8>()), 0..8)) {
            let mut data = with_data(gguf(
                &[("general.alignment", T_UINT32, 32u32.to_le_bytes().to_vec()),
                  ("tokenizer.chat_template", T_STRING, str_value("{% for m in messages %}{{ m.content }}{% endfor %}"))],
                &[("a", &[32], 8, 0), ("b", &[2, 2], 0, 64)],
            ), 96);
            for (i, b) in flips {
                if let Some(x) = data.get_mut(i) { *x = b; }
            }
            data.truncate(cut.min(data.len()));
            let scanner = Scanner::default();
            scan(&mut crate::Ctx::new(&scanner, None), &data);
        }
    }
}
