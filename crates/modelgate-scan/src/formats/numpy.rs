//! NumPy `.npy` files (format versions 1.0–3.0). Numeric arrays are raw
//! bytes after a small header and are never read. NumPy reads that header
//! with `ast.literal_eval` and hands `descr` to `descr_to_dtype`; an object
//! dtype there means the data is a pickle that `np.load(allow_pickle=True)`
//! runs (CVE-2019-6446), and that pickle is scanned.
//!
//! The header is parsed as the Python literal it is (all string escapes,
//! implicit concatenation, nested tuples, lists and dicts, last duplicate key
//! wins), never searched for patterns: `'\x4f'`, `'O' ''` and
//! `{'descr': '<f4', 'descr': '|O'}` are object dtypes to NumPy and so to the
//! scanner. A dtype string that is not a plain numeric type code is treated
//! as possibly holding objects. `.npz` files are zips of `.npy` and go
//! through the zip reader.

use crate::{Ctx, Verdict, pickle, rules};

/// Nesting of tuples, lists and dicts in a header (NumPy's own headers use
/// three levels for nested structured dtypes).
const MAX_DEPTH: usize = 64;

/// Scans a `.npy` file: its header, and the pickle after it when the dtype
/// holds Python objects.
pub fn scan(cx: &mut Ctx, data: &[u8]) {
    let Some(&major) = data.get(6) else {
        cx.inconclusive(&rules::UNPARSEABLE, Some(6), "npy header truncated");
        return;
    };
    let (len_bytes, header_start): (usize, usize) = match major {
        1 => (2, 10),
        2 | 3 => (4, 12),
        v => {
            cx.inconclusive(
                &rules::UNPARSEABLE,
                Some(6),
                format!("unknown npy format version {v}"),
            );
            return;
        }
    };
    let Some(len_field) = data.get(8..8 + len_bytes) else {
        cx.inconclusive(&rules::UNPARSEABLE, Some(8), "npy header length truncated");
        return;
    };
    let header_len = len_field
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    let Some(header) = data.get(header_start..header_start.saturating_add(header_len)) else {
        cx.inconclusive(
            &rules::UNPARSEABLE,
            Some(8),
            format!("npy header of {header_len} bytes runs past the end of the file"),
        );
        return;
    };
    // Versions 1 and 2 are latin-1, version 3 UTF-8.
    let text: String = if major == 3 {
        String::from_utf8_lossy(header).into_owned()
    } else {
        header.iter().map(|&b| char::from(b)).collect()
    };
    let body_start = header_start + header_len;
    let body = data.get(body_start..).unwrap_or_default();
    let descr = match parse_header(&text, major < 3) {
        Ok(header) => header,
        Err(reason) => {
            cx.inconclusive(
                &rules::UNPARSEABLE,
                Some(header_start as u64),
                format!("npy header is not what NumPy accepts: {reason}"),
            );
            if pickle::looks_like_pickle(body) {
                cx.in_member("<npy data pickle>", |cx| pickle::scan(cx, body));
            }
            return;
        }
    };
    match dtype_kind(&descr, 0) {
        DtypeKind::Plain => {}
        DtypeKind::Object => {
            cx.report_as(
                &rules::OBJECT_ARRAY,
                Verdict::Info,
                Some(body_start as u64),
                "array of dtype object: its data is a pickle and loading needs allow_pickle=True (scanned)",
                Some(format!("descr {}", descr.show())),
            );
            cx.in_member("<object array pickle>", |cx| pickle::scan(cx, body));
        }
        DtypeKind::Unknown => {
            cx.report(
                &rules::NPY_UNUSUAL_DTYPE,
                Some(header_start as u64),
                "npy dtype is not spelled as numpy.save writes it; it may hold objects, so the data is scanned as a pickle",
                Some(format!("descr {}", descr.show())),
            );
            cx.in_member("<npy data pickle>", |cx| pickle::scan(cx, body));
        }
    }
}

/// A Python literal as `ast.literal_eval` builds it (only the forms an npy
/// header can use; floats and complex numbers are kept as opaque).
#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Str(String),
    Int,
    Bool,
    None,
    Other,
    Tuple(Vec<Lit>),
    List(Vec<Lit>),
    Dict(Vec<(Lit, Lit)>),
}

impl Lit {
    fn show(&self) -> String {
        // Evidence is capped by characters: a byte cut can land inside
        // one (a header is hostile text), which `truncate` panics on.
        format!("{self:?}").chars().take(200).collect()
    }
}

/// Parses the header dict and returns its `descr`, checking what
/// `_read_array_header` checks: a dict with exactly the keys `descr`,
/// `fortran_order` and `shape` (after duplicates collapse), a tuple of ints
/// for the shape and a bool for the order.
fn parse_header(text: &str, allow_long: bool) -> Result<Lit, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        pos: 0,
        allow_long,
    };
    let value = p.value(0)?;
    p.skip_space();
    if p.pos != p.s.len() {
        return Err(format!("unexpected text at byte {}", p.pos));
    }
    let Lit::Dict(pairs) = value else {
        return Err("header is not a dict".into());
    };
    let mut descr = None;
    let mut shape = None;
    let mut order = None;
    for (k, v) in pairs {
        match k {
            Lit::Str(k) if k == "descr" => descr = Some(v),
            Lit::Str(k) if k == "shape" => shape = Some(v),
            Lit::Str(k) if k == "fortran_order" => order = Some(v),
            _ => return Err("header has keys other than descr, fortran_order, shape".into()),
        }
    }
    match shape {
        Some(Lit::Tuple(dims)) if dims.iter().all(|d| *d == Lit::Int) => {}
        _ => return Err("shape is not a tuple of ints".into()),
    }
    if order != Some(Lit::Bool) {
        return Err("fortran_order is not a bool".into());
    }
    descr.ok_or_else(|| "header has no descr".into())
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
    allow_long: bool,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    /// Whitespace, newlines, comments and backslash line continuations.
    fn skip_space(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => self.pos += 1,
                b'\\' if matches!(self.s.get(self.pos + 1), Some(b'\n' | b'\r')) => self.pos += 2,
                b'#' => {
                    while self.peek().is_some_and(|c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                _ => return,
            }
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_space();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Lit, String> {
        if depth > MAX_DEPTH {
            return Err("header nests too deep".into());
        }
        self.skip_space();
        let c = self.peek().ok_or("header ends early")?;
        match c {
            b'{' => {
                self.pos += 1;
                let mut pairs = Vec::new();
                loop {
                    if self.eat(b'}') {
                        return Ok(Lit::Dict(pairs));
                    }
                    let k = self.value(depth + 1)?;
                    if !self.eat(b':') {
                        return Err("expected ':' in dict".into());
                    }
                    let v = self.value(depth + 1)?;
                    pairs.push((k, v));
                    if !self.eat(b',') {
                        if self.eat(b'}') {
                            return Ok(Lit::Dict(pairs));
                        }
                        return Err("expected ',' or '}' in dict".into());
                    }
                }
            }
            b'(' | b'[' => {
                self.pos += 1;
                let close = if c == b'(' { b')' } else { b']' };
                let mut items = Vec::new();
                let mut trailing_comma = false;
                loop {
                    if self.eat(close) {
                        break;
                    }
                    items.push(self.value(depth + 1)?);
                    trailing_comma = self.eat(b',');
                    if !trailing_comma {
                        if self.eat(close) {
                            break;
                        }
                        return Err("expected ',' in sequence".into());
                    }
                }
                Ok(match (c, items.len(), trailing_comma) {
                    // `(x)` is just `x`.
                    (b'(', 1, false) => items.pop().unwrap_or(Lit::None),
                    (b'(', ..) => Lit::Tuple(items),
                    _ => Lit::List(items),
                })
            }
            b'-' | b'+' => {
                self.pos += 1;
                match self.value(depth + 1)? {
                    Lit::Int => Ok(Lit::Int),
                    Lit::Other => Ok(Lit::Other),
                    _ => Err("sign before a non-number".into()),
                }
            }
            b'0'..=b'9' | b'.' => self.number(),
            _ if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => self.word_or_string(),
            b'\'' | b'"' => self.strings(),
            _ => Err(format!("unexpected character at byte {}", self.pos)),
        }
    }

    fn number(&mut self) -> Result<Lit, String> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
        {
            self.pos += 1;
        }
        let mut tok = &self.text[start..self.pos];
        if self.allow_long && tok.len() > 1 && tok.ends_with(['l', 'L']) {
            tok = &tok[..tok.len() - 1];
        }
        let digits: String = tok.chars().filter(|&c| c != '_').collect();
        let lower = digits.to_ascii_lowercase();
        let int = if let Some(h) = lower.strip_prefix("0x") {
            !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit())
        } else if let Some(o) = lower.strip_prefix("0o") {
            !o.is_empty() && o.chars().all(|c| ('0'..='7').contains(&c))
        } else if let Some(b) = lower.strip_prefix("0b") {
            !b.is_empty() && b.chars().all(|c| c == '0' || c == '1')
        } else {
            !lower.is_empty()
                && lower.chars().all(|c| c.is_ascii_digit())
                && (lower.chars().all(|c| c == '0') || !lower.starts_with('0'))
        };
        if int {
            return Ok(Lit::Int);
        }
        let float = lower.trim_end_matches('j').parse::<f64>().is_ok();
        if float {
            Ok(Lit::Other)
        } else {
            Err(format!("bad number `{tok}`"))
        }
    }

    /// `True`/`False`/`None`, or a string with a prefix (`r`, `u`, `b`, `br`).
    fn word_or_string(&mut self) -> Result<Lit, String> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80)
        {
            self.pos += 1;
        }
        let word = &self.text[start..self.pos];
        match word {
            "True" | "False" => return Ok(Lit::Bool),
            "None" => return Ok(Lit::None),
            _ => {}
        }
        if matches!(self.peek(), Some(b'\'' | b'"')) && string_prefix(word).is_some() {
            self.pos = start;
            return self.strings();
        }
        Err(format!("name `{word}` is not a literal"))
    }

    /// One or more adjacent string literals, concatenated (mixing bytes and
    /// str is a syntax error, as in Python).
    fn strings(&mut self) -> Result<Lit, String> {
        let mut out = String::new();
        let mut kind = None;
        loop {
            self.skip_space();
            let start = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                self.pos += 1;
            }
            let Some((raw, bytes)) = string_prefix(&self.text[start..self.pos]) else {
                self.pos = start;
                break;
            };
            if !matches!(self.peek(), Some(b'\'' | b'"')) {
                self.pos = start;
                break;
            }
            if *kind.get_or_insert(bytes) != bytes {
                return Err("bytes and str literals concatenated".into());
            }
            self.string_body(raw, bytes, &mut out)?;
        }
        if kind.is_none() {
            return Err("expected a string".into());
        }
        Ok(Lit::Str(out))
    }

    fn string_body(&mut self, raw: bool, bytes: bool, out: &mut String) -> Result<(), String> {
        let q = self.peek().ok_or("string ends early")?;
        let triple = self.s.get(self.pos..self.pos + 3) == Some(&[q, q, q][..]);
        self.pos += if triple { 3 } else { 1 };
        loop {
            let c = self.peek().ok_or("unterminated string")?;
            if c == q && (!triple || self.s.get(self.pos..self.pos + 3) == Some(&[q, q, q][..])) {
                self.pos += if triple { 3 } else { 1 };
                return Ok(());
            }
            if !triple && c == b'\n' {
                return Err("newline in string".into());
            }
            if c == b'\\' {
                if raw {
                    // A raw string keeps the backslash and the next character.
                    out.push('\\');
                    self.pos += 1;
                    let ch = self.next_char()?;
                    out.push(ch);
                    continue;
                }
                self.pos += 1;
                self.escape(bytes, out)?;
                continue;
            }
            let ch = self.next_char()?;
            if bytes && !ch.is_ascii() {
                return Err("non-ASCII character in bytes literal".into());
            }
            out.push(ch);
        }
    }

    fn next_char(&mut self) -> Result<char, String> {
        let ch = self.text[self.pos..]
            .chars()
            .next()
            .ok_or("string ends early")?;
        self.pos += ch.len_utf8();
        Ok(ch)
    }

    fn escape(&mut self, bytes: bool, out: &mut String) -> Result<(), String> {
        let c = self.next_char()?;
        let simple = match c {
            '\r' => {
                if self.peek() == Some(b'\n') {
                    self.pos += 1;
                }
                Some(None)
            }
            _ => super::python_simple_escape(c),
        };
        if let Some(ch) = simple {
            out.extend(ch);
            return Ok(());
        }
        match c {
            '0'..='7' => {
                let mut v = c.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match self.peek() {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            self.pos += 1;
                        }
                        _ => break,
                    }
                }
                out.push(char::from_u32(v).ok_or("bad octal escape")?);
            }
            'x' => out.push(self.hex_escape(2)?),
            'u' if !bytes => out.push(self.hex_escape(4)?),
            'U' if !bytes => out.push(self.hex_escape(8)?),
            'N' if !bytes => {
                if self.peek() != Some(b'{') {
                    return Err("malformed \\N escape".into());
                }
                let close = self.text[self.pos..]
                    .find('}')
                    .ok_or("unterminated \\N escape")?;
                let name = &self.text[self.pos + 1..self.pos + close];
                self.pos += close + 1;
                out.push(named_char(name));
            }
            // Unknown escapes keep their backslash.
            other => {
                out.push('\\');
                out.push(other);
            }
        }
        Ok(())
    }

    fn hex_escape(&mut self, n: usize) -> Result<char, String> {
        let digits = self
            .text
            .get(self.pos..self.pos + n)
            .filter(|d| d.chars().all(|c| c.is_ascii_hexdigit()))
            .ok_or("truncated hex escape")?;
        self.pos += n;
        let v = u32::from_str_radix(digits, 16).map_err(|e| e.to_string())?;
        char::from_u32(v).ok_or_else(|| "escape out of the Unicode range".into())
    }
}

/// `(raw, bytes)` for a valid string prefix.
fn string_prefix(p: &str) -> Option<(bool, bool)> {
    match p.to_ascii_lowercase().as_str() {
        "" | "u" => Some((false, false)),
        "r" => Some((true, false)),
        "b" => Some((false, true)),
        "br" | "rb" => Some((true, true)),
        _ => None,
    }
}

/// The characters a dtype code could be spelled with through `\N{…}`; any
/// other name becomes a character no type code contains (so the dtype is
/// judged unusual, never plain).
fn named_char(name: &str) -> char {
    let name = name.to_ascii_uppercase();
    if let Some(l) = name.strip_prefix("LATIN CAPITAL LETTER ")
        && let [c] = l.as_bytes()
    {
        return char::from(*c);
    }
    if let Some(l) = name.strip_prefix("LATIN SMALL LETTER ")
        && let [c] = l.as_bytes()
    {
        return char::from(c.to_ascii_lowercase());
    }
    if let Some(d) = name.strip_prefix("DIGIT ") {
        let digits = [
            "ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE",
        ];
        if let Some(i) = digits.iter().position(|n| *n == d) {
            return char::from(b'0' + i as u8);
        }
    }
    match name.as_str() {
        "LESS-THAN SIGN" => '<',
        "GREATER-THAN SIGN" => '>',
        "VERTICAL LINE" => '|',
        "EQUALS SIGN" => '=',
        _ => '\u{fffd}',
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DtypeKind {
    Plain,
    Object,
    Unknown,
}

impl DtypeKind {
    fn join(self, other: DtypeKind) -> DtypeKind {
        match (self, other) {
            (DtypeKind::Object, _) | (_, DtypeKind::Object) => DtypeKind::Object,
            (DtypeKind::Unknown, _) | (_, DtypeKind::Unknown) => DtypeKind::Unknown,
            _ => DtypeKind::Plain,
        }
    }
}

/// Mirrors `descr_to_dtype`: a string is a dtype; a tuple is `(subtype,
/// shape-or-dtype)`; anything else is iterated as fields, each unpacked into
/// `(name, type)` or `(name, type, shape)`. Unpacking works on any iterable
/// (a 2-character string, a dict's keys), and only the *types* decide: a
/// field named `O` is just a name.
fn dtype_kind(descr: &Lit, depth: usize) -> DtypeKind {
    if depth > MAX_DEPTH {
        return DtypeKind::Unknown;
    }
    match descr {
        Lit::Str(s) => type_string_kind(s),
        Lit::Tuple(parts) => match parts.as_slice() {
            [sub, second, ..] => dtype_kind(sub, depth + 1).join(shape_or_dtype(second, depth)),
            _ => DtypeKind::Unknown,
        },
        Lit::List(fields) => fields_kind(fields.iter(), depth),
        Lit::Dict(pairs) => fields_kind(pairs.iter().map(|(k, _)| k), depth),
        _ => DtypeKind::Unknown,
    }
}

fn fields_kind<'a>(fields: impl Iterator<Item = &'a Lit>, depth: usize) -> DtypeKind {
    fields.fold(DtypeKind::Plain, |acc, field| {
        let kind = match unpack(field).as_deref() {
            Some([_name, ty]) => dtype_kind(ty, depth + 1),
            Some([_name, ty, shape]) => {
                dtype_kind(ty, depth + 1).join(shape_or_dtype(shape, depth))
            }
            _ => DtypeKind::Unknown,
        };
        acc.join(kind)
    })
}

/// What Python's tuple unpacking would yield from `field`.
fn unpack(field: &Lit) -> Option<Vec<Lit>> {
    match field {
        Lit::Str(s) => Some(s.chars().map(|c| Lit::Str(c.to_string())).collect()),
        Lit::Tuple(items) | Lit::List(items) => Some(items.clone()),
        Lit::Dict(pairs) => Some(pairs.iter().map(|(k, _)| k.clone()).collect()),
        _ => None,
    }
}

/// The second part of `(type, x)`: a shape, or (NumPy's `(base, new)` form)
/// a dtype of its own.
fn shape_or_dtype(x: &Lit, depth: usize) -> DtypeKind {
    match x {
        Lit::Int => DtypeKind::Plain,
        Lit::Tuple(dims) if dims.iter().all(|d| *d == Lit::Int) => DtypeKind::Plain,
        other => dtype_kind(other, depth + 1),
    }
}

/// A type string as `numpy.save` writes it: byte order, kind, item size
/// (`<f8`, `|b1`, `<U10`, `|V16`, `<M8[ns]`), or `|O` for objects. Any
/// other spelling (`O8`, `object`, `i4,O`, `(2,)O`, …) that mentions an
/// object code is an object dtype; anything else is unknown.
fn type_string_kind(s: &str) -> DtypeKind {
    let code = s.strip_prefix(['<', '>', '|', '=']).unwrap_or(s);
    let mut chars = code.chars();
    let kind = chars.next();
    let rest = chars.as_str();
    let size_ok = |r: &str| !r.is_empty() && r.chars().all(|c| c.is_ascii_digit());
    let plain = match kind {
        Some('b' | 'i' | 'u' | 'f' | 'c' | 'S' | 'U' | 'V' | 'a') => size_ok(rest),
        Some('m' | 'M') => match rest.split_once('[') {
            Some((size, unit)) => {
                size_ok(size)
                    && unit
                        .strip_suffix(']')
                        .is_some_and(|u| u.chars().all(|c| c.is_ascii_alphanumeric()))
            }
            None => size_ok(rest),
        },
        _ => false,
    };
    if plain {
        DtypeKind::Plain
    } else if s.contains('O') || s.to_ascii_lowercase().contains("object") {
        DtypeKind::Object
    } else {
        DtypeKind::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(header: &str) -> Result<DtypeKind, String> {
        parse_header(header, true).map(|d| dtype_kind(&d, 0))
    }

    #[test]
    fn object_spellings() {
        for h in [
            "{'descr': '|O', 'fortran_order': False, 'shape': (3,), }",
            "{'descr': 'O8', 'fortran_order': False, 'shape': (3,)}",
            "{'descr': '<O', 'fortran_order': False, 'shape': ()}",
            "{'descr': '\\x4f', 'fortran_order': False, 'shape': ()}",
            "{'descr': '\\u004f', 'fortran_order': False, 'shape': ()}",
            "{'descr': '\\117', 'fortran_order': False, 'shape': ()}",
            "{'descr': '\\N{LATIN CAPITAL LETTER O}', 'fortran_order': False, 'shape': ()}",
            "{'descr': 'O' '', 'fortran_order': False, 'shape': ()}",
            "{'descr': u'|' \"O\", 'fortran_order': False, 'shape': ()}",
            "{'descr': '<f4', 'descr': '|O', 'fortran_order': False, 'shape': (3L,)}",
            "{'d\\x65scr': 'object', 'fortran_order': False, 'shape': ()}",
            "{'descr': [('a', '<i4'), ('b', [('c', '|O')])], 'fortran_order': False, 'shape': ()}",
            "{'descr': [('a', ('|O', (2,)))], 'fortran_order': False, 'shape': (1,)}",
            "{'descr': 'i4,O', 'fortran_order': False, 'shape': ()}",
            "{'descr': ['xO'], 'fortran_order': False, 'shape': ()}",
            "{'descr': {'aO': 1}, 'fortran_order': False, 'shape': ()}",
            "{'descr': ('<i8', '|O'), 'fortran_order': False, 'shape': ()}",
            "{'descr': r'\\x4f' 'O', 'fortran_order': False, 'shape': ()}",
        ] {
            assert_eq!(kind(h), Ok(DtypeKind::Object), "{h}");
        }
    }

    #[test]
    fn plain_dtypes_and_field_names() {
        for h in [
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }          \n",
            "{'descr': [('O', '<i4'), ('name', '<U10')], 'fortran_order': True, 'shape': (2,)}",
            "{'descr': '<M8[ns]', 'fortran_order': False, 'shape': (0,)}",
            "{'descr': '|O', 'descr': '<f8', 'fortran_order': False, 'shape': ()}",
        ] {
            assert_eq!(kind(h), Ok(DtypeKind::Plain), "{h}");
        }
        assert_eq!(
            kind("{'descr': 'float64', 'fortran_order': False, 'shape': ()}"),
            Ok(DtypeKind::Unknown)
        );
    }

    #[test]
    fn rejects_what_numpy_rejects() {
        assert!(kind("{'descr': '<f4', 'shape': ()}").is_err());
        assert!(kind("{'descr': '<f4', 'fortran_order': 0, 'shape': ()}").is_err());
        assert!(kind("{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}").is_err());
        assert!(kind("{'descr': f'<f4', 'fortran_order': False, 'shape': ()}").is_err());
        assert!(kind("{'descr': b'O' 'x', 'fortran_order': False, 'shape': ()}").is_err());
        assert!(kind(&"[".repeat(100_000)).is_err());
    }
}
