//! TorchScript code: the `code/**/*.py` members of a `torch.jit.save`
//! archive. `torch.jit.load` compiles them and runs them — a class's
//! `__setstate__` while the archive loads, `forward` when the model is
//! called — and TorchScript can call any operator registered with PyTorch,
//! including a few that write or read host files (`torch.save`,
//! `torch.from_file`) or call other processes.
//!
//! Nothing is evaluated. A bounded tokenizer turns the source into tokens
//! (Python's lexical rules as TorchScript's lexer applies them: indentation,
//! brackets, strings with their escapes, adjacent string concatenation) and a
//! walker follows every reference chain (`torch.add`, `ops.prim.dtype`,
//! `__torch__.torch.classes.quantized.LinearPackedParamsBase`), resolving it
//! the way the loader's source importer does (`torch_import` in
//! torch/csrc/jit/serialization/import_source.cpp): `torch.X` and
//! `torch.autograd.X` are `aten::X`, `ops.ns.X` is `ns::X`, a literal
//! `getattr(obj, "name")` is `obj.name`. Every operator found is judged
//! against `data/torchscript_ops.tsv`, generated from PyTorch's operator
//! registry with an audit per row (tests/fixtures/gen/torchscript_ops.py).
//!
//! TorchScript also lets code hold a namespace in a variable (`t = torch`,
//! `f = torch.save`); simple aliases are followed, any other use of a
//! namespace as a value is reported, because after it the operator finally
//! called is no longer visible.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use super::onnx::dangerous_word;
use crate::finding::Verdict;
use crate::pickle::opcodes::*;
use crate::{Ctx, rules};

/// Largest code file read. Real exports of large traced models reach a
/// few MB; the cap keeps a hostile archive from costing more than that.
const MAX_CODE_BYTES: usize = 16 << 20;

/// Tokens read from one file (a 16 MB file has about 4 M tokens at most
/// for real code).
const MAX_TOKENS: usize = 4_000_000;

/// Whether an archive member is TorchScript source that `torch.jit.load`
/// compiles: `<archive>/code/<qualified path>.py`.
pub fn is_code_member(name: &str) -> bool {
    name.ends_with(".py") && {
        let mut parts: Vec<&str> = name.split('/').collect();
        parts.pop();
        parts.contains(&"code")
    }
}

/// Scans one TorchScript source file.
pub fn scan_code(cx: &mut Ctx, data: &[u8]) {
    if data.len() > MAX_CODE_BYTES {
        cx.inconclusive(
            &rules::TS_UNPARSEABLE,
            None,
            format!(
                "TorchScript source of {} bytes is over the code limit of {MAX_CODE_BYTES}",
                data.len()
            ),
        );
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        cx.inconclusive(
            &rules::TS_UNPARSEABLE,
            None,
            "TorchScript source is not UTF-8",
        );
        return;
    };
    let max_depth = cx.limits().max_structure_depth as usize;
    let tokens = match tokenize(text, max_depth) {
        Ok(t) => t,
        Err(e) => {
            cx.inconclusive(
                &rules::TS_UNPARSEABLE,
                None,
                format!(
                    "TorchScript source unreadable at line {}: {}",
                    e.line, e.what
                ),
            );
            return;
        }
    };
    let mut walker = Walker {
        toks: &tokens,
        pos: 0,
        env: HashMap::new(),
        refs: Vec::new(),
        max_depth,
    };
    if let Err(e) = walker.walk() {
        cx.inconclusive(
            &rules::TS_UNPARSEABLE,
            None,
            format!(
                "TorchScript source unreadable at line {}: {}",
                e.line, e.what
            ),
        );
    }
    report(cx, walker.refs);
}

/// Whether an archive member is the mobile (lite interpreter) bytecode that
/// `_load_for_lite_interpreter` runs instead of `code/`.
pub fn is_bytecode_member(name: &str) -> bool {
    name == "bytecode.pkl" || name.ends_with("/bytecode.pkl")
}

/// Judges the operators and classes named by a mobile `bytecode.pkl`: each
/// method's `('operators', ((name, overload, nargs), …))` table, and every
/// `__torch__.torch.classes.*` type. The pickle's own globals are the pickle
/// scanner's business; this reads only its strings, walking the opcode
/// stream so that string bytes are never mistaken for opcodes.
pub fn scan_bytecode(cx: &mut Ctx, data: &[u8]) {
    match bytecode_refs(data) {
        Ok(refs) => report(cx, refs),
        Err(what) => cx.inconclusive(
            &rules::TS_UNPARSEABLE,
            None,
            format!("mobile bytecode unreadable: {what}"),
        ),
    }
}

/// Section names of a mobile method table; a string equal to one ends the
/// operator list before it.
const BYTECODE_SECTIONS: &[&str] = &[
    "instructions",
    "operators",
    "constants",
    "types",
    "register_size",
];

fn bytecode_refs(data: &[u8]) -> Result<Vec<(Ref, u32)>, String> {
    let mut refs = Vec::new();
    let mut memo: HashMap<u64, String> = HashMap::new();
    let mut in_operators = false;
    let mut i = 0usize;
    let mut last: Option<String> = None;
    let mut next_memo = 0u64;
    let take = |i: &mut usize, n: usize| -> Result<&[u8], String> {
        let s = data
            .get(*i..i.saturating_add(n))
            .ok_or_else(|| format!("opcode argument past the end at byte {i}"))?;
        *i += n;
        Ok(s)
    };
    let le = |b: &[u8]| {
        b.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
    };
    loop {
        let Some(&op) = data.get(i) else {
            return Err("no STOP opcode".into());
        };
        i += 1;
        let mut pushed: Option<String> = None;
        match op {
            STOP => break,
            // No argument.
            MARK | POP | POP_MARK | DUP | NONE | REDUCE | APPEND | BUILD | DICT | EMPTY_DICT
            | APPENDS | LIST | EMPTY_LIST | OBJ | SETITEM | TUPLE | EMPTY_TUPLE | SETITEMS
            | BINPERSID | NEWOBJ | TUPLE1 | TUPLE2 | TUPLE3 | NEWTRUE | NEWFALSE | EMPTY_SET
            | ADDITEMS | FROZENSET | NEWOBJ_EX | STACK_GLOBAL | NEXT_BUFFER | READONLY_BUFFER => {}
            MEMOIZE => {
                if let Some(s) = &last {
                    memo.insert(next_memo, s.clone());
                }
                next_memo += 1;
            }
            BININT1 | PROTO | EXT1 => {
                take(&mut i, 1)?;
            }
            BINGET => pushed = memo.get(&le(take(&mut i, 1)?)).cloned(),
            BINPUT => {
                let k = le(take(&mut i, 1)?);
                if let Some(s) = &last {
                    memo.insert(k, s.clone());
                }
            }
            BININT2 | EXT2 => {
                take(&mut i, 2)?;
            }
            BININT | EXT4 => {
                take(&mut i, 4)?;
            }
            LONG_BINGET => pushed = memo.get(&le(take(&mut i, 4)?)).cloned(),
            LONG_BINPUT => {
                let k = le(take(&mut i, 4)?);
                if let Some(s) = &last {
                    memo.insert(k, s.clone());
                }
            }
            BINFLOAT | FRAME => {
                take(&mut i, 8)?;
            }
            SHORT_BINSTRING | SHORT_BINBYTES | LONG1 | SHORT_BINUNICODE => {
                let n = le(take(&mut i, 1)?) as usize;
                let body = take(&mut i, n)?;
                if op == SHORT_BINUNICODE {
                    pushed = Some(String::from_utf8_lossy(body).into_owned());
                }
            }
            BINSTRING | BINUNICODE | BINBYTES | LONG4 => {
                let n = usize::try_from(le(take(&mut i, 4)?)).map_err(|e| e.to_string())?;
                let body = take(&mut i, n)?;
                if op == BINUNICODE {
                    pushed = Some(String::from_utf8_lossy(body).into_owned());
                }
            }
            BINUNICODE8 | BINBYTES8 | BYTEARRAY8 => {
                let n = usize::try_from(le(take(&mut i, 8)?)).map_err(|e| e.to_string())?;
                let body = take(&mut i, n)?;
                if op == BINUNICODE8 {
                    pushed = Some(String::from_utf8_lossy(body).into_owned());
                }
            }
            INT | LONG | FLOAT | STRING | UNICODE | PERSID | GET | PUT | GLOBAL | INST => {
                let lines = if op == GLOBAL || op == INST { 2 } else { 1 };
                for _ in 0..lines {
                    let end = data
                        .get(i..)
                        .and_then(|rest| rest.iter().position(|&c| c == b'\n'))
                        .ok_or("unterminated text argument")?;
                    let line = take(&mut i, end + 1)?;
                    let text = String::from_utf8_lossy(line.get(..end).unwrap_or_default());
                    match op {
                        UNICODE => pushed = Some(text.into_owned()),
                        STRING => {
                            pushed = Some(text.trim_matches(|c| c == '\'' || c == '"').to_string())
                        }
                        GET => pushed = text.parse().ok().and_then(|k| memo.get(&k).cloned()),
                        PUT => {
                            if let (Ok(k), Some(s)) = (text.parse(), &last) {
                                memo.insert(k, s.clone());
                            }
                        }
                        _ => {}
                    }
                }
            }
            other => return Err(format!("unknown opcode 0x{other:02x} at byte {}", i - 1)),
        }
        if memo.len() > 1_000_000 {
            return Err("memo over a million entries".into());
        }
        if !matches!(op, MEMOIZE | BINPUT | LONG_BINPUT | PUT) {
            last = pushed.clone();
        }
        let Some(s) = pushed else { continue };
        if BYTECODE_SECTIONS.contains(&s.as_str()) {
            in_operators = s == "operators";
        } else if in_operators && let Some((ns, name)) = s.split_once("::") {
            refs.push((Ref::Op(ns.to_string(), name.to_string()), 0));
        }
        if let Some(rest) = s.split("__torch__.torch.classes.").nth(1) {
            let mut parts = rest
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .next()
                .unwrap_or_default()
                .splitn(2, '.');
            if let (Some(ns), Some(class)) = (parts.next(), parts.next()) {
                refs.push((Ref::Class(ns.to_string(), class.to_string()), 0));
            }
        }
    }
    Ok(refs)
}

// ---------------------------------------------------------------------------
// The operator table.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NsKind {
    /// Built into libtorch: every op is listed, an unlisted one is unknown.
    Standard,
    /// A well-known extension package: unlisted ops need its library (info).
    Library,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpVerdict {
    Allow,
    Library,
    Suspicious,
    Malicious,
}

struct Table {
    namespaces: HashMap<&'static str, NsKind>,
    ops: HashMap<&'static str, (OpVerdict, &'static str)>,
    classes: HashMap<&'static str, (OpVerdict, &'static str)>,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let mut t = Table {
        namespaces: HashMap::new(),
        ops: HashMap::new(),
        classes: HashMap::new(),
    };
    for row in crate::tables::TORCHSCRIPT_OPS.rows() {
        let (Some(&kind), Some(&name), Some(&verdict), Some(&reason)) =
            (row.first(), row.get(1), row.get(2), row.get(3))
        else {
            continue;
        };
        let op_verdict = match verdict {
            "allow" => Some(OpVerdict::Allow),
            "library" => Some(OpVerdict::Library),
            "suspicious" => Some(OpVerdict::Suspicious),
            "malicious" => Some(OpVerdict::Malicious),
            _ => None,
        };
        match (kind, verdict, op_verdict) {
            ("ns", "standard", _) => {
                t.namespaces.insert(name, NsKind::Standard);
            }
            ("ns", "library", _) => {
                t.namespaces.insert(name, NsKind::Library);
            }
            ("op", _, Some(v)) => {
                t.ops.insert(name, (v, reason));
            }
            ("class", _, Some(v)) => {
                t.classes.insert(name, (v, reason));
            }
            // A malformed row allows nothing: the op stays unknown.
            _ => {}
        }
    }
    t
});

/// What a reference found in the code is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Ref {
    Op(String, String),
    Class(String, String),
    /// A namespace used as a value, or a computed `getattr` on one.
    Alias(&'static str),
    /// `torch.ops.load_library` and friends: Python-side loaders named in code.
    Loader(String),
}

fn report(cx: &mut Ctx, refs: Vec<(Ref, u32)>) {
    let mut seen = HashSet::new();
    for (r, line) in refs {
        if !seen.insert(r.clone()) {
            continue;
        }
        judge(cx, &r, line);
    }
}

fn judge(cx: &mut Ctx, r: &Ref, line: u32) {
    let table = &*TABLE;
    // Mobile bytecode has no source lines.
    let at = if line == 0 {
        "bytecode".to_string()
    } else {
        format!("line {line}")
    };
    match r {
        Ref::Op(ns, op) => {
            let qualified = format!("{ns}::{op}");
            let row = table.ops.get(qualified.as_str()).copied();
            match (row, table.namespaces.get(ns.as_str())) {
                (Some((OpVerdict::Allow, _)), _) => {}
                (Some((OpVerdict::Library, why)), _) => cx.report_as(
                    &rules::TS_CUSTOM_NAMESPACE,
                    Verdict::Info,
                    None,
                    format!("{at}: `{qualified}` ({why}) needs its extension library"),
                    Some(qualified.clone()),
                ),
                (Some((v, why)), _) => cx.report_as(
                    &rules::TS_DANGEROUS_OP,
                    if v == OpVerdict::Malicious {
                        Verdict::Malicious
                    } else {
                        Verdict::Suspicious
                    },
                    None,
                    format!("{at}: calls `{qualified}`: {why}"),
                    Some(qualified.clone()),
                ),
                (None, Some(NsKind::Standard)) => cx.report(
                    &rules::TS_UNKNOWN_OP,
                    None,
                    format!("{at}: `{qualified}` is not an operator of the audited PyTorch table"),
                    Some(qualified.clone()),
                ),
                (None, Some(NsKind::Library)) => cx.report_as(
                    &rules::TS_CUSTOM_NAMESPACE,
                    Verdict::Info,
                    None,
                    format!("{at}: `{qualified}` needs the `{ns}` extension library"),
                    Some(qualified.clone()),
                ),
                (None, None) => {
                    let word = dangerous_word(op).or_else(|| dangerous_word(ns));
                    let (verdict, why) = match &word {
                        Some((w, what)) => (
                            Verdict::Malicious,
                            format!("; its name says `{w}` ({what})"),
                        ),
                        None => (Verdict::Suspicious, String::new()),
                    };
                    cx.report_as(
                        &rules::TS_CUSTOM_NAMESPACE,
                        verdict,
                        None,
                        format!(
                            "{at}: `{qualified}` comes from namespace `{ns}`, which PyTorch \
                             does not ship: it runs native code from a library loaded by the host{why}"
                        ),
                        Some(qualified.clone()),
                    );
                }
            }
        }
        Ref::Class(ns, class) => {
            let qualified = format!("{ns}.{class}");
            match table.classes.get(qualified.as_str()).copied() {
                Some((OpVerdict::Allow, _)) => {}
                Some((_, why)) => cx.report(
                    &rules::TS_CUSTOM_CLASS,
                    None,
                    format!("{at}: uses `__torch__.torch.classes.{qualified}`: {why}"),
                    Some(qualified.clone()),
                ),
                None => {
                    let verdict = if dangerous_word(class)
                        .or_else(|| dangerous_word(ns))
                        .is_some()
                    {
                        Verdict::Malicious
                    } else {
                        Verdict::Suspicious
                    };
                    cx.report_as(
                        &rules::TS_CUSTOM_CLASS,
                        verdict,
                        None,
                        format!(
                            "{at}: `__torch__.torch.classes.{qualified}` is a native class \
                             PyTorch does not ship: it runs code from a library loaded by the host"
                        ),
                        Some(qualified.clone()),
                    );
                }
            }
        }
        Ref::Alias(what) => cx.report(
            &rules::TS_NAMESPACE_ALIAS,
            None,
            format!("{at}: {what}"),
            None,
        ),
        Ref::Loader(name) => cx.report(
            &rules::TS_DANGEROUS_OP,
            None,
            format!("{at}: names `torch.ops.{name}`, which loads native code into the host"),
            Some(format!("torch.ops.{name}")),
        ),
    }
}

// ---------------------------------------------------------------------------
// Tokenizer.

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    Name(&'a str),
    /// A string literal, decoded; `None` when an escape could not be decoded
    /// (the value is then unknown).
    Str(Option<String>),
    Num,
    Op(&'a str),
    Newline,
    Indent,
    Dedent,
}

#[derive(Debug, Clone)]
struct Token<'a> {
    tok: Tok<'a>,
    line: u32,
}

#[derive(Debug)]
struct ParseError {
    line: u32,
    what: String,
}

fn err<T>(line: u32, what: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line,
        what: what.into(),
    })
}

const OPERATORS: &[&str] = &[
    "**=", "//=", ">>=", "<<=", "...", "->", "**", "//", "==", "!=", "<=", ">=", "<<", ">>", "+=",
    "-=", "*=", "/=", "%=", "&=", "|=", "^=", "@=", ":=", "+", "-", "*", "/", "%", "@", "&", "|",
    "^", "~", "<", ">", "(", ")", "[", "]", "{", "}", ",", ":", ".", ";", "=", "!",
];

fn push<'a>(toks: &mut Vec<Token<'a>>, tok: Tok<'a>, line: u32) -> Result<(), ParseError> {
    if toks.len() >= MAX_TOKENS {
        return err(line, format!("more than {MAX_TOKENS} tokens"));
    }
    toks.push(Token { tok, line });
    Ok(())
}

fn tokenize(src: &str, max_depth: usize) -> Result<Vec<Token<'_>>, ParseError> {
    let b = src.as_bytes();
    let mut toks: Vec<Token> = Vec::new();
    let mut i = 0usize;
    let mut line = 1u32;
    let mut brackets = 0usize;
    let mut indents: Vec<usize> = vec![0];
    let mut at_line_start = true;
    while i < b.len() {
        if at_line_start && brackets == 0 {
            let mut width = 0usize;
            while let Some(&c) = b.get(i) {
                match c {
                    b' ' => width += 1,
                    b'\t' => width = (width / 8 + 1) * 8,
                    b'\x0c' => width = 0,
                    _ => break,
                }
                i += 1;
            }
            // Blank and comment-only lines carry no indentation.
            if !matches!(b.get(i), None | Some(b'\n' | b'\r' | b'#')) {
                at_line_start = false;
                let current = indents.last().copied().unwrap_or(0);
                if width > current {
                    if indents.len() > max_depth {
                        return err(line, format!("blocks nested deeper than {max_depth}"));
                    }
                    indents.push(width);
                    push(&mut toks, Tok::Indent, line)?;
                } else {
                    while indents.last().is_some_and(|&w| w > width) {
                        indents.pop();
                        push(&mut toks, Tok::Dedent, line)?;
                    }
                    if indents.last() != Some(&width) {
                        return err(line, "dedent to a level never indented to");
                    }
                }
            }
        }
        let Some(&c) = b.get(i) else { break };
        match c {
            b' ' | b'\t' | b'\x0c' => i += 1,
            b'#' => {
                while b.get(i).is_some_and(|&c| c != b'\n') {
                    i += 1;
                }
            }
            b'\\' if matches!(b.get(i + 1), Some(b'\n')) => {
                i += 2;
                line += 1;
            }
            b'\\' if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') => {
                i += 3;
                line += 1;
            }
            b'\r' | b'\n' => {
                if c == b'\r' && b.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                i += 1;
                if brackets == 0 && !at_line_start {
                    if toks.last().is_some_and(|t| t.tok != Tok::Newline) {
                        push(&mut toks, Tok::Newline, line)?;
                    }
                    at_line_start = true;
                }
                line += 1;
            }
            b'"' | b'\'' => {
                let (s, next, lines) =
                    string(b, i, false).map_err(|what| ParseError { line, what })?;
                push(&mut toks, Tok::Str(s), line)?;
                line += lines;
                i = next;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while b
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    i += 1;
                }
                let word = &src[start..i];
                let prefix = word.len() <= 2
                    && word.bytes().all(|c| b"rRbBuUfF".contains(&c))
                    && matches!(b.get(i), Some(b'"' | b'\''));
                if prefix {
                    let raw = word.bytes().any(|c| c == b'r' || c == b'R');
                    let (s, next, lines) =
                        string(b, i, raw).map_err(|what| ParseError { line, what })?;
                    push(&mut toks, Tok::Str(s), line)?;
                    line += lines;
                    i = next;
                } else {
                    push(&mut toks, Tok::Name(word), line)?;
                }
            }
            c if c.is_ascii_digit()
                || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) =>
            {
                let start = i;
                let hex = matches!(b.get(start..start + 2), Some(b"0x" | b"0X"));
                while let Some(&d) = b.get(i) {
                    let exponent_sign = (d == b'+' || d == b'-')
                        && !hex
                        && i > start
                        && matches!(b.get(i - 1), Some(b'e' | b'E'));
                    if d.is_ascii_alphanumeric() || d == b'.' || d == b'_' || exponent_sign {
                        i += 1;
                    } else {
                        break;
                    }
                }
                push(&mut toks, Tok::Num, line)?;
            }
            _ => {
                let rest = &src[i..];
                let Some(op) = OPERATORS.iter().find(|op| rest.starts_with(**op)) else {
                    let ch = rest.chars().next().unwrap_or('?');
                    return err(line, format!("unexpected character {ch:?}"));
                };
                match *op {
                    "(" | "[" | "{" => {
                        brackets += 1;
                        if brackets > max_depth {
                            return err(line, format!("brackets nested deeper than {max_depth}"));
                        }
                    }
                    ")" | "]" | "}" => {
                        brackets = brackets.checked_sub(1).ok_or(ParseError {
                            line,
                            what: format!("unbalanced `{op}`"),
                        })?;
                    }
                    _ => {}
                }
                push(&mut toks, Tok::Op(op), line)?;
                i += op.len();
            }
        }
    }
    if brackets != 0 {
        return err(line, "unclosed bracket at end of file");
    }
    if toks.last().is_some_and(|t| t.tok != Tok::Newline) {
        push(&mut toks, Tok::Newline, line)?;
    }
    for _ in 1..indents.len() {
        push(&mut toks, Tok::Dedent, line)?;
    }
    Ok(toks)
}

/// Reads a string literal starting at its opening quote. Returns the decoded
/// value (`None` if an escape is not one TorchScript's `parseStringLiteral`
/// decodes), the index after the closing quote, and the newlines crossed.
fn string(b: &[u8], start: usize, raw: bool) -> Result<(Option<String>, usize, u32), String> {
    let quote = b.get(start).copied().ok_or("string past end of file")?;
    let triple = b.get(start + 1) == Some(&quote) && b.get(start + 2) == Some(&quote);
    let mut i = start + if triple { 3 } else { 1 };
    let mut out: Vec<u8> = Vec::new();
    let mut decodable = true;
    let mut lines = 0u32;
    loop {
        let Some(&c) = b.get(i) else {
            return Err("unterminated string literal".into());
        };
        if c == quote && (!triple || (b.get(i + 1) == Some(&quote) && b.get(i + 2) == Some(&quote)))
        {
            i += if triple { 3 } else { 1 };
            break;
        }
        match c {
            b'\n' if !triple => return Err("newline in a string literal".into()),
            b'\n' => {
                lines += 1;
                out.push(c);
                i += 1;
            }
            b'\\' if raw => {
                out.push(c);
                if let Some(&n) = b.get(i + 1) {
                    out.push(n);
                    if n == b'\n' {
                        lines += 1;
                    }
                }
                i += 2;
            }
            b'\\' => {
                let Some(&e) = b.get(i + 1) else {
                    return Err("unterminated string literal".into());
                };
                i += 2;
                match e {
                    b'\\' | b'\'' | b'"' => out.push(e),
                    b'\n' => lines += 1,
                    b'a' => out.push(0x07),
                    b'b' => out.push(0x08),
                    b'f' => out.push(0x0c),
                    b'n' => out.push(b'\n'),
                    b'v' => out.push(0x0b),
                    b't' => out.push(b'\t'),
                    b'r' => out.push(b'\r'),
                    b'x' => {
                        let hex = b.get(i..i + 2).and_then(|h| std::str::from_utf8(h).ok());
                        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                            Some(v) => {
                                out.push(v);
                                i += 2;
                            }
                            None => decodable = false,
                        }
                    }
                    b'0'..=b'7' => {
                        let digits = b
                            .get(i - 1..i + 2)
                            .and_then(|h| std::str::from_utf8(h).ok())
                            .and_then(|h| u8::from_str_radix(h, 8).ok());
                        match digits {
                            Some(v) => {
                                out.push(v);
                                i += 2;
                            }
                            None => decodable = false,
                        }
                    }
                    _ => decodable = false,
                }
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    let value = if decodable {
        String::from_utf8(out).ok()
    } else {
        None
    };
    Ok((value, i, lines))
}

// ---------------------------------------------------------------------------
// Walker.

/// What an expression is, as far as naming operators goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Val {
    /// `torch` (and `torch.autograd`): attributes are `aten` ops.
    Torch,
    /// `ops`: attributes are namespaces.
    Ops,
    OpsNs(String),
    /// `torch.classes` / `__torch__.torch.classes`.
    Classes,
    ClassNs(String),
    /// `__torch__` and `__torch__.torch`: the archive's class tree.
    ClassRoot,
    ClassTorch,
    /// The `getattr` builtin.
    Getattr,
    Op,
    Str(Option<String>),
    Other,
}

impl Val {
    /// A value that names operators rather than computing anything.
    fn is_namespace(&self) -> bool {
        matches!(
            self,
            Val::Torch
                | Val::Ops
                | Val::OpsNs(_)
                | Val::Classes
                | Val::ClassNs(_)
                | Val::ClassRoot
                | Val::ClassTorch
                | Val::Getattr
        )
    }
}

/// One element of a token run between separators: a reference chain with
/// its value, or anything else.
#[derive(Debug)]
enum Item {
    Val(Val),
    Other,
}

struct Walker<'t, 'a> {
    toks: &'t [Token<'a>],
    pos: usize,
    /// Names assigned a namespace or operator (`t = torch`), file-wide.
    env: HashMap<&'a str, Val>,
    refs: Vec<(Ref, u32)>,
    max_depth: usize,
}

/// Python keywords: never the start of a reference chain.
const KEYWORDS: &[&str] = &[
    "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif",
    "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda",
    "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with", "yield", "None",
    "True", "False",
];

impl<'a> Walker<'_, 'a> {
    fn line(&self) -> u32 {
        self.toks
            .get(self.pos)
            .or_else(|| self.toks.last())
            .map_or(0, |t| t.line)
    }

    fn peek(&self) -> Option<&Tok<'a>> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn walk(&mut self) -> Result<(), ParseError> {
        while self.pos < self.toks.len() {
            match self.peek() {
                Some(Tok::Newline | Tok::Indent | Tok::Dedent) => self.pos += 1,
                _ => self.logical_line()?,
            }
        }
        Ok(())
    }

    /// One logical line: groups separated by `,` `=` `:` and the like. A
    /// line `name = <chain>` whose chain names a namespace or operator makes
    /// `name` an alias of it.
    fn logical_line(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        let items = self.run(&[], 0)?;
        let alias = match (
            self.toks.get(start),
            self.toks.get(start + 1),
            items.as_slice(),
        ) {
            (
                Some(Token {
                    tok: Tok::Name(name),
                    ..
                }),
                Some(Token {
                    tok: Tok::Op("="), ..
                }),
                [Item::Val(_), Item::Other, Item::Val(v)],
            ) if !KEYWORDS.contains(name) && (v.is_namespace() || *v == Val::Op) => {
                Some((*name, v.clone()))
            }
            _ => None,
        };
        for item in &items {
            if let Item::Val(v) = item {
                self.settle(v);
            }
        }
        if let Some((name, v)) = alias {
            self.env.insert(name, v);
        }
        if matches!(self.peek(), Some(Tok::Newline)) {
            self.pos += 1;
        }
        Ok(())
    }

    /// Reads items up to (not including) a closing token in `close` or the
    /// end of the logical line. Separators become `Item::Other`.
    fn run(&mut self, close: &[&str], depth: usize) -> Result<Vec<Item>, ParseError> {
        let mut items = Vec::new();
        loop {
            match self.peek() {
                None | Some(Tok::Newline) if close.is_empty() => return Ok(items),
                None => return err(self.line(), "unclosed bracket"),
                Some(Tok::Newline | Tok::Indent | Tok::Dedent) => {
                    return err(self.line(), "line break inside brackets");
                }
                Some(Tok::Op(op)) if close.contains(op) => return Ok(items),
                Some(Tok::Op(")" | "]" | "}")) => return err(self.line(), "unbalanced bracket"),
                Some(Tok::Op("(" | "[" | "{")) | Some(Tok::Name(_) | Tok::Str(_)) => {
                    let v = self.chain(depth)?;
                    items.push(match v {
                        Some(v) => Item::Val(v),
                        None => Item::Other,
                    });
                }
                Some(_) => {
                    self.pos += 1;
                    items.push(Item::Other);
                }
            }
        }
    }

    /// Reads a bracketed run split at top-level commas; the opening bracket
    /// is at `pos`.
    fn args(&mut self, closer: &'static str, depth: usize) -> Result<Vec<Vec<Item>>, ParseError> {
        if depth >= self.max_depth {
            return err(
                self.line(),
                format!("expressions nested deeper than {}", self.max_depth),
            );
        }
        self.pos += 1;
        let mut groups = Vec::new();
        loop {
            let group = self.run(&[",", closer], depth + 1)?;
            groups.push(group);
            match self.peek() {
                Some(Tok::Op(",")) => self.pos += 1,
                _ => {
                    self.pos += 1;
                    return Ok(groups);
                }
            }
        }
    }

    /// Settles every value of a group that is consumed as a plain value.
    fn settle_all(&mut self, groups: &[Vec<Item>]) {
        for g in groups {
            for item in g {
                if let Item::Val(v) = item {
                    self.settle(v);
                }
            }
        }
    }

    /// A value that ends up used as a value (stored, passed, subscripted,
    /// returned): a namespace there hides which operator is called.
    fn settle(&mut self, v: &Val) {
        if v.is_namespace() {
            let what = match v {
                Val::Getattr => "`getattr` is used as a value",
                _ => "an operator namespace is used as a value",
            };
            self.refs.push((Ref::Alias(what), self.line()));
        }
    }

    /// A primary and its postfixes (`.name`, `(…)`, `[…]`). Returns `None`
    /// for keywords.
    fn chain(&mut self, depth: usize) -> Result<Option<Val>, ParseError> {
        let line = self.line();
        let mut val = match self.peek().cloned() {
            Some(Tok::Name(n)) if KEYWORDS.contains(&n) => {
                self.pos += 1;
                return Ok(None);
            }
            Some(Tok::Name(n)) => {
                self.pos += 1;
                match n {
                    "torch" => Val::Torch,
                    "ops" => Val::Ops,
                    "__torch__" => Val::ClassRoot,
                    "getattr" => Val::Getattr,
                    _ => self.env.get(n).cloned().unwrap_or(Val::Other),
                }
            }
            Some(Tok::Str(s)) => {
                self.pos += 1;
                let mut s = s;
                // Adjacent literals are one string, as in Python.
                while let Some(Tok::Str(next)) = self.peek().cloned() {
                    self.pos += 1;
                    s = match (s, next) {
                        (Some(a), Some(b)) => Some(a + &b),
                        _ => None,
                    };
                }
                Val::Str(s)
            }
            Some(Tok::Op("(")) => {
                let groups = self.args(")", depth)?;
                match single(&groups) {
                    Some(v) => v.clone(),
                    None => {
                        self.settle_all(&groups);
                        Val::Other
                    }
                }
            }
            Some(Tok::Op(open @ ("[" | "{"))) => {
                let groups = self.args(if open == "[" { "]" } else { "}" }, depth)?;
                self.settle_all(&groups);
                Val::Other
            }
            _ => return err(line, "expected an expression"),
        };
        loop {
            match self.peek() {
                Some(Tok::Op(".")) => match self.toks.get(self.pos + 1).map(|t| &t.tok) {
                    Some(Tok::Name(attr)) => {
                        let attr = *attr;
                        self.pos += 2;
                        val = self.attr(&val, attr);
                    }
                    _ => return err(self.line(), "expected a name after `.`"),
                },
                Some(Tok::Op("(")) => {
                    let groups = self.args(")", depth)?;
                    val = self.call(&val, &groups);
                }
                Some(Tok::Op("[")) => {
                    self.settle(&val);
                    let groups = self.args("]", depth)?;
                    self.settle_all(&groups);
                    val = Val::Other;
                }
                _ => return Ok(Some(val)),
            }
        }
    }

    fn call(&mut self, callee: &Val, groups: &[Vec<Item>]) -> Val {
        if *callee == Val::Getattr {
            let target = groups.first().and_then(|g| single_item(g));
            let name = groups.get(1).and_then(|g| single_item(g));
            if let Some(target) = target {
                match name {
                    Some(Val::Str(Some(name))) => {
                        for g in groups.iter().skip(2) {
                            self.settle_all(std::slice::from_ref(g));
                        }
                        return self.attr(&target.clone(), &name.clone());
                    }
                    _ if target.is_namespace() => {
                        self.refs.push((
                            Ref::Alias("`getattr` on an operator namespace with a computed name"),
                            self.line(),
                        ));
                    }
                    _ => {}
                }
            }
            self.settle_all(groups);
            return Val::Other;
        }
        self.settle(callee);
        self.settle_all(groups);
        Val::Other
    }

    /// `base.name`, reporting the operator or class it names.
    fn attr(&mut self, base: &Val, name: &str) -> Val {
        let line = self.line();
        match base {
            Val::Torch => match name {
                "autograd" => Val::Torch,
                "ops" => Val::Ops,
                "classes" => Val::Classes,
                _ => {
                    self.refs.push((Ref::Op("aten".into(), name.into()), line));
                    Val::Op
                }
            },
            Val::Ops => match name {
                // Python-side loaders of `torch.ops`; not TorchScript, but
                // unmistakable.
                "load_library" | "import_module" => {
                    self.refs.push((Ref::Loader(name.into()), line));
                    Val::Other
                }
                _ => Val::OpsNs(name.into()),
            },
            Val::OpsNs(ns) => {
                self.refs.push((Ref::Op(ns.clone(), name.into()), line));
                Val::Op
            }
            Val::Classes => Val::ClassNs(name.into()),
            Val::ClassNs(ns) => {
                self.refs.push((Ref::Class(ns.clone(), name.into()), line));
                Val::Other
            }
            Val::ClassRoot if name == "torch" => Val::ClassTorch,
            Val::ClassTorch if name == "classes" => Val::Classes,
            Val::Getattr => {
                self.settle(base);
                Val::Other
            }
            _ => Val::Other,
        }
    }
}

/// The value of a one-element parenthesised group (`(conv)`).
fn single(groups: &[Vec<Item>]) -> Option<&Val> {
    match groups {
        [g] => single_item(g),
        _ => None,
    }
}

fn single_item(g: &[Item]) -> Option<&Val> {
    match g {
        [Item::Val(v)] => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(src: &str) -> Vec<Ref> {
        let toks = tokenize(src, 128).unwrap();
        let mut w = Walker {
            toks: &toks,
            pos: 0,
            env: HashMap::new(),
            refs: Vec::new(),
            max_depth: 128,
        };
        w.walk().unwrap();
        w.refs.into_iter().map(|(r, _)| r).collect()
    }

    fn op(ns: &str, name: &str) -> Ref {
        Ref::Op(ns.into(), name.into())
    }

    #[test]
    fn real_export_resolves_every_call() {
        let src = "class Net(Module):\n  __parameters__ = [\"w\", ]\n  conv : __torch__.torch.nn.modules.conv.Conv2d\n  p : __torch__.torch.classes.quantized.LinearPackedParamsBase\n  def forward(self: __torch__.Net,\n    x: Tensor) -> Tensor:\n    conv = self.conv\n    y = torch.mean(torch.relu((conv).forward(x, )), [2, 3])\n    if bool(torch.gt(torch.sum(y), 0)):\n      _0 = ops.prim.dtype(y)\n    else:\n      pass\n    _1 = getattr(self, \"4\")\n    return torch.squeeze(y, 1)\n";
        assert_eq!(
            refs(src),
            vec![
                Ref::Class("quantized".into(), "LinearPackedParamsBase".into()),
                op("aten", "mean"),
                op("aten", "relu"),
                op("aten", "gt"),
                op("aten", "sum"),
                op("prim", "dtype"),
                op("aten", "squeeze"),
            ]
        );
    }

    #[test]
    fn every_route_to_an_operator_is_followed() {
        for src in [
            "torch.save(x, \"/tmp/p\")\n",
            "ops.aten.save(x, \"/tmp/p\")\n",
            "torch.autograd.save(x, \"/tmp/p\")\n",
            "getattr(torch, \"save\")(x, \"p\")\n",
            "getattr(getattr(ops, \"aten\"), \"sa\" \"ve\")(x, \"p\")\n",
            "getattr(torch, \"s\\x61ve\")(x, \"p\")\n",
            "t = torch\nt.save(x, \"p\")\n",
            "a = ops.aten\na.save(x, \"p\")\n",
            "f = torch.save\nf(x, \"p\")\n",
            "fut = fork(torch.save, x, \"p\")\n",
        ] {
            assert!(refs(src).contains(&op("aten", "save")), "{src}");
        }
    }

    #[test]
    fn namespaces_used_as_values_are_reported() {
        for src in [
            "t = torch\n",
            "foo(ops)\n",
            "x = (torch, ops)\n",
            "g = getattr\n",
            "getattr(torch, name)(x)\n",
            "ops[\"aten\"]\n",
        ] {
            assert!(
                refs(src).iter().any(|r| matches!(r, Ref::Alias(_))),
                "{src}: {:?}",
                refs(src)
            );
        }
        assert!(
            !refs("_4 = getattr(self, \"4\")\ny = self.conv.forward(x)\n")
                .iter()
                .any(|r| matches!(r, Ref::Alias(_)))
        );
    }

    #[test]
    fn hostile_sources_fail_closed() {
        for src in [
            "x = \"unterminated\n",
            "x = (1, 2\n",
            "x = 1)\n",
            "if x:\n    y = 1\n  z = 2\n",
            "x = $\n",
            "x = é\n",
        ] {
            assert!(
                tokenize(src, 128).is_err()
                    || Walker {
                        toks: &tokenize(src, 128).unwrap(),
                        pos: 0,
                        env: HashMap::new(),
                        refs: Vec::new(),
                        max_depth: 128,
                    }
                    .walk()
                    .is_err(),
                "{src:?}"
            );
        }
        let deep = format!("x = {}1{}\n", "(".repeat(500), ")".repeat(500));
        assert!(tokenize(&deep, 128).is_err());
        let mut nested = String::new();
        for i in 0..300 {
            nested.push_str(&" ".repeat(i));
            nested.push_str("if x:\n");
        }
        assert!(tokenize(&nested, 128).is_err());
    }

    #[test]
    fn table_rows_are_well_formed_and_audited() {
        for row in crate::tables::TORCHSCRIPT_OPS.rows() {
            assert_eq!(row.len(), 4, "{row:?}");
            let ok = match row[0] {
                "ns" => ["standard", "library"].contains(&row[2]),
                "op" | "class" => ["allow", "library", "suspicious", "malicious"].contains(&row[2]),
                _ => false,
            };
            assert!(ok, "{row:?}");
            assert!(!row[3].trim().is_empty(), "row without its audit: {row:?}");
        }
        let t = &*TABLE;
        assert_eq!(
            t.ops.get("aten::save").map(|r| r.0),
            Some(OpVerdict::Malicious)
        );
        assert_eq!(
            t.ops.get("aten::from_file").map(|r| r.0),
            Some(OpVerdict::Malicious)
        );
        assert_eq!(
            t.ops.get("aten::conv2d").map(|r| r.0),
            Some(OpVerdict::Allow)
        );
        assert_eq!(t.namespaces.get("aten"), Some(&NsKind::Standard));
        // An allowed op's audit never names a path, file or storage argument.
        for (name, (v, why)) in &t.ops {
            if *v == OpVerdict::Allow {
                assert!(
                    !why.contains("Storage") || name.starts_with("aten::set"),
                    "{name}: {why}"
                );
            }
        }
    }

    #[test]
    fn mobile_operator_tables_are_read_through_the_memo() {
        fn s(out: &mut Vec<u8>, text: &str) {
            out.push(b'X');
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        let mut p = vec![0x80, 2, b'('];
        s(&mut p, "instructions");
        s(&mut p, "OP");
        s(&mut p, "operators");
        s(&mut p, "aten::mul");
        p.extend_from_slice(&[b'q', 9]);
        s(&mut p, "Tensor");
        p.push(0x86);
        p.extend_from_slice(&[b'h', 9]);
        s(&mut p, "Scalar");
        p.push(0x86);
        s(&mut p, "my_ext::run");
        s(&mut p, "");
        p.push(0x86);
        s(&mut p, "constants");
        s(&mut p, "not::an_op");
        s(&mut p, "types");
        s(&mut p, "__torch__.torch.classes.my_ext.Thing");
        p.extend_from_slice(b"t.");
        let refs: Vec<Ref> = bytecode_refs(&p)
            .unwrap()
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        assert_eq!(
            refs,
            vec![
                op("aten", "mul"),
                op("aten", "mul"),
                op("my_ext", "run"),
                Ref::Class("my_ext".into(), "Thing".into()),
            ]
        );
        assert!(bytecode_refs(&p[..p.len() - 1]).is_err());
        assert!(bytecode_refs(b"\x80\x02\xff.").is_err());
    }

    #[test]
    fn code_members_are_recognised_by_path() {
        assert!(is_code_member("model/code/__torch__.py"));
        assert!(is_code_member("code/__torch__/torch/nn/modules/conv.py"));
        assert!(!is_code_member("model/code/__torch__.py.debug_pkl"));
        assert!(!is_code_member("model/extra/code.py"));
    }
}
