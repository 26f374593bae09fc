//! `modelgate guard` in a real interpreter: a venv with numpy, joblib,
//! scikit-learn and pandas (tests/fixtures/guard-venv.sh, MODELGATE_GUARD_VENV
//! or target/guard-venv), the guard installed into it by the real binary,
//! files written by tests/fixtures/gen/guard_fixtures.py and loaded by
//! tests/fixtures/guard_load.py; Keras in a venv of its own (keras-venv.sh).
//! Malicious files would create a marker file when loaded: the guard must
//! stop them before that. Without the venvs (no Python or PyPI) the tests
//! skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_modelgate");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn venv() -> Option<PathBuf> {
    let dir = std::env::var_os("MODELGATE_GUARD_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/guard-venv"));
    Command::new(dir.join("bin/python"))
        .args(["-c", "import numpy, joblib, sklearn, pandas"])
        .env("MODELGATE_GUARD", "off")
        .output()
        .is_ok_and(|o| o.status.success())
        .then_some(dir)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn modelgate(cwd: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(cwd)
        .env_remove("MODELGATE_POLICY")
        .env_remove("VIRTUAL_ENV")
        .env("XDG_CONFIG_HOME", cwd)
        .args(args)
        .output()
        .expect("modelgate runs")
}

struct Env {
    python: PathBuf,
    dir: PathBuf,
}

impl Env {
    fn load(&self, loader: &str, file: &str, guard: bool) -> Output {
        let mut c = Command::new(&self.python);
        c.current_dir(&self.dir)
            .env("KERAS_BACKEND", "jax")
            .arg(fixtures().join("guard_load.py"))
            .arg(loader)
            .arg(self.dir.join(file));
        if guard {
            c.env_remove("MODELGATE_GUARD");
        } else {
            c.env("MODELGATE_GUARD", "off");
        }
        c.output().expect("python runs")
    }
}

/// One test, run in order: the guard is installed into a shared venv.
#[test]
fn guard_blocks_malicious_loads_and_lets_benign_ones_through() {
    let Some(venv) = venv() else {
        println!(
            "SKIPPED: guard_blocks_malicious_loads_and_lets_benign_ones_through: no venv with \
             numpy, joblib, scikit-learn and pandas (set MODELGATE_GUARD_VENV, or run \
             tests/fixtures/guard-venv.sh target/guard-venv; it needs PyPI)"
        );
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_path_buf();
    let marker = dir.join("MARKER");
    let python = venv.join("bin/python");
    let venv_arg = venv.to_str().expect("utf-8");
    // Start from a clean venv, then generate the files unguarded.
    modelgate(&dir, &["guard", "uninstall", "--venv", venv_arg]);
    let out = Command::new(&python)
        .arg(fixtures().join("gen/guard_fixtures.py"))
        .arg(&dir)
        .arg(&marker)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", text(&out));
    assert!(!marker.exists());

    let out = modelgate(&dir, &["guard", "status", "--venv", venv_arg]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // From a directory without a policy: the built-in defaults, frozen.
    let out = modelgate(&dir, &["guard", "install", "--venv", venv_arg]);
    assert!(out.status.success(), "{}", text(&out));
    let out = modelgate(&dir, &["guard", "status", "--venv", venv_arg]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("installed in"), "{}", text(&out));

    let env = Env {
        python: python.clone(),
        dir: dir.clone(),
    };
    for (loader, file) in [
        ("pickle", "benign.p2.pkl"),
        ("pickle", "benign.p4.pkl"),
        ("pickle-bytes", "benign.p2.pkl"),
        ("joblib", "benign.joblib"),
        ("joblib-fileobj", "benign.joblib"),
        ("numpy", "benign_object.npy"),
        ("pandas", "benign_frame.pkl"),
    ] {
        let out = env.load(loader, file, true);
        assert!(out.status.success(), "{loader} {file}: {}", text(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "loaded");
    }
    for (loader, file, rule) in [
        // The wrapped loaders scan the file first and name the rule.
        // (`pathlib.Path.touch` writes files: a denied writer, PKL001.)
        ("joblib", "evil.joblib", "PKL001"),
        ("joblib-fileobj", "evil.joblib", "PKL001"),
        ("numpy", "evil_object.npy", "PKL001"),
        ("pandas", "evil_frame.pkl", "PKL001"),
        ("pandas", "evil_shell.pkl", "PKL001"),
        // pickle itself: the audit hook stops the import.
        ("pickle", "evil_touch.pkl", "pathlib.Path.touch"),
        ("pickle", "evil_shell.pkl", "posix.system"),
        ("pickle-bytes", "evil_touch.pkl", "pathlib.Path.touch"),
    ] {
        let out = env.load(loader, file, true);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{loader} {file}: {}",
            text(&out)
        );
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.starts_with("modelgate.UnsafeModelError: "),
            "{loader} {file}: {}",
            text(&out)
        );
        assert!(said.contains(rule), "{loader} {file}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("modelgate guard: blocked"),
            "{}",
            text(&out)
        );
        assert!(!marker.exists(), "{loader} {file} ran its payload");
    }

    let torch = Command::new(&python)
        .args(["-c", "import torch"])
        .env("MODELGATE_GUARD", "off")
        .output()
        .is_ok_and(|o| o.status.success());
    if torch {
        let out = Command::new(&python)
            .env("MODELGATE_GUARD", "off")
            .arg("-c")
            .arg(format!(
                "import torch; torch.save({{'w': torch.ones(2)}}, {:?})",
                dir.join("benign.pt")
            ))
            .output()
            .expect("python runs");
        assert!(out.status.success(), "{}", text(&out));
        let out = env.load("torch", "benign.pt", true);
        assert!(out.status.success(), "{}", text(&out));
        let out = env.load("torch", "evil_touch.pkl", true);
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        assert!(!marker.exists());
    } else {
        println!(
            "SKIPPED (torch part only): torch is not installed in {}",
            venv.display()
        );
    }

    // Switched off for one process: stock behaviour, the payload runs.
    let out = env.load("pickle", "evil_touch.pkl", false);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        marker.exists(),
        "MODELGATE_GUARD=off should load as stock pickle does"
    );
    std::fs::remove_file(&marker).expect("rm marker");

    let out = modelgate(&dir, &["guard", "uninstall", "--venv", venv_arg]);
    assert!(out.status.success(), "{}", text(&out));
    let out = modelgate(&dir, &["guard", "status", "--venv", venv_arg]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = env.load("joblib", "evil.joblib", true);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        marker.exists(),
        "uninstalled: stock joblib runs the payload"
    );
}

/// Keras 3 in its own venv (tests/fixtures/keras-venv.sh, MODELGATE_KERAS_VENV
/// or target/keras-venv): `load_model(..., safe_mode=False)` of a `.keras`
/// file whose Lambda layer carries marshalled bytecode is refused before
/// Keras rebuilds the layer, through both import paths users write.
#[test]
fn guard_stops_a_keras_lambda_before_load_model_runs_it() {
    let venv = std::env::var_os("MODELGATE_KERAS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/keras-venv"));
    let python = venv.join("bin/python");
    let has_keras = Command::new(&python)
        .args(["-c", "import keras"])
        .env("KERAS_BACKEND", "jax")
        .env("MODELGATE_GUARD", "off")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_keras {
        println!(
            "SKIPPED: guard_stops_a_keras_lambda_before_load_model_runs_it: no venv with Keras 3 \
             (set MODELGATE_KERAS_VENV, or run tests/fixtures/keras-venv.sh target/keras-venv; \
             it needs PyPI)"
        );
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_path_buf();
    let marker = dir.join("MARKER");
    let venv_arg = venv.to_str().expect("utf-8");
    modelgate(&dir, &["guard", "uninstall", "--venv", venv_arg]);
    let out = Command::new(&python)
        .env("KERAS_BACKEND", "jax")
        .arg(fixtures().join("gen/guard_keras_fixtures.py"))
        .arg(&dir)
        .arg(&marker)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", text(&out));
    assert!(!marker.exists());
    let out = modelgate(&dir, &["guard", "install", "--venv", venv_arg]);
    assert!(out.status.success(), "{}", text(&out));

    let env = Env {
        python,
        dir: dir.clone(),
    };
    for loader in ["keras", "keras-models"] {
        let out = env.load(loader, "benign.keras", true);
        assert!(out.status.success(), "{loader}: {}", text(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "loaded");
        let out = env.load(loader, "evil_lambda.keras", true);
        assert_eq!(out.status.code(), Some(3), "{loader}: {}", text(&out));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.starts_with("modelgate.UnsafeModelError: ") && said.contains("KRS001"),
            "{loader}: {}",
            text(&out)
        );
        assert!(!marker.exists(), "{loader} ran the Lambda payload");
    }
    // The fixture is a real attack: stock Keras runs it.
    let out = env.load("keras", "evil_lambda.keras", false);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        marker.exists(),
        "unguarded load_model should run the Lambda"
    );
    let out = modelgate(&dir, &["guard", "uninstall", "--venv", venv_arg]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn policy_export_lists_the_effective_allowlist() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    std::fs::write(
        dir.join("policy.toml"),
        "[pickle]\nallow = [\"mypkg.models.TinyNet\"]\ndeny = [\"collections.OrderedDict\"]\n",
    )
    .expect("policy");
    let out = modelgate(dir, &["policy", "export", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let globals: Vec<&str> = doc["globals"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(globals.contains(&"mypkg.models.TinyNet"));
    assert!(globals.contains(&"torch._utils._rebuild_tensor_v2"));
    assert!(!globals.contains(&"collections.OrderedDict"));
    assert!(!globals.iter().any(|g| g.starts_with("os.")));
    assert_eq!(doc["python2_aliases"]["__builtin__.set"], "builtins.set");
    assert_eq!(doc["policy_digest"].as_str().map(str::len), Some(64));
    for (format, key) in [("fickling", "also_allow"), ("skops", "trusted")] {
        let out = modelgate(dir, &["policy", "export", "--format", format]);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(doc[key].as_array().map(Vec::len), Some(globals.len()));
    }
    let out = modelgate(dir, &["policy", "export", "--format", "torch"]);
    assert!(out.status.success(), "{}", text(&out));
    let snippet = String::from_utf8_lossy(&out.stdout);
    assert!(snippet.contains("add_safe_globals"), "{snippet}");
    assert!(
        snippet.contains(r#"["mypkg.models","TinyNet"]"#),
        "{snippet}"
    );
    // The snippet is valid Python.
    let check = Command::new("python3")
        .args(["-c", "import ast, sys; ast.parse(sys.stdin.read())"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .expect("stdin")
                .write_all(snippet.as_bytes())?;
            c.wait()
        })
        .expect("python3 runs");
    assert!(check.success());
}

/// `guard status` notices a policy edited after install (the frozen
/// allowlist no longer matches it) and a guard that is gone.
#[test]
fn guard_status_reports_a_stale_policy() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let venv = dir.join("venv");
    let made = Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .output();
    if !made.is_ok_and(|o| o.status.success()) {
        println!("SKIPPED: guard_status_reports_a_stale_policy: python3 -m venv failed");
        return;
    }
    let policy = dir.join("team.toml");
    std::fs::write(&policy, "[pickle]\nallow = [\"mypkg.models.TinyNet\"]\n").expect("policy");
    let python = venv.join("bin/python");
    let py = python.to_str().expect("utf-8");
    let out = modelgate(
        dir,
        &["guard", "install", "--python", py, "--policy", "team.toml"],
    );
    assert!(out.status.success(), "{}", text(&out));
    // The frozen allowlist holds the team's class, and the guard loads.
    let out = Command::new(&python)
        .args([
            "-c",
            "import modelgate_guard as g; print(('mypkg.models', 'TinyNet') in g._ALLOWED)",
        ])
        .output()
        .expect("python runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "True",
        "{}",
        text(&out)
    );
    let out = modelgate(dir, &["guard", "status", "--python", py]);
    assert!(out.status.success(), "{}", text(&out));
    // Callers catch the guard's error as `modelgate.UnsafeModelError`.
    let out = Command::new(&python)
        .args([
            "-c",
            "import modelgate, modelgate_guard as g; \
             assert modelgate.UnsafeModelError is g.UnsafeModelError; \
             print(modelgate.UnsafeModelError.__module__)",
        ])
        .output()
        .expect("python runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "modelgate",
        "{}",
        text(&out)
    );
    std::fs::write(&policy, "[pickle]\nallow = []\n").expect("policy");
    let out = modelgate(dir, &["guard", "status", "--python", py]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("policy changed"), "{}", text(&out));
    let out = modelgate(dir, &["guard", "uninstall", "--python", py]);
    assert!(out.status.success(), "{}", text(&out));
    let out = modelgate(dir, &["guard", "status", "--python", py]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not installed"), "{}", text(&out));
    let out = Command::new(&python)
        .args(["-c", "import modelgate"])
        .output()
        .expect("python runs");
    assert!(
        !out.status.success(),
        "uninstall removes the modelgate package"
    );
}
