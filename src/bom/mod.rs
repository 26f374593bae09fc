//! An AI bill of materials: a CycloneDX 1.6 JSON document with one
//! `machine-learning-model` component per model.
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

pub mod hfcache;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::scan::{FileReport, Scanner, Verdict};
use crate::sign::{self, IgnoreSet, Method, TrustedKeys, tree};

/// One model to describe.
#[derive(Debug, Clone)]
pub struct ModelInput {
    /// A model directory or a single model file.
    pub path: PathBuf,
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
    let purl = hf.as_ref().and_then(hfcache::HfLocation::purl);
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
    let mut formats: Vec<String> = Vec::new();
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
                if let Some(fw) = framework(&report.format) {
                    if !frameworks.contains(&fw) {
                        frameworks.push(fw);
                    }
                    if !formats.contains(&report.format) {
                        formats.push(report.format.clone());
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
        props.push(prop("format", f.clone()));
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
        prop("format", r.format.clone()),
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
pub fn framework(format: &str) -> Option<&'static str> {
    Some(match format {
        "pytorch-zip" | "pytorch-legacy" => "pytorch",
        "pickle" => "pickle",
        "joblib" => "scikit-learn (joblib)",
        "safetensors" => "safetensors",
        "gguf" => "gguf (llama.cpp)",
        "onnx" => "onnx",
        "keras-v3" | "keras-h5" => "keras",
        "hdf5" => "hdf5",
        "savedmodel" => "tensorflow",
        "tflite" => "tensorflow-lite",
        "numpy" | "npz" => "numpy",
        _ => return None,
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
