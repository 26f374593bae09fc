//! The Python packaging path: the maturin wheel installs the binary into a
//! fresh virtual environment, and the pre-commit framework runs the
//! `language: python` hooks of .pre-commit-hooks.yaml from that wheel.
//! The wheel comes from tests/fixtures/wheel-venv.sh (MODELGATE_WHEEL, or
//! the one it leaves under target/wheel); without it the tests skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A protocol-0 pickle that calls `os.system("echo pwned")` when loaded.
const EVIL: &[u8] = b"cos\nsystem\n(S'echo pwned'\ntR.";

fn safetensors() -> Vec<u8> {
    let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header);
    v.extend_from_slice(&[0; 8]);
    v
}

fn wheel() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MODELGATE_WHEEL") {
        return Some(PathBuf::from(p));
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wheel/wheels-dev");
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(cmd: &mut Command) -> Output {
    cmd.env_remove("MODELGATE_POLICY")
        .env_remove("VIRTUAL_ENV")
        .output()
        .expect("runs")
}

#[test]
fn wheel_puts_the_binary_on_path_in_a_fresh_venv() {
    let Some(wheel) = wheel() else {
        println!(
            "SKIPPED: wheel_puts_the_binary_on_path_in_a_fresh_venv: no wheel \
             (set MODELGATE_WHEEL, or run tests/fixtures/wheel-venv.sh target/wheel)"
        );
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let venv = tmp.path().join("venv");
    let out = run(Command::new("python3").arg("-m").arg("venv").arg(&venv));
    assert!(out.status.success(), "{}", text(&out));
    // A local wheel with no dependencies: pip needs no index.
    let out = run(Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "--no-index", "--disable-pip-version-check"])
        .arg(&wheel));
    assert!(out.status.success(), "{}", text(&out));
    let bin = venv.join("bin/modelgate");
    assert!(
        bin.is_file(),
        "the wheel put no binary in {}",
        bin.display()
    );
    let out = run(Command::new(&bin).arg("--version"));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(env!("CARGO_PKG_VERSION")),
        "{}",
        text(&out)
    );
    std::fs::write(tmp.path().join("evil.pkl"), EVIL).expect("write");
    std::fs::write(tmp.path().join("model.safetensors"), safetensors()).expect("write");
    // Found on PATH, the way a user runs it after `pip install`.
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = run(Command::new("modelgate")
        .env("PATH", &path)
        .current_dir(tmp.path())
        .args(["scan", "evil.pkl"]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("PKL001"), "{}", text(&out));
    let out = run(Command::new("modelgate")
        .env("PATH", &path)
        .current_dir(tmp.path())
        .args(["scan", "model.safetensors"]));
    assert!(out.status.success(), "{}", text(&out));
}

/// Isolated from the user's and the system's git configuration.
fn git(dir: &Path, home: &Path, args: &[&str]) -> Output {
    let out = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", home)
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_WORK_TREE")
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", text(&out));
    out
}

/// The `language: python` hook as the manifest defines it, as a local hook
/// whose environment pre-commit builds from the wheel
/// (`additional_dependencies`) instead of from this source tree.
fn python_hook(id: &str, wheel: &Path) -> String {
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".pre-commit-hooks.yaml"),
    )
    .expect("manifest");
    let start = manifest
        .find(&format!("- id: {id}\n"))
        .unwrap_or_else(|| panic!("no hook {id}"));
    let rest = &manifest[start..];
    let end = rest[2..].find("\n- id:").map_or(rest.len(), |e| e + 3);
    let def = &rest[..end];
    assert!(def.contains("language: python"), "{def}");
    let lines: Vec<String> = def
        .lines()
        .map(|l| format!("      {}", l.trim_start_matches(['-', ' '])))
        .collect();
    format!(
        "    - {}\n{}\n      additional_dependencies: [\"{}\"]\n",
        lines[0].trim(),
        lines[1..].join("\n"),
        wheel.display()
    )
}

#[test]
fn pre_commit_python_hook_from_the_wheel_blocks_a_malicious_pickle() {
    let Some(wheel) = wheel() else {
        println!(
            "SKIPPED: pre_commit_python_hook_from_the_wheel_blocks_a_malicious_pickle: no wheel \
             (set MODELGATE_WHEEL, or run tests/fixtures/wheel-venv.sh target/wheel)"
        );
        return;
    };
    let pre_commit = match std::env::var_os("MODELGATE_PRE_COMMIT") {
        Some(p) => PathBuf::from(p),
        None => {
            let p =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("target/precommit-venv/bin/pre-commit");
            if !p.is_file() {
                println!(
                    "SKIPPED: pre_commit_python_hook_from_the_wheel_blocks_a_malicious_pickle: no \
                     pre-commit (set MODELGATE_PRE_COMMIT, or run tests/fixtures/precommit-venv.sh \
                     target/precommit-venv)"
                );
                return;
            }
            p
        }
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path();
    let dir = tmp.path().join("work");
    std::fs::create_dir(&dir).expect("mkdir");
    git(&dir, home, &["init", "-q", "-b", "main"]);
    git(&dir, home, &["config", "user.name", "Test"]);
    git(&dir, home, &["config", "user.email", "test@example.com"]);
    std::fs::write(
        dir.join(".pre-commit-config.yaml"),
        format!(
            "repos:\n  - repo: local\n    hooks:\n{}",
            python_hook("modelgate-python", &wheel)
        ),
    )
    .expect("config");
    let pc = |args: &[&str]| {
        run(Command::new(&pre_commit)
            .current_dir(&dir)
            .env("HOME", home)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("PRE_COMMIT_HOME", home.join("pre-commit-cache"))
            .args(args))
    };
    std::fs::write(dir.join("model.safetensors"), safetensors()).expect("write");
    git(&dir, home, &["add", "."]);
    let out = pc(&["run", "modelgate-python"]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(dir.join("evil.pkl"), EVIL).expect("write");
    git(&dir, home, &["add", "evil.pkl"]);
    let out = pc(&["run", "modelgate-python"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("PKL001") && text(&out).contains("evil.pkl"),
        "{}",
        text(&out)
    );
    // The binary came from the wheel, in pre-commit's own environment.
    let envs = std::fs::read_dir(home.join("pre-commit-cache"))
        .expect("cache")
        .flatten()
        .filter_map(|repo| std::fs::read_dir(repo.path()).ok())
        .flatten()
        .flatten()
        .any(|env| {
            env.file_name().to_string_lossy().starts_with("py_env-")
                && env.path().join("bin/modelgate").is_file()
        });
    assert!(envs, "no modelgate in pre-commit's python environment");
}
