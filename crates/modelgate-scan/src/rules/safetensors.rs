//! Rules of the safetensors header parser. safetensors cannot run code; what
//! a hostile file can do is lie in its header to attack the loader's memory
//! safety (out-of-bounds reads, aliasing, huge allocations) or to show a
//! scanner something other than what a loader sees.

use super::Rule;
use crate::finding::Verdict;

const RESAVE: &str = "Do not load this file. Download it again from the original publisher, or \
    re-save the tensors with `safetensors.torch.save_file` from a trusted copy.";

const SPEC: &str = "https://github.com/huggingface/safetensors#format";

/// SFT001 (malicious): the safetensors header length points past the end of the file or is absurdly
/// large.
pub static SFT_HEADER_LENGTH: Rule = Rule {
    id: "SFT001",
    name: "safetensors-bad-header-length",
    verdict: Verdict::Malicious,
    summary: "The safetensors header length points past the end of the file or is absurdly large",
    explanation: "The first 8 bytes give the JSON header's length and loaders allocate and read \
        that many bytes. A length beyond the file, or beyond the 100 MB the reference \
        implementation accepts, exists to exhaust memory or make a loader read out of bounds; \
        real headers are a few hundred kilobytes.",
    remediation: RESAVE,
    references: &[
        SPEC,
        "https://github.com/huggingface/safetensors/blob/main/safetensors/src/tensor.rs",
    ],
};

/// SFT002 (suspicious): the safetensors header is not valid JSON or does not follow the schema.
pub static SFT_INVALID_HEADER: Rule = Rule {
    id: "SFT002",
    name: "safetensors-invalid-header",
    verdict: Verdict::Suspicious,
    summary: "The safetensors header is not valid JSON or does not follow the schema",
    explanation: "The header must be a UTF-8 JSON object mapping tensor names to \
        `{dtype, shape, data_offsets}` plus an optional `__metadata__` map. Anything else is \
        rejected by the reference loader but may be accepted, differently, by others: the file \
        cannot be shown to be what it claims.",
    remediation: RESAVE,
    references: &[SPEC],
};

/// SFT003 (suspicious): a key occurs twice in the safetensors JSON header.
pub static SFT_DUPLICATE_KEY: Rule = Rule {
    id: "SFT003",
    name: "safetensors-duplicate-key",
    verdict: Verdict::Suspicious,
    summary: "A key occurs twice in the safetensors JSON header",
    explanation: "JSON parsers disagree on duplicate keys: most keep the last, some the first, \
        some fail. A scanner and a loader can thus see different tensors or metadata in the same \
        file. No writer produces duplicates.",
    remediation: RESAVE,
    references: &[
        SPEC,
        "https://bishopfox.com/blog/json-interoperability-vulnerabilities",
    ],
};

/// SFT004 (suspicious): a tensor has a dtype the safetensors format does not define.
pub static SFT_UNKNOWN_DTYPE: Rule = Rule {
    id: "SFT004",
    name: "safetensors-unknown-dtype",
    verdict: Verdict::Suspicious,
    summary: "A tensor has a dtype the safetensors format does not define",
    explanation: "Without a known element size the tensor's byte length cannot be checked \
        against its shape. The reference loader rejects unknown dtypes.",
    remediation: RESAVE,
    references: &[SPEC],
};

/// SFT005 (malicious): a tensor's data_offsets lie outside the data section.
pub static SFT_OFFSETS_OUT_OF_RANGE: Rule = Rule {
    id: "SFT005",
    name: "safetensors-offsets-out-of-range",
    verdict: Verdict::Malicious,
    summary: "A tensor's data_offsets lie outside the data section",
    explanation: "`data_offsets` are `[begin, end)` relative to the end of the header. An end \
        past the end of the file, or a begin after the end, makes a loader that trusts them \
        read outside its buffer or mapping (out-of-bounds read, crash, information leak).",
    remediation: RESAVE,
    references: &[SPEC],
};

/// SFT006 (malicious): two tensors share bytes of the data section.
pub static SFT_OVERLAP: Rule = Rule {
    id: "SFT006",
    name: "safetensors-overlapping-tensors",
    verdict: Verdict::Malicious,
    summary: "Two tensors share bytes of the data section",
    explanation: "Overlapping `data_offsets` alias one tensor's storage into another. The \
        reference loader rejects them; loaders that do not may hand out writable views that \
        corrupt each other, and differential parsing hides weights from review.",
    remediation: RESAVE,
    references: &[SPEC],
};

/// SFT007 (suspicious): the data section has bytes that belong to no tensor.
pub static SFT_GAP: Rule = Rule {
    id: "SFT007",
    name: "safetensors-non-contiguous-data",
    verdict: Verdict::Suspicious,
    summary: "The data section has bytes that belong to no tensor",
    explanation: "Writers lay tensors out back to back from offset 0 to the end of the file. Gaps \
        between tensors or trailing bytes after the last one are never read by a tensor loader, \
        which makes them a place to smuggle a second file (a pickle, an archive) past tools \
        that only check tensors. The reference loader rejects such files.",
    remediation: RESAVE,
    references: &[SPEC],
};

/// SFT008 (malicious): a tensor's byte length does not equal its dtype size times its shape.
pub static SFT_SIZE_MISMATCH: Rule = Rule {
    id: "SFT008",
    name: "safetensors-size-mismatch",
    verdict: Verdict::Malicious,
    summary: "A tensor's byte length does not equal its dtype size times its shape",
    explanation: "Loaders build a tensor of `shape` elements over the `[begin, end)` bytes. If \
        the two disagree (or the element count overflows), a loader that trusts the shape \
        reads past the tensor's bytes, into other tensors or out of the buffer.",
    remediation: RESAVE,
    references: &[SPEC],
};

/// SFT009 (suspicious): `__metadata__` is not a map of strings to strings.
pub static SFT_METADATA_TYPE: Rule = Rule {
    id: "SFT009",
    name: "safetensors-non-string-metadata",
    verdict: Verdict::Suspicious,
    summary: "`__metadata__` is not a map of strings to strings",
    explanation: "The format allows only string values in `__metadata__`. Nested objects, \
        arrays or numbers are rejected by the reference loader and exist to confuse other \
        tools that interpret the metadata (format markers, embedded configs).",
    remediation: RESAVE,
    references: &[SPEC],
};

pub(super) static RULES: &[&Rule] = &[
    &SFT_HEADER_LENGTH,
    &SFT_INVALID_HEADER,
    &SFT_DUPLICATE_KEY,
    &SFT_UNKNOWN_DTYPE,
    &SFT_OFFSETS_OUT_OF_RANGE,
    &SFT_OVERLAP,
    &SFT_GAP,
    &SFT_SIZE_MISMATCH,
    &SFT_METADATA_TYPE,
];
