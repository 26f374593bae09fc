//! `modelgate bom`: the output validates against the official CycloneDX 1.6
//! JSON schema (vendored in tests/schemas/cyclonedx, see SOURCE.md there)
//! and says what it should about each model.

use std::path::{Path, PathBuf};

use assert_cmd::cargo::cargo_bin_cmd;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(name: &str) -> Value {
    let p = root().join("tests/schemas/cyclonedx").join(name);
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Validates against bom-1.6 with its two referenced schemas resolved
/// locally; nothing is fetched.
fn assert_valid_cyclonedx(doc: &Value) {
    let registry = jsonschema::Registry::new()
        .add(
            "http://cyclonedx.org/schema/spdx.schema.json",
            load("spdx.schema.json"),
        )
        .unwrap()
        .add(
            "http://cyclonedx.org/schema/jsf-0.82.schema.json",
            load("jsf-0.82.schema.json"),
        )
        .unwrap()
        .prepare()
        .unwrap();
    let schema = load("bom-1.6.schema.json");
    let validator = jsonschema::options()
        .with_registry(&registry)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "schema errors: {errors:#?}");
}

/// A pickle whose REDUCE calls os.system: the scanner calls it malicious.
const EVIL_PICKLE: &[u8] = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.";

fn hf_cache(dir: &Path) -> (PathBuf, PathBuf) {
    let cache = dir.join("hub");
    let repo = cache.join("models--acme--tiny-bert");
    let commit = "AbCdEf0123456789abcdef0123456789abcdef01";
    let snap = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::copy(
        root().join("tests/fixtures/sign/model/model.safetensors"),
        repo.join("blobs/1111"),
    )
    .unwrap();
    std::os::unix::fs::symlink("../../blobs/1111", snap.join("model.safetensors")).unwrap();
    std::fs::write(repo.join("blobs/2222"), EVIL_PICKLE).unwrap();
    std::os::unix::fs::symlink("../../blobs/2222", snap.join("pytorch_model.bin")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    (cache, snap)
}

#[test]
fn bom_of_paths_and_hf_cache_is_valid_cyclonedx() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, _snap) = hf_cache(dir.path());
    let out = cargo_bin_cmd!("modelgate")
        .arg("bom")
        .arg("--hf-cache")
        .arg(root().join("tests/fixtures/sign/model"))
        .arg("--key")
        .arg(root().join("tests/fixtures/sign/keys/p256.pub"))
        .env("HF_HUB_CACHE", &cache)
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let doc: Value = serde_json::from_slice(&out).unwrap();
    assert_valid_cyclonedx(&doc);

    assert_eq!(doc["specVersion"], "1.6");
    let comps = doc["components"].as_array().unwrap();
    assert_eq!(comps.len(), 2);
    let prop = |c: &Value, name: &str| -> Vec<String> {
        c["properties"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == format!("modelgate:{name}"))
            .map(|p| p["value"].as_str().unwrap().to_string())
            .collect()
    };

    // The plain directory: four files (.gitattributes is a git file), no
    // signature next to it.
    let plain = &comps[0];
    assert_eq!(plain["type"], "machine-learning-model");
    assert_eq!(plain["name"], "model");
    assert_eq!(prop(plain, "files"), ["4"]);
    assert_eq!(prop(plain, "framework"), ["safetensors"]);
    assert_eq!(prop(plain, "signature"), ["absent"]);
    let files = plain["components"].as_array().unwrap();
    let st = files
        .iter()
        .find(|f| f["name"] == "model.safetensors")
        .unwrap();
    assert_eq!(
        st["hashes"][0]["content"],
        "c59a27da4b80b2de91258e77d86d7f5bfd30cb97916362c6c78a1dc26f8e9297"
    );
    assert_eq!(prop(st, "size"), ["101"]);
    assert_eq!(prop(st, "format"), ["safetensors"]);

    // The cache snapshot: purl, commit, malicious verdict and the finding.
    let hf = &comps[1];
    assert_eq!(hf["name"], "acme/tiny-bert");
    assert_eq!(
        hf["purl"],
        "pkg:huggingface/acme/tiny-bert@abcdef0123456789abcdef0123456789abcdef01"
    );
    assert_eq!(hf["version"], "abcdef0123456789abcdef0123456789abcdef01");
    assert_eq!(prop(hf, "verdict"), ["malicious"]);
    let bin = hf["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "pytorch_model.bin")
        .unwrap();
    assert_eq!(prop(bin, "verdict"), ["malicious"]);
    assert!(
        prop(bin, "finding")
            .iter()
            .any(|f| f.contains("os.system") || f.contains("system")),
        "{bin:#}"
    );
}

#[test]
fn bom_reports_signature_status() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir_all(model.join("tokenizer")).unwrap();
    let src = root().join("tests/fixtures/sign/model");
    for f in ["config.json", "model.safetensors", "tokenizer/vocab.txt"] {
        std::fs::copy(src.join(f), model.join(f)).unwrap();
    }
    let keys = root().join("tests/fixtures/sign/keys");
    cargo_bin_cmd!("modelgate")
        .arg("sign")
        .arg(&model)
        .arg("--key")
        .arg(keys.join("p256.pem"))
        .assert()
        .code(0);
    let run = |key: &str| -> Value {
        let out = cargo_bin_cmd!("modelgate")
            .arg("bom")
            .arg(&model)
            .arg("--key")
            .arg(keys.join(key))
            .assert()
            .code(0)
            .get_output()
            .stdout
            .clone();
        serde_json::from_slice(&out).unwrap()
    };
    let signature = |doc: &Value| -> String {
        doc["components"][0]["properties"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "modelgate:signature")
            .unwrap()["value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let good = run("p256.pub");
    assert_valid_cyclonedx(&good);
    assert_eq!(signature(&good), "verified");
    std::fs::write(model.join("config.json"), b"{}").unwrap();
    let bad = run("p256.pub");
    assert_valid_cyclonedx(&bad);
    assert!(
        signature(&bad).starts_with("failed:"),
        "{}",
        signature(&bad)
    );
    assert!(signature(&bad).contains("config.json"));
}

#[test]
fn bom_of_a_single_file_has_its_hash_on_the_model() {
    let file = root().join("tests/fixtures/sign/model/model.safetensors");
    let out = cargo_bin_cmd!("modelgate")
        .arg("bom")
        .arg(&file)
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let doc: Value = serde_json::from_slice(&out).unwrap();
    assert_valid_cyclonedx(&doc);
    let c = &doc["components"][0];
    assert_eq!(c["name"], "model.safetensors");
    assert_eq!(c["hashes"][0]["alg"], "SHA-256");
}

/// #13 item 14: a folder of model folders is one component per model, each
/// with its own signature status (`models/bert/model.sig` verifies, so the
/// bert component says so; gpt2 has none).
#[test]
fn bom_of_a_folder_of_models_has_one_component_per_model() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let src = root().join("tests/fixtures/sign/model");
    for name in ["bert", "org/gpt2"] {
        let m = models.join(name);
        std::fs::create_dir_all(&m).unwrap();
        for f in ["config.json", "model.safetensors"] {
            std::fs::copy(src.join(f), m.join(f)).unwrap();
        }
    }
    std::fs::write(models.join("README.md"), "# our models\n").unwrap();
    let keys = root().join("tests/fixtures/sign/keys");
    cargo_bin_cmd!("modelgate")
        .arg("sign")
        .arg(models.join("bert"))
        .arg("--key")
        .arg(keys.join("p256.pem"))
        .assert()
        .code(0);
    let out = cargo_bin_cmd!("modelgate")
        .arg("bom")
        .arg(&models)
        .arg("--key")
        .arg(keys.join("p256.pub"))
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let doc: Value = serde_json::from_slice(&out).unwrap();
    assert_valid_cyclonedx(&doc);
    let comps = doc["components"].as_array().unwrap();
    let names: Vec<&str> = comps.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bert", "gpt2"]);
    let prop = |c: &Value, name: &str| -> Vec<String> {
        c["properties"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == format!("modelgate:{name}"))
            .map(|p| p["value"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(prop(&comps[0], "signature"), ["verified"]);
    assert_eq!(prop(&comps[1], "signature"), ["absent"]);
    assert_eq!(prop(&comps[1], "files"), ["2"]);
}
