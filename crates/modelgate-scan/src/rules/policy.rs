//! Rules that the policy enforces rather than the scanner finds. They live
//! in the one registry so that `modelgate rules POL003`, SARIF and every
//! report can name and explain the rule behind any decision; the core
//! never emits them.

use super::Rule;
use crate::finding::Verdict;

/// POL001 (suspicious): the file's format is not one the policy allows at this path.
pub static FORMAT_NOT_ALLOWED: Rule = Rule {
    id: "POL001",
    name: "format-not-allowed",
    verdict: Verdict::Suspicious,
    summary: "The file's format is not one the policy allows at this path",
    explanation: "A path rule's `require-format` lists the formats allowed under its globs, \
        typically formats that cannot carry code (safetensors, GGUF, ONNX). A file of any \
        other format there is blocked whatever the scanner found in it: a pickle that scans \
        clean today is still a format that runs code when loaded.",
    remediation: "Convert the model to an allowed format (safetensors keeps only tensors and \
        cannot run code), or pin an exemption to the file's sha256 with a reason.",
    references: &[],
};

/// POL002 (suspicious): the file's content is not available to scan.
pub static CONTENT_UNVERIFIABLE: Rule = Rule {
    id: "POL002",
    name: "content-unverifiable",
    verdict: Verdict::Suspicious,
    summary: "The file's content is not available to scan",
    explanation: "A Git LFS pointer stands for content that is not present locally (always \
        the case on a server, whose LFS objects live in a separate store), so it cannot be \
        shown safe. `[hook] unverifiable` decides whether that warns or blocks.",
    remediation: "Fetch the content (`git lfs fetch`/`git lfs pull`) and retry, or pin an \
        exemption to its sha256 with a reason.",
    references: &[],
};

/// POL003 (suspicious): the policy requires a valid model signature by a trusted key and the file
/// has none.
pub static SIGNATURE_REQUIRED: Rule = Rule {
    id: "POL003",
    name: "signature-required",
    verdict: Verdict::Suspicious,
    summary: "The policy requires a valid model signature by a trusted key and the file has none",
    explanation: "A path rule's or the daemon's `require-signature` accepts a model file only \
        when an OpenSSF Model Signing signature by one of the trusted keys covers its exact \
        content. A missing, invalid or untrusted signature, or a file that changed since it \
        was signed, means the file cannot be shown to be what its publisher shipped.",
    remediation: "Sign the model with a trusted key (`modelgate sign`) and commit the signature \
        next to it; if the file changed since it was signed, find out why before re-signing. \
        A signature proves integrity, not safety: scan findings still apply.",
    references: &["https://github.com/sigstore/model-transparency"],
};

pub static RULES: &[&Rule] = &[
    &FORMAT_NOT_ALLOWED,
    &CONTENT_UNVERIFIABLE,
    &SIGNATURE_REQUIRED,
];
