//! TFLite models: a FlatBuffer (`TFL3` identifier at bytes 4..8), read with
//! a bounds-checked table reader written for the few fields needed.
//!
//! TFLite builtin operators are pure tensor kernels. What can reach the host
//! is an operator outside the builtin set:
//!
//! * **Flex ops** (`custom_code` `Flex<TfOp>`, "select TF ops"): the Flex
//!   delegate runs the TensorFlow kernel described by the `NodeDef` stored in
//!   the operator's `custom_options` (a FlexBuffer vector of the op name and
//!   the serialized `NodeDef`). The op is judged from that `NodeDef`, the one
//!   the delegate executes, with the SavedModel op table and checks
//!   ([`super::savedmodel`]); the `custom_code` name is judged as well, so a
//!   benign-looking name cannot hide a `ReadFile` and vice versa.
//! * **Other custom ops** need a kernel the application registers, often
//!   from a native library shipped with the model: suspicious, unless the
//!   TFLite runtime ships it (`data/tflite_custom_ops.tsv`); malicious when
//!   the name speaks of commands, files or the network.
//!
//! Invariants: every offset read from the file is checked against the buffer
//! before use (vtable, table, vector and string bounds, with checked
//! arithmetic); vector lengths are capped by `Limits::max_array_len`; tensor
//! buffers are never touched. A model whose tables cannot be read is
//! unparseable (GEN001), never clean.
//!
//! Schema: tensorflow/compiler/mlir/lite/schema/schema.fbs; FlexBuffers:
//! <https://flatbuffers.dev/flexbuffers/>.

use std::collections::HashSet;
use std::sync::LazyLock;

use super::onnx::dangerous_word;
use super::protobuf::Message;
use super::savedmodel::{Node, check_scope, lookup_op};
use crate::rules;
use crate::{Ctx, Verdict};

/// `BuiltinOperator.CUSTOM`.
const CUSTOM: i32 = 32;

/// Custom operators whose kernels ship with TFLite or its standard delegates.
static RUNTIME_CUSTOM_OPS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    crate::tables::TFLITE_CUSTOM_OPS
        .rows()
        .filter_map(|c| c.first().copied())
        .collect()
});

/// A failed read: where and why.
struct Bad(u64, &'static str);

type R<T> = Result<T, Bad>;

/// Bounds-checked FlatBuffer access.
struct Fb<'a> {
    data: &'a [u8],
    max_len: u64,
}

#[derive(Clone, Copy)]
struct Table {
    pos: usize,
    vtable: usize,
    vtable_len: usize,
}

impl<'a> Fb<'a> {
    fn bytes(&self, pos: usize, n: usize) -> R<&'a [u8]> {
        pos.checked_add(n)
            .and_then(|end| self.data.get(pos..end))
            .ok_or(Bad(pos as u64, "offset points outside the file"))
    }

    fn array<const N: usize>(&self, pos: usize) -> R<[u8; N]> {
        self.bytes(pos, N)?
            .first_chunk()
            .copied()
            .ok_or(Bad(pos as u64, "offset points outside the file"))
    }

    fn u16(&self, pos: usize) -> R<u16> {
        Ok(u16::from_le_bytes(self.array(pos)?))
    }

    fn u32(&self, pos: usize) -> R<u32> {
        Ok(u32::from_le_bytes(self.array(pos)?))
    }

    /// Follows a `uoffset_t` stored at `pos`.
    fn deref(&self, pos: usize) -> R<usize> {
        let off = self.u32(pos)? as usize;
        pos.checked_add(off)
            .filter(|&p| p < self.data.len())
            .ok_or(Bad(pos as u64, "offset points outside the file"))
    }

    fn table(&self, pos: usize) -> R<Table> {
        let soff = self.u32(pos)? as i32;
        let vtable = (pos as i64)
            .checked_sub(i64::from(soff))
            .and_then(|v| usize::try_from(v).ok())
            .ok_or(Bad(pos as u64, "vtable offset points outside the file"))?;
        let vtable_len = self.u16(vtable)? as usize;
        if vtable_len < 4 || !vtable_len.is_multiple_of(2) {
            return Err(Bad(vtable as u64, "malformed vtable"));
        }
        self.bytes(vtable, vtable_len)?;
        let object_len = self.u16(vtable + 2)? as usize;
        self.bytes(pos, object_len.max(4))?;
        Ok(Table {
            pos,
            vtable,
            vtable_len,
        })
    }

    /// Absolute position of field `idx` of a table, if present.
    fn field(&self, t: Table, idx: usize) -> R<Option<usize>> {
        let slot = 4 + 2 * idx;
        if slot + 2 > t.vtable_len {
            return Ok(None);
        }
        let off = self.u16(t.vtable + slot)? as usize;
        Ok(if off == 0 { None } else { Some(t.pos + off) })
    }

    fn field_i32(&self, t: Table, idx: usize, default: i32) -> R<i32> {
        match self.field(t, idx)? {
            Some(p) => Ok(self.u32(p)? as i32),
            None => Ok(default),
        }
    }

    fn field_i8(&self, t: Table, idx: usize) -> R<i32> {
        match self.field(t, idx)? {
            Some(p) => Ok(i32::from(i8::from_le_bytes(self.array(p)?))),
            None => Ok(0),
        }
    }

    fn field_u32(&self, t: Table, idx: usize) -> R<u32> {
        match self.field(t, idx)? {
            Some(p) => self.u32(p),
            None => Ok(0),
        }
    }

    /// A vector field: position of its first element and its length.
    fn vector(&self, t: Table, idx: usize, elem: usize) -> R<Option<(usize, usize)>> {
        let Some(p) = self.field(t, idx)? else {
            return Ok(None);
        };
        let v = self.deref(p)?;
        let len = self.u32(v)? as usize;
        if len as u64 > self.max_len {
            return Err(Bad(v as u64, "vector longer than the array limit"));
        }
        let start = v + 4;
        self.bytes(
            start,
            len.checked_mul(elem)
                .ok_or(Bad(v as u64, "vector size overflows"))?,
        )?;
        Ok(Some((start, len)))
    }

    fn tables(&self, t: Table, idx: usize) -> R<Vec<Table>> {
        let Some((start, len)) = self.vector(t, idx, 4)? else {
            return Ok(Vec::new());
        };
        (0..len)
            .map(|i| self.deref(start + 4 * i).and_then(|p| self.table(p)))
            .collect()
    }

    fn string(&self, t: Table, idx: usize) -> R<Option<&'a [u8]>> {
        self.vector(t, idx, 1)?
            .map(|(start, len)| self.bytes(start, len))
            .transpose()
    }
}

/// One operator's `custom_options` and where they sit in the file.
#[derive(Clone, Copy)]
struct Options<'a> {
    op_pos: u64,
    start: usize,
    bytes: &'a [u8],
}

struct OpCode {
    builtin: i32,
    custom: Option<String>,
    offset: u64,
}

/// Scans a TFLite flatbuffer for operators outside the builtin set.
pub fn scan(cx: &mut Ctx, data: &[u8]) {
    let fb = Fb {
        data,
        max_len: cx.limits().max_array_len,
    };
    if let Err(Bad(at, why)) = walk(cx, &fb) {
        cx.inconclusive(
            &rules::UNPARSEABLE,
            Some(at),
            format!("TFLite flatbuffer is malformed: {why}"),
        );
    }
}

fn walk(cx: &mut Ctx, fb: &Fb) -> R<()> {
    if fb.data.get(4..8) != Some(b"TFL3") {
        return Err(Bad(4, "missing TFL3 identifier"));
    }
    let model = fb.table(fb.deref(0)?)?;
    let mut codes = Vec::new();
    for t in fb.tables(model, 1)? {
        let builtin = fb.field_i8(t, 0)?.max(fb.field_i32(t, 3, 0)?);
        let custom = fb
            .string(t, 1)?
            .map(|s| String::from_utf8_lossy(s).into_owned());
        codes.push(OpCode {
            builtin,
            custom,
            offset: t.pos as u64,
        });
    }
    // Custom options of every operator that uses each op code.
    let mut options: Vec<Vec<Options>> = vec![Vec::new(); codes.len()];
    for subgraph in fb.tables(model, 2)? {
        if !cx.in_time() {
            return Ok(());
        }
        for op in fb.tables(subgraph, 3)? {
            let index = fb.field_u32(op, 0)? as usize;
            if let (Some(list), Some((start, len))) = (options.get_mut(index), fb.vector(op, 5, 1)?)
            {
                list.push(Options {
                    op_pos: op.pos as u64,
                    start,
                    bytes: fb.bytes(start, len)?,
                });
            }
        }
    }
    for (code, opts) in codes.iter().zip(&options) {
        if code.builtin != CUSTOM {
            continue;
        }
        let name = code.custom.clone().unwrap_or_default();
        if let Some(tf_op) = name.strip_prefix("Flex") {
            check_flex(cx, code, tf_op, opts);
        } else if !RUNTIME_CUSTOM_OPS.contains(name.as_str()) {
            check_custom(cx, code, &name);
        }
    }
    Ok(())
}

fn check_custom(cx: &mut Ctx, code: &OpCode, name: &str) {
    let evidence = Some(format!("custom_code={name}"));
    match dangerous_word(name) {
        Some((word, why)) => cx.report_as(
            &rules::TFLITE_CUSTOM_OP,
            Verdict::Malicious,
            Some(code.offset),
            format!("custom operator `{name}` {why} (its name contains `{word}`) through an application-supplied kernel"),
            evidence,
        ),
        None => cx.report(
            &rules::TFLITE_CUSTOM_OP,
            Some(code.offset),
            format!("custom operator `{name}` needs a kernel the TFLite runtime does not ship"),
            evidence,
        ),
    }
}

/// Judges a Flex op by its name and by each `NodeDef` the delegate would
/// build it from.
fn check_flex(cx: &mut Ctx, code: &OpCode, tf_op: &str, opts: &[Options]) {
    let mut seen = HashSet::new();
    if let Some(entry) = lookup_op(tf_op).filter(|e| e.class != super::savedmodel::OpClass::Path) {
        seen.insert(tf_op.to_string());
        cx.report_as(
            &rules::TFLITE_DANGEROUS_OP,
            entry.verdict,
            Some(code.offset),
            format!(
                "Flex op `Flex{tf_op}` runs the TensorFlow {tf_op} kernel, which {}",
                entry.reason
            ),
            Some(format!("custom_code=Flex{tf_op}")),
        );
    }
    for &Options {
        op_pos,
        start,
        bytes,
    } in opts
    {
        let Some((def, def_at)) = flex_node_def(bytes) else {
            cx.inconclusive(
                &rules::UNPARSEABLE,
                Some(op_pos),
                format!("custom options of Flex op `Flex{tf_op}` are not a FlexBuffer NodeDef"),
            );
            continue;
        };
        let abs = start.saturating_add(def_at) as u64;
        let node = match Node::parse(Message::at(def, abs)) {
            Ok(n) => n,
            Err(e) => {
                cx.inconclusive(
                    &rules::UNPARSEABLE,
                    Some(op_pos),
                    format!("Flex NodeDef is not valid protobuf: {}", e.reason),
                );
                continue;
            }
        };
        if node.op != tf_op {
            cx.report(
                &rules::TFLITE_CUSTOM_OP,
                Some(op_pos),
                format!(
                    "Flex op named `Flex{tf_op}` actually carries a `{}` NodeDef",
                    node.op
                ),
                Some(format!("custom_code=Flex{tf_op} NodeDef.op={}", node.op)),
            );
        }
        for f in check_scope(std::slice::from_ref(&node)) {
            // The name check above already reported this op.
            if f.rule.id == "TF004" || seen.insert(node.op.clone()) {
                cx.report_as(
                    &rules::TFLITE_DANGEROUS_OP,
                    f.verdict,
                    Some(f.offset),
                    format!("Flex op: {}", f.message),
                    Some(f.evidence),
                );
            }
        }
    }
}

/// Reads the serialized `NodeDef` out of a Flex op's custom options: a
/// FlexBuffer whose root is a vector `[op name, NodeDef bytes]`. Returns the
/// bytes and their position inside `buf`; `None` if the buffer is not shaped
/// so (every offset is checked).
fn flex_node_def(buf: &[u8]) -> Option<(&[u8], usize)> {
    const STRING: u8 = 5;
    const VECTOR: u8 = 10;
    const BLOB: u8 = 25;
    let n = buf.len();
    let root_width = usize::from(*buf.last()?);
    let packed = *buf.get(n.checked_sub(2)?)?;
    if !matches!(root_width, 1 | 2 | 4 | 8) || packed >> 2 != VECTOR {
        return None;
    }
    let root_at = n.checked_sub(2 + root_width)?;
    let width = 1usize << (packed & 3);
    let vec = root_at.checked_sub(uint(buf, root_at, root_width)?)?;
    let len = uint(buf, vec.checked_sub(width)?, width)?;
    if len < 2 {
        return None;
    }
    let types = vec.checked_add(len.checked_mul(width)?)?;
    let elem = vec.checked_add(width)?;
    let ty = *buf.get(types.checked_add(1)?)?;
    if !matches!(ty >> 2, STRING | BLOB) {
        return None;
    }
    let size_width = 1usize << (ty & 3);
    let at = elem.checked_sub(uint(buf, elem, width)?)?;
    let size = uint(buf, at.checked_sub(size_width)?, size_width)?;
    Some((buf.get(at..at.checked_add(size)?)?, at))
}

/// A little-endian unsigned integer of `width` bytes at `pos`.
fn uint(buf: &[u8], pos: usize, width: usize) -> Option<usize> {
    let b = buf.get(pos..pos.checked_add(width)?)?;
    let v = b.iter().rev().fold(0u64, |acc, &x| acc << 8 | u64::from(x));
    usize::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scanner;

    const FLEX_WRITE: &[u8] =
        include_bytes!("../../../../tests/fixtures/rules/TFL001/bad_flex_write_file.tflite");
    const DISGUISED: &[u8] = include_bytes!(
        "../../../../tests/fixtures/rules/TFL001/bad_flex_disguised_read_file.tflite"
    );
    const GOOD_FLEX: &[u8] =
        include_bytes!("../../../../tests/fixtures/rules/TFL001/good_flex_math.tflite");

    fn findings(data: &[u8]) -> Vec<(&'static str, Verdict)> {
        let r = Scanner::default().scan_bytes("m.bin", data);
        r.findings.iter().map(|f| (f.rule.id, f.verdict)).collect()
    }

    #[test]
    fn flex_ops_are_judged_by_name_and_node_def() {
        assert_eq!(findings(FLEX_WRITE), vec![("TFL001", Verdict::Malicious)]);
        let d = findings(DISGUISED);
        assert!(d.contains(&("TFL001", Verdict::Malicious)), "{d:?}");
        assert!(findings(GOOD_FLEX).is_empty());
    }

    #[test]
    fn flexbuffer_reader_checks_bounds() {
        assert_eq!(flex_node_def(b""), None);
        assert_eq!(flex_node_def(b"\x28\x01"), None);
        assert_eq!(flex_node_def(b"\xff\x28\x01"), None);
        // [String "A", String "\x12\x01A"]
        let buf = b"\x01A\x00\x03\x12\x01A\x00\x02\x08\x06\x14\x14\x04\x28\x01";
        assert_eq!(flex_node_def(buf), Some((&b"\x12\x01A"[..], 4)));
    }

    #[test]
    fn truncated_and_corrupted_models_never_panic_and_never_pass_silently() {
        for len in 8..FLEX_WRITE.len() {
            let r = Scanner::default().scan_bytes("m.tflite", &FLEX_WRITE[..len]);
            assert!(!r.findings.is_empty(), "truncated at {len} passed clean");
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut data = DISGUISED.to_vec();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = 8 + (seed as usize) % (data.len() - 8);
                data[i] = (seed >> 32) as u8;
            }
            Scanner::default().scan_bytes("m.tflite", &data);
        }
    }
}
