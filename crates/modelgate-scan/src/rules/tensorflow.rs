//! Rules about TensorFlow graphs (SavedModel) and TFLite flatbuffers: ops
//! that leave the tensor world for Python, files or the network.

use super::Rule;
use crate::finding::Verdict;

/// TF001 (malicious): the graph calls back into Python (PyFunc, PyFuncStateless, EagerPyFunc).
pub static TF_PYTHON_OP: Rule = Rule {
    id: "TF001",
    name: "tf-python-callback-op",
    verdict: Verdict::Malicious,
    summary: "The graph calls back into Python (PyFunc, PyFuncStateless, EagerPyFunc)",
    explanation: "py_function and numpy_function ops run a Python callable of the process that \
        executes the graph. A SavedModel cannot carry the callable itself, but a graph that \
        contains the op runs whatever the host registered under its token, and such graphs are \
        how Python payloads are smuggled into serving pipelines.",
    remediation: "Do not serve or load this model. Re-export it without tf.py_function / \
        tf.numpy_function (use TensorFlow ops), or as safetensors weights.",
    references: &[
        "https://www.tensorflow.org/api_docs/python/tf/py_function",
        "https://github.com/tensorflow/tensorflow/blob/master/SECURITY.md",
    ],
};

/// TF002 (malicious): the graph contains an op that reads, writes or lists host files.
pub static TF_FILE_OP: Rule = Rule {
    id: "TF002",
    name: "tf-file-access-op",
    verdict: Verdict::Malicious,
    summary: "The graph contains an op that reads, writes or lists host files",
    explanation: "Ops like ReadFile, WriteFile, MatchingFiles, ImmutableConst, file readers and \
        file-backed datasets run with the rights of the process that executes the model: a model \
        that contains them can copy /etc/passwd into its output or plant files on the host. \
        TensorFlow's security policy says models are programs for exactly this reason.",
    remediation: "Do not run the model. Inference graphs have no reason to touch files; ask the \
        publisher for a graph without file ops.",
    references: &[
        "https://github.com/tensorflow/tensorflow/blob/master/SECURITY.md",
        "https://github.com/protectai/modelscan",
    ],
};

/// TF003 (malicious): the graph contains an op that makes or serves RPC calls.
pub static TF_NETWORK_OP: Rule = Rule {
    id: "TF003",
    name: "tf-network-op",
    verdict: Verdict::Malicious,
    summary: "The graph contains an op that makes or serves RPC calls",
    explanation: "RPC ops contact an address named by the graph (or start a server in the \
        loading process), which lets a model exfiltrate inputs or fetch payloads.",
    remediation: "Do not run the model; inference graphs need no network access.",
    references: &["https://github.com/tensorflow/tensorflow/blob/master/SECURITY.md"],
};

/// TF004 (malicious): a PrintV2 op writes to a file instead of stdout/stderr.
pub static TF_PRINT_TO_FILE: Rule = Rule {
    id: "TF004",
    name: "tf-print-to-file",
    verdict: Verdict::Malicious,
    summary: "A PrintV2 op writes to a file instead of stdout/stderr",
    explanation: "PrintV2's `output_stream` attribute accepts `file://<path>`, turning a debug \
        print into an arbitrary file write (append) with the rights of the serving process.",
    remediation: "Do not run the model. Re-export it with tf.print writing to stderr, or \
        without print ops.",
    references: &["https://www.tensorflow.org/api_docs/python/tf/print"],
};

/// TF005 (malicious): a saver, restore or file-backed op is wired to a constant absolute or '..'
/// path.
pub static TF_PATH_ESCAPE: Rule = Rule {
    id: "TF005",
    name: "tf-constant-path-escape",
    verdict: Verdict::Malicious,
    summary: "A saver, restore or file-backed op is wired to a constant absolute or '..' path",
    explanation: "Checkpoint and lookup-table ops (SaveV2, RestoreV2, MergeV2Checkpoints, \
        InitializeTableFromTextFile, …) are part of every SavedModel, but there the path is fed \
        in at load time. A constant path baked into the graph that is absolute or climbs out \
        with `..` makes loading or saving the model read, overwrite or delete host files.",
    remediation: "Do not load the model; re-export it with tf.saved_model.save from a clean \
        environment.",
    references: &["https://github.com/tensorflow/tensorflow/blob/master/SECURITY.md"],
};

/// TFL001 (malicious): a TFLite model uses a Flex (select TF ops) op that touches files, Python or
/// the network.
pub static TFLITE_DANGEROUS_OP: Rule = Rule {
    id: "TFL001",
    name: "tflite-dangerous-flex-op",
    verdict: Verdict::Malicious,
    summary: "A TFLite model uses a Flex (select TF ops) op that touches files, Python or the network",
    explanation: "Flex ops run full TensorFlow kernels inside TFLite when the Flex delegate is \
        linked in. `FlexReadFile`, `FlexWriteFile`, `FlexPyFunc` and friends give the model the \
        same reach into the host as their TensorFlow counterparts.",
    remediation: "Do not run the model with the Flex delegate. Ask for a conversion that uses \
        TFLite builtin ops only.",
    references: &["https://www.tensorflow.org/lite/guide/ops_select"],
};

/// TFL002 (suspicious): a TFLite model uses a custom operator the TFLite runtime does not ship.
pub static TFLITE_CUSTOM_OP: Rule = Rule {
    id: "TFL002",
    name: "tflite-custom-op",
    verdict: Verdict::Suspicious,
    summary: "A TFLite model uses a custom operator the TFLite runtime does not ship",
    explanation: "A custom op has no kernel in TFLite: the application must register one, often \
        from a native library supplied with the model. The model cannot be shown safe without \
        it; a custom op whose name speaks of commands, files or the network is reported as \
        malicious.",
    remediation: "Review where the custom-op kernel comes from before registering it, or ask \
        for a model that uses builtin ops.",
    references: &["https://www.tensorflow.org/lite/guide/ops_custom"],
};

pub(super) static RULES: &[&Rule] = &[
    &TF_PYTHON_OP,
    &TF_FILE_OP,
    &TF_NETWORK_OP,
    &TF_PRINT_TO_FILE,
    &TF_PATH_ESCAPE,
    &TFLITE_DANGEROUS_OP,
    &TFLITE_CUSTOM_OP,
];
