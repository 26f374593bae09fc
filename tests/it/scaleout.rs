//! Manifest mode, sharding and the shared verdict cache, through the real
//! binary: shards run as parallel processes sharing one cache.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const EVIL: &[u8] = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.";

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_modelgate"))
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env("MODELGATE_STATE_DIR", dir.join("state"))
        .output()
        .unwrap()
}

/// 40 files, 9 distinct contents: each blob sits in several "repos", as
/// one base model does in many fine-tunes.
fn tree(dir: &Path) {
    for repo in 0..10 {
        let d = dir.join(format!("t/repo{repo}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("model.pkl"), EVIL).unwrap();
        std::fs::write(
            d.join("weights.pkl"),
            [0x80, 2, b'K', (repo % 4) as u8, b'.'],
        )
        .unwrap();
        std::fs::write(d.join("config.json"), format!("{{\"n\": {}}}", repo % 3)).unwrap();
        std::fs::write(d.join("README.md"), "base model\n").unwrap();
    }
}

fn manifest(dir: &Path) {
    let out = run(dir, &["manifest", "t"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(dir.join("m.jsonl"), &out.stdout).unwrap();
}

fn results(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Three shards in parallel, one cache: the union of their results is the
/// unsharded run's, each file once, each distinct blob scanned once.
fn sharded(dir: &Path, extra: &[&str]) -> Vec<Value> {
    let children: Vec<_> = (0..3)
        .map(|i| {
            let shard = format!("{i}/3");
            let out = format!("out{i}.jsonl");
            let mut args = vec![
                "scan",
                "--manifest",
                "m.jsonl",
                "--results",
                &out,
                "--shard",
                &shard,
                "--cache",
                "cache",
            ];
            args.extend_from_slice(extra);
            Command::new(bin())
                .args(&args)
                .current_dir(dir)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        // 1 for the shard that holds the malicious pickle, 0 for the others.
        assert!(matches!(c.wait().unwrap().code(), Some(0 | 1)));
    }
    (0..3)
        .flat_map(|i| results(&dir.join(format!("out{i}.jsonl"))))
        .collect()
}

fn by_path(lines: &[Value]) -> BTreeMap<String, (String, String, Value)> {
    let mut m = BTreeMap::new();
    for l in lines {
        let prev = m.insert(
            l["path"].as_str().unwrap().to_string(),
            (
                l["verdict"].as_str().unwrap().to_string(),
                l["sha256"].as_str().unwrap().to_string(),
                l["rules"].clone(),
            ),
        );
        assert!(prev.is_none(), "{} appears twice", l["path"]);
    }
    m
}

fn scans_per_blob(lines: &[Value]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for l in lines {
        let n = m
            .entry(l["sha256"].as_str().unwrap().to_string())
            .or_insert(0);
        if l["cached"] == Value::Bool(false) {
            *n += 1;
        }
    }
    m
}

#[test]
fn shards_share_one_cache_and_match_an_unsharded_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tree(d);
    manifest(d);

    let first = sharded(d, &[]);
    assert_eq!(first.len(), 40);
    let scans = scans_per_blob(&first);
    assert_eq!(scans.len(), 9);
    assert!(
        scans.values().all(|&n| n == 1),
        "every distinct blob scanned exactly once: {scans:?}"
    );
    for l in &first {
        assert_eq!(l["scanner_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(l["rules_digest"].as_str().unwrap().len(), 32);
        for k in ["size", "format", "status"] {
            assert!(!l[k].is_null(), "{k} missing in {l}");
        }
    }

    let out = run(
        d,
        &[
            "scan",
            "--manifest",
            "m.jsonl",
            "--results",
            "all.jsonl",
            "--no-cache",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let unsharded = results(&d.join("all.jsonl"));
    assert!(unsharded.iter().all(|l| l["cached"] == Value::Bool(false)));
    assert_eq!(by_path(&first), by_path(&unsharded));

    // Second run: nothing scanned.
    let second = sharded(d, &[]);
    assert_eq!(second.len(), 40);
    assert!(
        second.iter().all(|l| l["cached"] == Value::Bool(true)),
        "second run scanned something"
    );
    assert_eq!(by_path(&second), by_path(&unsharded));

    // merge folds the shards and exits like scan.
    let out = run(
        d,
        &[
            "merge",
            "out0.jsonl",
            "out1.jsonl",
            "out2.jsonl",
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["files"].as_array().unwrap().len(), 40);
    let out = run(
        d,
        &[
            "merge",
            "out0.jsonl",
            "out1.jsonl",
            "out2.jsonl",
            "--format",
            "sarif",
        ],
    );
    assert_eq!(out.status.code(), Some(1));

    // A limit changes the settings digest: everything is scanned again.
    std::fs::write(
        d.join("policy.toml"),
        "[limits]\nmax-pickle-opcodes = 1000\n",
    )
    .unwrap();
    let third = sharded(d, &["--policy", "policy.toml"]);
    assert!(
        third
            .iter()
            .filter(|l| l["cached"] == Value::Bool(false))
            .count()
            == 9
    );
}

#[test]
fn corrupt_and_truncated_entries_are_rescanned_and_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tree(d);
    manifest(d);
    let args = [
        "scan",
        "--manifest",
        "m.jsonl",
        "--results",
        "r.jsonl",
        "--cache",
        "cache",
        "--cache-backend",
        "dir",
    ];
    assert_eq!(run(d, &args).status.code(), Some(1));
    // Damage every entry: half truncated, half with a verdict flipped.
    let mut damaged = 0;
    for fan in std::fs::read_dir(d.join("cache/objects")).unwrap() {
        for e in std::fs::read_dir(fan.unwrap().path()).unwrap() {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            if text.contains("\"malicious\"") {
                // Forged: a checksum no longer matching a "clean" verdict.
                std::fs::write(&p, text.replace("\"malicious\"", "\"clean\"")).unwrap();
            } else if damaged % 2 == 0 {
                std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
            } else {
                let mut flipped = bytes.clone();
                let at = flipped.len() - 3;
                flipped[at] ^= 0x01;
                std::fs::write(&p, flipped).unwrap();
            }
            damaged += 1;
        }
    }
    assert_eq!(damaged, 9);
    let out = run(d, &args);
    assert_eq!(out.status.code(), Some(1));
    let again = results(&d.join("r.jsonl"));
    assert!(
        scans_per_blob(&again).values().all(|&n| n == 1),
        "a damaged entry was trusted"
    );
    assert!(
        again
            .iter()
            .filter(|l| l["path"].as_str().unwrap().ends_with("model.pkl"))
            .all(|l| l["verdict"] == "malicious")
    );
    // Rewritten: the next run is served from the cache.
    run(d, &args);
    assert!(
        results(&d.join("r.jsonl"))
            .iter()
            .all(|l| l["cached"] == Value::Bool(true))
    );
    let stats = run(d, &["cache", "stats", "--cache", "cache", "--json"]);
    let stats: Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["current"], 9);
    assert_eq!(stats["backend"], "dir");
}

#[test]
fn a_wrong_manifest_sha256_is_scanned_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("model.pkl"), EVIL).unwrap();
    std::fs::write(d.join("ok.pkl"), b"\x80\x02K\x01.").unwrap();
    // ok.pkl claims the content of an unrelated blob the cache knows as clean.
    std::fs::write(
        d.join("m.jsonl"),
        format!(
            "{{\"path\":\"ok.pkl\",\"sha256\":\"{}\"}}\n",
            "ab".repeat(32)
        ),
    )
    .unwrap();
    let out = run(
        d,
        &[
            "scan",
            "--manifest",
            "m.jsonl",
            "--results",
            "r.jsonl",
            "--cache",
            "cache",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = results(&d.join("r.jsonl"));
    assert_eq!(r[0]["status"], "digest-mismatch");
    assert_eq!(r[0]["cached"], false);
    assert_eq!(r[0]["verdict"], "suspicious");
    assert_eq!(r[0]["manifest_sha256"], "ab".repeat(32));
    // A merged report blocks it too.
    assert_eq!(run(d, &["merge", "r.jsonl"]).status.code(), Some(1));
    // And a malicious file whose manifest digest is wrong is still malicious.
    std::fs::write(
        d.join("m.jsonl"),
        format!(
            "{{\"path\":\"model.pkl\",\"sha256\":\"{}\"}}\n",
            "cd".repeat(32)
        ),
    )
    .unwrap();
    run(
        d,
        &[
            "scan",
            "--manifest",
            "m.jsonl",
            "--results",
            "r.jsonl",
            "--cache",
            "cache",
        ],
    );
    assert_eq!(results(&d.join("r.jsonl"))[0]["verdict"], "malicious");
}

#[test]
fn merge_rejects_unknown_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("model.pkl"), EVIL).unwrap();
    std::fs::write(d.join("m.jsonl"), "{\"path\":\"model.pkl\"}\n").unwrap();
    run(
        d,
        &[
            "scan",
            "--manifest",
            "m.jsonl",
            "--results",
            "r.jsonl",
            "--no-cache",
        ],
    );
    let text = std::fs::read_to_string(d.join("r.jsonl")).unwrap();
    for (from, to) in [
        ("\"verdict\":\"malicious\"", "\"verdict\":\"fine\""),
        ("\"status\":\"complete\"", "\"status\":\"ok\""),
        ("\"PKL001\"", "\"XYZ999\""),
        ("\"format\":\"pickle\"", "\"format\":\"pickel\""),
    ] {
        std::fs::write(d.join("bad.jsonl"), text.replacen(from, to, 1)).unwrap();
        let out = run(d, &["merge", "bad.jsonl"]);
        assert_eq!(out.status.code(), Some(2), "{from} -> {to} was accepted");
    }
}

#[test]
fn shard_auto_reads_the_job_index() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tree(d);
    manifest(d);
    let mut total = 0;
    for i in 0..2 {
        let out = Command::new(bin())
            .args([
                "scan",
                "--manifest",
                "m.jsonl",
                "--results",
                "r.jsonl",
                "--shard",
                "auto/2",
                "--no-cache",
            ])
            .env("JOB_COMPLETION_INDEX", i.to_string())
            .current_dir(d)
            .output()
            .unwrap();
        assert!(out.status.code().is_some_and(|c| c <= 1));
        total += results(&d.join("r.jsonl")).len();
    }
    assert_eq!(total, 40);
    let out = run(
        d,
        &[
            "scan",
            "--manifest",
            "m.jsonl",
            "--results",
            "r.jsonl",
            "--shard",
            "auto/2",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
}
