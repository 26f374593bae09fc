//! An AI bill of materials: a CycloneDX 1.6 JSON document with one
//! `machine-learning-model` component per model (a folder of model folders
//! is one component per model folder: see [`expand`]).
//!
//! Each model component carries its files as nested `file` components (name
//! relative to the model, SHA-256, size), the formats the scanner detected
//! from content (never from file names), the framework those formats imply,
//! a Hugging Face package URL when the model is a hub cache snapshot, the
//! scan verdict and every finding, and the signature status when a
//! signature is present. Facts CycloneDX has no field for are `properties`
//! in the `modelgate:` namespace.
//!
//! Invariants: file hashes are computed by streaming, the scanner reads what
//! it always reads (headers, pickles), and no model content is ever loaded.
//! A model whose files cannot be listed (a symlink out of the cache, an
//! unreadable file) still gets a component, with the error as a property:
//! an inventory that silently drops entries would be worse than one with a
//! visible hole. Output is validated against the official schema in
//! `tests/bom.rs`.
//!
//! Spec: CycloneDX 1.6 (`bom-1.6.schema.json`); purl-spec `huggingface`
//! type.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::hfcache::{self, HfLocation, RepoType};
use crate::scan::{FileReport, Kind, Scanner, Verdict};
use crate::sign::{self, IgnoreSet, Method, TrustedKeys, tree};

/// One model to describe.
#[derive(Debug, Clone)]
pub struct ModelInput {
    /// A model directory or a single model file.
    pub path: PathBuf,
}

/// How deep [`expand`] looks for model folders under one that is not.
const MAX_MODEL_DEPTH: usize = 8;

/// Bytes read from each file to tell a model file from anything else.
const SNIFF_BYTES: u64 = 4096;

/// The models a path given on the command line stands for. A file, or a
/// model folder (see [`is_model_folder`]), is one model. A folder that is
/// not one but holds model folders (`models/bert`, `models/gpt2`) stands
/// for each of them, found in sorted order up to a bounded depth, without
/// following symlinked folders; so each gets its own component with its
/// own verdict and signature status. A folder in which no model is found
/// is still described as one model, so that nothing given disappears from
/// the inventory.
pub fn expand(path: &Path) -> Vec<ModelInput> {
    let mut found = Vec::new();
    if path.is_dir() && !is_model_folder(path) {
        collect_model_folders(path, 0, &mut found);
    }
    if found.is_empty() {
        found.push(path.to_path_buf());
    }
    found.into_iter().map(|path| ModelInput { path }).collect()
}

fn collect_model_folders(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
    if depth >= MAX_MODEL_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut subdirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    subdirs.sort();
    for sub in subdirs {
        if is_model_folder(&sub) {
            found.push(sub);
        } else {
            collect_model_folders(&sub, depth + 1, found);
        }
    }
}

/// Whether `dir` is itself a model: it directly holds a signature, a
/// `config.json`, or a file whose content (not its name) is a model or an
/// archive format.
pub fn is_model_folder(dir: &Path) -> bool {
    use std::io::Read;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.filter_map(Result::ok).any(|e| {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !path.is_file() {
            return false;
        }
        if name == sign::SIGNATURE_FILE || name.ends_with(".sig") || name == "config.json" {
            return true;
        }
        let mut head = Vec::new();
        let read =
            std::fs::File::open(&path).and_then(|f| f.take(SNIFF_BYTES).read_to_end(&mut head));
        read.is_ok() && crate::scan::is_model_or_archive(&head, &name)
    })
}

/// What to put in the BOM besides the files.
#[derive(Debug, Clone, Default)]
pub struct BomOptions {
    /// Keys to verify signatures with; without them a present signature is
    /// reported as present but unchecked.
    pub keys: Option<TrustedKeys>,
}

/// The BOM of `models`, scanned with `scanner`.
pub fn build(models: &[ModelInput], scanner: &Scanner, opts: &BomOptions) -> Value {
    let components: Vec<Value> = models
        .iter()
        .enumerate()
        .map(|(i, m)| model_component(i, &m.path, scanner, opts))
        .collect();
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        "version": 1,
        "metadata": {
            "timestamp": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "tools": {
                "components": [{
                    "type": "application",
                    "name": "modelgate",
                    "version": env!("CARGO_PKG_VERSION"),
                }]
            }
        },
        "components": components,
    })
}

/// The package URL of a model repo at a commit (purl-spec `huggingface`
/// type: lowercase commit as the version); other repo kinds have none.
fn purl(loc: &HfLocation) -> Option<String> {
    if loc.repo_type != RepoType::Model {
        return None;
    }
    let escape = |s: &str| crate::report::percent_encode(s, b"");
    let path: Vec<String> = loc.repo_id.split('/').map(escape).collect();
    Some(format!(
        "pkg:huggingface/{}@{}",
        path.join("/"),
        escape(&loc.commit.to_ascii_lowercase())
    ))
}

fn prop(name: &str, value: impl Into<String>) -> Value {
    json!({ "name": format!("modelgate:{name}"), "value": value.into() })
}

fn model_component(index: usize, path: &Path, scanner: &Scanner, opts: &BomOptions) -> Value {
    let hf = hfcache::locate(path).filter(|l| l.path_in_repo.is_empty() || path.is_file());
    let name = match &hf {
        Some(loc) if loc.path_in_repo.is_empty() => loc.repo_id.clone(),
        _ => path
            .file_name()
            .map(ToOwned::to_owned)
            .or_else(|| {
                std::fs::canonicalize(path)
                    .ok()
                    .and_then(|c| c.file_name().map(ToOwned::to_owned))
            })
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string()),
    };
    let purl = hf.as_ref().and_then(purl);
    let mut c = serde_json::Map::new();
    c.insert("type".into(), json!("machine-learning-model"));
    c.insert(
        "bom-ref".into(),
        json!(
            purl.clone()
                .unwrap_or_else(|| format!("model-{}", index + 1))
        ),
    );
    c.insert("name".into(), json!(name));
    if let Some(loc) = &hf {
        c.insert("version".into(), json!(loc.commit.to_ascii_lowercase()));
    }
    if let Some(p) = &purl {
        c.insert("purl".into(), json!(p));
    }
    let mut props = vec![prop("path", path.display().to_string())];

    let mut ignore = IgnoreSet::default();
    for p in tree::DEFAULT_IGNORES {
        let _ = ignore.add(p);
    }
    let files = match tree::collect(path, &ignore)
        .and_then(|t| tree::hash(&t, Method::Files).map(|h| (t, h)))
    {
        Ok(v) => v,
        Err(e) => {
            props.push(prop("error", e.to_string()));
            c.insert("properties".into(), json!(props));
            return Value::Object(c);
        }
    };
    let (tree, hashes) = files;

    let mut worst = Verdict::Clean;
    let mut formats: Vec<Kind> = Vec::new();
    let mut frameworks: Vec<&'static str> = Vec::new();
    let mut file_components = Vec::new();
    for (entry, hashed) in tree.entries.iter().zip(&hashes) {
        let display = if entry.name == "." {
            path.display().to_string()
        } else {
            format!("{}/{}", path.display(), entry.name)
        };
        let mut fprops = vec![prop("size", entry.size.to_string())];
        match scanner.scan_file(&entry.path, &display) {
            Ok(report) => {
                worst = worst.max(report.verdict);
                if let Some(fw) = framework(report.format) {
                    if !frameworks.contains(&fw) {
                        frameworks.push(fw);
                    }
                    if !formats.contains(&report.format) {
                        formats.push(report.format);
                    }
                }
                fprops.extend(report_props(&report));
            }
            Err(e) => {
                worst = worst.max(Verdict::Suspicious);
                fprops.push(prop("scan-error", e.to_string()));
            }
        }
        let file_name = if entry.name == "." {
            name.clone()
        } else {
            entry.name.clone()
        };
        file_components.push(json!({
            "type": "file",
            "bom-ref": format!("{}#{}", c.get("bom-ref").and_then(Value::as_str).unwrap_or_default(), entry.name),
            "name": file_name,
            "hashes": [{ "alg": "SHA-256", "content": hashed.digest }],
            "properties": fprops,
        }));
    }
    if let [single] = hashes.as_slice() {
        c.insert(
            "hashes".into(),
            json!([{ "alg": "SHA-256", "content": single.digest }]),
        );
    }
    props.push(prop("verdict", worst.as_str()));
    props.push(prop("files", tree.entries.len().to_string()));
    props.push(prop("size", tree.total_bytes().to_string()));
    for f in &formats {
        props.push(prop("format", f.name()));
    }
    for fw in &frameworks {
        props.push(prop("framework", *fw));
    }
    props.extend(signature_props(path, opts));
    c.insert("properties".into(), json!(props));
    c.insert("components".into(), json!(file_components));
    Value::Object(c)
}

/// The verdict, status and findings of one file as properties.
fn report_props(r: &FileReport) -> Vec<Value> {
    let mut v = vec![
        prop("format", r.format.name()),
        prop("verdict", r.verdict.as_str()),
    ];
    match &r.status {
        crate::scan::ScanStatus::Complete => {}
        crate::scan::ScanStatus::Inconclusive { reasons } => {
            v.push(prop(
                "scan-status",
                format!("inconclusive: {}", reasons.join("; ")),
            ));
        }
        crate::scan::ScanStatus::Skipped { reason } => {
            v.push(prop("scan-status", format!("skipped: {reason}")));
        }
    }
    for f in &r.findings {
        let mut text = format!("{} {} {}: {}", f.rule.id, f.rule.name, f.verdict, f.message);
        let loc = f.location.to_string();
        if !loc.is_empty() {
            text.push_str(&format!(" [{loc}]"));
        }
        if let Some(e) = &f.evidence {
            text.push_str(&format!(" (evidence: {e})"));
        }
        v.push(prop("finding", text));
    }
    v
}

/// The ML framework a content-detected format belongs to; `None` for files
/// that are not model weights (text, images, unknown bytes).
pub fn framework(format: Kind) -> Option<&'static str> {
    Some(match format {
        Kind::PytorchZip | Kind::PytorchLegacy => "pytorch",
        Kind::Pickle => "pickle",
        Kind::Joblib => "scikit-learn (joblib)",
        Kind::Safetensors => "safetensors",
        // Big-endian GGUF (s390x builds of llama.cpp) is the same format.
        Kind::Gguf | Kind::GgufBigEndian => "gguf (llama.cpp)",
        Kind::Onnx => "onnx",
        Kind::KerasV3 | Kind::KerasH5 => "keras",
        Kind::Hdf5 => "hdf5",
        Kind::SavedModel => "tensorflow",
        Kind::TfLite => "tensorflow-lite",
        Kind::Numpy | Kind::Npz => "numpy",
        Kind::Zip
        | Kind::Tar
        | Kind::Gzip
        | Kind::Bzip2
        | Kind::Xz
        | Kind::Lzma
        | Kind::Zlib
        | Kind::Zstd
        | Kind::Lz4
        | Kind::ZFile
        | Kind::SevenZ
        | Kind::Tombstone
        | Kind::Text
        | Kind::Image
        | Kind::Unknown => return None,
    })
}

fn signature_props(path: &Path, opts: &BomOptions) -> Vec<Value> {
    let stop = if path.is_dir() {
        Some(path)
    } else {
        path.parent()
    };
    let Some(loc) = sign::find_signature(path, stop) else {
        return vec![prop("signature", "absent")];
    };
    let mut v = vec![prop("signature-file", loc.signature.display().to_string())];
    match &opts.keys {
        None => v.push(prop(
            "signature",
            "present (not verified: no trusted key given)",
        )),
        Some(keys) => match sign::verify_model_with(
            &loc.model,
            &loc.signature,
            keys,
            &sign::VerifyOptions::default(),
        ) {
            Ok(ok) => {
                v.push(prop("signature", "verified"));
                v.push(prop("signature-key", ok.manifest.key.hint().to_string()));
            }
            Err(e) if e.is_verification_failure() => {
                v.push(prop("signature", format!("failed: {e}")));
            }
            Err(e) => v.push(prop("signature", format!("not checked: {e}"))),
        },
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purl_of_a_model_snapshot() {
        let c = "0123456789abcdef0123456789ABCDEF01234567";
        let loc = hfcache::locate(Path::new(&format!(
            "/x/hub/models--google--gemma-2b/snapshots/{c}/model.safetensors"
        )))
        .unwrap();
        assert_eq!(
            purl(&loc).unwrap(),
            format!("pkg:huggingface/google/gemma-2b@{}", c.to_ascii_lowercase())
        );
        let ds = hfcache::locate(Path::new("hub/datasets--a--b/snapshots/c/f")).unwrap();
        assert_eq!(purl(&ds), None);
    }
}
