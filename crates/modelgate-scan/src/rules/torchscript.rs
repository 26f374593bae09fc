//! Rules about TorchScript code: the `code/` sources of a `torch.jit.save`
//! archive, which `torch.jit.load` (and `torch.load`, which hands such
//! archives to it) compiles and runs — `__setstate__` while loading,
//! `forward` when the model is called.

use super::Rule;
use crate::finding::Verdict;

/// TS001 (malicious): torchScript code names an operator that reaches files, Python, other
/// processes or the network.
pub static TS_DANGEROUS_OP: Rule = Rule {
    id: "TS001",
    name: "torchscript-dangerous-op",
    verdict: Verdict::Malicious,
    summary: "TorchScript code names an operator that reaches files, Python, other processes or the network",
    explanation: "TorchScript code in an archive's `code/` directory is compiled and run by \
        `torch.jit.load`: a class's `__setstate__` runs while the file loads, `forward` when the \
        model is called. Besides tensor math, TorchScript can call every operator registered with \
        PyTorch, and some of them touch the host: `torch.save(value, path)` (`aten::save`) writes \
        any file, `torch.from_file(path)` reads (and with `shared=True` writes) one, torchvision's \
        `ops.image.write_file`/`read_file` do the same, `prim::rpc_*` call remote workers. These \
        work whether they are called directly, through `ops.aten`, through an alias of `torch` or \
        a literal `getattr`, so any reference to one is reported. Operators that only reach raw \
        memory or a distributed process group are graded suspicious.",
    remediation: "Do not load the model. A model's code has no reason to touch files or the \
        network; ask the publisher for weights as safetensors, or re-export the model from \
        source you trust.",
    references: &[
        "https://github.com/pytorch/pytorch/blob/main/torch/csrc/jit/runtime/register_prim_ops_fulljit.cpp",
        "https://github.com/pytorch/pytorch/blob/main/aten/src/ATen/native/native_functions.yaml",
        "CVE-2025-32434",
    ],
};

/// TS002 (suspicious): torchScript code calls an operator from a namespace that PyTorch does not
/// ship.
pub static TS_CUSTOM_NAMESPACE: Rule = Rule {
    id: "TS002",
    name: "torchscript-custom-op-namespace",
    verdict: Verdict::Suspicious,
    summary: "TorchScript code calls an operator from a namespace that PyTorch does not ship",
    explanation: "`ops.<namespace>.<op>` resolves to an operator registered by native code. \
        Namespaces outside libtorch exist only after the host loads a library \
        (`torch.ops.load_library`, or importing an extension package), and that library is \
        arbitrary native code the scanner cannot see. Well-known extension packages \
        (torchvision, torchaudio, …) are reported as information; an unknown namespace is \
        suspicious, and malicious when the operator's name speaks of commands, files or the \
        network.",
    remediation: "Find out which library provides the operator and review it before loading \
        the model; prefer an export that uses standard operators only.",
    references: &["https://pytorch.org/tutorials/advanced/torch_script_custom_ops.html"],
};

/// TS003 (suspicious): torchScript code calls an operator of a PyTorch namespace that is not in the
/// audited table.
pub static TS_UNKNOWN_OP: Rule = Rule {
    id: "TS003",
    name: "torchscript-unknown-op",
    verdict: Verdict::Suspicious,
    summary: "TorchScript code calls an operator of a PyTorch namespace that is not in the audited table",
    explanation: "Every operator of PyTorch's own namespaces (`aten`, `prim`, `quantized`, …) \
        that TorchScript code may call is listed in the scanner's audited table \
        (`data/torchscript_ops.tsv`, generated from PyTorch's operator registry). An operator \
        missing from it is either from a PyTorch version the table does not know or an attempt \
        to reach something the audit never saw; it cannot be shown safe.",
    remediation: "Check what the operator does in the PyTorch version that will load the \
        model; if it is pure tensor math, add it to the table with its audit reason.",
    references: &[],
};

/// TS004 (suspicious): torchScript code uses a native (torchbind) class that PyTorch does not ship.
pub static TS_CUSTOM_CLASS: Rule = Rule {
    id: "TS004",
    name: "torchscript-custom-class",
    verdict: Verdict::Suspicious,
    summary: "TorchScript code uses a native (torchbind) class that PyTorch does not ship",
    explanation: "`__torch__.torch.classes.<namespace>.<Class>` names a C++ class bound with \
        `torch::class_`; constructing it or calling its methods (its `__setstate__` runs while \
        the archive loads) runs native code from a library the host must load first. Classes \
        built into libtorch (quantized packed weights, XNNPACK contexts, …) are allowed; \
        distributed process groups and RPC workers are suspicious.",
    remediation: "Find out which library defines the class and review it before loading the \
        model.",
    references: &["https://pytorch.org/tutorials/advanced/torch_script_custom_classes.html"],
};

/// TS005 (suspicious): a TorchScript source file could not be read within the scanner's limits.
pub static TS_UNPARSEABLE: Rule = Rule {
    id: "TS005",
    name: "torchscript-code-unparseable",
    verdict: Verdict::Suspicious,
    summary: "A TorchScript source file could not be read within the scanner's limits",
    explanation: "The scanner tokenizes every `code/*.py` member of a TorchScript archive to find \
        the operators it calls. A file that is not UTF-8, breaks the token grammar, nests \
        brackets or blocks deeper than the structure limit, or is larger than the code limit \
        cannot be shown to call only safe operators, so it is never a pass.",
    remediation: "Re-export the model with `torch.jit.save` from a current PyTorch; if the file \
        is trusted, pin an exemption to its sha256 with a reason.",
    references: &[],
};

/// TS006 (suspicious): torchScript code uses `torch`, `ops` or `getattr` as a value, hiding which
/// operators it calls.
pub static TS_NAMESPACE_ALIAS: Rule = Rule {
    id: "TS006",
    name: "torchscript-namespace-alias",
    verdict: Verdict::Suspicious,
    summary: "TorchScript code uses `torch`, `ops` or `getattr` as a value, hiding which operators it calls",
    explanation: "Code written by `torch.jit.save` always calls operators by their full name \
        (`torch.add`, `ops.prim.dtype`). TorchScript also lets code store a namespace in a \
        variable (`t = torch`), pass it around, subscript it or look names up with a computed \
        `getattr`, after which the operator finally called is no longer visible at the call. \
        Simple aliases are followed; any other use of a namespace as a value is reported.",
    remediation: "Do not load the model unless its code has been reviewed; real exports never \
        alias operator namespaces.",
    references: &[],
};

pub(super) static RULES: &[&Rule] = &[
    &TS_DANGEROUS_OP,
    &TS_CUSTOM_NAMESPACE,
    &TS_UNKNOWN_OP,
    &TS_CUSTOM_CLASS,
    &TS_UNPARSEABLE,
    &TS_NAMESPACE_ALIAS,
];
