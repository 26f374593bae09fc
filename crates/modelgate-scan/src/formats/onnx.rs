//! ONNX models: a `ModelProto` protobuf, walked with the wire walker in
//! [`super::protobuf`] without building the model.
//!
//! An ONNX file cannot run Python, but it can make its loader misbehave in
//! two documented ways, and those are what this module looks for:
//!
//! * **External data that escapes the model directory.** A tensor may keep
//!   its bytes in another file, named by the `location` entry of its
//!   `external_data`. Absolute locations and `..` components read (or, on
//!   re-save, overwrite) arbitrary host files (CVE-2022-25882,
//!   CVE-2024-27318, CVE-2025-51480). When the model was scanned from disk the
//!   location is also resolved next to it, and a symbolic link, a hard link or
//!   a target outside the directory is reported (CVE-2026-27489 / 34446 /
//!   34447: the fixes that only called `is_symlink` were bypassed).
//! * **Custom operators.** An operator in a domain that the runtime does not
//!   implement (see `data/onnx_domains.tsv`) runs only once the user loads a
//!   native custom-op library shipped with the model. Operators that a model
//!   defines itself as `FunctionProto`s are expanded into standard operators
//!   and are not custom.
//!
//! Every `TensorProto` is visited: graph initializers, sparse initializers,
//! tensor-valued node attributes (`Constant`), and the same inside subgraphs
//! (`If`/`Loop`/`Scan` bodies in attributes), functions and training-info
//! graphs. Subgraph nesting is capped by `Limits::max_structure_depth`.
//! Tensor payloads (`raw_data`, `float_data`, …) are skipped, never read.
//!
//! ONNX has no magic number; [`looks_like_onnx`] is the strict structural
//! check the sniffer uses so that an ONNX file is recognised whatever its
//! name. Spec: <https://github.com/onnx/onnx/blob/main/onnx/onnx.proto>,
//! <https://onnx.ai/onnx/repo-docs/ExternalData.html>.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::LazyLock;

use super::protobuf::{self, Field, Message, Value};
use crate::Ctx;
use crate::Verdict;
use crate::rules;

/// Runtime-implemented operator domains (`data/onnx_domains.tsv`).
static STANDARD_DOMAINS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    crate::tables::ONNX_DOMAINS
        .rows()
        .map(|cols| match cols.first().copied() {
            Some("\"\"") | None => "",
            Some(d) => d,
        })
        .collect()
});

/// Name tokens that make a custom operator malicious rather than merely
/// unknown (`data/custom_op_words.tsv`).
static DANGEROUS_WORDS: LazyLock<Vec<(&'static str, &'static str)>> = LazyLock::new(|| {
    crate::tables::CUSTOM_OP_WORDS
        .rows()
        .filter_map(|cols| Some((*cols.first()?, *cols.get(1)?)))
        .collect()
});

/// If a custom operator's name (or one of its attribute names) contains a
/// word that speaks of commands, code, files or the network, returns that
/// word and what it suggests. Names are split at CamelCase humps, `_`, `.`,
/// `-` and digits so that `ExecCommand`, `run_shell` and `FileIO` match while
/// `Profile` or `PostProcess` do not.
pub(crate) fn dangerous_word(name: &str) -> Option<(String, &'static str)> {
    let mut tokens: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_ascii_alphabetic() {
            tokens.push(std::mem::take(&mut cur));
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower {
            tokens.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase();
        cur.push(c.to_ascii_lowercase());
    }
    tokens.push(cur);
    let whole = name.to_ascii_lowercase();
    tokens.push(whole);
    tokens.into_iter().find_map(|t| {
        DANGEROUS_WORDS
            .iter()
            .find(|(w, _)| *w == t)
            .map(|(w, why)| ((*w).to_string(), *why))
    })
}

/// Cheap, strict test for "these bytes are an ONNX ModelProto": the first
/// field is `ir_version` (a small varint), every top-level field is one
/// ModelProto defines with its proper wire type, and there is a graph whose
/// own top-level fields parse as a GraphProto. Random binaries, text and
/// pickles fail on the first byte or soon after.
pub fn looks_like_onnx(data: &[u8]) -> bool {
    if data.first() != Some(&0x08) {
        return false;
    }
    let mut graph = None;
    for (i, field) in Message::new(data).fields().enumerate() {
        let Ok(f) = field else { return false };
        let wire_ok = match (f.number, f.value) {
            (1, Value::Varint(v)) => i == 0 && v > 0 && v < 1000,
            (5, Value::Varint(_)) => true,
            (2 | 3 | 4 | 6 | 8 | 14 | 20 | 25 | 26, Value::Bytes(..)) => true,
            (7, Value::Bytes(..)) => {
                graph = f.message();
                true
            }
            _ => false,
        };
        if !wire_ok {
            return false;
        }
    }
    let Some(graph) = graph else { return false };
    graph.fields().all(|f| {
        matches!(
            f,
            Ok(Field {
                number: 1 | 2 | 5 | 10 | 11 | 12 | 13 | 14 | 15 | 16,
                value: Value::Bytes(..),
                ..
            })
        )
    })
}

/// Why a walk stopped early.
enum Stop {
    Wire(protobuf::Error),
    Depth(u64),
    Time,
}

impl From<protobuf::Error> for Stop {
    fn from(e: protobuf::Error) -> Self {
        Stop::Wire(e)
    }
}

/// Scans an ONNX model: external-data locations and custom-domain
/// operators, walking the protobuf without building the model.
pub fn scan(cx: &mut Ctx, data: &[u8]) {
    if data.get(4..8) == Some(b"ORTM") {
        cx.inconclusive(
            &rules::UNPARSEABLE,
            Some(0),
            "ONNX Runtime's ORT flatbuffer format is not supported; its operators were not inspected",
        );
        return;
    }
    // Only a file scanned from disk has a directory its external data can be
    // resolved in; an archive member's origin is the archive.
    let dir = if cx.depth() == 0 {
        cx.origin()
            .filter(|p| !p.is_dir())
            .map(|p| match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            })
    } else {
        None
    };
    let model = Message::new(data);
    let mut walker = Walker {
        cx,
        dir,
        local_functions: HashSet::new(),
        has_graph: false,
        resolved: HashMap::new(),
    };
    let result = walker.model(model);
    let has_graph = walker.has_graph;
    match result {
        Ok(()) if !has_graph => cx.inconclusive(
            &rules::UNPARSEABLE,
            Some(0),
            "not an ONNX model: the protobuf has no graph, so nothing a runtime would execute could be inspected",
        ),
        Ok(()) | Err(Stop::Time) => {}
        Err(Stop::Wire(e)) => {
            cx.inconclusive(&rules::UNPARSEABLE, Some(e.offset), format!("ONNX model is not valid protobuf: {}", e.reason))
        }
        Err(Stop::Depth(at)) => {
            let max = cx.limits().max_structure_depth;
            cx.inconclusive(&rules::LIMIT_EXCEEDED, Some(at), format!("ONNX subgraphs nested deeper than {max} levels"))
        }
    }
}

struct Walker<'c, 's> {
    cx: &'c mut Ctx<'s>,
    dir: Option<PathBuf>,
    /// `(domain, name)` of the model's own `FunctionProto`s: nodes calling
    /// them are not custom operators.
    local_functions: HashSet<(String, String)>,
    has_graph: bool,
    /// On-disk verdicts per location: sharded exports point thousands of
    /// tensors at the same few files.
    resolved: HashMap<String, Option<(Verdict, String)>>,
}

impl Walker<'_, '_> {
    fn enter(&mut self, depth: u32, at: u64) -> Result<u32, Stop> {
        if depth >= self.cx.limits().max_structure_depth {
            return Err(Stop::Depth(at));
        }
        if !self.cx.in_time() {
            return Err(Stop::Time);
        }
        Ok(depth + 1)
    }

    fn model(&mut self, m: Message) -> Result<(), Stop> {
        // Functions first: a node may call one defined later in the file.
        for f in m.fields() {
            let f = f?;
            if f.number == 25
                && let Some(func) = f.message()
            {
                let (mut domain, mut name) = (String::new(), String::new());
                for g in func.fields() {
                    let g = g?;
                    match g.number {
                        1 => name = g.text().unwrap_or_default(),
                        10 => domain = g.text().unwrap_or_default(),
                        _ => {}
                    }
                }
                self.local_functions.insert((domain, name));
            }
        }
        for f in m.fields() {
            let f = f?;
            match (f.number, f.message()) {
                (7, Some(g)) => {
                    self.has_graph = true;
                    self.graph(g, 1)?;
                }
                // TrainingInfoProto: initialization (1) and algorithm (2) graphs.
                (20, Some(t)) => {
                    for g in t.fields() {
                        let g = g?;
                        if let (1 | 2, Some(graph)) = (g.number, g.message()) {
                            self.graph(graph, 2)?;
                        }
                    }
                }
                (25, Some(func)) => self.function(func, 1)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn graph(&mut self, g: Message, depth: u32) -> Result<(), Stop> {
        let depth = self.enter(depth, g.offset())?;
        for f in g.fields() {
            let f = f?;
            match (f.number, f.message()) {
                (1, Some(node)) => self.node(node, depth)?,
                (5, Some(tensor)) => self.tensor(tensor)?,
                (15, Some(sparse)) => self.sparse_tensor(sparse)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn function(&mut self, func: Message, depth: u32) -> Result<(), Stop> {
        let depth = self.enter(depth, func.offset())?;
        for f in func.fields() {
            let f = f?;
            if let (7, Some(node)) = (f.number, f.message()) {
                self.node(node, depth)?;
            }
        }
        Ok(())
    }

    fn node(&mut self, node: Message, depth: u32) -> Result<(), Stop> {
        let mut op: Option<Field> = None;
        let mut domain = String::new();
        let mut attr_names: Vec<String> = Vec::new();
        for f in node.fields() {
            let f = f?;
            match f.number {
                4 => op = Some(f),
                7 => domain = f.text().unwrap_or_default(),
                5 => {
                    if let Some(attr) = f.message()
                        && let Some(name) = self.attribute(attr, depth)?
                    {
                        attr_names.push(name);
                    }
                }
                _ => {}
            }
        }
        if !self.cx.in_time() {
            return Err(Stop::Time);
        }
        let op_type = op.and_then(|f| f.text()).unwrap_or_default();
        if STANDARD_DOMAINS.contains(domain.as_str())
            || self
                .local_functions
                .contains(&(domain.clone(), op_type.clone()))
        {
            return Ok(());
        }
        let offset = op.map(|f| f.offset).unwrap_or(node.offset());
        let evidence = Some(format!("{domain}::{op_type}"));
        let hint = std::iter::once(&op_type)
            .chain(attr_names.iter())
            .find_map(|n| dangerous_word(n).map(|(w, why)| (n.clone(), w, why)));
        match hint {
            Some((name, word, why)) => self.cx.report_as(
                &rules::ONNX_CUSTOM_OP,
                Verdict::Malicious,
                Some(offset),
                format!(
                    "custom operator `{op_type}` of domain `{domain}` {why} (`{name}` contains `{word}`) through a native custom-op library"
                ),
                evidence,
            ),
            None => self.cx.report(
                &rules::ONNX_CUSTOM_OP,
                Some(offset),
                format!("custom operator `{op_type}` of domain `{domain}` runs native code from a custom-op library"),
                evidence,
            ),
        }
        Ok(())
    }

    /// Walks an AttributeProto's tensors and subgraphs; returns its name.
    fn attribute(&mut self, attr: Message, depth: u32) -> Result<Option<String>, Stop> {
        let mut name = None;
        for f in attr.fields() {
            let f = f?;
            match (f.number, f.message()) {
                (1, _) => name = f.text(),
                (5 | 10, Some(t)) => self.tensor(t)?,
                (6 | 11, Some(g)) => self.graph(g, depth)?,
                (22 | 23, Some(s)) => self.sparse_tensor(s)?,
                _ => {}
            }
        }
        Ok(name)
    }

    fn sparse_tensor(&mut self, s: Message) -> Result<(), Stop> {
        for f in s.fields() {
            let f = f?;
            if let (1 | 2, Some(t)) = (f.number, f.message()) {
                self.tensor(t)?;
            }
        }
        Ok(())
    }

    /// Checks a TensorProto's external data locations.
    fn tensor(&mut self, t: Message) -> Result<(), Stop> {
        let mut name = String::new();
        let mut locations: Vec<(String, u64)> = Vec::new();
        for f in t.fields() {
            let f = f?;
            match (f.number, f.message()) {
                (8, _) => name = f.text().unwrap_or_default(),
                (13, Some(entry)) => {
                    let (mut key, mut value) = (None, None);
                    for e in entry.fields() {
                        let e = e?;
                        match e.number {
                            1 => key = e.bytes(),
                            2 => value = Some((e.text().unwrap_or_default(), e.offset)),
                            _ => {}
                        }
                    }
                    if key == Some(b"location")
                        && let Some(v) = value
                    {
                        locations.push(v);
                    }
                }
                _ => {}
            }
        }
        for (location, offset) in locations {
            self.check_location(&name, &location, offset);
        }
        Ok(())
    }

    fn check_location(&mut self, tensor: &str, location: &str, offset: u64) {
        let evidence = Some(format!("{tensor}: {location}"));
        if let Some(why) = lexical_escape(location) {
            self.cx.report(
                &rules::ONNX_EXTERNAL_DATA_TRAVERSAL,
                Some(offset),
                format!("tensor `{tensor}` would load its bytes from `{location}`, {why}: a host file outside the model"),
                evidence,
            );
            return;
        }
        let Some(dir) = &self.dir else { return };
        let found = self
            .resolved
            .entry(location.to_string())
            .or_insert_with(|| link_escape(dir, location))
            .clone();
        if let Some((verdict, why)) = found {
            self.cx.report_as(
                &rules::ONNX_EXTERNAL_DATA_LINK,
                verdict,
                Some(offset),
                format!("tensor `{tensor}` would load its bytes from `{location}`, which {why}"),
                evidence,
            );
        }
    }
}

/// Why a location names a file outside the model directory by its text
/// alone, as every loader resolves it (`dir/location`).
fn lexical_escape(location: &str) -> Option<&'static str> {
    let b = location.as_bytes();
    if location.contains('\0') {
        return Some("cut short by a NUL byte");
    }
    if b.first().is_some_and(|&c| c == b'/' || c == b'\\') {
        return Some("an absolute path");
    }
    if matches!(b, [drive, b':', ..] if drive.is_ascii_alphabetic()) {
        return Some("an absolute Windows path");
    }
    if location.split(['/', '\\']).any(|c| c == "..") {
        return Some("which climbs out of the model directory with `..`");
    }
    None
}

/// Resolves a lexically clean location next to the model and reports what
/// the file system makes of it: a link out of the directory is malicious, a
/// link inside it or a hard link cannot be shown safe.
fn link_escape(dir: &Path, location: &str) -> Option<(Verdict, String)> {
    let target = dir.join(location);
    let meta = std::fs::symlink_metadata(&target).ok()?;
    let canon_dir = dir.canonicalize().ok()?;
    let mut real = target.clone();
    if meta.file_type().is_symlink() || has_symlinked_parent(dir, location) {
        let Ok(resolved) = target.canonicalize() else {
            return Some((
                Verdict::Suspicious,
                "is a symbolic link that does not resolve".to_string(),
            ));
        };
        if !resolved.starts_with(&canon_dir) {
            if !is_hf_blob(&canon_dir, &resolved) {
                return Some((
                    Verdict::Malicious,
                    format!(
                        "is a symbolic link to `{}`, outside the model directory",
                        resolved.display()
                    ),
                ));
            }
        } else if meta.file_type().is_symlink() {
            return Some((
                Verdict::Suspicious,
                format!(
                    "is a symbolic link (to `{}`); onnx refuses linked external data",
                    resolved.display()
                ),
            ));
        }
        real = resolved;
    }
    hard_link_count(&real).filter(|&n| n > 1).map(|n| {
        (
            Verdict::Suspicious,
            format!(
                "is a hard link ({n} names share its inode), so it may be any file on the volume"
            ),
        )
    })
}

/// True when a directory component of the location (not the file itself) is
/// a symbolic link, which moves the target even though the name is clean.
fn has_symlinked_parent(dir: &Path, location: &str) -> bool {
    let mut p = dir.to_path_buf();
    let parts: Vec<Component> = Path::new(location).components().collect();
    for c in parts.iter().take(parts.len().saturating_sub(1)) {
        p.push(c);
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
            return true;
        }
    }
    false
}

/// The Hugging Face cache stores every file of a snapshot
/// (`models--org--name/snapshots/<rev>/…`) as a symbolic link into the same
/// repository's `blobs/` directory. Such a link is the cache's normal layout,
/// not an escape.
fn is_hf_blob(canon_dir: &Path, resolved: &Path) -> bool {
    canon_dir.ancestors().any(|a| {
        let parent = a.parent();
        parent
            .and_then(Path::file_name)
            .is_some_and(|n| n == "snapshots")
            && parent.and_then(Path::parent).is_some_and(|repo| {
                let name = repo.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let kind_ok = ["models--", "datasets--", "spaces--"]
                    .iter()
                    .any(|k| name.starts_with(k));
                kind_ok && resolved.parent() == Some(repo.join("blobs").as_path())
            })
    })
}

#[cfg(unix)]
fn hard_link_count(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.nlink())
}

#[cfg(not(unix))]
fn hard_link_count(_path: &Path) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::super::protobuf::enc::*;
    use super::*;
    use crate::{Scanner, Verdict};

    fn tensor(name: &str, location: &str) -> Vec<u8> {
        [
            int(1, 4),
            bytes(8, name.as_bytes()),
            msg(13, &[bytes(1, b"location"), bytes(2, location.as_bytes())]),
            int(14, 1),
        ]
        .concat()
    }

    fn node(op: &str, domain: &str) -> Vec<u8> {
        [
            bytes(1, b"x"),
            bytes(2, b"y"),
            bytes(4, op.as_bytes()),
            bytes(7, domain.as_bytes()),
        ]
        .concat()
    }

    fn model(graph: &[Vec<u8>], extra: &[Vec<u8>]) -> Vec<u8> {
        let mut m = [
            int(1, 8),
            bytes(2, b"test"),
            msg(7, graph),
            msg(8, &[bytes(1, b""), int(2, 17)]),
        ]
        .concat();
        m.extend(extra.concat());
        m
    }

    fn rule_ids(data: &[u8]) -> Vec<(&'static str, Verdict)> {
        let r = Scanner::default().scan_bytes("m.bin", data);
        r.findings.iter().map(|f| (f.rule.id, f.verdict)).collect()
    }

    #[test]
    fn plain_model_is_clean_and_sniffed_by_content() {
        let m = model(&[msg(1, &[node("Relu", "")]), bytes(2, b"g")], &[]);
        assert!(looks_like_onnx(&m));
        assert_eq!(crate::sniff::sniff(&m, "weights.bin"), crate::Format::Onnx);
        assert!(rule_ids(&m).is_empty());
    }

    #[test]
    fn sniff_is_strict() {
        assert!(!looks_like_onnx(b"\x08\x01"));
        assert!(!looks_like_onnx(b"\x80\x04\x95"));
        assert!(!looks_like_onnx(b"hello world"));
        let unknown_field = [int(1, 8), bytes(9, b"zz"), msg(7, &[bytes(2, b"g")])].concat();
        assert!(!looks_like_onnx(&unknown_field));
    }

    #[test]
    fn traversal_and_absolute_locations() {
        for loc in [
            "../../etc/passwd",
            "/etc/shadow",
            "a/../../b",
            "C:\\Windows\\win.ini",
            "sub\\..\\..\\x",
        ] {
            let m = model(&[msg(5, &[tensor("W", loc)])], &[]);
            assert_eq!(rule_ids(&m), vec![("ONNX001", Verdict::Malicious)], "{loc}");
        }
        let ok = model(&[msg(5, &[tensor("W", "model.onnx_data")])], &[]);
        assert!(rule_ids(&ok).is_empty());
    }

    #[test]
    fn tensors_in_nested_subgraphs_and_constants_are_checked() {
        let then_branch = [msg(5, &[tensor("T", "../x")])].concat();
        let attr = [bytes(1, b"then_branch"), msg(6, &[then_branch]), int(20, 5)].concat();
        let if_node = [node("If", ""), msg(5, &[attr])].concat();
        let constant = [
            node("Constant", ""),
            msg(
                5,
                &[bytes(1, b"value"), msg(5, &[tensor("C", "/etc/hosts")])],
            ),
        ]
        .concat();
        let m = model(&[msg(1, &[if_node]), msg(1, &[constant])], &[]);
        let ids = rule_ids(&m);
        assert_eq!(ids.len(), 2, "{ids:?}");
    }

    #[test]
    fn custom_domains_are_graded() {
        let m = model(
            &[
                msg(1, &[node("Gemm", "ai.onnx")]),
                msg(1, &[node("FusedMatMul", "com.microsoft")]),
            ],
            &[],
        );
        assert!(rule_ids(&m).is_empty());
        let m = model(&[msg(1, &[node("MyNorm", "org.example")])], &[]);
        assert_eq!(rule_ids(&m), vec![("ONNX003", Verdict::Suspicious)]);
        let m = model(&[msg(1, &[node("RunShell", "org.example")])], &[]);
        assert_eq!(rule_ids(&m), vec![("ONNX003", Verdict::Malicious)]);
        // A function the model defines itself is not a custom op.
        let func = msg(
            25,
            &[
                bytes(1, b"MyNorm"),
                bytes(10, b"org.example"),
                msg(7, &[node("Relu", "")]),
            ],
        );
        let m = model(&[msg(1, &[node("MyNorm", "org.example")])], &[func]);
        assert!(rule_ids(&m).is_empty());
    }

    #[test]
    fn words_split_on_case_and_separators() {
        assert!(dangerous_word("ExecCommand").is_some());
        assert!(dangerous_word("run_shell").is_some());
        assert!(dangerous_word("cmd").is_some());
        assert!(dangerous_word("Profile").is_none());
        assert!(dangerous_word("PostProcess").is_none());
        assert!(dangerous_word("LayerNorm").is_none());
    }

    #[test]
    fn deep_nesting_is_a_limit_not_a_crash() {
        let mut g = msg(1, &[node("Relu", "")]);
        for _ in 0..300 {
            let attr = [bytes(1, b"body"), msg(6, &[g])].concat();
            g = msg(1, &[[node("Loop", ""), msg(5, &[attr])].concat()]);
        }
        let m = [int(1, 8), msg(7, &[g])].concat();
        let r = Scanner::default().scan_bytes("m.onnx", &m);
        assert!(
            r.findings.iter().any(|f| f.rule.id == "GEN002"),
            "{:?}",
            r.findings
        );
    }

    #[test]
    fn garbage_named_onnx_is_unparseable() {
        let r = Scanner::default().scan_bytes("m.onnx", b"\x0a\xff\xff\x00\x01garbage\x00");
        assert!(r.findings.iter().any(|f| f.rule.id == "GEN001"));
    }

    #[cfg(unix)]
    #[test]
    fn links_on_disk_are_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, b"x").unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("w.bin")).unwrap();
        std::fs::write(dir.path().join("ok.bin"), b"x").unwrap();
        std::fs::hard_link(dir.path().join("ok.bin"), dir.path().join("hard.bin")).unwrap();
        let scan = |loc: &str| {
            let path = dir.path().join("m.onnx");
            std::fs::write(&path, model(&[msg(5, &[tensor("W", loc)])], &[])).unwrap();
            let r = Scanner::default().scan_file(&path, "m.onnx").unwrap();
            r.findings
                .iter()
                .map(|f| (f.rule.id, f.verdict))
                .collect::<Vec<_>>()
        };
        assert_eq!(scan("w.bin"), vec![("ONNX002", Verdict::Malicious)]);
        assert_eq!(scan("hard.bin"), vec![("ONNX002", Verdict::Suspicious)]);
        assert!(scan("missing.bin").is_empty());
        std::fs::remove_file(dir.path().join("hard.bin")).unwrap();
        assert!(scan("ok.bin").is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn hf_cache_snapshot_links_are_normal() {
        let root = tempfile::tempdir().unwrap();
        let repo = root.path().join("models--org--m");
        let snap = repo.join("snapshots").join("abc123");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(repo.join("blobs")).unwrap();
        std::fs::write(repo.join("blobs").join("deadbeef"), b"x").unwrap();
        std::os::unix::fs::symlink("../../blobs/deadbeef", snap.join("model.onnx_data")).unwrap();
        let path = snap.join("model.onnx");
        std::fs::write(
            &path,
            model(&[msg(5, &[tensor("W", "model.onnx_data")])], &[]),
        )
        .unwrap();
        let r = Scanner::default().scan_file(&path, "model.onnx").unwrap();
        assert!(r.findings.is_empty(), "{:?}", r.findings);
    }
}
