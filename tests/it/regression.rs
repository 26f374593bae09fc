//! Regression tests named after the scanner bypasses they pin. Each builds
//! the technique's bytes by hand and checks the verdict and the rule.

use modelgate::scan::{FileReport, Scanner, Verdict};

fn scan(name: &str, data: &[u8]) -> FileReport {
    Scanner::default().scan_bytes(name, data)
}

fn rules(r: &FileReport) -> Vec<&'static str> {
    r.findings.iter().map(|f| f.rule.id).collect()
}

fn assert_malicious(r: &FileReport, rule: &str) {
    assert_eq!(r.verdict, Verdict::Malicious, "{:#?}", r.findings);
    assert!(
        rules(r).contains(&rule),
        "expected {rule}: {:#?}",
        r.findings
    );
}

fn unicode(s: &str) -> Vec<u8> {
    let mut v = vec![0x8c, s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// GHSA-5j3x-jp52-966f: STACK_GLOBAL("posixpath", "os.system") walks into `os`.
#[test]
fn ghsa_5j3x_dotted_name_reaches_os() {
    let p = cat(&[
        b"\x80\x04",
        &unicode("posixpath"),
        &unicode("os.system"),
        b"\x93",
        &unicode("id"),
        b"\x85R.",
    ]);
    assert_malicious(&scan("m.pkl", &p), "PKL001");
}

/// ImaginaryCTF 2023 "Safe Pickle" / picklescan#22: operands come from the memo.
#[test]
fn memo_desync_stack_global() {
    let p = cat(&[
        b"\x80\x04}\x94(",
        &unicode("a"),
        &unicode("os"),
        b"\x94",
        &unicode("b"),
        &unicode("system"),
        b"\x94u0h\x01h\x02\x93",
        &unicode("id"),
        b"\x85R.",
    ]);
    assert_malicious(&scan("m.pkl", &p), "PKL001");
}

/// GHSA-9gvj-pp9x-gcfr: STACK_GLOBAL operands from protocol-0/1 string opcodes.
#[test]
fn ghsa_9gvj_byte_string_operands() {
    let p = b"\x80\x02S'os'\nU\x06system\x93S'id'\n\x85R.";
    assert_malicious(&scan("m.pkl", p), "PKL001");
    let p = b"\x80\x02T\x02\x00\x00\x00osU\x06system\x93S'id'\n\x85R.";
    assert_malicious(&scan("m.pkl", p), "PKL001");
}

/// Names spelled with raw-unicode-escape so that no literal "os" appears.
#[test]
fn unicode_escaped_global_names() {
    let p = b"\x80\x02V\\u006fs\nV\\u0073ystem\n\x93V id\n\x85R.";
    assert_malicious(&scan("m.pkl", p), "PKL001");
}

/// CVE-2025-10157: a submodule of a denied module.
#[test]
fn cve_2025_10157_asyncio_submodule() {
    let p = b"\x80\x02casyncio.unix_events\n_UnixSubprocessTransport._start\n)R.";
    assert_malicious(&scan("m.pkl", p), "PKL001");
}

/// GHSA-vvpj-pp9x-gcfr: pkgutil.resolve_name turns a string into any callable.
#[test]
fn ghsa_vvpj_pkgutil_resolve_name() {
    let p = b"\x80\x02cpkgutil\nresolve_name\nX\t\x00\x00\x00os:system\x85R.";
    assert_malicious(&scan("m.pkl", p), "PKL001");
}

/// picklescan 1.0.4 open class: importlib + getattr, "system" only as a string.
#[test]
fn importlib_and_getattr_with_string_name() {
    let p = b"\x80\x02cbuiltins\ngetattr\ncimportlib\nimport_module\nX\x02\x00\x00\x00os\x85RX\x06\x00\x00\x00system\x86R.";
    let r = scan("m.pkl", p);
    assert_malicious(&r, "PKL007");
    assert!(rules(&r).contains(&"PKL001"));
}

/// nullifAI: the payload runs, then the stream breaks on purpose.
#[test]
fn nullifai_broken_after_reduce() {
    let p = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R\xff";
    let r = scan("m.pkl", p);
    assert_malicious(&r, "PKL001");
    assert!(rules(&r).contains(&"PKL006"));
}

/// Several pickles in one file: the second one carries the payload.
#[test]
fn concatenated_pickles_are_all_scanned() {
    let p = cat(&[
        b"\x80\x02}q\x00.",
        b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R.",
    ]);
    assert_malicious(&scan("m.pkl", &p), "PKL001");
}

/// CVE-2025-10155: a plain pickle with a PyTorch extension is still scanned.
#[test]
fn cve_2025_10155_pickle_named_like_pytorch() {
    let r = scan(
        "pytorch_model.bin",
        b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R.",
    );
    assert_malicious(&r, "PKL001");
}

/// GHSA-97f8-7cmv-76j2: a legacy "magic number" produced by a call is not
/// trusted; every stream is scanned.
#[test]
fn ghsa_97f8_computed_legacy_magic() {
    let p = cat(&[
        b"\x80\x02cbuiltins\nint\nX\x04\x00\x00\x001950\x85R.",
        b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R.",
    ]);
    assert_malicious(&scan("m.pt", &p), "PKL001");
}

/// modelscan#85: BUILD plants attributes on an imported global.
#[test]
fn modelscan_85_build_on_global() {
    let p = b"\x80\x02cnumpy\nprod\n}X\x01\x00\x00\x00aX\x02\x00\x00\x00ossb0N.";
    assert_malicious(&scan("m.pkl", p), "PKL005");
}

/// EXT1 resolves through a registry the scanner cannot see.
#[test]
fn ext_opcode_is_malicious() {
    assert_malicious(
        &scan("m.pkl", b"\x80\x02\x82\xe1X\x02\x00\x00\x00id\x85R."),
        "PKL004",
    );
}

/// Protocol 0 INST and protocol 1 OBJ call their class directly.
#[test]
fn inst_and_obj_opcodes() {
    assert_malicious(&scan("m.pkl", b"(S'id'\nios\nsystem\n."), "PKL001");
    assert_malicious(&scan("m.pkl", b"(cos\nsystem\nS'id'\no."), "PKL001");
}

/// joblib writes raw array bytes after each NumpyArrayWrapper BUILD; the
/// walker skips exactly those bytes and finds the payload after them.
#[test]
fn joblib_inline_array_bytes_are_skipped() {
    let mut p = b"\x80\x04cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81}(".to_vec();
    p.extend(unicode("shape"));
    p.extend(b"K\x02\x85");
    p.extend(unicode("dtype"));
    p.extend(b"cnumpy\ndtype\n");
    p.extend(unicode("f8"));
    p.extend(b"\x89\x88\x87R");
    p.extend(unicode("numpy_array_alignment_bytes"));
    p.extend(b"K\x10ub");
    p.push(3); // padding length
    p.extend([0xffu8; 3]);
    p.extend([0x80u8; 16]); // two float64 values that look like opcodes
    p.extend(b"0cos\nsystem\nX\x02\x00\x00\x00id\x85R.");
    let r = scan("m.joblib", &p);
    assert_eq!(r.format, modelgate::scan::Kind::Joblib);
    assert_malicious(&r, "PKL001");
    assert!(!rules(&r).contains(&"PKL006"), "{:#?}", r.findings);
}

/// Benign: enum members pickled through getattr stay clean.
#[test]
fn enum_member_getattr_is_clean() {
    let p = b"\x80\x02cbuiltins\ngetattr\nctransformers.trainer_utils\nIntervalStrategy\nX\x05\x00\x00\x00STEPS\x86R.";
    let r = scan("training_args.bin", p);
    assert_eq!(r.verdict, Verdict::Clean, "{:#?}", r.findings);
}

/// Number lines in every form Python's `int()` and `float()` accept keep
/// the walk going: a payload behind them is still seen.
#[test]
fn protocol_0_numbers_python_accepts_do_not_stop_the_walk() {
    let p = b"(F1_0.5\nF-inf\nFNaN\nF 2e-3 \nI 12 \nI01\nL12L\nl0cos\nsystem\n(S'echo pwned'\ntR.";
    assert_malicious(&scan("m.pkl", p), "PKL001");
}

/// Benign: text that starts with pickle opcode letters is not a pickle.
#[test]
fn text_is_not_a_pickle() {
    for text in [
        &b"cat\nfood\nis nice\n"[..],
        b"(see below) the model",
        b"import os\nos.system('x')\n",
        // BINFLOAT, POP, STOP: a stream no unpickler finishes.
        b"GIT v1.5.0.1 Release Notes\n==========================\n",
        // BINFLOAT, DUP, STOP: a valid tiny pickle, then text.
        b"GIT v1.5.2.1 Release Notes\n==========================\n",
        // A brace at byte 8 is not a safetensors header.
        b"Query: {{ query }}\nDocument: {{ document }}\n",
        // A zlib-shaped start that does not inflate.
        b"x^2 + y^2 = z^2\n",
    ]
    .into_iter()
    .map(<[u8]>::to_vec)
    // FLOAT opcodes whose lines are no numbers, thousands of them.
    .chain([b"FUNC:_ZGTtNKSt11logic_error4whatEv@@GLIBCXX_3.4.22\n".repeat(2000)])
    {
        let text = text.as_slice();
        let r = scan("notes.txt", text);
        assert_eq!(
            r.verdict,
            Verdict::Clean,
            "{:?}: {:#?}",
            String::from_utf8_lossy(text),
            r.findings
        );
    }
}

/// Compression wrappers a user decompresses before loading: zstd (`.zst`
/// checkpoints) and LZ4 frames (joblib's `lz4` compressor).
#[test]
fn zstd_and_lz4_wrapped_pickles_are_scanned() {
    use std::io::Write;
    let payload: &[u8] = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R.";
    let zst =
        ruzstd::encoding::compress_to_vec(payload, ruzstd::encoding::CompressionLevel::Fastest);
    let r = scan("model.pt.zst", &zst);
    assert_malicious(&r, "PKL001");
    let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
    enc.write_all(payload).unwrap();
    let lz4 = enc.finish().unwrap();
    assert_malicious(&scan("model.joblib", &lz4), "PKL001");
}

/// A zip appended after a valid safetensors body: zip readers open it from
/// the end, so its members are scanned (as data trailing the tensors).
#[test]
fn safetensors_with_appended_zip() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rules/PKL001/bad_zip_after_safetensors.safetensors"
    );
    let r = scan("model.safetensors", &std::fs::read(path).unwrap());
    assert_malicious(&r, "PKL001");
}

/// Callables published as missing from some scanner's denylist (picklescan,
/// modelscan and fickling advisories, 2024-2026) or that reach the same
/// effects: each must be malicious by name, imported by protocol-0 GLOBAL
/// and by protocol-4 STACK_GLOBAL alike. fickling GHSA-6ggj-6f2q-f7mx added
/// the subinterpreter entry points.
const DANGEROUS_GLOBALS: &[(&str, &str)] = &[
    ("uuid", "_get_command_stdout"),
    ("imaplib", "IMAP4_stream"),
    ("_pyrepl.pager", "pipe_pager"),
    ("torch.utils.collect_env", "run"),
    ("multiprocessing.util", "spawnv_passfds"),
    ("mlflow.projects.backend.local", "_run_entry_point"),
    ("ctypes", "CDLL"),
    ("signal", "raise_signal"),
    ("mailcap", "findmatch"),
    ("http.client", "HTTPConnection"),
    ("pkgutil", "resolve_name"),
    ("importlib", "import_module"),
    ("inspect", "getattr_static"),
    ("_operator", "methodcaller"),
    ("operator", "attrgetter"),
    // `functools.partial` itself only binds arguments (issue 11 class 5);
    // `reduce` calls its function.
    ("functools", "reduce"),
    ("torch.utils.bottleneck.__main__", "run_autograd_prof"),
    ("ensurepip", "_run_pip"),
    ("idlelib.pyshell", "ModifiedInterpreter.runcode"),
    ("doctest", "debug_script"),
    ("cProfile", "run"),
    ("pdb", "run"),
    ("timeit", "timeit"),
    ("trace", "Trace"),
    ("numpy.f2py", "compile"),
    ("torch._inductor.codecache", "compile_file"),
    ("_io", "FileIO"),
    ("urllib.request", "urlopen"),
    ("types", "CodeType"),
    ("logging", "FileHandler"),
    ("_posixsubprocess", "fork_exec"),
    ("site", "addsitedir"),
    ("atexit", "register"),
    ("smtplib", "SMTP"),
    ("linecache", "getlines"),
    ("gc", "get_objects"),
    ("platform", "popen"),
    ("_interpreters", "run_string"),
    ("_xxsubinterpreters", "run_string"),
    ("torch.distributed.rpc", "rpc_sync"),
    (
        "torch.distributed.nn.api.remote_module",
        "_instantiate_template",
    ),
    ("runpy", "_run_code"),
    ("pip", "main"),
    ("pip._internal.cli.main", "main"),
    ("venv", "create"),
    ("pydoc", "pipepager"),
    ("torch.serialization", "load"),
    ("torch", "load"),
    ("asyncio.unix_events", "_UnixSubprocessTransport._start"),
    ("pathlib", "os.system"),
    ("numpy", "sys.modules"),
    ("__builtin__", "eval"),
    ("builtins", "exec"),
    ("code", "InteractiveInterpreter.runsource"),
    ("subprocess", "run"),
    ("shutil", "rmtree"),
    ("tempfile", "NamedTemporaryFile"),
    ("webbrowser", "open"),
    ("socket", "create_connection"),
    ("ftplib", "FTP"),
    ("telnetlib", "Telnet"),
    ("nt", "system"),
    ("posix", "system"),
    ("pty", "spawn"),
    ("marshal", "loads"),
    ("_pickle", "loads"),
    ("dill", "loads"),
    ("cloudpickle.cloudpickle", "_make_function"),
    ("numpy", "load"),
    ("numpy.testing._private.utils", "runstring"),
    ("pandas", "read_csv"),
    ("pandas", "read_pickle"),
    ("torch.hub", "load"),
    ("torch.jit", "load"),
    ("torch.package", "PackageImporter"),
    ("keras.utils", "get_file"),
    ("sys", "modules"),
    ("os.path", "exists"),
    ("glob", "glob"),
    ("zipimport", "zipimporter"),
    ("ctypes.util", "find_library"),
    ("distutils.spawn", "spawn"),
    ("setuptools.sandbox", "run_setup"),
    ("jinja2", "Template"),
    ("yaml", "unsafe_load"),
    ("sqlite3", "connect"),
    ("threading", "Thread"),
    ("multiprocessing", "Process"),
    ("bdb", "Bdb.run"),
    ("profile", "run"),
    ("operator", "call"),
    ("builtins", "getattr"),
    ("builtins", "__import__"),
    ("builtins", "open"),
    ("builtins", "breakpoint"),
    ("builtins", "compile"),
    ("builtins", "globals"),
    ("builtins", "vars"),
    ("builtins", "setattr"),
    ("builtins", "input"),
    ("builtins", "help"),
    (
        "torch.fx.experimental.symbolic_shapes",
        "ShapeEnv.evaluate_guards_expression",
    ),
    ("torch.utils.cpp_extension", "load_inline"),
    ("os", "execv"),
    ("os", "popen"),
    ("os", "spawnlp"),
    ("os", "remove"),
    ("os", "fork"),
    ("os", "kill"),
    ("shelve", "open"),
    ("dbm", "open"),
    ("builtins", "memoryview"),
];

#[test]
fn published_dangerous_globals_are_malicious_by_either_import_opcode() {
    for (module, name) in DANGEROUS_GLOBALS {
        let global = format!("c{module}\n{name}\n(S'x'\ntR.");
        let stack_global = cat(&[
            b"\x80\x04",
            &unicode(module),
            &unicode(name),
            b"\x93",
            &unicode("x"),
            b"\x85R.",
        ]);
        for (how, bytes) in [
            ("GLOBAL", global.into_bytes()),
            ("STACK_GLOBAL", stack_global),
        ] {
            let r = scan("m.pkl", &bytes);
            assert_eq!(
                r.verdict,
                Verdict::Malicious,
                "{module}.{name} via {how}: {:#?}",
                r.findings
            );
        }
    }
}

/// modelscan#330: `numpy.__builtins__` hands out eval without naming it;
/// the same family reaches interpreter internals through `__globals__`,
/// `__self__` or `__subclasses__` of harmless objects.
#[test]
fn introspection_attributes_in_a_global_name_are_malicious() {
    for (module, name) in [
        ("numpy", "__builtins__"),
        ("collections", "OrderedDict.__init__.__globals__"),
        ("builtins", "print.__self__.eval"),
        ("builtins", "object.__subclasses__"),
        ("collections", "OrderedDict.__class__.__mro__"),
    ] {
        let p = cat(&[b"\x80\x04", &unicode(module), &unicode(name), b"\x93."]);
        assert_malicious(&scan("m.pkl", &p), "PKL001");
    }
}
