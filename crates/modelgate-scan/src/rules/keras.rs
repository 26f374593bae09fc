//! Rules about Keras models (v3 `.keras` configs and legacy H5 `model_config`) and about the
//! HDF5 container itself.

use super::Rule;
use crate::finding::Verdict;

/// KRS001 (malicious): a Keras config carries marshalled Python bytecode (Lambda layer).
pub static KERAS_LAMBDA_BYTECODE: Rule = Rule {
    id: "KRS001",
    name: "keras-lambda-bytecode",
    verdict: Verdict::Malicious,
    summary: "A Keras config carries marshalled Python bytecode (Lambda layer)",
    explanation: "A `Lambda` layer (or any `__lambda__` object, or a legacy `function_type: \
        lambda` field) stores a Python function as base64-encoded `marshal` bytecode. Keras \
        rebuilds the function with `marshal.loads` and runs it when the model is built or \
        called: whatever the author compiled into it (os.system, a reverse shell) runs on the \
        loading machine. Keras 3 refuses it in `.keras` files only with `safe_mode=True`; legacy \
        H5 loading ignored safe_mode (CVE-2025-9905), and tf.keras had no safe mode at all.",
    remediation: "Do not load the model. Ask the publisher for a version that replaces the \
        Lambda layer with a registered custom layer (code you can review) or export the weights \
        as safetensors.",
    references: &[
        "CVE-2024-3660",
        "CVE-2025-9905",
        "https://www.kb.cert.org/vuls/id/253266",
    ],
};

/// KRS002 (malicious): a Keras config names a module or function that runs code, touches files or
/// turns safety checks off.
pub static KERAS_DANGEROUS_REFERENCE: Rule = Rule {
    id: "KRS002",
    name: "keras-dangerous-reference",
    verdict: Verdict::Malicious,
    summary: "A Keras config names a module or function that runs code, touches files or turns \
        safety checks off",
    explanation: "Keras rebuilds every object in a config from its `module`, `class_name`, \
        `registered_name` and (for functions) `config` fields. A config that names \
        `os.system`, `subprocess.getoutput` or `builtins.exec` makes the loader import and call \
        it (CVE-2025-1550, even with safe_mode on Keras < 3.9); Keras' own \
        `keras.utils.get_file` downloads files (CVE-2025-8747), \
        `enable_unsafe_deserialization` switches safe_mode off mid-load (CVE-2025-9906), \
        `TorchModuleWrapper` runs torch.load on embedded pickles (CVE-2025-49655) and \
        `TFSMLayer` loads an attacker-named SavedModel (CVE-2026-1462).",
    remediation: "Do not load the model. A legitimate model never references these names; \
        re-export it from a trusted source, preferably as safetensors weights plus code you \
        control.",
    references: &[
        "CVE-2025-1550",
        "CVE-2025-8747",
        "CVE-2025-9906",
        "CVE-2025-49655",
        "CVE-2026-1462",
    ],
};

/// KRS003 (suspicious): a Keras config needs user code (a custom layer or function from outside
/// Keras).
pub static KERAS_CUSTOM_OBJECT: Rule = Rule {
    id: "KRS003",
    name: "keras-custom-object",
    verdict: Verdict::Suspicious,
    summary: "A Keras config needs user code (a custom layer or function from outside Keras)",
    explanation: "The config names an object registered from a package other than Keras or \
        TensorFlow (`registered_name: \"mypkg>Scale\"`, `module: \"mypkg.layers\"`, or a \
        function from `__main__`). Loading it imports and runs that package's code, which the \
        scanner cannot see: the model is only as safe as that code.",
    remediation: "Review the package that provides the custom object before loading, and load \
        with `custom_objects` pointing at code you trust; if the file is trusted, pin an \
        exemption to its sha256 with a reason.",
    references: &["https://keras.io/guides/serialization_and_saving/#custom-objects"],
};

/// KRS004 (suspicious): a Keras config repeats a JSON key in one object.
pub static KERAS_DUPLICATE_KEY: Rule = Rule {
    id: "KRS004",
    name: "keras-config-duplicate-key",
    verdict: Verdict::Suspicious,
    summary: "A Keras config repeats a JSON key in one object",
    explanation: "JSON parsers disagree on duplicate keys: Python's json keeps the last value, \
        others keep the first or reject the document. A config with two `module` or \
        `class_name` keys can show a scanner one object and the loader another; no Keras \
        version writes duplicates.",
    remediation: "Do not load the file; re-save the model with Keras from a trusted source.",
    references: &["https://bishopfox.com/blog/json-interoperability-vulnerabilities"],
};

/// HDF001 (malicious): an HDF5 file links to an object in another file.
pub static HDF5_EXTERNAL_LINK: Rule = Rule {
    id: "HDF001",
    name: "hdf-external-link",
    verdict: Verdict::Malicious,
    summary: "An HDF5 file links to an object in another file",
    explanation: "An HDF5 external link makes the library open the named file when the link is \
        followed. A model loader that walks the weight groups follows it, reading an arbitrary \
        path of the loading machine (or a network share); model files never need it.",
    remediation: "Do not load the file; re-save the model so that every object lives inside it.",
    references: &["https://docs.hdfgroup.org/hdf5/latest/group___h5_l.html"],
};

/// HDF002 (malicious): an HDF5 dataset keeps its data in another file.
pub static HDF5_EXTERNAL_DATA: Rule = Rule {
    id: "HDF002",
    name: "hdf-external-data-file",
    verdict: Verdict::Malicious,
    summary: "An HDF5 dataset keeps its data in another file",
    explanation: "An External Data Files message makes reading the dataset read bytes from a \
        named file instead of the HDF5 file. Loading weights from such a dataset pulls an \
        arbitrary file of the loading machine (keys, credentials) into the model, where it can \
        be re-saved and exfiltrated.",
    remediation: "Do not load the file; re-save the model so that every dataset is stored \
        inside it.",
    references: &["https://docs.hdfgroup.org/hdf5/latest/group___d_c_p_l.html"],
};

pub(super) static RULES: &[&Rule] = &[
    &KERAS_LAMBDA_BYTECODE,
    &KERAS_DANGEROUS_REFERENCE,
    &KERAS_CUSTOM_OBJECT,
    &KERAS_DUPLICATE_KEY,
    &HDF5_EXTERNAL_LINK,
    &HDF5_EXTERNAL_DATA,
];
