//! OpenSSF Model Signing interoperability: signatures made by the reference
//! Python tool (`tests/fixtures/sign/gen.sh`, model-signing 1.1.1) verify,
//! every kind of tampering is caught and named, and signatures made by
//! `modelgate sign` are accepted by the reference verifier when it is
//! installed (`MODELGATE_OMS_PYTHON`, or a `python3` that can import
//! `model_signing`); otherwise that check reports itself skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::cargo_bin_cmd;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use modelgate::sign::{
    self, Method, Mismatch, SignError, SignOptions, SigningKey, TrustedKeys, VerifyOptions,
};

use crate::common;
use common::{copy_dir, sign_fixtures};

fn key(name: &str) -> TrustedKeys {
    TrustedKeys::from_files(&[sign_fixtures().join("keys").join(name)]).unwrap()
}

/// A writable copy of the fixture model, named `model` like the original.
fn model_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    copy_dir(&sign_fixtures().join("model"), &model);
    (dir, model)
}

fn verify(model: &Path, sig: &str, pubkey: &str) -> Result<sign::Verified, SignError> {
    sign::verify_model_with(
        model,
        &sign_fixtures().join(sig),
        &key(pubkey),
        &VerifyOptions::default(),
    )
}

#[test]
fn reference_signatures_verify_on_every_curve() {
    let model = sign_fixtures().join("model");
    for (sig, pubkey) in [
        ("model.p256.sig", "p256.pub"),
        ("model.p384.sig", "p384.pub"),
        ("model.p521.sig", "p521.pub"),
    ] {
        let v = verify(&model, sig, pubkey).unwrap_or_else(|e| panic!("{sig}: {e}"));
        assert_eq!(v.resources, 3, "{sig}");
        assert_eq!(v.manifest.model_name, "model");
        assert_eq!(v.manifest.method, Method::Files);
        assert!(v.ignored_files.contains(&"README.md".to_string()));
        assert!(v.ignored_files.contains(&".gitattributes".to_string()));
    }
}

#[test]
fn reference_single_file_and_shard_signatures_verify() {
    let file = sign_fixtures().join("model/model.safetensors");
    let v = verify(&file, "single-file.sig", "p256.pub").unwrap();
    assert_eq!(v.manifest.resources[0].0, ".");
    let v = verify(
        &sign_fixtures().join("model"),
        "model.shards.sig",
        "p256.pub",
    )
    .unwrap();
    assert_eq!(v.manifest.method, Method::Shards(32));
    assert_eq!(v.resources, 8);
}

#[test]
fn changed_byte_is_named() {
    let (_d, model) = model_copy();
    let path = model.join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(&path, bytes).unwrap();
    match verify(&model, "model.p256.sig", "p256.pub") {
        Err(SignError::Mismatch(m)) => {
            assert!(
                matches!(m.as_slice(), [Mismatch::Changed { name, .. }] if name == "model.safetensors"),
                "{m:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn added_file_is_named() {
    let (_d, model) = model_copy();
    std::fs::write(model.join("tokenizer/extra.pkl"), b"\x80\x04.").unwrap();
    match verify(&model, "model.p256.sig", "p256.pub") {
        Err(SignError::Mismatch(m)) => {
            assert_eq!(m, [Mismatch::Extra("tokenizer/extra.pkl".into())]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn removed_file_is_named() {
    let (_d, model) = model_copy();
    std::fs::remove_file(model.join("config.json")).unwrap();
    match verify(&model, "model.p384.sig", "p384.pub") {
        Err(SignError::Mismatch(m)) => assert_eq!(m, [Mismatch::Missing("config.json".into())]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn ignored_and_git_files_may_change() {
    let (_d, model) = model_copy();
    std::fs::write(model.join("README.md"), b"rewritten").unwrap();
    std::fs::create_dir_all(model.join(".git/objects")).unwrap();
    std::fs::write(model.join(".git/objects/x"), b"x").unwrap();
    verify(&model, "model.p256.sig", "p256.pub").unwrap();
}

#[test]
fn wrong_key_is_refused() {
    let model = sign_fixtures().join("model");
    assert!(matches!(
        verify(&model, "model.p256.sig", "other.pub"),
        Err(SignError::KeyMismatch { .. })
    ));
    // Without the hint, the signature check itself must fail.
    let dir = tempfile::tempdir().unwrap();
    let mut bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sign_fixtures().join("model.p256.sig")).unwrap())
            .unwrap();
    bundle["verificationMaterial"]["publicKey"]
        .as_object_mut()
        .unwrap()
        .remove("hint");
    let sig = dir.path().join("nohint.sig");
    std::fs::write(&sig, serde_json::to_vec(&bundle).unwrap()).unwrap();
    let r = sign::verify_model_with(&model, &sig, &key("other.pub"), &VerifyOptions::default());
    assert!(matches!(r, Err(SignError::BadSignature)), "{r:?}");
    // And the right key still verifies the hint-less bundle.
    sign::verify_model_with(&model, &sig, &key("p256.pub"), &VerifyOptions::default()).unwrap();
}

#[test]
fn edited_payload_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sign_fixtures().join("model.p256.sig")).unwrap())
            .unwrap();
    let payload = STANDARD
        .decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    // Point the signed config.json digest at different content: a forger's
    // edit that keeps the JSON valid.
    let text = String::from_utf8(payload).unwrap();
    let forged = text.replacen("\"digest\": \"2", "\"digest\": \"3", 1);
    assert_ne!(forged, text);
    bundle["dsseEnvelope"]["payload"] = STANDARD.encode(forged).into();
    let sig = dir.path().join("forged.sig");
    std::fs::write(&sig, serde_json::to_vec(&bundle).unwrap()).unwrap();
    let r = sign::verify_model_with(
        &sign_fixtures().join("model"),
        &sig,
        &key("p256.pub"),
        &VerifyOptions::default(),
    );
    assert!(matches!(r, Err(SignError::BadSignature)), "{r:?}");
}

#[test]
fn hugging_face_snapshot_symlinks_are_followed_inside_the_repo_only() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("hub/models--org--tiny");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let snap = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(snap.join("tokenizer")).unwrap();
    for (name, blob) in [
        ("config.json", "aaa"),
        ("model.safetensors", "bbb"),
        ("tokenizer/vocab.txt", "ccc"),
    ] {
        std::fs::copy(
            sign_fixtures().join("model").join(name),
            repo.join("blobs").join(blob),
        )
        .unwrap();
        let up = if name.contains('/') {
            "../../../"
        } else {
            "../../"
        };
        std::os::unix::fs::symlink(format!("{up}blobs/{blob}"), snap.join(name)).unwrap();
    }
    let v = verify(&snap, "model.p256.sig", "p256.pub").unwrap();
    assert_eq!(v.resources, 3);

    let outside = dir.path().join("outside.bin");
    std::fs::write(&outside, b"x").unwrap();
    std::os::unix::fs::symlink(&outside, snap.join("escape.bin")).unwrap();
    let err = verify(&snap, "model.p256.sig", "p256.pub").unwrap_err();
    assert!(err.to_string().contains("outside the model"), "{err}");
}

#[test]
fn modelgate_signatures_verify() {
    for (private, public) in [
        ("p256.pem", "p256.pub"),
        ("p256-sec1.pem", "p256.pub"),
        ("p384.pem", "p384.pub"),
        ("p521.pem", "p521.pub"),
    ] {
        let (_d, model) = model_copy();
        let signing = SigningKey::from_file(&sign_fixtures().join("keys").join(private)).unwrap();
        for method in [Method::Files, Method::Shards(16)] {
            let sig_path = model.join("model.sig");
            let bundle = sign::sign_model(
                &model,
                &signing,
                &SignOptions {
                    ignore_paths: vec!["README.md".into()],
                    signature_path: sig_path.clone(),
                    method,
                },
            )
            .unwrap();
            std::fs::write(&sig_path, bundle).unwrap();
            let v = sign::verify_model(&model, &key(public)).unwrap();
            assert_eq!(v.manifest.method, method);
            // The signature inside the model is recorded as ignored, so
            // verifiers that do not add it themselves (the reference
            // library API) still accept it.
            assert!(v.manifest.ignore_paths.contains(&"model.sig".to_string()));
        }
    }
}

#[test]
fn cli_exit_codes() {
    let f = sign_fixtures();
    cargo_bin_cmd!("modelgate")
        .args([
            "verify",
            "model",
            "--signature",
            "model.p256.sig",
            "--key",
            "keys/p256.pub",
        ])
        .current_dir(&f)
        .assert()
        .code(0)
        .stdout(predicates::str::contains("verified: model (3 files"));

    let (_d, model) = model_copy();
    std::fs::write(model.join("config.json"), b"{}").unwrap();
    cargo_bin_cmd!("modelgate")
        .arg("verify")
        .arg(&model)
        .arg("--signature")
        .arg(f.join("model.p256.sig"))
        .arg("--key")
        .arg(f.join("keys/p256.pub"))
        .assert()
        .code(1)
        .stdout(predicates::str::contains("changed file config.json"));

    cargo_bin_cmd!("modelgate")
        .args([
            "verify",
            "model",
            "--signature",
            "model.p256.sig",
            "--key",
            "keys/missing.pub",
        ])
        .current_dir(&f)
        .assert()
        .code(2);

    let dir = tempfile::tempdir().unwrap();
    let keyless = dir.path().join("keyless.sig");
    std::fs::write(
        &keyless,
        br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial":{"certificate":{"rawBytes":"MIIB"},"tlogEntries":[{"logIndex":"7"}]},
        "dsseEnvelope":{"payload":"e30=","payloadType":"application/vnd.in-toto+json",
        "signatures":[{"sig":"MEUC","keyid":""}]}}"#,
    )
    .unwrap();
    cargo_bin_cmd!("modelgate")
        .arg("verify")
        .arg(f.join("model"))
        .arg("--signature")
        .arg(&keyless)
        .arg("--key")
        .arg(f.join("keys/p256.pub"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("keyless"));
}

#[test]
fn cli_sign_then_verify_with_default_locations() {
    let (_d, model) = model_copy();
    let f = sign_fixtures();
    cargo_bin_cmd!("modelgate")
        .arg("sign")
        .arg(&model)
        .arg("--key")
        .arg(f.join("keys/p256.pem"))
        .assert()
        .code(0);
    assert!(model.join("model.sig").is_file());
    // A file inside the model finds the directory signature above it.
    cargo_bin_cmd!("modelgate")
        .arg("verify")
        .arg(model.join("tokenizer/vocab.txt"))
        .arg("--key")
        .arg(f.join("keys/p256.pub"))
        .assert()
        .code(0);
    assert_eq!(
        sign::find_signature(&model.join("tokenizer/vocab.txt"), Some(&model))
            .unwrap()
            .model,
        model
    );
}

/// The reference verifier's Python, if one is available.
fn reference_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MODELGATE_OMS_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let ok = Command::new("python3")
        .args(["-c", "import model_signing"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then(|| PathBuf::from("python3"))
}

#[test]
fn reference_verifier_accepts_modelgate_signatures() {
    let Some(python) = reference_python() else {
        println!(
            "SKIPPED: reference_verifier_accepts_modelgate_signatures: no Python with \
             model_signing (set MODELGATE_OMS_PYTHON to a venv python)"
        );
        return;
    };
    let f = sign_fixtures();
    // The reference CLI's verdict on `model` with the public key `public`.
    let cli_verify = |model: &Path, public: &str| {
        Command::new(&python)
            .args(["-m", "model_signing", "verify", "key"])
            .arg(model)
            .arg("--signature")
            .arg(model.join("model.sig"))
            .arg("--public_key")
            .arg(f.join("keys").join(public))
            .output()
            .unwrap()
    };
    for (private, public) in [("p256.pem", "p256.pub"), ("p521.pem", "p521.pub")] {
        let (_d, model) = model_copy();
        cargo_bin_cmd!("modelgate")
            .arg("sign")
            .arg(&model)
            .arg("--key")
            .arg(f.join("keys").join(private))
            .arg("--ignore-path")
            .arg("README.md")
            .assert()
            .code(0);
        let out = cli_verify(&model, public);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains("Verification succeeded"),
            "{private}: {text}"
        );
        // The library API, which takes the method from the signature and
        // does not add the signature file to the ignore list by itself:
        // files and shards.
        for shard in [None, Some("32")] {
            let mut cmd = cargo_bin_cmd!("modelgate");
            cmd.arg("sign")
                .arg(&model)
                .arg("--key")
                .arg(f.join("keys").join(private))
                .args(["--ignore-path", "README.md"]);
            if let Some(s) = shard {
                cmd.args(["--shard-size", s]);
            }
            cmd.assert().code(0);
            let script = "import sys\nfrom model_signing import verifying\n\
                verifying.Config().use_elliptic_key_verifier(public_key=sys.argv[1])\
                .verify(sys.argv[2], sys.argv[3])\nprint('API verification succeeded')";
            let out = Command::new(&python)
                .args(["-c", script])
                .arg(f.join("keys").join(public))
                .arg(&model)
                .arg(model.join("model.sig"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{private} {shard:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // And it notices tampering in what modelgate signed.
        std::fs::write(model.join("config.json"), b"{}").unwrap();
        let out = cli_verify(&model, public);
        assert!(!out.status.success());
    }
    println!("reference model_signing verifier accepted modelgate signatures");
}

/// #13 item 16: `sign` and `verify` spell the signature path the same way,
/// `--signature` (as the reference `model_signing` CLI does).
#[test]
fn sign_and_verify_share_the_signature_option() {
    let (d, model) = model_copy();
    let f = sign_fixtures();
    let sig = d.path().join("elsewhere.sig");
    cargo_bin_cmd!("modelgate")
        .arg("sign")
        .arg(&model)
        .arg("--key")
        .arg(f.join("keys/p256.pem"))
        .arg("--signature")
        .arg(&sig)
        .assert()
        .code(0);
    assert!(sig.is_file() && !model.join("model.sig").exists());
    cargo_bin_cmd!("modelgate")
        .arg("verify")
        .arg(&model)
        .arg("--key")
        .arg(f.join("keys/p256.pub"))
        .arg("--signature")
        .arg(&sig)
        .assert()
        .code(0);
}
