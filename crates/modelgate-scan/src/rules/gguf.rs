//! Rules of the GGUF parser (llama.cpp model files) and of the chat-template
//! analysis that runs on the Jinja templates such files carry.

use super::Rule;
use crate::finding::Verdict;

const REEXPORT: &str = "Do not load this file. Download the model again from its original \
    publisher, or convert the original safetensors weights yourself with llama.cpp's \
    convert_hf_to_gguf.py.";

const TEMPLATE_FIX: &str = "Do not load this model with a runtime that renders its chat template \
    (llama-cpp-python, transformers, text-generation-webui). Replace \
    `tokenizer.chat_template` with the template published with the original model \
    (tokenizer_config.json), e.g. with gguf-py's gguf_new_metadata.py --chat-template.";

/// GGUF001 (malicious): the GGUF header declares counts, lengths or shapes that cannot be real.
pub static GGUF_IMPOSSIBLE_HEADER: Rule = Rule {
    id: "GGUF001",
    name: "gguf-impossible-header",
    verdict: Verdict::Malicious,
    summary: "The GGUF header declares counts, lengths or shapes that cannot be real",
    explanation: "GGUF loaders trust the counts and lengths in the header to size allocations \
        and reads. A tensor or key count, string length or array length far beyond what the file \
        holds, a metadata type that does not exist, more than four tensor dimensions, dimension \
        products that overflow 64 bits or an invalid alignment exist to make a loader allocate \
        without bound, read out of bounds or overflow its size arithmetic (the llama.cpp GGUF \
        parser had several such heap overflows).",
    remediation: REEXPORT,
    references: &[
        "https://github.com/ggml-org/ggml/blob/master/docs/gguf.md",
        "CVE-2024-25664",
        "CVE-2024-21836",
        "https://www.databricks.com/blog/ggml-gguf-file-format-vulnerabilities",
    ],
};

/// GGUF002 (malicious): a GGUF tensor's data lies outside the file or overlaps another tensor.
pub static GGUF_TENSOR_OUT_OF_BOUNDS: Rule = Rule {
    id: "GGUF002",
    name: "gguf-tensor-out-of-bounds",
    verdict: Verdict::Malicious,
    summary: "A GGUF tensor's data lies outside the file or overlaps another tensor",
    explanation: "Each tensor info gives an offset into the data section and, through its type \
        and shape, a byte size. Data that extends past the end of the file (with an offset that \
        does not follow the tensor layout), offsets whose sum overflows, or tensors that share \
        bytes make a memory-mapping loader read outside the mapping or alias weights.",
    remediation: REEXPORT,
    references: &[
        "https://github.com/ggml-org/ggml/blob/master/docs/gguf.md",
        "CVE-2024-25664",
    ],
};

/// GGUF003 (suspicious): a GGUF metadata key or tensor name occurs twice.
pub static GGUF_DUPLICATE_NAME: Rule = Rule {
    id: "GGUF003",
    name: "gguf-duplicate-name",
    verdict: Verdict::Suspicious,
    summary: "A GGUF metadata key or tensor name occurs twice",
    explanation: "Loaders disagree on which of two equal keys wins (the first, the last, or an \
        error), so a file can show one chat template or tensor to a scanner and another to the \
        runtime. No converter writes duplicates.",
    remediation: REEXPORT,
    references: &["https://github.com/ggml-org/ggml/blob/master/docs/gguf.md"],
};

/// GGUF004 (suspicious): gGUF tensor data is misaligned or leaves gaps between tensors.
pub static GGUF_TENSOR_LAYOUT: Rule = Rule {
    id: "GGUF004",
    name: "gguf-irregular-tensor-layout",
    verdict: Verdict::Suspicious,
    summary: "GGUF tensor data is misaligned or leaves gaps between tensors",
    explanation: "Writers place tensors back to back, each padded to `general.alignment`. \
        Misaligned offsets are rejected by llama.cpp and gaps or trailing bytes are space a \
        tensor-only reader never looks at, a place to hide a second payload.",
    remediation: REEXPORT,
    references: &["https://github.com/ggml-org/ggml/blob/master/docs/gguf.md"],
};

/// GGUF005 (suspicious): a GGUF tensor has a ggml type this scanner does not know.
pub static GGUF_UNKNOWN_TENSOR_TYPE: Rule = Rule {
    id: "GGUF005",
    name: "gguf-unknown-tensor-type",
    verdict: Verdict::Suspicious,
    summary: "A GGUF tensor has a ggml type this scanner does not know",
    explanation: "Without the type's block size the tensor's byte size, and so whether its data \
        stays inside the file, cannot be checked. The type may be newer than the scanner, or \
        removed from ggml (Q4_2, Q4_0_4_4, ...), or invented.",
    remediation: "Check that the file loads with a current llama.cpp; if so, update modelgate. \
        Otherwise re-download or re-convert the model.",
    references: &["https://github.com/ggml-org/ggml/blob/master/include/ggml.h"],
};

/// GGUF010 (malicious): the chat template reaches Python internals to run code (Jinja SSTI).
pub static TEMPLATE_CODE_EXECUTION: Rule = Rule {
    id: "GGUF010",
    name: "chat-template-code-execution",
    verdict: Verdict::Malicious,
    summary: "The chat template reaches Python internals to run code (Jinja SSTI)",
    explanation: "Chat templates are Jinja2 programs rendered by the runtime on every \
        conversation. llama-cpp-python before 0.2.72 rendered them in a non-sandboxed \
        environment, so `cycler.__init__.__globals__.os.popen(...)`, \
        `''.__class__.__mro__[1].__subclasses__()` and similar chains run shell commands when \
        the model is used (CVE-2024-34359, \"Llama Drama\"). Escapes need not write the dunder: \
        the name can be built at render time (`~`, `format`, `%c`, `join`, `replace`, slicing, \
        characters cut from `lipsum|string`) and carried through `set`, loops, macro arguments \
        or namespaces into a subscript, `|attr` or an attribute-reading filter \
        (`map(attribute=...)`, `selectattr`, `groupby`, `sort`, `sum`, `unique`). The scanner \
        follows that data flow without rendering; a lookup whose name is, or can become, a \
        dunder, internals of Jinja's global helpers and os/eval/exec/import calls have no \
        place in a template that only formats messages.",
    remediation: TEMPLATE_FIX,
    references: &[
        "CVE-2024-34359",
        "GHSA-56xg-wfcc-g829",
        "https://checkmarx.com/blog/llama-drama-critical-vulnerability-cve-2024-34359-threatens-your-synergy-with-ai-models/",
    ],
};

/// GGUF011 (suspicious): the chat template builds attribute names at run time or loads other
/// templates.
pub static TEMPLATE_DYNAMIC_ACCESS: Rule = Rule {
    id: "GGUF011",
    name: "chat-template-dynamic-access",
    verdict: Verdict::Suspicious,
    summary: "The chat template builds attribute names at run time or loads other templates",
    explanation: "`|attr(name)` or attribute filters with a computed name, lookups on Jinja's \
        engine objects by a computed name, dunder fragments glued to computed strings, private \
        `_attributes` and `{% include %}`/`{% import %}` hide which object members a template \
        touches; they are the building blocks of sandbox escapes that avoid literal \
        `__class__` strings. Here the name comes from data the template does not choose, so it \
        cannot be shown to reach a dunder, but real chat templates only read message fields \
        by constant names.",
    remediation: TEMPLATE_FIX,
    references: &[
        "CVE-2024-34359",
        "https://jinja.palletsprojects.com/en/stable/sandbox/",
    ],
};

/// GGUF012 (suspicious): a chat template could not be parsed, so it cannot be shown safe.
pub static TEMPLATE_UNPARSEABLE: Rule = Rule {
    id: "GGUF012",
    name: "chat-template-unparseable",
    verdict: Verdict::Suspicious,
    summary: "A chat template could not be parsed, so it cannot be shown safe",
    explanation: "The template is not valid Jinja to the scanner's parser (or not text, too \
        large or deeply nested, or its data flow did not settle). Jinja2 accepts some syntax \
        the parser does not (a call on a filter's result, tuple subscripts), so the runtime \
        may still render it, and whatever it contains was not inspected.",
    remediation: TEMPLATE_FIX,
    references: &["CVE-2024-34359"],
};

pub(super) static RULES: &[&Rule] = &[
    &GGUF_IMPOSSIBLE_HEADER,
    &GGUF_TENSOR_OUT_OF_BOUNDS,
    &GGUF_DUPLICATE_NAME,
    &GGUF_TENSOR_LAYOUT,
    &GGUF_UNKNOWN_TENSOR_TYPE,
    &TEMPLATE_CODE_EXECUTION,
    &TEMPLATE_DYNAMIC_ACCESS,
    &TEMPLATE_UNPARSEABLE,
];
