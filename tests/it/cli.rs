//! The `modelgate` binary as users run it: exit codes, output formats,
//! stdin, and the rule catalogue.

use assert_cmd::Command;
use predicates::prelude::*;

fn modelgate() -> Command {
    Command::cargo_bin("modelgate").unwrap()
}

fn fixture(rel: &str) -> String {
    format!("{}/tests/fixtures/rules/{rel}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn malicious_file_exits_1_with_rule_and_help() {
    modelgate()
        .args(["scan", &fixture("PKL001/bad_os_system.pkl")])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("malicious[PKL001]"))
        .stdout(predicate::str::contains("os.system(\"echo pwned\")"))
        .stdout(predicate::str::contains(
            "help: Re-save the weights as safetensors",
        ));
}

#[test]
fn clean_file_exits_0() {
    modelgate()
        .args(["scan", &fixture("PKL001/good_ordered_dict.pkl")])
        .assert()
        .code(0);
}

#[test]
fn fail_on_malicious_lets_suspicious_pass() {
    let path = fixture("PKL002/bad_user_class.pkl");
    modelgate().args(["scan", &path]).assert().code(1);
    modelgate()
        .args(["scan", "--fail-on", "malicious", &path])
        .assert()
        .code(0);
}

#[test]
fn unreadable_path_exits_2() {
    modelgate()
        .args(["scan", "/nonexistent/model.pt"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/nonexistent/model.pt"));
}

#[test]
fn bad_arguments_exit_2() {
    modelgate()
        .args(["scan", "--format", "yaml"])
        .assert()
        .code(2);
}

#[test]
fn stdin_is_scanned() {
    modelgate()
        .args(["scan", "--format", "json", "-"])
        .write_stdin(&b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R."[..])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("\"rule\": \"PKL001\""));
}

#[test]
fn json_report_shape_is_stable() {
    let out = modelgate()
        .current_dir(fixture(""))
        .args([
            "scan",
            "--format",
            "json",
            "PKL001/bad_os_system.pkl",
            "PKL006/bad_truncated.pkl",
            "PKL001/good_ordered_dict.pkl",
        ])
        .output()
        .unwrap();
    let mut doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["tool"]["version"] = "[version]".into();
    insta::assert_json_snapshot!(doc);
}

#[test]
fn rules_lists_and_explains() {
    modelgate()
        .arg("rules")
        .assert()
        .success()
        .stdout(predicate::str::contains("PKL001"));
    modelgate()
        .args(["rules", "pkl003"])
        .assert()
        .success()
        .stdout(predicate::str::contains("STACK_GLOBAL"))
        .stdout(predicate::str::contains("How to fix it"));
    modelgate().args(["rules", "NOPE999"]).assert().code(2);
}

/// Policy rules are in the one registry: they can be explained, and the
/// listing's columns line up whatever the verdict's length.
#[test]
fn rules_lists_policy_rules_in_aligned_columns() {
    modelgate()
        .args(["rules", "POL003"])
        .assert()
        .success()
        .stdout(predicate::str::contains("signature-required"))
        .stdout(predicate::str::contains("How to fix it"));
    let out = modelgate().arg("rules").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let ids: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    insta::assert_snapshot!("rule_ids", ids.join("\n"));
    let name_columns: std::collections::HashSet<usize> = text
        .lines()
        .map(|l| {
            let name = l.split_whitespace().nth(2).unwrap();
            l.find(&format!(" {name} ")).unwrap()
        })
        .collect();
    assert_eq!(name_columns.len(), 1, "misaligned:\n{text}");
}

#[test]
fn directories_are_walked_and_text_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("README.md"),
        "# a model\nuses os.system in prose\n",
    )
    .unwrap();
    std::fs::create_dir(tmp.path().join("sub")).unwrap();
    std::fs::copy(
        fixture("PKL001/bad_os_system.pkl"),
        tmp.path().join("sub/.hidden_weights"),
    )
    .unwrap();
    modelgate()
        .args(["scan", "--verbose"])
        .arg(tmp.path())
        .assert()
        .code(1)
        .stdout(predicate::str::contains("README.md: skipped: text"))
        .stdout(predicate::str::contains(".hidden_weights"));
}

/// The policy decides `scan`'s exit code: an exemption pinned to the file's
/// sha256 lets it pass, `warn` reports without failing, and an invalid
/// policy is a configuration error (3), never silently ignored.
#[test]
fn scan_obeys_the_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model.pkl");
    std::fs::copy(fixture("PKL002/bad_user_class.pkl"), &model).unwrap();
    let sha = modelgate::digest::sha256_file(&model).unwrap();
    modelgate()
        .current_dir(tmp.path())
        .args(["scan", "model.pkl"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "failed the policy:\n  model.pkl (block: PKL002)",
        ))
        .stderr(predicate::str::contains("1 failed the policy"));

    std::fs::write(
        tmp.path().join("policy.toml"),
        format!("[[exemptions]]\nsha256 = \"{sha}\"\nreason = \"our own TinyNet, reviewed\"\n"),
    )
    .unwrap();
    modelgate()
        .current_dir(tmp.path())
        .args(["scan", "model.pkl"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "exempted by the policy:\n  model.pkl",
        ));

    std::fs::write(
        tmp.path().join("policy.toml"),
        "[actions]\nsuspicious = \"warn\"\n",
    )
    .unwrap();
    modelgate()
        .current_dir(tmp.path())
        .args(["scan", "model.pkl"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("warnings:\n  model.pkl (PKL002)"));

    std::fs::write(
        tmp.path().join("policy.toml"),
        "[actions]\nsuspicious = \"maybe\"\n",
    )
    .unwrap();
    modelgate()
        .current_dir(tmp.path())
        .args(["scan", "model.pkl"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("policy.toml:2"));
}

/// `install --service` writes the daemon's user unit with the Hugging Face
/// cache location baked in (services do not see shell exports), and
/// `uninstall --service` removes it.
#[test]
fn install_and_uninstall_service() {
    let home = tempfile::tempdir().unwrap();
    let unit = home
        .path()
        .join(".config/systemd/user/modelgate-watch.service");
    modelgate()
        .env("HOME", home.path())
        .env("HF_HOME", "/data/hf")
        .env_remove("XDG_CONFIG_HOME")
        .args(["install", "--service"])
        .assert()
        .success();
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains("HF_HOME=/data/hf"), "{text}");
    assert!(text.contains("watch"));
    modelgate()
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .args(["uninstall", "--service"])
        .assert()
        .success();
    assert!(!unit.exists());
}

/// `install.sh --uninstall` removes the installed binary (and would remove
/// the service and the current repository's hooks), without building.
#[test]
fn install_sh_uninstall_removes_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("prefix/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let installed = bin.join("modelgate");
    std::fs::copy(assert_cmd::cargo::cargo_bin("modelgate"), &installed).unwrap();
    let script = format!("{}/install.sh", env!("CARGO_MANIFEST_DIR"));
    std::process::Command::new("sh")
        .arg(&script)
        .arg("--uninstall")
        .current_dir(tmp.path())
        .env("PREFIX", tmp.path().join("prefix"))
        .env("HOME", tmp.path())
        .env("XDG_CONFIG_HOME", tmp.path().join("config"))
        .env("XDG_DATA_HOME", tmp.path().join("data"))
        .status()
        .map(|s| assert!(s.success()))
        .unwrap();
    assert!(
        !installed.exists(),
        "install.sh --uninstall left the binary"
    );
}

#[test]
fn color_quiet_and_output_file_follow_cli_conventions() {
    let bad = fixture("PKL001/bad_os_system.pkl");
    let colored = modelgate()
        .args(["--color", "always", "scan", &bad])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&colored.stdout).contains("\x1b["));
    let plain = modelgate()
        .args(["scan", "--color", "always", &bad])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&plain.stdout).contains("\x1b["),
        "an explicit --color always wins over NO_COLOR"
    );
    let auto = modelgate().args(["scan", &bad]).output().unwrap();
    assert!(!String::from_utf8_lossy(&auto.stdout).contains("\x1b["));

    modelgate()
        .args(["scan", "-q", &bad])
        .assert()
        .code(1)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::is_empty());

    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("report.json");
    modelgate()
        .args(["scan", "--format", "json", "-o"])
        .arg(&report)
        .arg(&bad)
        .assert()
        .code(1)
        .stdout(predicate::str::is_empty());
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(doc["files"][0]["verdict"], "malicious");
}

#[test]
fn exclude_and_gitignore_leave_paths_out() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir(root.join(".git")).unwrap();
    std::fs::write(root.join(".gitignore"), "build/\n").unwrap();
    std::fs::create_dir_all(root.join("build")).unwrap();
    std::fs::create_dir_all(root.join("vendor")).unwrap();
    let payload = std::fs::read(fixture("PKL001/bad_os_system.pkl")).unwrap();
    std::fs::write(root.join("build/a.pkl"), &payload).unwrap();
    std::fs::write(root.join("vendor/b.pkl"), &payload).unwrap();
    modelgate()
        .args(["scan", "--exclude", "vendor/"])
        .arg(root)
        .assert()
        .success();
    modelgate()
        .args(["scan", "--no-ignore", "--exclude", "vendor/"])
        .arg(root)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("build/a.pkl"));
    modelgate()
        .args(["scan", "--exclude", "[invalid"])
        .arg(root)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--exclude"));
}

/// `modelgate scan | head`: the reader goes away, the scan ends quietly
/// with the SIGPIPE exit code, not an error message or a panic.
#[test]
fn broken_pipe_ends_quietly() {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("modelgate"))
        .args(["scan", "-v"])
        .arg(format!(
            "{}/tests/fixtures/rules",
            env!("CARGO_MANIFEST_DIR")
        ))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(
        !stderr.contains("error") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    for shell in ["bash", "zsh", "fish"] {
        modelgate()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains("quarantine"));
    }
    modelgate()
        .arg("man")
        .assert()
        .success()
        .stdout(predicate::str::contains(".TH modelgate"))
        .stdout(predicate::str::contains("scan"));
}

/// Adopting modelgate on an existing tree: `policy baseline` writes pinned
/// exemptions whose placeholder reason the policy refuses until edited;
/// the JSON report carries the sha256 they pin.
#[test]
fn baseline_exemptions_need_a_real_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    std::fs::create_dir(&models).unwrap();
    std::fs::copy(
        fixture("PKL001/bad_os_system.pkl"),
        models.join("legacy.pkl"),
    )
    .unwrap();
    let policy = tmp.path().join("policy.toml");
    std::fs::write(&policy, "").unwrap();
    let out = modelgate()
        .current_dir(tmp.path())
        .args(["policy", "baseline", "models"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let entries = String::from_utf8(out.stdout).unwrap();
    assert!(entries.contains("rule = \"PKL001\""), "{entries}");
    std::fs::write(&policy, &entries).unwrap();
    modelgate()
        .current_dir(tmp.path())
        .args(["policy", "check"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("placeholder"));
    std::fs::write(
        &policy,
        entries.replace(
            "TODO: why this file is trusted",
            "reviewed by the ML team: the payload is a test",
        ),
    )
    .unwrap();
    modelgate()
        .current_dir(tmp.path())
        .args(["scan", "models"])
        .assert()
        .success();
    let json = modelgate()
        .current_dir(tmp.path())
        .args(["scan", "--format", "json", "models"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let sha = doc["files"][0]["sha256"].as_str().unwrap();
    assert!(entries.contains(sha));
}

/// Path rules are relative to the policy file's folder (#13 item 1): the
/// same tree is blocked whether scanned from the policy's folder, from
/// inside `models/`, or from elsewhere with `--policy` and an absolute
/// path; a file outside the policy's folder matches no path rule.
#[test]
fn path_rules_do_not_depend_on_the_working_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let pr = tmp.path().join("pr");
    let models = pr.join("models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::copy(
        fixture("PKL001/good_ordered_dict.pkl"),
        models.join("m.pkl"),
    )
    .unwrap();
    std::fs::write(
        pr.join("policy.toml"),
        "[[paths]]\nname = \"models\"\nglobs = [\"models/**\"]\nrequire-format = [\"safetensors\"]\n",
    )
    .unwrap();
    let abs_models = models.to_str().unwrap();
    let runs: [(&std::path::Path, Vec<&str>); 4] = [
        (&pr, vec!["scan", "models"]),
        (&models, vec!["scan", "."]),
        (
            tmp.path(),
            vec!["scan", "--policy", "pr/policy.toml", abs_models],
        ),
        (
            &models,
            vec!["scan", "--policy", "../policy.toml", "../models/m.pkl"],
        ),
    ];
    for (cwd, args) in runs {
        modelgate()
            .current_dir(cwd)
            .args(&args)
            .assert()
            .code(1)
            .stdout(predicate::str::contains("POL001"));
    }
    // The same file outside pr/ is no business of pr's path rules.
    let outside = tmp.path().join("models");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::copy(models.join("m.pkl"), outside.join("m.pkl")).unwrap();
    modelgate()
        .current_dir(tmp.path())
        .args(["scan", "--policy", "pr/policy.toml", "models"])
        .assert()
        .code(0)
        .stderr(predicate::str::contains(
            "warning: no path rule applies to 1 scanned file(s) (e.g. models/m.pkl)",
        ));
}

/// #13 item 18: error messages say each thing once: no libgit2
/// `class=…; code=…` tails, no doubled "No such file or directory", no
/// repeated path.
#[test]
fn error_messages_have_no_noise() {
    let tmp = tempfile::tempdir().unwrap();
    let count = |haystack: &str, needle: &str| haystack.matches(needle).count();
    let run = |args: &[&str]| {
        let out = modelgate()
            .current_dir(tmp.path())
            .env_remove("GIT_DIR")
            .env_remove("GIT_INDEX_FILE")
            .env_remove("GIT_WORK_TREE")
            .env("GIT_CEILING_DIRECTORIES", tmp.path().parent().unwrap())
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    let err = run(&["scan", "missing.pkl"]);
    assert_eq!(count(&err, "missing.pkl"), 1, "{err}");
    assert_eq!(count(&err, "No such file or directory"), 1, "{err}");

    let model = fixture("PKL001/good_ordered_dict.pkl");
    let err = run(&[
        "verify",
        &model,
        "--key",
        "missing.pub",
        "--signature",
        "x.sig",
    ]);
    assert_eq!(count(&err, "missing.pub"), 1, "{err}");
    assert_eq!(count(&err, "No such file or directory"), 1, "{err}");

    for args in [&["hook", "pre-commit"][..], &["install"][..]] {
        let err = run(args);
        assert!(err.contains("could not find repository"), "{err}");
        assert!(!err.contains("class=") && !err.contains("code="), "{err}");
    }
}
