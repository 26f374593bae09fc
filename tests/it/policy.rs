//! `modelgate policy check` and `policy init` through the real binary:
//! every validation problem is reported with file, line and column, config
//! errors exit 3, and the template round-trips.

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;

fn modelgate(cwd: &Path, args: &[&str]) -> Output {
    Command::cargo_bin("modelgate")
        .expect("binary")
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("runs")
}

fn fixtures() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/policy"
    ))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn every_validation_error_is_reported_with_position() {
    let out = modelgate(fixtures(), &["policy", "check", "invalid.toml"]);
    assert_eq!(out.status.code(), Some(3));
    insta::assert_snapshot!("invalid_policy", stderr(&out));
}

#[test]
fn unknown_key_is_a_positioned_error() {
    let out = modelgate(fixtures(), &["policy", "check", "typo.toml"]);
    assert_eq!(out.status.code(), Some(3));
    insta::assert_snapshot!("typo_policy", stderr(&out));
}

#[test]
fn extends_cycle_is_detected() {
    let out = modelgate(fixtures(), &["policy", "check", "cycle-a.toml"]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains("`extends` cycle") && err.contains("cycle-b.toml:1:11"),
        "{err}"
    );
}

#[test]
fn check_explains_the_effective_policy() {
    let out = modelgate(fixtures(), &["policy", "check", "team.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The expired exemption is a warning, not an error.
    assert!(
        stderr(&out).contains("exemption expired on 2020-01-01"),
        "{}",
        stderr(&out)
    );
    insta::assert_snapshot!("team_policy_summary", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn init_writes_the_template_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = modelgate(dir.path(), &["policy", "init"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let written = std::fs::read_to_string(dir.path().join("policy.toml")).expect("written");
    let template =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("policy.toml"))
            .expect("template");
    assert_eq!(written, template);
    let out = modelgate(dir.path(), &["policy", "init"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--force"));
    assert!(
        modelgate(dir.path(), &["policy", "init", "--force"])
            .status
            .success()
    );
    // The template is valid and found by walking up from a subdirectory.
    let sub = dir.path().join("a/b");
    std::fs::create_dir_all(&sub).expect("mkdir");
    let out = modelgate(&sub, &["policy", "check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("malicious → block, suspicious → block"));
}

/// #13 item 13: every unknown key and mistyped value is reported in one
/// run, each at its position, and the entries that are well formed are
/// still validated (the bad action and the short sha256).
#[test]
fn every_shape_problem_is_reported_in_one_run() {
    let out = modelgate(fixtures(), &["policy", "check", "many-problems.toml"]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    for expected in [
        "unknown field `malicous`",
        "many-problems.toml:4:1",
        "unknown field `suspicous`",
        "many-problems.toml:5:1",
        "unknown field `on-eror`",
        "unknown field `reson`",
        "many-problems.toml:11:34",
        "invalid type: string \"os.system\", expected a sequence",
        "unknown field `requir-format`",
        "unknown action `blok`",
        "`sha256` must be 64 hexadecimal digits",
        "unknown field `colour`",
        "unknown field `daemn`",
        "policy invalid: 10 errors",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}
