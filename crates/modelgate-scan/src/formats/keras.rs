//! Keras model configs: the `config.json` of a Keras 3 `.keras` zip and the
//! `model_config` / `training_config` attributes of a legacy Keras H5 file.
//!
//! A Keras config is a tree of objects that the loader turns back into Python
//! objects: each `{"module", "class_name", "config", "registered_name"}` dict
//! is resolved to a class or function (by registry lookup or, on Keras < 3.9
//! and tf.keras, by importing `module`) and then instantiated or called. That
//! resolution is the attack surface:
//!
//! * marshalled Python bytecode: a `Lambda` layer's `__lambda__` object (Keras
//!   3) or `function` + `function_type: "lambda"` (tf.keras 2 / legacy H5) is
//!   base64 `marshal` data that `marshal.loads` turns into a running function
//!   (CVE-2024-3660, and CVE-2025-9905 for H5 ignoring safe_mode) → KRS001;
//! * references to modules or functions that run code, touch files or switch
//!   safety off (`subprocess.getoutput` as an activation, `os.system` as a
//!   Lambda function: CVE-2025-1550; `keras.utils.get_file`: CVE-2025-8747;
//!   `enable_unsafe_deserialization`: CVE-2025-9906; `TorchModuleWrapper`:
//!   CVE-2025-49655; `TFSMLayer`: CVE-2026-1462) → KRS002;
//! * custom objects from packages other than Keras/TensorFlow
//!   (`registered_name: "mypkg>Scale"`): user code the scanner cannot see →
//!   KRS003;
//! * duplicate JSON keys, which let a scanner and the loader disagree on what
//!   an object is → KRS004.
//!
//! The tree is walked generically (every dict, every list, at any depth), so
//! nested models, shared layers, compile configs and optimizer schedules are
//! all covered without assuming the shapes Keras happens to write today. The
//! namespaces considered safe and the names considered dangerous are data, in
//! `crates/modelgate-scan/src/data/keras_names.tsv`, each with its reason.
//!
//! What this module refuses to do: it never unmarshals the bytecode (the
//! base64 is decoded and its marshal string table is read as evidence only),
//! never imports or evaluates anything, and never trusts a JSON library's
//! last-key-wins view of the document. The JSON is parsed by a small parser
//! that keeps every duplicate (all of them are inspected), follows Python's
//! `json` module in what it accepts (NaN/Infinity, UTF-16/32 input detected
//! like `json.detect_encoding`), and is bounded: input size by
//! `max_header_bytes`, nesting by `max_structure_depth`, string length by
//! `max_string_bytes`. A config that does not parse is GEN001 (inconclusive),
//! one that trips a limit is GEN002.

use std::collections::HashSet;
use std::sync::OnceLock;

use crate::{Ctx, rules};

/// Python's json module gives up around 1000 levels (the interpreter's
/// recursion limit), so nothing deeper can load; the cap also keeps our own
/// recursion far from the thread's stack size whatever a policy sets.
const HARD_DEPTH_CAP: u32 = 1000;

/// Analyses a Keras model config: the `config.json` member of a `.keras` zip.
/// Offsets in findings are byte offsets into that member.
pub fn scan_config(cx: &mut Ctx, json: &[u8]) {
    analyse(cx, json, None);
}

/// Analyses a config held in an HDF5 attribute (`model_config`,
/// `training_config`). The JSON text lives in the file's heap, so finding
/// offsets would not be file offsets and are left out; messages name the
/// attribute instead.
pub fn scan_h5_attribute(cx: &mut Ctx, attribute: &'static str, json: &[u8]) {
    analyse(cx, json, Some(attribute));
}

fn analyse(cx: &mut Ctx, raw: &[u8], attribute: Option<&'static str>) {
    let max = cx.limits().max_header_bytes;
    if raw.len() as u64 > max {
        cx.inconclusive(
            &rules::LIMIT_EXCEEDED,
            None,
            format!(
                "Keras config of {} bytes exceeds the {max}-byte limit",
                raw.len()
            ),
        );
        return;
    }
    let (text, base) = match decode_text(raw) {
        // Attribute text sits in the HDF5 heap: its offsets are not file offsets.
        Ok((text, base)) => (text, base.filter(|_| attribute.is_none())),
        Err(reason) => {
            cx.inconclusive(
                &rules::UNPARSEABLE,
                None,
                format!("Keras config is not text: {reason}"),
            );
            return;
        }
    };
    let depth_cap = cx.limits().max_structure_depth.min(HARD_DEPTH_CAP);
    let max_string = usize::try_from(cx.limits().max_string_bytes).unwrap_or(usize::MAX);
    let mut parser = Parser {
        s: text.as_bytes(),
        pos: 0,
        depth_cap,
        max_string,
        duplicates: Vec::new(),
    };
    let root = match parser.document() {
        Ok(root) => root,
        Err(e) => {
            let offset = base.and_then(|b| b.checked_add(e.at())).map(|o| o as u64);
            let (rule, reason) = match e {
                JsonError::Syntax(_, what) => (
                    &rules::UNPARSEABLE,
                    format!("Keras config is not valid JSON: {what}"),
                ),
                JsonError::TooDeep(_) => (
                    &rules::LIMIT_EXCEEDED,
                    format!("Keras config nests deeper than {depth_cap} levels"),
                ),
                JsonError::TooLong(_) => (
                    &rules::LIMIT_EXCEEDED,
                    format!("Keras config holds a string longer than {max_string} bytes"),
                ),
            };
            cx.inconclusive(rule, offset, reason);
            return;
        }
    };
    let mut walk = Walk {
        cx,
        base,
        attribute,
        seen_refs: HashSet::new(),
    };
    for (at, key) in std::mem::take(&mut parser.duplicates) {
        let offset = walk.offset(at);
        let place = walk.place();
        walk.cx.report(
            &rules::KERAS_DUPLICATE_KEY,
            offset,
            format!("{place} repeats the key `{key}` in one object; loaders disagree on which value wins"),
            Some(key),
        );
    }
    walk.node(&root, &Scope::default());
}

/// Decodes the config bytes the way Python's `json.loads(bytes)` does
/// (`json.detect_encoding`): BOMs first, then the NUL-byte pattern of the
/// first four bytes. Returns the text and, when offsets into it are also
/// offsets into the input, the byte shift between them.
fn decode_text(b: &[u8]) -> Result<(String, Option<usize>), String> {
    let utf16 = |bytes: &[u8], big: bool| -> String {
        let units = bytes.chunks_exact(2).map(|c| match c {
            [x, y] if big => u16::from_be_bytes([*x, *y]),
            [x, y] => u16::from_le_bytes([*x, *y]),
            _ => 0xFFFD,
        });
        char::decode_utf16(units)
            .map(|r| r.unwrap_or('\u{FFFD}'))
            .collect()
    };
    let utf32 = |bytes: &[u8], big: bool| -> Result<String, String> {
        bytes
            .chunks_exact(4)
            .map(|c| {
                let mut w = [0u8; 4];
                w.copy_from_slice(c);
                let v = if big {
                    u32::from_be_bytes(w)
                } else {
                    u32::from_le_bytes(w)
                };
                char::from_u32(v).ok_or_else(|| format!("invalid UTF-32 code point {v:#x}"))
            })
            .collect()
    };
    match b {
        [0, 0, 0xFE, 0xFF, rest @ ..] => Ok((utf32(rest, true)?, None)),
        [0xFF, 0xFE, 0, 0, rest @ ..] => Ok((utf32(rest, false)?, None)),
        [0xFE, 0xFF, rest @ ..] => Ok((utf16(rest, true), None)),
        [0xFF, 0xFE, rest @ ..] => Ok((utf16(rest, false), None)),
        [0xEF, 0xBB, 0xBF, rest @ ..] => utf8(rest).map(|s| (s, Some(3))),
        [0, 0, _, _, ..] => Ok((utf32(b, true)?, None)),
        [0, _, _, _, ..] => Ok((utf16(b, true), None)),
        [_, 0, 0, 0, ..] => Ok((utf32(b, false)?, None)),
        [_, 0, _, _, ..] => Ok((utf16(b, false), None)),
        _ => utf8(b).map(|s| (s, Some(0))),
    }
}

fn utf8(b: &[u8]) -> Result<String, String> {
    std::str::from_utf8(b)
        .map(str::to_string)
        .map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))
}

// ---------------------------------------------------------------------------
// JSON

/// A parsed JSON value with the byte offset where it starts. Objects keep
/// every key/value pair in document order, duplicates included.
struct Node {
    at: usize,
    v: Value,
}

enum Value {
    Scalar,
    Str(String),
    Arr(Vec<Node>),
    Obj(Vec<(String, Node)>),
}

impl Node {
    fn str(&self) -> Option<&str> {
        match &self.v {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Every value stored under `key` (a duplicated key yields several).
    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        let pairs: &'a [(String, Node)] = match &self.v {
            Value::Obj(pairs) => pairs.as_slice(),
            _ => &[],
        };
        pairs.iter().filter(move |(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value Python's json would keep for `key`: the last one.
    fn get<'a>(&'a self, key: &'a str) -> Option<&'a Node> {
        self.all(key).last()
    }

    fn get_str<'a>(&'a self, key: &'a str) -> Option<&'a str> {
        self.get(key).and_then(Node::str)
    }
}

enum JsonError {
    Syntax(usize, &'static str),
    TooDeep(usize),
    TooLong(usize),
}

impl JsonError {
    fn at(&self) -> usize {
        match self {
            JsonError::Syntax(at, _) | JsonError::TooDeep(at) | JsonError::TooLong(at) => *at,
        }
    }
}

/// A recursive-descent parser for the JSON that Python's `json.loads`
/// accepts (including `NaN`, `Infinity`, `-Infinity`; no trailing commas, no
/// raw control characters in strings).
struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    depth_cap: u32,
    max_string: usize,
    /// (offset of the key, key) for every key repeated inside one object.
    duplicates: Vec<(usize, String)>,
}

impl Parser<'_> {
    fn document(&mut self) -> Result<Node, JsonError> {
        self.ws();
        let v = self.value(0)?;
        self.ws();
        if self.pos != self.s.len() {
            return Err(JsonError::Syntax(
                self.pos,
                "extra data after the JSON value",
            ));
        }
        Ok(v)
    }

    fn ws(&mut self) {
        while matches!(self.s.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, lit: &[u8]) -> bool {
        if self.s.get(self.pos..self.pos + lit.len()) == Some(lit) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: u32) -> Result<Node, JsonError> {
        let at = self.pos;
        let v = match self.s.get(at) {
            Some(b'{') => self.object(depth)?,
            Some(b'[') => self.array(depth)?,
            Some(b'"') => Value::Str(self.string()?),
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
                Value::Scalar
            }
            Some(_)
                if [&b"null"[..], b"true", b"false", b"NaN", b"Infinity"]
                    .iter()
                    .any(|l| self.eat(l)) =>
            {
                Value::Scalar
            }
            Some(_) => return Err(JsonError::Syntax(at, "unexpected character")),
            None => return Err(JsonError::Syntax(at, "unexpected end of input")),
        };
        Ok(Node { at, v })
    }

    fn enter(&self, depth: u32) -> Result<u32, JsonError> {
        if depth >= self.depth_cap {
            Err(JsonError::TooDeep(self.pos))
        } else {
            Ok(depth + 1)
        }
    }

    fn object(&mut self, depth: u32) -> Result<Value, JsonError> {
        let depth = self.enter(depth)?;
        self.pos += 1;
        let mut pairs: Vec<(String, Node)> = Vec::new();
        let mut keys = HashSet::new();
        self.ws();
        if self.eat(b"}") {
            return Ok(Value::Obj(pairs));
        }
        loop {
            self.ws();
            let key_at = self.pos;
            if self.s.get(self.pos) != Some(&b'"') {
                return Err(JsonError::Syntax(self.pos, "expected a string key"));
            }
            let key = self.string()?;
            if !keys.insert(key.clone()) {
                self.duplicates.push((key_at, key.clone()));
            }
            self.ws();
            if !self.eat(b":") {
                return Err(JsonError::Syntax(self.pos, "expected `:` after a key"));
            }
            self.ws();
            let v = self.value(depth)?;
            pairs.push((key, v));
            self.ws();
            if self.eat(b",") {
                continue;
            }
            if self.eat(b"}") {
                return Ok(Value::Obj(pairs));
            }
            return Err(JsonError::Syntax(
                self.pos,
                "expected `,` or `}` in an object",
            ));
        }
    }

    fn array(&mut self, depth: u32) -> Result<Value, JsonError> {
        let depth = self.enter(depth)?;
        self.pos += 1;
        let mut items = Vec::new();
        self.ws();
        if self.eat(b"]") {
            return Ok(Value::Arr(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth)?);
            self.ws();
            if self.eat(b",") {
                continue;
            }
            if self.eat(b"]") {
                return Ok(Value::Arr(items));
            }
            return Err(JsonError::Syntax(
                self.pos,
                "expected `,` or `]` in an array",
            ));
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.s.get(self.pos), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<(), JsonError> {
        let at = self.pos;
        self.eat(b"-");
        if self.eat(b"Infinity") {
            return Ok(());
        }
        if !self.eat(b"0") && self.digits() == 0 {
            return Err(JsonError::Syntax(at, "malformed number"));
        }
        if self.eat(b".") && self.digits() == 0 {
            return Err(JsonError::Syntax(at, "malformed number"));
        }
        if matches!(self.s.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.s.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(JsonError::Syntax(at, "malformed number"));
            }
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let at = self.pos;
        let digits = self
            .s
            .get(at..at + 4)
            .ok_or(JsonError::Syntax(at, "truncated \\u escape"))?;
        let mut v = 0u32;
        for d in digits {
            let n = (*d as char)
                .to_digit(16)
                .ok_or(JsonError::Syntax(at, "invalid \\u escape"))?;
            v = v * 16 + n;
        }
        self.pos += 4;
        Ok(v)
    }

    /// Decodes a string, escapes included: names like `"\u006fs"` must be
    /// compared as the loader sees them (`os`), not as written.
    fn string(&mut self) -> Result<String, JsonError> {
        let start = self.pos;
        self.pos += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            if self.pos - start > self.max_string {
                return Err(JsonError::TooLong(start));
            }
            let Some(&c) = self.s.get(self.pos) else {
                return Err(JsonError::Syntax(start, "unterminated string"));
            };
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.pos) else {
                        return Err(JsonError::Syntax(self.pos, "unterminated escape"));
                    };
                    self.pos += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi)
                                && self.s.get(self.pos..self.pos + 2) == Some(b"\\u")
                            {
                                let save = self.pos;
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                                } else {
                                    self.pos = save;
                                    hi
                                }
                            } else {
                                hi
                            };
                            // Python keeps lone surrogates; no Rust string can,
                            // and none can spell a module name either.
                            char::from_u32(code).unwrap_or('\u{FFFD}')
                        }
                        _ => return Err(JsonError::Syntax(self.pos - 1, "invalid escape")),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1F => {
                    return Err(JsonError::Syntax(
                        self.pos - 1,
                        "control character in a string",
                    ));
                }
                _ => out.push(c),
            }
        }
        // The input is a `str` and escapes were re-encoded, so this holds;
        // the fallback only avoids a panic path.
        Ok(String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }
}

// ---------------------------------------------------------------------------
// Names

/// How the knowledge base classifies a reference.
enum Class {
    /// Inside Keras/TensorFlow, or resolved among Keras built-ins by name.
    Safe,
    /// Needs code from a package the scanner cannot see.
    Custom(String),
    /// Runs code, touches files or disables safety: (what matched, why).
    Dangerous(String, &'static str),
}

struct Names {
    safe: Vec<&'static str>,
    deny: Vec<(&'static str, &'static str)>,
    deny_name: Vec<(&'static str, &'static str)>,
    marshal: Vec<&'static str>,
}

fn names() -> &'static Names {
    static NAMES: OnceLock<Names> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut n = Names {
            safe: Vec::new(),
            deny: Vec::new(),
            deny_name: Vec::new(),
            marshal: Vec::new(),
        };
        for cols in crate::tables::KERAS_NAMES.rows() {
            let [kind, pattern, reason] = cols[..] else {
                continue;
            };
            match kind {
                "safe" => n.safe.push(pattern),
                "deny" => n.deny.push((pattern, reason)),
                "deny-name" => n.deny_name.push((pattern, reason)),
                "marshal" => n.marshal.push(pattern),
                _ => {}
            }
        }
        n
    })
}

/// `pattern` names `qualified` or one of its parents (`os` matches
/// `os.system`, not `osmosis`).
fn under(qualified: &str, pattern: &str) -> bool {
    qualified
        .strip_prefix(pattern)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

fn is_safe_namespace(module: &str) -> bool {
    names().safe.iter().any(|p| under(module, p))
}

/// Classifies the object a config asks the loader to resolve: `module` (may
/// be absent in Keras 2 configs), the class or function `name`, and the
/// `registered_name` (`package>Name` for registered custom objects).
fn classify(module: Option<&str>, name: Option<&str>, registered: Option<&str>) -> Class {
    let n = names();
    let qualified = match (module, name) {
        (Some(m), Some(x)) => format!("{m}.{x}"),
        (Some(m), None) => m.to_string(),
        (None, Some(x)) => x.to_string(),
        (None, None) => String::new(),
    };
    if let Some((p, why)) = n.deny.iter().find(|(p, _)| under(&qualified, p)) {
        return Class::Dangerous(
            if qualified.is_empty() {
                (*p).to_string()
            } else {
                qualified
            },
            why,
        );
    }
    let registered_name = registered.map(|r| r.rsplit_once('>').map_or(r, |(_, x)| x));
    for candidate in [name, registered_name].into_iter().flatten() {
        let last = candidate.rsplit('.').next().unwrap_or(candidate);
        if let Some((_, why)) = n.deny_name.iter().find(|(p, _)| *p == last) {
            let shown = if qualified.is_empty() {
                candidate.to_string()
            } else {
                qualified
            };
            return Class::Dangerous(shown, why);
        }
    }
    if let Some((package, _)) = registered.and_then(|r| r.split_once('>'))
        && !is_safe_namespace(package)
    {
        return Class::Custom(registered.unwrap_or_default().to_string());
    }
    match module {
        Some(m) if !is_safe_namespace(m) => Class::Custom(qualified),
        _ => Class::Safe,
    }
}

// ---------------------------------------------------------------------------
// Walk

/// Where in the config tree the walk is, for messages people can act on.
#[derive(Default, Clone)]
struct Scope {
    /// The nearest enclosing named layer, e.g. "Dense layer `dense_2`".
    layer: Option<String>,
    /// The key under which the current value sits, e.g. "activation".
    key: Option<String>,
}

struct Walk<'c, 's> {
    cx: &'c mut Ctx<'s>,
    base: Option<usize>,
    attribute: Option<&'static str>,
    /// Each dangerous or custom name is reported once per config.
    seen_refs: HashSet<String>,
}

impl Walk<'_, '_> {
    fn offset(&self, at: usize) -> Option<u64> {
        self.base.and_then(|b| b.checked_add(at)).map(|o| o as u64)
    }

    fn place(&self) -> String {
        match self.attribute {
            Some(a) => format!("the HDF5 `{a}` attribute"),
            None => "config.json".to_string(),
        }
    }

    fn describe(&self, scope: &Scope) -> String {
        let mut s = match (&scope.key, &scope.layer) {
            (Some(k), Some(l)) => format!("`{k}` of {l}"),
            (None, Some(l)) => l.clone(),
            (Some(k), None) => format!("`{k}`"),
            (None, None) => "an object".to_string(),
        };
        if let Some(a) = self.attribute {
            s.push_str(&format!(" (HDF5 attribute `{a}`)"));
        }
        s
    }

    fn node(&mut self, node: &Node, scope: &Scope) {
        if !self.cx.in_time() {
            return;
        }
        match &node.v {
            Value::Arr(items) => {
                for item in items {
                    self.node(item, scope);
                }
            }
            Value::Obj(pairs) => {
                let scope = self.object(node, scope);
                for (k, v) in pairs {
                    let child = Scope {
                        layer: scope.layer.clone(),
                        key: Some(k.clone()),
                    };
                    self.node(v, &child);
                }
            }
            Value::Scalar | Value::Str(_) => {}
        }
    }

    /// Inspects one dict and returns the scope its children live in.
    fn object(&mut self, node: &Node, scope: &Scope) -> Scope {
        let class_name = node.get_str("class_name");
        let own_name = node
            .get("config")
            .and_then(|c| c.get_str("name"))
            .or_else(|| node.get_str("name"));
        let mut scope = scope.clone();
        if let (Some(class), Some(name)) = (class_name, own_name) {
            scope.layer = Some(format!("{class} layer `{name}`"));
            scope.key = None;
        }

        if let Some(class) = class_name {
            if class == "__lambda__" {
                let code = node
                    .get("config")
                    .and_then(|c| c.get("code").or_else(|| c.get("value")));
                self.bytecode(node, code, &scope);
            } else {
                let module = node.get_str("module");
                // Keras 2 configs carry no registered_name; a registered
                // custom class is written as `class_name: "Package>Name"`.
                let registered = node
                    .get_str("registered_name")
                    .or_else(|| Some(class).filter(|c| c.contains('>')));
                let name = if class == "function" {
                    node.get_str("config")
                } else {
                    Some(class)
                };
                self.reference(node, module, name, registered, &scope);
            }
            // tf.keras TF-op layers name a `tf.` API symbol to call.
            if matches!(class, "TFOpLambda" | "SlicingOpLambda")
                && let Some(function) = node.get("config").and_then(|c| c.get_str("function"))
            {
                self.reference(node, Some("tensorflow"), Some(function), None, &scope);
            }
        }

        // Legacy (tf.keras 2, Keras H5) encoding: `X` with `X_type` saying
        // what it is, and `X_module` (or `module` for `function`) its module.
        if let Value::Obj(pairs) = &node.v {
            for (key, value) in pairs {
                let Some(base) = key.strip_suffix("_type") else {
                    continue;
                };
                match value.str() {
                    Some("lambda") => {
                        if let Some(code) = node.get(base).filter(|c| !matches!(c.v, Value::Scalar))
                        {
                            let at = Scope {
                                layer: scope.layer.clone(),
                                key: Some(base.to_string()),
                            };
                            self.bytecode(node, Some(code), &at);
                        }
                    }
                    Some("function") => {
                        let module_key = format!("{base}_module");
                        let module = node.get_str(&module_key).or_else(|| {
                            if base == "function" {
                                node.get_str("module")
                            } else {
                                None
                            }
                        });
                        if let Some(name) = node.get_str(base) {
                            let at = Scope {
                                layer: scope.layer.clone(),
                                key: Some(base.to_string()),
                            };
                            self.reference(node, module, Some(name), None, &at);
                        }
                    }
                    _ => {}
                }
            }
        }
        scope
    }

    fn reference(
        &mut self,
        node: &Node,
        module: Option<&str>,
        name: Option<&str>,
        registered: Option<&str>,
        scope: &Scope,
    ) {
        let class = classify(module, name, registered);
        let evidence = || {
            let mut parts = Vec::new();
            for (k, v) in [
                ("module", module),
                ("name", name),
                ("registered_name", registered),
            ] {
                if let Some(v) = v {
                    parts.push(format!("{k}={v}"));
                }
            }
            parts.join(" ")
        };
        match class {
            Class::Safe => {}
            Class::Dangerous(what, why) => {
                if self.seen_refs.insert(format!("D{what}")) {
                    let msg = format!(
                        "{} makes the loader resolve `{what}`: {why}",
                        self.describe(scope)
                    );
                    let offset = self.offset(node.at);
                    self.cx.report(
                        &rules::KERAS_DANGEROUS_REFERENCE,
                        offset,
                        msg,
                        Some(evidence()),
                    );
                }
            }
            Class::Custom(what) => {
                if self.seen_refs.insert(format!("C{what}")) {
                    let msg = format!(
                        "{} needs `{what}` from outside Keras/TensorFlow: loading imports and runs that code",
                        self.describe(scope)
                    );
                    let offset = self.offset(node.at);
                    self.cx
                        .report(&rules::KERAS_CUSTOM_OBJECT, offset, msg, Some(evidence()));
                }
            }
        }
    }

    /// Reports marshalled bytecode; `code` is the base64 string, or a list
    /// whose first element is it (`func_dump`'s `(code, defaults, closure)`).
    fn bytecode(&mut self, node: &Node, code: Option<&Node>, scope: &Scope) {
        let b64 = code.and_then(|c| match &c.v {
            Value::Str(s) => Some(s.as_str()),
            Value::Arr(items) => items.first().and_then(Node::str),
            _ => None,
        });
        let evidence = match b64 {
            Some(text) => {
                let bytes = base64_lenient(text);
                let found = marshal_names(&bytes);
                if found.is_empty() {
                    format!("base64 marshal, {} bytes", bytes.len())
                } else {
                    format!(
                        "base64 marshal, {} bytes, names: {}",
                        bytes.len(),
                        found.join(", ")
                    )
                }
            }
            None => "no readable code field".to_string(),
        };
        let msg = format!(
            "{} carries marshalled Python bytecode that runs when the model is loaded",
            self.describe(scope)
        );
        let offset = self.offset(node.at);
        self.cx
            .report(&rules::KERAS_LAMBDA_BYTECODE, offset, msg, Some(evidence));
    }
}

/// Decodes base64 the way `binascii.a2b_base64` does by default: characters
/// outside the alphabet (newlines from `encodebytes`) are skipped, `=` ends
/// the data.
fn base64_lenient(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Names from the knowledge base that appear as strings in marshal data.
/// Marshal stores names and constants as typed, length-prefixed strings
/// (`z`/`Z` short ASCII with a one-byte length, `a`/`A`/`u`/`t` with a
/// four-byte one, optionally with the 0x80 ref flag); reading those is
/// enough for evidence and never runs anything.
fn marshal_names(code: &[u8]) -> Vec<&'static str> {
    let table = &names().marshal;
    let mut found: Vec<&'static str> = Vec::new();
    let mut i = 0usize;
    while i < code.len() {
        let tag = code.get(i).map_or(0, |b| b & 0x7F);
        let (len, start) = match tag {
            b'z' | b'Z' => (code.get(i + 1).map(|&l| usize::from(l)), i + 2),
            b'a' | b'A' | b'u' | b't' => (
                code.get(i + 1..i + 5)
                    .and_then(|w| <[u8; 4]>::try_from(w).ok())
                    .map(|w| u32::from_le_bytes(w) as usize),
                i + 5,
            ),
            _ => (None, i + 1),
        };
        if let Some(s) = len
            .filter(|l| *l > 0 && *l <= 256)
            .and_then(|l| code.get(start..start + l))
            && let Some(name) = table.iter().find(|n| n.as_bytes() == s)
        {
            if !found.contains(name) {
                found.push(name);
            }
            i = start + s.len();
            continue;
        }
        i += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FileReport, Scanner, Verdict};

    fn run(json: &str) -> FileReport {
        run_bytes(json.as_bytes())
    }

    fn run_bytes(json: &[u8]) -> FileReport {
        let scanner = Scanner::default();
        let mut cx = Ctx::new(&scanner, None);
        scan_config(&mut cx, json);
        cx.finish("config.json", json.len() as u64)
    }

    fn ids(r: &FileReport) -> Vec<&'static str> {
        r.findings.iter().map(|f| f.rule.id).collect()
    }

    #[test]
    fn standard_configs_are_clean() {
        let cfg = r#"{"module": "keras", "class_name": "Sequential", "config": {"name": "s", "layers": [
            {"module": "keras.layers", "class_name": "Dense", "config": {"name": "d", "activation": "relu",
             "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {}, "registered_name": null}},
             "registered_name": null},
            {"module": "keras.layers", "class_name": "Lambda", "config": {"name": "l",
             "function": {"module": "keras.ops", "class_name": "function", "config": "relu", "registered_name": "relu"}}},
            {"module": "keras_hub.src.models.gemma", "class_name": "GemmaBackbone", "registered_name": "keras_hub>GemmaBackbone", "config": {"name": "g"}},
            {"module": "builtins", "class_name": "function", "config": "mse", "registered_name": "function"}
        ]}, "registered_name": "Functional"}"#;
        let r = run(cfg);
        assert!(r.findings.is_empty(), "{:?}", r.findings);
        assert_eq!(Scanner::default().limits().max_structure_depth, 128);
    }

    #[test]
    fn lambda_bytecode_is_malicious_with_marshal_evidence() {
        // marshal fragments: short-ASCII-interned "os" and "system" names.
        let payload: Vec<u8> = [
            &b"\xe3\x00\x00"[..],
            b"\xda\x02os",
            b"\xda\x06system",
            b"\xfa\x08<lambda>",
        ]
        .concat();
        let b64 = encode_b64(&payload);
        let cfg = format!(
            r#"{{"class_name": "Lambda", "config": {{"name": "lam", "function": {{"class_name": "__lambda__", "config": {{"code": "{b64}\n", "defaults": null}}}}}}}}"#
        );
        let r = run(&cfg);
        assert_eq!(ids(&r), ["KRS001"]);
        let ev = r.findings[0].evidence.clone().unwrap_or_default();
        assert!(ev.contains("os") && ev.contains("system"), "{ev}");
        assert!(
            r.findings[0].message.contains("Lambda layer `lam`"),
            "{}",
            r.findings[0].message
        );
    }

    #[test]
    fn tf_keras_function_type_lambda_is_bytecode() {
        let cfg = r#"{"class_name": "Lambda", "config": {"name": "x", "function": ["4wEAAAA=", null, null],
            "function_type": "lambda", "module": "__main__", "output_shape": null, "output_shape_type": "raw"}}"#;
        assert_eq!(ids(&run(cfg)), ["KRS001"]);
    }

    #[test]
    fn tf_keras_named_function_is_classified_by_module() {
        let cfg = r#"{"class_name": "Lambda", "config": {"name": "x", "function": "system", "function_type": "function", "module": "os"}}"#;
        assert_eq!(ids(&run(cfg)), ["KRS002"]);
        let cfg = r#"{"class_name": "Lambda", "config": {"name": "x", "function": "my_fn", "function_type": "function", "module": "__main__"}}"#;
        assert_eq!(ids(&run(cfg)), ["KRS003"]);
    }

    #[test]
    fn dangerous_references() {
        for (module, class, config) in [
            ("subprocess", "function", "\"getoutput\""),
            ("os", "function", "\"system\""),
            ("builtins", "function", "\"exec\""),
            ("keras.utils", "function", "\"get_file\""),
            (
                "keras.config",
                "function",
                "\"enable_unsafe_deserialization\"",
            ),
            ("keras.layers", "TFSMLayer", "{\"filepath\": \"/tmp/x\"}"),
            ("keras.layers", "TorchModuleWrapper", "{}"),
            ("\\u006fs", "function", "\"system\""),
        ] {
            let cfg = format!(
                r#"{{"module": "keras.layers", "class_name": "Dense", "config": {{"name": "d", "activation":
                   {{"module": "{module}", "class_name": "{class}", "config": {config}, "registered_name": "function"}}}}}}"#
            );
            let r = run(&cfg);
            assert_eq!(ids(&r), ["KRS002"], "{module}.{class}: {:?}", r.findings);
            assert_eq!(r.verdict, Verdict::Malicious);
        }
    }

    #[test]
    fn tf_op_lambda_symbols() {
        let cfg =
            r#"{"class_name": "TFOpLambda", "config": {"name": "t", "function": "io.write_file"}}"#;
        assert_eq!(ids(&run(cfg)), ["KRS002"]);
        let cfg =
            r#"{"class_name": "TFOpLambda", "config": {"name": "t", "function": "math.add"}}"#;
        assert!(run(cfg).findings.is_empty());
    }

    #[test]
    fn custom_objects_are_suspicious_once() {
        let layer = r#"{"module": "mypkg.layers", "class_name": "Scale", "config": {"name": "s"}, "registered_name": "mypkg>Scale"}"#;
        let cfg = format!(
            r#"{{"class_name": "Sequential", "config": {{"layers": [{layer}, {layer}]}}}}"#
        );
        let r = run(&cfg);
        assert_eq!(ids(&r), ["KRS003"]);
        assert_eq!(r.verdict, Verdict::Suspicious);
        // Keras 2 style: no module, a registered `Package>Name` class.
        assert_eq!(
            ids(&run(r#"{"class_name": "Custom>Scale", "config": {}}"#)),
            ["KRS003"]
        );
    }

    #[test]
    fn duplicate_keys_are_reported_and_both_values_checked() {
        let cfg = r#"{"class_name": "Dense", "config": {"name": "d", "activation":
            {"module": "keras.activations", "module": "subprocess", "class_name": "function", "config": "getoutput"}}}"#;
        let mut got = ids(&run(cfg));
        got.sort();
        assert_eq!(got, ["KRS002", "KRS004"]);
        // The first value hides behind the last: still seen.
        let cfg = r#"{"class_name": "Dense", "class_name": "Lambda", "config": {"name": "x",
            "function": {"class_name": "__lambda__", "config": {"code": "AAAA"}}}}"#;
        let mut got = ids(&run(cfg));
        got.sort();
        assert_eq!(got, ["KRS001", "KRS004"]);
    }

    #[test]
    fn utf16_configs_are_read_like_python_does() {
        let cfg = r#"{"module": "os", "class_name": "function", "config": "system"}"#;
        let mut bytes = vec![0xFF, 0xFE];
        for u in cfg.encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(ids(&run_bytes(&bytes)), ["KRS002"]);
        let no_bom: Vec<u8> = cfg.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
        assert_eq!(ids(&run_bytes(&no_bom)), ["KRS002"]);
    }

    #[test]
    fn broken_and_hostile_json_is_inconclusive() {
        for bad in [
            "",
            "{",
            "{\"a\": 1,}",
            "[1 2]",
            "{\"a\": \"\u{1}\"}",
            "nul",
            "{} {}",
            "\"\\ud800",
            "-",
            "1e",
        ] {
            let r = run(bad);
            assert_eq!(ids(&r), ["GEN001"], "{bad:?}");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert_eq!(ids(&run(&deep)), ["GEN002"]);
        for ok in [
            "\u{FEFF}{}",
            "NaN",
            "-Infinity",
            "[1.5e-3, -0, true, false, null, \"\\u00e9\\ud83d\\ude00\"]",
        ] {
            assert!(run(ok).findings.is_empty(), "{ok}");
        }
    }

    #[test]
    fn offsets_point_into_the_member() {
        let cfg = r#"{"x": {"module": "os", "class_name": "function", "config": "system"}}"#;
        let r = run(cfg);
        assert_eq!(r.findings[0].location.offset, Some(6));
    }

    #[test]
    fn names_table_is_well_formed() {
        for line in crate::tables::KERAS_NAMES
            .text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 3, "{line}");
            assert!(
                ["safe", "deny", "deny-name", "marshal"].contains(&cols[0]),
                "{line}"
            );
            assert!(!cols[2].trim().is_empty(), "{line}");
        }
        let n = names();
        assert!(
            !n.safe.is_empty()
                && !n.deny.is_empty()
                && !n.deny_name.is_empty()
                && !n.marshal.is_empty()
        );
    }

    #[test]
    fn base64_is_decoded_leniently() {
        assert_eq!(base64_lenient("aGVs\nbG8=\n"), b"hello");
        assert_eq!(base64_lenient("!!"), b"");
    }

    fn encode_b64(data: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    s.push('=');
                }
            }
        }
        s
    }
}
