//! Rules of the pickle engine (plain pickles, PyTorch, NumPy object arrays,
//! joblib, dill and cloudpickle all end up here).

use super::Rule;
use crate::finding::Verdict;

const CONVERT: &str = "Re-save the weights as safetensors (`safetensors.torch.save_file`), or \
    load them with `torch.load(path, weights_only=True)`; never unpickle this file.";

/// PKL001 (malicious): the pickle imports a callable that runs code, spawns processes or touches
/// files.
pub static DANGEROUS_GLOBAL: Rule = Rule {
    id: "PKL001",
    name: "pickle-dangerous-global",
    verdict: Verdict::Malicious,
    summary: "The pickle imports a callable that runs code, spawns processes or touches files",
    explanation: "Unpickling resolves every GLOBAL/STACK_GLOBAL/INST name with an import and lets \
        REDUCE, OBJ, NEWOBJ and BUILD call it. Names such as `os.system`, `subprocess.Popen`, \
        `builtins.exec`, `runpy._run_code` or `pip.main` run arbitrary code the moment the file \
        is loaded.",
    remediation: CONVERT,
    references: &[
        "https://docs.python.org/3/library/pickle.html#restricting-globals",
        "https://atlas.mitre.org/techniques/AML.T0011.000",
    ],
};

/// PKL002 (suspicious): the pickle imports a name that is not known to be safe.
pub static UNKNOWN_GLOBAL: Rule = Rule {
    id: "PKL002",
    name: "pickle-unknown-global",
    verdict: Verdict::Suspicious,
    summary: "The pickle imports a name that is not known to be safe",
    explanation: "Only an allowlist of exact (module, name) pairs is known to be harmless when \
        imported and called by an unpickler. Anything else, typically a class from the author's \
        own code (`__main__.Config`, `mypkg.models.Net`), needs that code to load and can run \
        whatever it defines.",
    remediation: "Save only tensors (a state_dict) and re-save as safetensors. If the class is \
        yours and trusted, allow it in policy.toml ([pickle] allow = [\"module.Name\"]).",
    references: &["https://pytorch.org/docs/stable/notes/serialization.html#weights-only"],
};

/// PKL003 (malicious): a STACK_GLOBAL import name is computed at load time.
pub static UNRESOLVED_GLOBAL: Rule = Rule {
    id: "PKL003",
    name: "pickle-unresolved-global",
    verdict: Verdict::Malicious,
    summary: "A STACK_GLOBAL import name is computed at load time",
    explanation: "STACK_GLOBAL takes its module and name from the stack. Legitimate picklers push \
        two constant strings; operands that come from calls, concatenation or anything but a \
        string constant hide which function will be imported, which is how scanners are \
        bypassed.",
    remediation: CONVERT,
    references: &[
        "https://github.com/mmaitre314/picklescan/issues/22",
        "GHSA-9gvj-pp9x-gcfr",
    ],
};

/// PKL004 (malicious): the pickle imports through the copyreg extension registry (EXT1/EXT2/EXT4).
pub static EXTENSION_REGISTRY: Rule = Rule {
    id: "PKL004",
    name: "pickle-extension-code",
    verdict: Verdict::Malicious,
    summary: "The pickle imports through the copyreg extension registry (EXT1/EXT2/EXT4)",
    explanation: "EXT opcodes import whatever the loading process registered under a number with \
        `copyreg.add_extension`. The scanner cannot know that registry, no mainstream pickler \
        emits these opcodes, and an earlier pickle in the same file can fill the registry with \
        `os.system`.",
    remediation: CONVERT,
    references: &["https://docs.python.org/3/library/copyreg.html"],
};

/// PKL005 (malicious): bUILD sets attributes on an imported module or class, not on a new object.
pub static GLOBAL_ATTRIBUTE_POISONING: Rule = Rule {
    id: "PKL005",
    name: "pickle-global-state-poisoning",
    verdict: Verdict::Malicious,
    summary: "BUILD sets attributes on an imported module or class, not on a new object",
    explanation: "BUILD normally fills the state of an object the pickle just created. Applied to \
        an imported global it rewrites that global for the whole process (e.g. planting \
        `os.system` as `numpy.prod.a`), so later, innocent-looking imports resolve to dangerous \
        functions.",
    remediation: CONVERT,
    references: &[
        "https://github.com/protectai/modelscan/issues/85",
        "https://github.com/protectai/modelscan/issues/330",
    ],
};

/// PKL006 (suspicious): the pickle stream breaks before it ends.
pub static MALFORMED_STREAM: Rule = Rule {
    id: "PKL006",
    name: "pickle-malformed-stream",
    verdict: Verdict::Suspicious,
    summary: "The pickle stream breaks before it ends",
    explanation: "An unpickler executes opcodes as it reads them: everything before the break has \
        already run when the load fails. Pickles broken on purpose right after a payload \
        (the nullifAI technique) make scanners that need a complete stream give up.",
    remediation: CONVERT,
    references: &[
        "https://www.reversinglabs.com/blog/rl-identifies-malware-ml-model-hosted-on-hugging-face",
    ],
};

/// PKL007 (malicious): the pickle reaches a function through getattr at load time.
pub static DYNAMIC_ATTRIBUTE: Rule = Rule {
    id: "PKL007",
    name: "pickle-dynamic-attribute",
    verdict: Verdict::Malicious,
    summary: "The pickle reaches a function through getattr at load time",
    explanation: "`builtins.getattr` turns any object and string into any attribute: \
        `getattr(import_module('os'), 'system')` never names `os.system`. Enum members pickle as \
        `getattr(EnumClass, 'MEMBER')` on an allowlisted class with a plain name, and only that \
        pattern is accepted.",
    remediation: CONVERT,
    references: &["https://github.com/protectai/modelscan/issues/331"],
};

/// PKL008 (malicious): the pickle calls an object that was itself produced by a call.
pub static INDIRECT_CALL: Rule = Rule {
    id: "PKL008",
    name: "pickle-indirect-call",
    verdict: Verdict::Malicious,
    summary: "The pickle calls an object that was itself produced by a call",
    explanation: "Picklers call imported classes and functions. Calling the result of another \
        call (`attrgetter('system')(module)('cmd')`) chains gadgets so that no dangerous name is \
        ever imported directly.",
    remediation: CONVERT,
    references: &[],
};

/// PKL009 (info): a NumPy array of dtype object embeds a pickle.
pub static OBJECT_ARRAY: Rule = Rule {
    id: "PKL009",
    name: "numpy-object-array",
    verdict: Verdict::Info,
    summary: "A NumPy array of dtype object embeds a pickle",
    explanation: "`.npy` files with an object dtype store their data as a pickle and need \
        `np.load(allow_pickle=True)` (CVE-2019-6446). The embedded pickle is scanned; this note \
        records that loading the file requires enabling pickle at all.",
    remediation: "Store numeric arrays, or save strings with a fixed-width unicode dtype.",
    references: &["CVE-2019-6446"],
};

/// PKL010 (suspicious): a nested payload for an unpickling loader is computed at load time.
pub static OPAQUE_PAYLOAD: Rule = Rule {
    id: "PKL010",
    name: "pickle-opaque-nested-payload",
    verdict: Verdict::Suspicious,
    summary: "A nested payload for an unpickling loader is computed at load time",
    explanation: "Some legitimate globals (`torch.storage._load_from_bytes`) run a full, unsafe \
        unpickler on the bytes they are given; they are accepted only because the scanner \
        scans those bytes as a file of their own. When the bytes are produced by another call \
        (e.g. decoded from a string) instead of being a literal, that nested file cannot be \
        scanned.",
    remediation: CONVERT,
    references: &["https://github.com/trailofbits/fickling"],
};

/// PKL011 (malicious): an allowlisted callable is handed something that makes it run code.
pub static GADGET_ARGUMENT: Rule = Rule {
    id: "PKL011",
    name: "pickle-gadget-argument",
    verdict: Verdict::Malicious,
    summary: "An allowlisted callable is handed something that makes it run code",
    explanation: "Some allowlisted reconstruction helpers call one of their arguments: \
        `torch._tensor._rebuild_from_type_v2` calls `func(*args)`, NumPy's `__randomstate_ctor` \
        calls its bit-generator constructor, `copyreg._reconstructor` instantiates its class, \
        `collections.defaultdict` calls its factory, a tensor's backward hooks are called later. \
        The allow table records which arguments each trusted callable calls, and each call is \
        checked: those arguments must be literals, data, or trusted callables whose own \
        arguments pass the same check. Handing them a loader, a callable computed at load time \
        (a `getattr` result, a `functools.partial` over such), or a helper whose arguments the \
        file cannot show turns an allowlisted name into a gadget.",
    remediation: CONVERT,
    references: &[
        "https://github.com/trailofbits/fickling",
        "https://github.com/mmaitre314/picklescan/security/advisories",
    ],
};

/// PKL012 (info): the pickle needs a well-known ML library to load.
pub static LIBRARY_PROFILE: Rule = Rule {
    id: "PKL012",
    name: "pickle-library-class",
    verdict: Verdict::Info,
    summary: "The pickle needs a well-known ML library to load",
    explanation: "The pickle imports classes of a well-known library (gensim, pandas, old \
        joblib or scikit-learn paths, XGBoost/LightGBM/CatBoost wrappers, PEFT and TRL \
        configurations, ...) whose reconstruction is data only: they are rebuilt from arrays, \
        dicts and numbers and call nothing they are given. Loading still needs that library, at \
        a version that has these names.",
    remediation: "Nothing to fix; install the library named to load the file. Prefer the \
        library's own non-pickle format where there is one.",
    references: &[],
};

/// PKL013 (malicious): bUILD state plants callables under special names or redirects a trusted
/// object.
pub static STATE_HIJACK: Rule = Rule {
    id: "PKL013",
    name: "pickle-state-hijack",
    verdict: Verdict::Malicious,
    summary: "BUILD state plants callables under special names or redirects a trusted object",
    explanation: "BUILD copies a dict state into the new object's `__dict__` and applies slot \
        state with `setattr`. A callable stored under a special name (`__setstate__`, which the \
        next BUILD calls, `__reduce__`, `__getattr__`, ...) or `__class__` set through slot state \
        changes what a trusted object does; joblib's array wrappers instantiate the class and \
        open the sidecar file their state names.",
    remediation: CONVERT,
    references: &["https://docs.python.org/3/library/pickle.html#pickling-class-instances"],
};

/// PKL014 (malicious): a pickled numpy.dtype claims object handling for plain values, or drops it
/// for objects.
pub static DTYPE_FLAGS: Rule = Rule {
    id: "PKL014",
    name: "numpy-dtype-forged-flags",
    verdict: Verdict::Malicious,
    summary: "A pickled numpy.dtype claims object handling for plain values, or drops it for objects",
    explanation: "`numpy.dtype.__setstate__` (versions 3 and 4 of its state) stores the pickled \
        `flags` as given. NPY_ITEM_HASOBJECT/REFCOUNT, NPY_LIST_PICKLE and NPY_ITEM_IS_POINTER on \
        a dtype of numbers make NumPy treat the array's bytes as Python object pointers chosen by \
        the file; an object dtype without reference counting frees objects still in use. No \
        NumPy version writes such a state.",
    remediation: CONVERT,
    references: &[
        "https://github.com/numpy/numpy/blob/main/numpy/_core/src/multiarray/descriptor.c",
    ],
};

pub(super) static RULES: &[&Rule] = &[
    &DANGEROUS_GLOBAL,
    &UNKNOWN_GLOBAL,
    &UNRESOLVED_GLOBAL,
    &EXTENSION_REGISTRY,
    &GLOBAL_ATTRIBUTE_POISONING,
    &MALFORMED_STREAM,
    &DYNAMIC_ATTRIBUTE,
    &INDIRECT_CALL,
    &OBJECT_ARRAY,
    &OPAQUE_PAYLOAD,
    &GADGET_ARGUMENT,
    &LIBRARY_PROFILE,
    &STATE_HIJACK,
    &DTYPE_FLAGS,
];
