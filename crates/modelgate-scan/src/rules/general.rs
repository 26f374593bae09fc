//! Rules that apply to every format: what could not be read, and disguises.

use super::Rule;
use crate::finding::Verdict;

/// GEN001 (suspicious): part of the file could not be parsed, so it cannot be shown safe.
pub static UNPARSEABLE: Rule = Rule {
    id: "GEN001",
    name: "unparseable-input",
    verdict: Verdict::Suspicious,
    summary: "Part of the file could not be parsed, so it cannot be shown safe",
    explanation: "The scanner reads a file the way its loader would. Where the bytes break the \
        format (truncated stream, invalid structure, unsupported encoding) the rest of the file \
        is unknown: a loader may still run whatever comes before the break, and parser \
        differences between scanners and loaders are a known bypass class. An unreadable file \
        is therefore never a pass.",
    remediation: "Re-export the model from its source with the framework's own save function \
        (preferably as safetensors); if the file is trusted, pin an exemption to its sha256 with \
        a reason.",
    references: &[],
};

/// GEN002 (suspicious): a resource limit was hit before the file was fully read.
pub static LIMIT_EXCEEDED: Rule = Rule {
    id: "GEN002",
    name: "resource-limit-exceeded",
    verdict: Verdict::Suspicious,
    summary: "A resource limit was hit before the file was fully read",
    explanation: "Nesting depth, decompressed size, member count, opcode and memo budgets and \
        declared lengths are capped so that a hostile file cannot exhaust memory or time. \
        Hitting a cap means the rest of the file was not inspected.",
    remediation: "If the file is legitimate and large, raise the matching limit in policy.toml \
        ([limits]); otherwise treat it as hostile.",
    references: &[],
};

/// GEN003 (suspicious): the file name claims a safe format but the content is an executable one.
pub static DISGUISED_FORMAT: Rule = Rule {
    id: "GEN003",
    name: "disguised-format",
    verdict: Verdict::Suspicious,
    summary: "The file name claims a safe format but the content is an executable one",
    explanation: "A pickle named `.safetensors`, `.gguf`, `.onnx` or `.json` is scanned for what \
        it is, but the name itself is a lure: tools and people that trust the extension will load \
        it with an unsafe loader, and extension-routed scanners skip it.",
    remediation: "Do not load this file. Ask the publisher for a real safetensors export, or \
        convert it yourself in a sandbox.",
    references: &["https://github.com/mmaitre314/picklescan/pull/50"],
};

/// GEN004 (suspicious): a file named like a model has content of no known format.
pub static UNRECOGNISED_MODEL: Rule = Rule {
    id: "GEN004",
    name: "unrecognised-model-content",
    verdict: Verdict::Suspicious,
    summary: "A file named like a model has content of no known format",
    explanation: "The extension says the file is a model (`.pkl`, `.pt`, `.pth`, `.ckpt`, \
        `.joblib`, `.npy`, `.safetensors`, `.gguf`, `.onnx`, `.tflite`, `.h5`, `.keras`), but \
        its bytes match no format the scanner knows (a `.safetensors` whose header is not JSON, \
        a `.pt` of noise, text). A loader chosen by the name will still try to read it, and \
        nothing about what it does then can be established.",
    remediation: "Check where the file came from; re-download it or re-export it as \
        safetensors.",
    references: &[],
};

/// GEN005 (suspicious): the file is two formats at once, read differently by different loaders.
pub static POLYGLOT: Rule = Rule {
    id: "GEN005",
    name: "polyglot-file",
    verdict: Verdict::Suspicious,
    summary: "The file is two formats at once, read differently by different loaders",
    explanation: "Pickle and PyTorch read a file from its first byte, zip readers (Python's \
        zipfile, and so Keras and NumPy's npz) from its end, HDF5 after a user block. A file \
        built to be valid for two readers shows a scanner one face and a loader another. Both \
        parts are scanned; the construction itself has no legitimate use in a model file.",
    remediation: "Do not load the file; re-export the model from its source.",
    references: &["https://github.com/trailofbits/fickling"],
};

/// NPY001 (suspicious): a .npy header spells its dtype in a way numpy.save never writes.
pub static NPY_UNUSUAL_DTYPE: Rule = Rule {
    id: "NPY001",
    name: "npy-unusual-dtype",
    verdict: Verdict::Suspicious,
    summary: "A .npy header spells its dtype in a way numpy.save never writes",
    explanation: "NumPy evaluates the header as a Python literal and builds the dtype from it, so \
        escapes, concatenated strings, duplicate keys and type names other than the canonical \
        codes all reach `numpy.dtype`. A dtype the scanner cannot prove numeric may hold Python \
        objects, whose data is a pickle run by np.load(allow_pickle=True); the data is scanned \
        as one, and the unusual spelling itself is reported.",
    remediation: "Re-save the array with numpy.save from a trusted source.",
    references: &["https://github.com/numpy/numpy/blob/main/numpy/lib/format.py"],
};

pub(super) static RULES: &[&Rule] = &[
    &UNPARSEABLE,
    &LIMIT_EXCEEDED,
    &DISGUISED_FORMAT,
    &UNRECOGNISED_MODEL,
    &POLYGLOT,
    &NPY_UNUSUAL_DTYPE,
];
