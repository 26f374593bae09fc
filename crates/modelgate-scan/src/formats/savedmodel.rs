//! TensorFlow SavedModel: `saved_model.pb` (a `SavedModel` protobuf) and the
//! directory around it, walked with [`super::protobuf`]; TensorFlow is never
//! imported.
//!
//! A SavedModel is a program: its graphs run with the rights of the serving
//! process, and TensorFlow's own security policy says so. What matters is
//! which ops the graphs contain. Every `NodeDef` of every meta graph's
//! `graph_def` and of every function in its `library` is checked against
//! `data/tf_ops.tsv`:
//!
//! * Python callbacks (`PyFunc`, `EagerPyFunc`, …), file access (`ReadFile`,
//!   `WriteFile`, `MatchingFiles`, readers and file datasets) and RPC ops are
//!   reported whatever their inputs.
//! * `PrintV2` is reported when its `output_stream` is `file://…`.
//! * Saver, restore and lookup-table ops are in every SavedModel, fed the
//!   checkpoint path at load time; they are reported only when an input is a
//!   constant (directly or through `Identity`) holding an absolute or `..`
//!   path.
//!
//! All functions in the library are checked, called or not: which functions
//! run depends on signatures and object graphs a loader may interpret
//! differently, and an unused dangerous function has no business there.
//! `meta_info_def.stripped_op_list` is ignored: it lists op *definitions*
//! (with default attributes) and proves nothing about use.
//!
//! [`scan_dir`] treats a SavedModel directory as one model: the graph, the
//! Keras metadata (whose layer configs go to the Keras analysis, for Lambda
//! layers), assets, and every other file through generic sniffing. Variable
//! shards are raw tensor bytes: they are counted, never read.
//!
//! Schemas: tensorflow/core/protobuf/saved_model.proto, meta_graph.proto,
//! framework/graph.proto, node_def.proto, function.proto, attr_value.proto.

use std::collections::HashMap;
use std::path::Path;
use std::sync::LazyLock;

use super::protobuf::{self, Message};
use crate::rules::{self, Rule};
use crate::{Ctx, Verdict};

/// What kind of reach an op has (`class` column of `data/tf_ops.tsv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpClass {
    Python,
    File,
    Network,
    /// Dangerous only with a constant escaping path.
    Path,
}

#[derive(Debug)]
pub(crate) struct OpEntry {
    pub class: OpClass,
    pub verdict: Verdict,
    pub reason: &'static str,
}

static TF_OPS: LazyLock<HashMap<&'static str, OpEntry>> = LazyLock::new(|| {
    crate::tables::TF_OPS
        .rows()
        .filter_map(|cols| {
            let class = match *cols.get(1)? {
                "python" => OpClass::Python,
                "file" => OpClass::File,
                "network" => OpClass::Network,
                "path" => OpClass::Path,
                _ => return None,
            };
            let verdict = match *cols.get(2)? {
                "malicious" => Verdict::Malicious,
                "suspicious" => Verdict::Suspicious,
                _ => return None,
            };
            Some((
                *cols.first()?,
                OpEntry {
                    class,
                    verdict,
                    reason: cols.get(3)?,
                },
            ))
        })
        .collect()
});

pub(crate) fn lookup_op(op: &str) -> Option<&'static OpEntry> {
    TF_OPS.get(op)
}

/// Hops followed through `Identity` when resolving an input to a constant.
const MAX_IDENTITY_HOPS: usize = 8;

/// A dangerous use of an op, ready to report.
pub(crate) struct OpFinding {
    pub rule: &'static Rule,
    pub verdict: Verdict,
    pub offset: u64,
    pub message: String,
    pub evidence: String,
}

/// The parts of a `NodeDef` the checks need, borrowed from the input.
#[derive(Debug, Default, Clone)]
pub(crate) struct Node<'a> {
    pub name: String,
    pub op: String,
    pub op_offset: u64,
    inputs: Vec<&'a [u8]>,
    /// `(name, AttrValue)` pairs.
    attrs: Vec<(&'a [u8], Message<'a>)>,
}

impl<'a> Node<'a> {
    pub(crate) fn parse(m: Message<'a>) -> Result<Self, protobuf::Error> {
        let mut node = Node {
            op_offset: m.offset(),
            ..Node::default()
        };
        for f in m.fields() {
            let f = f?;
            match f.number {
                1 => node.name = f.text().unwrap_or_default(),
                2 => {
                    node.op = f.text().unwrap_or_default();
                    node.op_offset = f.offset;
                }
                3 => node.inputs.extend(f.bytes()),
                5 => {
                    let Some(entry) = f.message() else { continue };
                    let (mut key, mut value) = (None, None);
                    for e in entry.fields() {
                        let e = e?;
                        match e.number {
                            1 => key = e.bytes(),
                            2 => value = e.message(),
                            _ => {}
                        }
                    }
                    if let (Some(k), Some(v)) = (key, value) {
                        node.attrs.push((k, v));
                    }
                }
                _ => {}
            }
        }
        Ok(node)
    }

    fn attr(&self, name: &str) -> Option<Message<'a>> {
        self.attrs
            .iter()
            .find(|(k, _)| *k == name.as_bytes())
            .map(|(_, v)| *v)
    }

    /// An `AttrValue`'s `s` (string) payload.
    fn attr_string(&self, name: &str) -> Option<String> {
        let v = self.attr(name)?;
        v.fields()
            .flatten()
            .find(|f| f.number == 2)
            .and_then(|f| f.text())
    }

    /// String values of a `Const` node's tensor (`value.tensor.string_val`).
    fn const_strings(&self) -> Vec<String> {
        let Some(v) = self.attr("value") else {
            return Vec::new();
        };
        v.fields()
            .flatten()
            .filter(|f| f.number == 8)
            .filter_map(|f| f.message())
            .flat_map(|t| {
                t.fields()
                    .flatten()
                    .filter(|f| f.number == 9)
                    .filter_map(|f| f.text())
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// The name an input refers to: `^ctrl`, `node:1` and (in function bodies)
/// `node:output:0` all name `node`.
fn input_node(input: &[u8]) -> &[u8] {
    let input = input.strip_prefix(b"^").unwrap_or(input);
    input.split(|&b| b == b':').next().unwrap_or(input)
}

/// Why a constant path escapes wherever the loader puts the model.
fn path_escape(path: &str) -> Option<&'static str> {
    let b = path.as_bytes();
    if b.first().is_some_and(|&c| c == b'/' || c == b'\\')
        || matches!(b, [drive, b':', ..] if drive.is_ascii_alphabetic())
    {
        return Some("an absolute path");
    }
    if path.split(['/', '\\']).any(|c| c == "..") {
        return Some("a path that climbs out with `..`");
    }
    None
}

/// Checks every node of one scope (a graph or a function body), where input
/// names resolve.
pub(crate) fn check_scope(nodes: &[Node]) -> Vec<OpFinding> {
    let by_name: HashMap<&str, &Node> = nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    nodes
        .iter()
        .filter_map(|n| check_node(n, &by_name))
        .collect()
}

fn check_node(node: &Node, scope: &HashMap<&str, &Node>) -> Option<OpFinding> {
    let op = node.op.as_str();
    let finding = |rule: &'static Rule, verdict, message: String, evidence: String| {
        Some(OpFinding {
            rule,
            verdict,
            offset: node.op_offset,
            message,
            evidence,
        })
    };
    if op == "PrintV2" {
        let stream = node.attr_string("output_stream")?;
        if !stream.to_ascii_lowercase().starts_with("file://") {
            return None;
        }
        return finding(
            &rules::TF_PRINT_TO_FILE,
            Verdict::Malicious,
            format!(
                "PrintV2 op `{}` appends to the host file `{stream}`",
                node.name
            ),
            format!("PrintV2 output_stream={stream}"),
        );
    }
    let entry = lookup_op(op)?;
    let rule = match entry.class {
        OpClass::Python => &rules::TF_PYTHON_OP,
        OpClass::File => &rules::TF_FILE_OP,
        OpClass::Network => &rules::TF_NETWORK_OP,
        OpClass::Path => {
            let (path, why) = node.inputs.iter().find_map(|i| {
                let c = resolve_const(i, scope)?;
                c.const_strings()
                    .into_iter()
                    .find_map(|s| path_escape(&s).map(|why| (s, why)))
            })?;
            return finding(
                &rules::TF_PATH_ESCAPE,
                entry.verdict,
                format!("{op} op `{}` {} `{path}`, {why}", node.name, entry.reason),
                format!("{op}: {path}"),
            );
        }
    };
    let mut evidence = op.to_string();
    if let Some(region) = node.attr_string("memory_region_name") {
        evidence.push_str(&format!(" memory_region_name={region}"));
    }
    finding(
        rule,
        entry.verdict,
        format!("{op} op `{}` {}", node.name, entry.reason),
        evidence,
    )
}

/// Follows an input through `Identity` ops to a `Const` node, if it is one.
fn resolve_const<'n, 'a>(
    input: &[u8],
    scope: &HashMap<&str, &'n Node<'a>>,
) -> Option<&'n Node<'a>> {
    let mut name = input_node(input);
    for _ in 0..MAX_IDENTITY_HOPS {
        let node = scope.get(std::str::from_utf8(name).ok()?)?;
        match node.op.as_str() {
            "Const" => return Some(node),
            "Identity" => name = input_node(node.inputs.first()?),
            _ => return None,
        }
    }
    None
}

/// Scans one `saved_model.pb` blob.
pub fn scan_pb(cx: &mut Ctx, data: &[u8]) {
    if let Err(e) = walk_saved_model(cx, data) {
        cx.inconclusive(
            &rules::UNPARSEABLE,
            Some(e.offset),
            format!("SavedModel is not valid protobuf: {}", e.reason),
        );
    }
}

fn walk_saved_model(cx: &mut Ctx, data: &[u8]) -> Result<(), protobuf::Error> {
    let mut graphs = 0usize;
    for f in Message::new(data).fields() {
        let f = f?;
        let (2, Some(meta)) = (f.number, f.message()) else {
            continue;
        };
        for g in meta.fields() {
            let g = g?;
            if let (2, Some(graph)) = (g.number, g.message()) {
                graphs += 1;
                if !walk_graph(cx, graph)? {
                    return Ok(());
                }
            }
        }
    }
    if graphs == 0 {
        cx.inconclusive(
            &rules::UNPARSEABLE,
            Some(0),
            "SavedModel holds no graph: nothing it would run could be inspected",
        );
    }
    Ok(())
}

/// Walks a GraphDef: its nodes, then each library function as its own
/// scope. Returns false when the time budget ran out.
fn walk_graph(cx: &mut Ctx, graph: Message) -> Result<bool, protobuf::Error> {
    let mut nodes = Vec::new();
    let mut library = Vec::new();
    for f in graph.fields() {
        let f = f?;
        match (f.number, f.message()) {
            (1, Some(n)) => nodes.push(n),
            (2, Some(lib)) => library.push(lib),
            _ => {}
        }
    }
    if !check_messages(cx, &nodes)? {
        return Ok(false);
    }
    for lib in library {
        for f in lib.fields() {
            let f = f?;
            let (1, Some(function)) = (f.number, f.message()) else {
                continue;
            };
            let mut body = Vec::new();
            for g in function.fields() {
                let g = g?;
                if let (3, Some(n)) = (g.number, g.message()) {
                    body.push(n);
                }
            }
            if !check_messages(cx, &body)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

fn check_messages(cx: &mut Ctx, messages: &[Message]) -> Result<bool, protobuf::Error> {
    if !cx.in_time() {
        return Ok(false);
    }
    let max = cx.limits().max_array_len;
    if messages.len() as u64 > max {
        let at = messages.first().map(Message::offset);
        cx.inconclusive(
            &rules::LIMIT_EXCEEDED,
            at,
            format!("graph has more than {max} nodes"),
        );
        return Ok(false);
    }
    let nodes = messages
        .iter()
        .map(|m| Node::parse(*m))
        .collect::<Result<Vec<_>, _>>()?;
    for f in check_scope(&nodes) {
        cx.report_as(
            f.rule,
            f.verdict,
            Some(f.offset),
            f.message,
            Some(f.evidence),
        );
    }
    Ok(true)
}

/// `keras_metadata.pb` (a `SavedMetadata`): each saved object's metadata is
/// the JSON config of a Keras layer or model. Model-level configs hold every
/// layer, so they are analysed when present; otherwise each object's is.
fn scan_keras_metadata(cx: &mut Ctx, data: &[u8]) -> Result<(), protobuf::Error> {
    const MODEL_IDS: [&[u8]; 3] = [
        b"_tf_keras_model",
        b"_tf_keras_network",
        b"_tf_keras_sequential",
    ];
    let mut models = Vec::new();
    let mut others = Vec::new();
    for f in Message::new(data).fields() {
        let f = f?;
        let (1, Some(obj)) = (f.number, f.message()) else {
            continue;
        };
        let (mut identifier, mut metadata) = (None, None);
        for g in obj.fields() {
            let g = g?;
            match g.number {
                3 => identifier = g.bytes(),
                4 => metadata = g.bytes(),
                _ => {}
            }
        }
        let Some(json) = metadata.filter(|m| !m.is_empty()) else {
            continue;
        };
        if identifier.is_some_and(|id| MODEL_IDS.contains(&id)) {
            models.push(json);
        } else {
            others.push(json);
        }
    }
    for json in if models.is_empty() { others } else { models } {
        if !cx.in_time() {
            break;
        }
        super::keras::scan_config(cx, json);
    }
    Ok(())
}

/// Scans a SavedModel directory as one model; returns the bytes it covers.
pub fn scan_dir(cx: &mut Ctx, dir: &Path) -> std::io::Result<u64> {
    let mut files = Vec::new();
    collect_files(cx, dir, "", 0, &mut files)?;
    let mut total = 0u64;
    let has_graph = files
        .iter()
        .any(|(rel, _)| rel == "saved_model.pb" || rel == "saved_model.pbtxt");
    if !has_graph {
        cx.inconclusive(
            &rules::UNPARSEABLE,
            None,
            "directory has no saved_model.pb: not a SavedModel",
        );
    }
    for (rel, size) in files {
        total = total.saturating_add(size);
        if !cx.in_time() {
            break;
        }
        // Variable shards are tensor bytes and the fingerprint is hashes:
        // neither can hold anything a loader executes.
        if rel.starts_with("variables/variables.data-")
            || rel == "variables/variables.index"
            || rel == "fingerprint.pb"
        {
            continue;
        }
        let path = dir.join(&rel);
        let map = match map_file(&path) {
            Ok(m) => m,
            Err(e) => {
                cx.inconclusive(
                    &rules::UNPARSEABLE,
                    None,
                    format!("cannot read `{rel}`: {e}"),
                );
                continue;
            }
        };
        let data: &[u8] = map.as_deref().unwrap_or(&[]);
        match rel.as_str() {
            "saved_model.pb" => cx.scan_member("saved_model.pb", data),
            "saved_model.pbtxt" => scan_pbtxt(cx, data),
            "keras_metadata.pb" => {
                if let Err(e) = scan_keras_metadata(cx, data) {
                    cx.inconclusive(
                        &rules::UNPARSEABLE,
                        Some(e.offset),
                        format!("keras_metadata.pb is not valid protobuf: {}", e.reason),
                    );
                }
            }
            _ => cx.scan_member(&rel, data),
        }
    }
    Ok(total)
}

/// Text-format SavedModels (`saved_model.pbtxt`, loaded when no `.pb` is
/// present) are not parsed as protobuf text; their `op: "…"` lines are
/// checked against the op table, which is all the name-based checks need.
/// Path and attribute checks need the binary form, so the scan says so.
fn scan_pbtxt(cx: &mut Ctx, data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut offset = 0u64;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("op: \"")
            && let Some(op) = rest.strip_suffix('"')
            && let Some(entry) = lookup_op(op).filter(|e| e.class != OpClass::Path)
        {
            let rule = match entry.class {
                OpClass::Python => &rules::TF_PYTHON_OP,
                OpClass::Network => &rules::TF_NETWORK_OP,
                _ => &rules::TF_FILE_OP,
            };
            cx.report_as(
                rule,
                entry.verdict,
                Some(offset),
                format!("{op} op {}", entry.reason),
                Some(op.to_string()),
            );
        }
        offset += line.len() as u64;
    }
    cx.inconclusive(
        &rules::UNPARSEABLE,
        None,
        "text-format saved_model.pbtxt: op names were checked, attributes and constant paths were not",
    );
}

/// Lists regular files below `dir` (relative, `/`-separated), bounded by the
/// archive member and nesting limits. Symbolic links to files are followed
/// (a Hugging Face snapshot is made of them); links to directories are not.
fn collect_files(
    cx: &mut Ctx,
    dir: &Path,
    prefix: &str,
    depth: u32,
    out: &mut Vec<(String, u64)>,
) -> std::io::Result<()> {
    if depth > cx.limits().max_nesting_depth {
        let max = cx.limits().max_nesting_depth;
        cx.inconclusive(
            &rules::LIMIT_EXCEEDED,
            None,
            format!("SavedModel directories nested deeper than {max} levels"),
        );
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if out.len() as u64 >= cx.limits().max_archive_members {
            let max = cx.limits().max_archive_members;
            cx.inconclusive(
                &rules::LIMIT_EXCEEDED,
                None,
                format!("SavedModel directory has more than {max} files"),
            );
            return Ok(());
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            collect_files(cx, &entry.path(), &rel, depth + 1, out)?;
        } else if let Ok(meta) = std::fs::metadata(entry.path())
            && meta.is_file()
        {
            out.push((rel, meta.len()));
        }
    }
    Ok(())
}

fn map_file(path: &Path) -> std::io::Result<Option<memmap2::Mmap>> {
    let file = std::fs::File::open(path)?;
    if file.metadata()?.len() == 0 {
        return Ok(None);
    }
    // SAFETY: read-only private map, as in `Scanner::scan_file`: only files
    // the caller scans after they are final (hook blobs, renamed downloads).
    Ok(Some(unsafe { memmap2::Mmap::map(&file) }?))
}

#[cfg(test)]
mod tests {
    use super::super::protobuf::enc::*;
    use super::*;
    use crate::Scanner;

    fn attr(name: &str, value: Vec<u8>) -> Vec<u8> {
        msg(5, &[bytes(1, name.as_bytes()), value])
    }

    fn node(name: &str, op: &str, inputs: &[&str], attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut n = [bytes(1, name.as_bytes()), bytes(2, op.as_bytes())].concat();
        for i in inputs {
            n.extend(bytes(3, i.as_bytes()));
        }
        n.extend(attrs.concat());
        msg(1, &[n])
    }

    fn const_string(name: &str, s: &str) -> Vec<u8> {
        let tensor = msg(8, &[int(1, 7), bytes(9, s.as_bytes())]);
        node(name, "Const", &[], &[attr("value", msg(2, &[tensor]))])
    }

    /// SavedModel { meta_graphs { graph_def { nodes…, library { function { node_def… } } } } }
    fn saved_model(graph_nodes: &[Vec<u8>], function_nodes: &[Vec<u8>]) -> Vec<u8> {
        // Function bodies use field 3 for node_def; re-tag the field-1 nodes.
        let body: Vec<u8> = function_nodes
            .iter()
            .flat_map(|n| [&[0x1a][..], &n[1..]].concat())
            .collect();
        let function = msg(1, &[msg(1, &[bytes(1, b"f")]), body]);
        let graph = msg(2, &[graph_nodes.concat(), msg(2, &[function])]);
        [int(1, 1), msg(2, &[graph])].concat()
    }

    fn findings(data: &[u8]) -> Vec<(&'static str, Verdict)> {
        let r = Scanner::default().scan_bytes("saved_model.pb", data);
        r.findings.iter().map(|f| (f.rule.id, f.verdict)).collect()
    }

    #[test]
    fn table_is_well_formed() {
        let rows = crate::tables::TF_OPS.rows().count();
        assert_eq!(
            rows,
            TF_OPS.len(),
            "a row of tf_ops.tsv has a bad class or verdict"
        );
        assert!(lookup_op("ReadFile").is_some() && lookup_op("MatMul").is_none());
    }

    #[test]
    fn dangerous_ops_in_graph_and_functions() {
        let m = saved_model(
            &[node("r", "ReadFile", &["p"], &[])],
            &[node("w", "WriteFile", &["a", "b"], &[])],
        );
        assert_eq!(
            findings(&m),
            vec![("TF002", Verdict::Malicious), ("TF002", Verdict::Malicious)]
        );
        let m = saved_model(&[], &[node("py", "EagerPyFunc", &[], &[])]);
        assert_eq!(findings(&m), vec![("TF001", Verdict::Malicious)]);
    }

    #[test]
    fn print_to_file_but_not_to_stderr() {
        let to_file = attr("output_stream", msg(2, &[bytes(2, b"file:///tmp/x")]));
        let to_err = attr("output_stream", msg(2, &[bytes(2, b"stderr")]));
        assert_eq!(
            findings(&saved_model(&[], &[node("p", "PrintV2", &[], &[to_file])])),
            vec![("TF004", Verdict::Malicious)]
        );
        assert!(findings(&saved_model(&[], &[node("p", "PrintV2", &[], &[to_err])])).is_empty());
    }

    #[test]
    fn saver_ops_only_with_escaping_constant_paths() {
        let fed = saved_model(
            &[],
            &[
                node("prefix", "Identity", &["saver_filename"], &[]),
                node("save", "SaveV2", &["prefix:output:0", "names"], &[]),
            ],
        );
        assert!(findings(&fed).is_empty());
        let names = saved_model(
            &[],
            &[
                const_string("names", "layer/.ATTRIBUTES/VARIABLE_VALUE"),
                node("save", "SaveV2", &["saver_filename", "names:output:0"], &[]),
            ],
        );
        assert!(findings(&names).is_empty());
        let baked = saved_model(
            &[
                const_string("c", "../../home/u/.bashrc"),
                node("id", "Identity", &["c:0"], &[]),
            ],
            &[],
        );
        let baked = [
            baked,
            saved_model(&[node("save", "SaveV2", &["id"], &[])], &[]),
        ]
        .concat();
        // Two meta graphs: the constant is in the first, the saver in the
        // second, so names must not resolve across graphs.
        assert!(findings(&baked).is_empty());
        let same = saved_model(
            &[
                const_string("c", "/etc/cron.d/x"),
                node("id", "Identity", &["c:0"], &[]),
                node("save", "SaveV2", &["id"], &[]),
            ],
            &[],
        );
        assert_eq!(findings(&same), vec![("TF005", Verdict::Malicious)]);
    }

    #[test]
    fn broken_and_empty_input() {
        assert!(findings(b"\x12\x05ab").iter().any(|f| f.0 == "GEN001"));
        assert!(findings(&int(1, 1)).iter().any(|f| f.0 == "GEN001"));
    }

    #[test]
    fn directory_scan_covers_files_and_skips_shards() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("saved_model.pb"),
            saved_model(&[node("r", "ReadFile", &[], &[])], &[]),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("variables")).unwrap();
        std::fs::write(
            dir.path().join("variables/variables.data-00000-of-00001"),
            b"\x80\x04junk",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("assets")).unwrap();
        std::fs::write(dir.path().join("assets/vocab.txt"), b"a\nb\n").unwrap();
        let r = Scanner::default().scan_model_dir(dir.path(), "m").unwrap();
        let ids: Vec<_> = r.findings.iter().map(|f| f.rule.id).collect();
        assert_eq!(ids, vec!["TF002"]);
        assert_eq!(
            r.findings[0].location.members,
            vec!["saved_model.pb".to_string()]
        );
        assert!(r.size > 0);
    }

    #[test]
    fn pbtxt_op_lines_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("saved_model.pbtxt"),
            "node {\n  name: \"r\"\n  op: \"ReadFile\"\n}\n",
        )
        .unwrap();
        let r = Scanner::default().scan_model_dir(dir.path(), "m").unwrap();
        assert!(r.findings.iter().any(|f| f.rule.id == "TF002"));
    }
}
