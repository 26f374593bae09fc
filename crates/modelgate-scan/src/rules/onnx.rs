//! Rules about ONNX models: external data that escapes the model directory
//! and operators that need a custom-op library.

use super::Rule;
use crate::finding::Verdict;

/// ONNX001 (malicious): a tensor's external data location is absolute or climbs out of the model
/// directory.
pub static ONNX_EXTERNAL_DATA_TRAVERSAL: Rule = Rule {
    id: "ONNX001",
    name: "onnx-external-data-traversal",
    verdict: Verdict::Malicious,
    summary: "A tensor's external data location is absolute or climbs out of the model directory",
    explanation: "ONNX tensors can keep their bytes in a separate file named by \
        `external_data` key `location`, resolved against the model's directory. A location such \
        as `/etc/shadow` or `../../../etc/passwd` (or `a/../../b`, which defeated the first fix) \
        makes `onnx.load`, the checker or a runtime read an arbitrary host file into a tensor, or \
        makes `save_external_data` overwrite one. Legitimate exports always write a plain file \
        name next to the model.",
    remediation: "Do not load the model. Ask the publisher for an export whose external data \
        sits next to the .onnx file (onnx.save_model(..., save_as_external_data=True, \
        location=\"model.onnx_data\")), and upgrade onnx to 1.21 or later.",
    references: &[
        "CVE-2022-25882",
        "CVE-2024-27318",
        "CVE-2025-51480",
        "https://github.com/onnx/onnx/issues/3991",
        "https://onnx.ai/onnx/repo-docs/ExternalData.html",
    ],
};

/// ONNX002 (malicious): a tensor's external data file on disk is a link that leads outside the
/// model.
pub static ONNX_EXTERNAL_DATA_LINK: Rule = Rule {
    id: "ONNX002",
    name: "onnx-external-data-link",
    verdict: Verdict::Malicious,
    summary: "A tensor's external data file on disk is a link that leads outside the model",
    explanation: "The external data location looks harmless, but on disk it is a symbolic link \
        whose target leaves the model directory, a symbolic link at all, or a hard link (an inode \
        shared with some other path). Extracted archives can plant such links, so that loading \
        the model reads (or re-saving it overwrites) a file elsewhere on the host; onnx 1.21 \
        refuses all three.",
    remediation: "Do not load the model from this directory. Replace the link with a regular \
        copy of the weights file you trust, or re-download the model.",
    references: &[
        "CVE-2026-27489",
        "CVE-2026-34446",
        "CVE-2026-34447",
        "https://github.com/onnx/onnx/pull/7717",
    ],
};

/// ONNX003 (suspicious): the graph uses an operator from a custom domain that needs a native
/// custom-op library.
pub static ONNX_CUSTOM_OP: Rule = Rule {
    id: "ONNX003",
    name: "onnx-custom-op-domain",
    verdict: Verdict::Suspicious,
    summary: "The graph uses an operator from a custom domain that needs a native custom-op library",
    explanation: "Operators outside the standard ONNX domains (and ONNX Runtime's built-in \
        contrib domains) have no kernel in the runtime: they run only after the user registers a \
        shared library supplied with the model, which is arbitrary native code. The model cannot \
        be shown safe without that library; an operator whose name or attributes speak of \
        commands, processes, files or the network is reported as malicious.",
    remediation: "Do not register custom-op libraries from untrusted sources. Ask for an export \
        that uses standard operators only, or review the custom-op library's source.",
    references: &[
        "https://onnxruntime.ai/docs/reference/operators/add-custom-op.html",
        "https://github.com/onnx/onnx/blob/main/docs/Operators.md",
    ],
};

pub(super) static RULES: &[&Rule] = &[
    &ONNX_EXTERNAL_DATA_TRAVERSAL,
    &ONNX_EXTERNAL_DATA_LINK,
    &ONNX_CUSTOM_OP,
];
