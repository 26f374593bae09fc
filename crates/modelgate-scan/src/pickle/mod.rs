//! The pickle engine: plain pickles, pickles inside PyTorch archives, NumPy
//! object arrays, joblib files (with their inline array bytes), dill and
//! cloudpickle.
//!
//! [`walker`] reads a stream symbolically; this module runs it over every
//! stream in a blob (pickles can be concatenated, PyTorch's legacy format is
//! five of them followed by raw storage bytes), turns what it saw into
//! findings, and hands byte payloads given to loaders back to the scanner as
//! nested files.

pub mod globals;
pub mod opcodes;
pub mod walker;

use std::collections::HashSet;

use self::globals::{Class, GlobalLists};
use self::opcodes::is_opcode;
use self::walker::{End, Event, Stream};
use crate::limits::Limits;
use crate::{Ctx, Verdict, rules};

/// PyTorch's legacy (pre-1.6) files begin with a pickled magic number:
/// `LONG1 10 bytes 0x1950a86a20f9469cfc6c`, then STOP. Only this literal
/// form counts; a magic computed by a call is not trusted (GHSA-97f8-7cmv-76j2)
/// and such a file is scanned as generic concatenated pickles.
const LEGACY_MAGIC: &[u8] = b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";
/// After the magic: protocol version, sys_info, the data pickle, storage keys.
const LEGACY_STREAMS_AFTER_MAGIC: u32 = 4;

/// Scans every pickle stream in a blob (concatenated streams, PyTorch's
/// legacy layout) and turns what the walker saw into findings.
pub fn scan(cx: &mut Ctx, data: &[u8]) {
    let legacy = matches!(data, [opcodes::PROTO, _, rest @ ..]
        if rest.len() > LEGACY_MAGIC.len() && rest.starts_with(LEGACY_MAGIC));
    if legacy {
        cx.set_kind(crate::Kind::PytorchLegacy);
    }
    let mut remaining_legacy = LEGACY_STREAMS_AFTER_MAGIC + 1;
    let mut pos = 0;
    let mut first = true;
    while cx.in_time() {
        let stream = walker::walk_as(data, pos, cx.limits(), cx.globals(), cx.resolver());
        if stream.joblib {
            cx.set_kind(crate::Kind::Joblib);
        }
        report(cx, data, &stream);
        match &stream.end {
            End::Stop { next } => {
                pos = *next;
                if legacy {
                    remaining_legacy -= 1;
                    if remaining_legacy == 0 {
                        break; // raw storage bytes follow: never pickles
                    }
                } else if !looks_like_pickle(data.get(pos..).unwrap_or_default()) {
                    break; // trailing data that no unpickler would read
                }
            }
            End::Error { offset, reason } => {
                // A later "stream" that fails at once without doing anything
                // is trailing data, not a pickle; anything else is a break in
                // a real stream, after whatever it already did.
                if first || stream.did_something() || legacy {
                    cx.inconclusive(
                        &rules::MALFORMED_STREAM,
                        Some(*offset as u64),
                        format!("pickle stream breaks at byte {offset}: {reason}"),
                    );
                }
                break;
            }
            End::Budget { offset } => {
                report_budget(cx, &stream, *offset);
                break;
            }
        }
        first = false;
    }
}

/// A walk stopped by a budget: inconclusive, saying which one.
fn report_budget(cx: &mut Ctx, stream: &Stream, offset: usize) {
    let what = stream
        .events
        .iter()
        .find_map(|e| match e {
            Event::Budget { what, .. } => Some(what.clone()),
            _ => None,
        })
        .unwrap_or_default();
    cx.inconclusive(
        &rules::LIMIT_EXCEEDED,
        Some(offset as u64),
        format!("pickle budget exhausted: {what}"),
    );
}

/// The two record files of PyTorch's legacy tar checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyRecords {
    /// `storages`: a pickled count; per storage a pickled `(key, location,
    /// storage_type)` then an int64 element count and the raw elements;
    /// then a pickled list of views.
    Storages,
    /// `tensors`: a pickled count; per tensor a pickled `(key, storage_id,
    /// tensor_type)` then int32 ndim, 4 padding bytes, ndim sizes, ndim
    /// strides and an offset, all int64.
    Tensors,
}

/// Scans a `storages` or `tensors` member of a legacy tar checkpoint.
/// `torch.load` unpickles every record header, not only the first, so a
/// payload can sit behind the raw bytes of the first record: the raw parts
/// are skipped by their declared sizes and every header is walked.
pub fn scan_legacy_records(cx: &mut Ctx, data: &[u8], records: LegacyRecords) {
    let mut pos = 0;
    while pos < data.len() && cx.in_time() {
        let stream = walker::walk_as(data, pos, cx.limits(), cx.globals(), cx.resolver());
        report(cx, data, &stream);
        let next = match &stream.end {
            End::Stop { next } => *next,
            End::Error { offset, reason } => {
                cx.inconclusive(
                    &rules::MALFORMED_STREAM,
                    Some(*offset as u64),
                    format!("record header breaks at byte {offset}: {reason}"),
                );
                return;
            }
            End::Budget { offset } => {
                report_budget(cx, &stream, *offset);
                return;
            }
        };
        let raw = match records {
            LegacyRecords::Storages => storage_element_size(&stream).map(|size| {
                read_le(data, next, 8)
                    .and_then(|count| count.checked_mul(size))
                    .and_then(|bytes| bytes.checked_add(8))
            }),
            LegacyRecords::Tensors => imports_tensor_type(&stream).then(|| {
                read_le(data, next, 4)
                    .filter(|&ndim| ndim <= 64)
                    .map(|ndim| 8 + 16 * ndim + 8)
            }),
        };
        pos = match raw {
            // A count, a list of views: the next header follows at once.
            None => next,
            Some(Some(len)) => match usize::try_from(len).ok().and_then(|l| next.checked_add(l)) {
                Some(end) if end <= data.len() => end,
                _ => {
                    cx.inconclusive(
                        &rules::MALFORMED_STREAM,
                        Some(next as u64),
                        "a record's raw data runs past the end of the member",
                    );
                    return;
                }
            },
            Some(None) => {
                cx.inconclusive(
                    &rules::MALFORMED_STREAM,
                    Some(next as u64),
                    "a record's size prefix is missing or impossible",
                );
                return;
            }
        };
    }
}

/// The element size of the typed storage a storage record header names
/// (`torch.FloatStorage` and friends).
fn storage_element_size(stream: &Stream) -> Option<u64> {
    stream.uses.iter().find_map(|u| {
        if u.module != "torch" {
            return None;
        }
        Some(match u.name.strip_suffix("Storage")? {
            "Double" | "Long" | "ComplexFloat" => 8,
            "Float" | "Int" => 4,
            "Half" | "BFloat16" | "Short" => 2,
            "Char" | "Byte" | "Bool" => 1,
            "ComplexDouble" => 16,
            _ => return None,
        })
    })
}

fn imports_tensor_type(stream: &Stream) -> bool {
    stream
        .uses
        .iter()
        .any(|u| u.module == "torch" && u.name.ends_with("Tensor"))
}

/// A little-endian unsigned integer of `width` bytes at `at`; negative
/// values of the signed fields come out huge and fail the bounds checks.
fn read_le(data: &[u8], at: usize, width: usize) -> Option<u64> {
    let bytes = data.get(at..at.checked_add(width)?)?;
    Some(
        bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
    )
}

fn report(cx: &mut Ctx, data: &[u8], stream: &Stream) {
    let mut unknown_seen = HashSet::new();
    for u in &stream.uses {
        let qualified = u.qualified();
        let offset = Some(u.offset as u64);
        if u.module == "builtins" && u.name == "getattr" {
            if let Some(detail) = &u.getattr_bad {
                cx.report(
                    &rules::DYNAMIC_ATTRIBUTE,
                    offset,
                    "reaches an attribute through `builtins.getattr` at load time, outside the enum pattern",
                    Some(detail.clone()),
                );
            } else if !u.getattr_ok {
                cx.report(
                    &rules::DYNAMIC_ATTRIBUTE,
                    offset,
                    "imports `builtins.getattr` without using it in the enum pattern",
                    Some(qualified),
                );
            }
            continue;
        }
        match &u.class {
            Class::Safe => {}
            Class::Dangerous(reason) => {
                let message = match &u.call {
                    Some(_) => format!("calls `{qualified}` when loaded: {reason}"),
                    None => format!("imports `{qualified}`: {reason}"),
                };
                cx.report(
                    &rules::DANGEROUS_GLOBAL,
                    offset,
                    message,
                    Some(u.call.clone().unwrap_or(qualified)),
                );
            }
            Class::Profile(reason) => {
                if unknown_seen.insert(qualified.clone()) {
                    let library = u.module.split('.').next().unwrap_or_default();
                    cx.report(
                        &rules::LIBRARY_PROFILE,
                        offset,
                        format!("imports `{qualified}`: loading needs the `{library}` library ({reason})"),
                        Some(qualified),
                    );
                }
            }
            Class::Unknown => {
                if unknown_seen.insert(qualified.clone()) {
                    cx.report(
                        &rules::UNKNOWN_GLOBAL,
                        offset,
                        format!("imports `{qualified}`, which is not known to be safe: loading needs and runs that code"),
                        Some(qualified),
                    );
                }
            }
        }
    }
    for event in &stream.events {
        match event {
            Event::Unresolved { offset, detail } => cx.report(
                &rules::UNRESOLVED_GLOBAL,
                Some(*offset as u64),
                "STACK_GLOBAL imports a name that is computed at load time, hiding what runs",
                Some(detail.clone()),
            ),
            Event::Ext { offset, code } => cx.report(
                &rules::EXTENSION_REGISTRY,
                Some(*offset as u64),
                format!("imports extension code {code} from the process's copyreg registry, which the file can fill"),
                Some(format!("EXT {code}")),
            ),
            Event::Poison { offset, target } => cx.report(
                &rules::GLOBAL_ATTRIBUTE_POISONING,
                Some(*offset as u64),
                format!("BUILD overwrites attributes of the imported `{target}`, changing it for the whole process"),
                Some(target.clone()),
            ),
            Event::IndirectCall { offset, detail } => cx.report(
                &rules::INDIRECT_CALL,
                Some(*offset as u64),
                "calls an object produced at load time (a gadget chain)",
                Some(detail.clone()),
            ),
            Event::Nested { offset, start, end, via } => {
                let name = format!("<bytes passed to {via} at byte {offset}>");
                if let Some(payload) = data.get(*start..*end) {
                    cx.scan_member(&name, payload);
                }
            }
            Event::OpaquePayload { offset, detail } => cx.report(
                &rules::OPAQUE_PAYLOAD,
                Some(*offset as u64),
                "hands a byte payload computed at load time to a loader that unpickles it unscanned",
                Some(detail.clone()),
            ),
            Event::ObjectArray { offset } => cx.report_as(
                &rules::OBJECT_ARRAY,
                Verdict::Info,
                Some(*offset as u64),
                "joblib array of dtype object: its elements are a nested pickle (scanned)",
                None,
            ),
            Event::Gadget { offset, detail } => cx.report(
                &rules::GADGET_ARGUMENT,
                Some(*offset as u64),
                "an allowlisted callable is steered into calling something else",
                Some(detail.clone()),
            ),
            Event::StateHijack { offset, detail } => cx.report(
                &rules::STATE_HIJACK,
                Some(*offset as u64),
                "BUILD state rewrites what a trusted object does",
                Some(detail.clone()),
            ),
            Event::DtypeFlags { offset, detail } => cx.report(
                &rules::DTYPE_FLAGS,
                Some(*offset as u64),
                "a pickled numpy.dtype's flags disagree with its type",
                Some(detail.clone()),
            ),
            Event::Budget { .. } => {}
        }
    }
}

/// Whether a blob is a pickle. Protocol 2+ pickles announce themselves with
/// `PROTO`; protocol 0 and 1 pickles are recognised by running the walker as
/// a probe, so that text that merely starts with an opcode letter is not
/// mistaken for one.
pub fn looks_like_pickle(data: &[u8]) -> bool {
    match data {
        [opcodes::PROTO, proto, op, ..] if (2..=5).contains(proto) => is_opcode(*op),
        [first, ..] if is_opcode(*first) && *first != opcodes::STOP => probe(data),
        _ => false,
    }
}

/// Stricter than [`looks_like_pickle`], for bytes that are normally raw data
/// (tensor storages): the whole stream must parse to STOP, or import and
/// call something before breaking.
pub fn looks_like_complete_pickle(data: &[u8]) -> bool {
    probe(data)
}

/// Opcodes after which a probe accepts a stream whatever its ending.
const PROBE_CONVINCING_OPCODES: u64 = 1_000;

fn probe(data: &[u8]) -> bool {
    probe_from(data, 0)
}

/// Concatenated streams a probe follows before it stops believing.
const PROBE_MAX_STREAMS: usize = 4;

fn probe_from(data: &[u8], depth: usize) -> bool {
    let limits = Limits {
        max_pickle_opcodes: 10_000,
        ..Limits::default()
    };
    let head = data.get(..1 << 20).unwrap_or(data);
    let stream = walker::walk(head, 0, &limits, &GlobalLists::default());
    match stream.end {
        // A stream that imports nothing must also be where the data ends,
        // or be followed by another stream: text can spell a tiny pickle
        // (`GIT v1.5.2.1` is BINFLOAT, DUP, STOP) but not the rest of
        // itself.
        End::Stop { next } => {
            let rest = head.get(next..).unwrap_or_default();
            stream.opcodes >= 2
                && (stream.did_something()
                    || rest.iter().all(u8::is_ascii_whitespace)
                    || (depth < PROBE_MAX_STREAMS
                        && rest
                            .first()
                            .is_some_and(|&op| is_opcode(op) && op != opcodes::STOP)
                        && probe_from(rest, depth + 1)))
        }
        // Thousands of valid opcodes are no accident of text: a payload
        // padded past the probe's budget is still a pickle.
        _ if stream.opcodes >= PROBE_CONVINCING_OPCODES => true,
        // A broken stream is still a pickle when it imported something with
        // a plausible name and called it (a payload then a break).
        _ => stream
            .uses
            .iter()
            .any(|u| u.call.is_some() && is_dotted_identifier(&u.module)),
    }
}

fn is_dotted_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            let mut chars = part.chars();
            matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
                && chars.all(|c| c.is_alphanumeric() || c == '_')
        })
}
