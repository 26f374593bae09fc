//! The registry gate (`modelgate proxy`): the real binary in front of the
//! stub Hub, driven by reqwest, curl and the real huggingface_hub client
//! (tests/fixtures/hf-venv.sh, MODELGATE_HF_PYTHON; without it that test
//! skips with a notice).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::hub_stub::{HubStub, Mode};

const MALICIOUS: &str = "tests/fixtures/rules/PKL001/bad_os_system.pkl";

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

/// A valid safetensors file of one F32 tensor, about `bytes` long, with
/// values that are not all alike.
fn safetensors(bytes: usize) -> Vec<u8> {
    let n = bytes / 4;
    let header = format!(
        "{{\"w\":{{\"dtype\":\"F32\",\"shape\":[{n}],\"data_offsets\":[0,{}]}}}}",
        n * 4
    );
    let mut header = header.into_bytes();
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.extend((0..n).flat_map(|i| (i as f32 * 0.5).to_le_bytes()));
    out
}

/// `ROOT/models/acme/{tiny,clean}`: tiny has a malicious pickle beside a
/// benign safetensors; clean has only benign files, one in a folder.
fn hub_root(root: &Path) {
    let tiny = root.join("models/acme/tiny");
    std::fs::create_dir_all(&tiny).unwrap();
    std::fs::write(tiny.join("model.safetensors"), safetensors(300_000)).unwrap();
    std::fs::write(tiny.join("pytorch_model.bin"), fixture(MALICIOUS)).unwrap();
    std::fs::write(tiny.join("config.json"), b"{\"model_type\": \"bert\"}\n").unwrap();
    let clean = root.join("models/acme/clean");
    std::fs::create_dir_all(clean.join("sub")).unwrap();
    std::fs::write(clean.join("model.safetensors"), safetensors(40_000)).unwrap();
    std::fs::write(clean.join("config.json"), b"{\"model_type\": \"gpt2\"}\n").unwrap();
    std::fs::write(clean.join("sub/notes.txt"), b"hello\n").unwrap();
    let data = root.join("datasets/acme/rows");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("train.pkl"), fixture(MALICIOUS)).unwrap();
    std::fs::write(data.join("README.md"), b"# rows\n").unwrap();
    let other = root.join("models/evil/thing");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("model.safetensors"), safetensors(1000)).unwrap();
}

/// A running `modelgate proxy`, killed when dropped.
struct Gate {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Gate {
    fn start(upstream: &str, dir: &Path, extra: &[&str]) -> Gate {
        let log = dir.join(format!("gate-{}.log", uuid_like()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_modelgate"))
            .args(["proxy", "--listen", "127.0.0.1:0", "--upstream", upstream])
            .args(["--log-format", "json"])
            .args(extra)
            .current_dir(dir)
            .env("MODELGATE_STATE_DIR", dir.join("no-daemon"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("no address printed: {line:?}"))
            .to_string();
        Gate { child, url, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn curl(args: &[&str]) -> std::process::Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(args)
        .output()
        .unwrap()
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("modelgate_proxy_{name} ")))
        .unwrap_or_else(|| panic!("no metric {name}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn benign_served_byte_identical_malicious_refused_with_json() {
    let d = tempfile::tempdir().unwrap();
    hub_root(&d.path().join("hub"));
    let stub = HubStub::start(&d.path().join("hub"));
    let gate = Gate::start(&stub.url(), d.path(), &[]);
    let c = client();
    let r = c
        .get(format!(
            "{}/acme/tiny/resolve/main/model.safetensors",
            gate.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let len = safetensors(300_000).len().to_string();
    assert_eq!(r.headers()["content-length"], len.as_str());
    assert_eq!(r.bytes().await.unwrap().to_vec(), safetensors(300_000));

    let r = c
        .get(format!(
            "{}/acme/tiny/resolve/main/pytorch_model.bin",
            gate.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let msg = r.headers()["x-error-message"].to_str().unwrap().to_string();
    assert!(
        msg.contains("modelgate blocked acme/tiny/pytorch_model.bin"),
        "{msg}"
    );
    assert!(msg.contains("PKL001"), "{msg}");
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["verdict"], "malicious");
    assert_eq!(body["rules"], serde_json::json!(["PKL001"]));
    assert_eq!(body["file"], "pytorch_model.bin");
    assert_eq!(body["repo"], "acme/tiny");
    assert_eq!(body["error"], msg.as_str());

    // One JSON log line per decision, never a token.
    let r = c
        .get(format!("{}/acme/tiny/resolve/main/config.json", gate.url))
        .header("authorization", "Bearer hf_secret_token_123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "{\"model_type\": \"bert\"}\n");
    let log = gate.log();
    let decisions: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["event"] == "decision")
        .collect();
    assert_eq!(decisions.len(), 3, "{log}");
    assert_eq!(decisions[1]["fields"]["action"], "block");
    assert!(!log.contains("hf_secret"), "{log}");

    let m = c
        .get(format!("{}/metrics", gate.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(metric(&m, "blocks_total"), 1);
    assert_eq!(metric(&m, "scans_total"), 3);
    assert_eq!(
        metric(&m, "served_bytes_total"),
        safetensors(300_000).len() as u64 + 23
    );
    // Datasets pass the same gate.
    let r = c
        .get(format!(
            "{}/datasets/acme/rows/resolve/main/train.pkl",
            gate.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .get(format!(
            "{}/datasets/acme/rows/resolve/main/README.md",
            gate.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "# rows\n");
    let h = c.get(format!("{}/healthz", gate.url)).send().await.unwrap();
    assert_eq!(h.status(), 200);
}

#[tokio::test]
async fn head_answers_hub_headers_without_redirect_or_xet() {
    let d = tempfile::tempdir().unwrap();
    hub_root(&d.path().join("hub"));
    let stub = HubStub::start(&d.path().join("hub"));
    let gate = Gate::start(&stub.url(), d.path(), &[]);
    let out = curl(&[
        "-I",
        &format!("{}/acme/tiny/resolve/main/model.safetensors", gate.url),
    ]);
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    let len = safetensors(300_000).len();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains(&format!("content-length: {len}")), "{head}");
    assert!(head.contains(&format!("x-linked-size: {len}")), "{head}");
    assert!(head.contains("x-linked-etag: \""), "{head}");
    assert!(head.contains("x-repo-commit: "), "{head}");
    assert!(!head.contains("location:"), "{head}");
    assert!(!head.contains("xet"), "{head}");
    assert_eq!(
        stub.control.hits_under("/cdn/"),
        0,
        "metadata comes from the Hub's redirect, not the CDN"
    );

    // Metadata passes, paginated through the gate, without Xet hints.
    stub.control
        .page_size
        .store(2, std::sync::atomic::Ordering::Relaxed);
    let c = client();
    let r = c
        .get(format!(
            "{}/api/models/acme/tiny/tree/main?recursive=true",
            gate.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let link = r.headers()["link"].to_str().unwrap().to_string();
    assert!(
        link.starts_with(&format!("<{}/api/models/acme/tiny/tree/main?", gate.url)),
        "{link}"
    );
    let pages: Vec<serde_json::Value> = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(pages.len(), 2);
    let r = c
        .post(format!("{}/api/models/acme/tiny/paths-info/main", gate.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("paths=config.json&expand=True")
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v[0]["path"], "config.json");
    // Upstream errors keep the codes huggingface_hub reads.
    let r = c
        .get(format!("{}/acme/tiny/resolve/main/missing.bin", gate.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-error-code"], "EntryNotFound");
}

#[tokio::test]
async fn clean_files_are_kept_and_served_again_without_fetching() {
    let d = tempfile::tempdir().unwrap();
    hub_root(&d.path().join("hub"));
    let stub = HubStub::start(&d.path().join("hub"));
    let cache = d.path().join("cache");
    let cache_s = cache.to_str().unwrap();
    let url = |g: &Gate, f: &str| format!("{}/acme/tiny/resolve/main/{f}", g.url);
    let c = client();
    {
        let gate = Gate::start(&stub.url(), d.path(), &["--cache-dir", cache_s]);
        for f in ["model.safetensors", "pytorch_model.bin"] {
            c.get(url(&gate, f))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
        }
        assert_eq!(stub.control.hits_under("/cdn/"), 2, "one GET each");
    }
    // A new process with the same cache: nothing downloaded or scanned.
    let gate = Gate::start(&stub.url(), d.path(), &["--cache-dir", cache_s]);
    let before = stub.control.hits_under("/cdn/");
    let r = c.get(url(&gate, "model.safetensors")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), safetensors(300_000));
    let r = c.get(url(&gate, "pytorch_model.bin")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        stub.control.hits_under("/cdn/"),
        before,
        "nothing was downloaded again"
    );
    let m = c
        .get(format!("{}/metrics", gate.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(metric(&m, "scans_total"), 0);
    assert_eq!(metric(&m, "cache_hits_total"), 2);
    assert_eq!(metric(&m, "store_hits_total"), 1);
    // The malicious content was never kept.
    let stored: Vec<_> = std::fs::read_dir(cache.join("blobs"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(stored, vec![safetensors(300_000)]);
}

/// `--store-max-size`: past the cap the least recently served clean file
/// leaves the store (and is fetched again when asked for), the newest stays.
#[tokio::test]
async fn the_store_keeps_under_its_cap_least_recently_served_first() {
    let d = tempfile::tempdir().unwrap();
    hub_root(&d.path().join("hub"));
    let stub = HubStub::start(&d.path().join("hub"));
    let cache = d.path().join("cache");
    // 40,000 + 300,000 bytes do not fit in 320 KiB; 300,000 alone does.
    let gate = Gate::start(
        &stub.url(),
        d.path(),
        &[
            "--cache-dir",
            cache.to_str().unwrap(),
            "--store-max-size",
            "320K",
        ],
    );
    let (small, large) = (safetensors(40_000).len(), safetensors(300_000).len());
    let c = client();
    let get = |repo: &str| {
        let url = format!("{}/acme/{repo}/resolve/main/model.safetensors", gate.url);
        let c = c.clone();
        async move {
            let r = c.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap().len()
        }
    };
    assert_eq!(get("clean").await, small);
    assert_eq!(get("tiny").await, large);
    let held: Vec<usize> = std::fs::read_dir(cache.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len() as usize)
        .collect();
    assert_eq!(held, vec![large], "the older file left the store");
    let cdn = stub.control.hits_under("/cdn/");
    assert_eq!(get("tiny").await, large);
    assert_eq!(
        stub.control.hits_under("/cdn/"),
        cdn,
        "the kept file is served from the store"
    );
    assert_eq!(get("clean").await, small);
    assert_eq!(
        stub.control.hits_under("/cdn/"),
        cdn + 1,
        "the evicted file is fetched again"
    );
}

#[test]
fn curl_range_resume_and_fifty_concurrent_downloads() {
    let d = tempfile::tempdir().unwrap();
    hub_root(&d.path().join("hub"));
    let stub = HubStub::start(&d.path().join("hub"));
    let gate = Gate::start(&stub.url(), d.path(), &["--max-fetches", "4"]);
    let url = format!("{}/acme/tiny/resolve/main/model.safetensors", gate.url);
    let full = safetensors(300_000);
    let out = curl(&["-i", "-r", "1000-1999", &url]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 206"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains(&format!("content-range: bytes 1000-1999/{}", full.len())),
        "{text}"
    );
    let part = d.path().join("part");
    std::fs::write(&part, &full[..120_000]).unwrap();
    let out = curl(&["-C", "-", "-o", part.to_str().unwrap(), &url]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(&part).unwrap(), full, "resumed download");
    let out = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-r",
        "400000-",
        &url,
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "416");

    let children: Vec<_> = (0..50)
        .map(|i| {
            let dest = d.path().join(format!("c{i}"));
            let child = Command::new("curl")
                .args(["-sS", "--max-time", "120", "-o"])
                .arg(&dest)
                .arg(&url)
                .spawn()
                .unwrap();
            (child, dest)
        })
        .collect();
    for (mut child, dest) in children {
        assert!(child.wait().unwrap().success());
        assert_eq!(std::fs::read(&dest).unwrap(), full);
    }
}

#[test]
fn only_gated_paths_exist_and_traversal_is_refused() {
    let d = tempfile::tempdir().unwrap();
    hub_root(&d.path().join("hub"));
    let stub = HubStub::start(&d.path().join("hub"));
    let gate = Gate::start(&stub.url(), d.path(), &[]);
    let sha = {
        let out = curl(&[
            "-I",
            &format!("{}/acme/tiny/resolve/main/pytorch_model.bin", gate.url),
        ]);
        let h = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        h.lines()
            .find_map(|l| l.strip_prefix("x-linked-etag: "))
            .unwrap()
            .trim()
            .trim_matches('"')
            .to_string()
    };
    let code = |path: &str| {
        let out = curl(&[
            "--path-as-is",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{}{path}", gate.url),
        ]);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let before = stub.control.hits_under("/cdn/");
    // The CDN's own path does not exist behind the gate.
    assert_eq!(code(&format!("/cdn/{sha}")), "404");
    assert_eq!(code("/acme/tiny/raw/main/pytorch_model.bin"), "404");
    assert_eq!(code("/acme/tiny/blob/main/pytorch_model.bin"), "404");
    assert_eq!(code("/acme/tiny/resolve/main/../../cdn/x"), "400");
    assert_eq!(code("/acme/tiny/resolve/main/%2e%2e/config.json"), "400");
    assert_eq!(
        code("/acme/tiny/resolve/main/sub%2F..%2Fpytorch_model.bin"),
        "400"
    );
    assert_eq!(code("/acme%2Ftiny/resolve/main/config.json"), "400");
    assert_eq!(code("/api/../cdn/x"), "400");
    assert_eq!(stub.control.hits_under("/cdn/"), before, "nothing fetched");
}

#[test]
fn hostile_upstream_never_gets_unscanned_bytes_through() {
    let d = tempfile::tempdir().unwrap();
    hub_root(&d.path().join("hub"));
    let stub = HubStub::start(&d.path().join("hub"));
    let gate = Gate::start(&stub.url(), d.path(), &["--upstream-timeout", "1"]);
    let url = format!("{}/acme/tiny/resolve/main/model.safetensors", gate.url);
    let full = safetensors(300_000);
    for (mode, status, says) in [
        (Mode::LyingLength, "502", "announced"),
        (Mode::HangAfter(1000), "504", "sent no data"),
        (Mode::GzipBomb, "502", "Content-Encoding gzip"),
        (Mode::WrongSha, "502", "sha256"),
    ] {
        stub.control
            .set_mode("acme/tiny", "model.safetensors", mode);
        let out = curl(&["-i", &url]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status}")),
            "{mode:?}: {text}"
        );
        assert!(text.contains(says), "{mode:?}: {text}");
        // None of the file's bytes (its distinctive header) got through.
        let body = out.stdout.split(|&b| b == b'{').count();
        assert!(
            !out.stdout.windows(16).any(|w| w == &full[8..24]),
            "{mode:?}: served file bytes ({body})"
        );
    }
    // Back to normal: the same gate serves it.
    stub.control
        .set_mode("acme/tiny", "model.safetensors", Mode::Normal);
    let out = curl(&[&url]);
    assert_eq!(out.stdout, full);
}

#[test]
fn spool_limits_answer_507_and_repo_lists_403() {
    let d = tempfile::tempdir().unwrap();
    hub_root(&d.path().join("hub"));
    let stub = HubStub::start(&d.path().join("hub"));
    std::fs::write(
        d.path().join("policy.toml"),
        "[proxy]\ndeny-repos = [\"evil/*\"]\nrequire-format = [\"safetensors\"]\n",
    )
    .unwrap();
    let gate = Gate::start(
        &stub.url(),
        d.path(),
        &["--max-file-size", "100K", "--policy", "policy.toml"],
    );
    let get = |path: &str| {
        let out = curl(&["-i", &format!("{}{path}", gate.url)]);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let r = get("/acme/tiny/resolve/main/model.safetensors");
    assert!(r.starts_with("HTTP/1.1 507"), "{r}");
    assert!(r.contains("--max-file-size"), "{r}");
    let r = get("/evil/thing/resolve/main/model.safetensors");
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert!(r.contains("deny list"), "{r}");
    let r = get("/acme/clean/resolve/main/model.safetensors");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // A pickle is not a required format, whatever its verdict.
    let r = get("/acme/tiny/resolve/main/pytorch_model.bin");
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    // The shared spool budget: busy, not broken (503, retry later).
    let busy = Gate::start(&stub.url(), d.path(), &["--spool-budget", "100K"]);
    let out = curl(&[
        "-i",
        &format!("{}/acme/tiny/resolve/main/model.safetensors", busy.url),
    ]);
    let r = String::from_utf8_lossy(&out.stdout);
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    assert!(r.to_ascii_lowercase().contains("retry-after: 30"), "{r}");
    assert!(r.contains("--spool-budget"), "{r}");
    // An invalid [proxy] table stops the gate before it listens.
    std::fs::write(
        d.path().join("bad.toml"),
        "[proxy]\nmalicious = \"quarantine\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_modelgate"))
        .args(["proxy", "--listen", "127.0.0.1:0", "--policy", "bad.toml"])
        .current_dir(d.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only meaningful for the daemon"));
}

#[test]
fn content_quarantined_by_the_daemon_is_refused() {
    let d = tempfile::tempdir().unwrap();
    hub_root(&d.path().join("hub"));
    let stub = HubStub::start(&d.path().join("hub"));
    let state = d.path().join("state");
    let sha = modelgate::digest::sha256_bytes(&safetensors(40_000));
    {
        let store = modelgate::quarantine::Store::open(&state).unwrap();
        store
            .db()
            .set_list(
                &sha,
                modelgate::quarantine::db::ListKind::Deny,
                "test",
                None,
            )
            .unwrap();
    }
    let gate = Gate::start(
        &stub.url(),
        d.path(),
        &["--quarantine-dir", state.to_str().unwrap()],
    );
    let out = curl(&[
        "-i",
        &format!("{}/acme/clean/resolve/main/model.safetensors", gate.url),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 403"), "{text}");
    assert!(text.contains("quarantined or deny-listed"), "{text}");
}

#[test]
fn sigterm_stops_the_gate_cleanly() {
    let d = tempfile::tempdir().unwrap();
    hub_root(&d.path().join("hub"));
    let stub = HubStub::start(&d.path().join("hub"));
    let mut gate = Gate::start(&stub.url(), d.path(), &[]);
    let pid = gate.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let start = Instant::now();
    loop {
        if let Some(s) = gate.child.try_wait().unwrap() {
            assert!(s.success(), "{s:?}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "still running");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gate.log().contains("registry gate stopped"));
}

/// The real huggingface_hub client with HF_ENDPOINT at the gate: the 0.x
/// line (requests) and the 2.x line (httpx).
#[test]
fn huggingface_hub_downloads_through_the_gate() {
    for var in ["MODELGATE_HF_PYTHON", "MODELGATE_HF2_PYTHON"] {
        match std::env::var_os(var) {
            Some(python) => hf_client_through_the_gate(Path::new(&python)),
            None => eprintln!(
                "skipped: {var} is not set (tests/fixtures/hf-venv.sh makes it; .ci/run sets it)"
            ),
        }
    }
}

fn hf_client_through_the_gate(python: &Path) {
    let d = tempfile::tempdir().unwrap();
    hub_root(&d.path().join("hub"));
    let stub = HubStub::start(&d.path().join("hub"));
    let gate_cache = d.path().join("gate-cache");
    let gate = Gate::start(
        &stub.url(),
        d.path(),
        &["--cache-dir", gate_cache.to_str().unwrap()],
    );
    let cache = d.path().join("hf-cache");
    let script = r#"
import json, os, sys
from huggingface_hub import hf_hub_download, snapshot_download
from huggingface_hub.utils import HfHubHTTPError
cache = sys.argv[1]
out = {"version": __import__("huggingface_hub").__version__}
out["benign"] = hf_hub_download("acme/tiny", "model.safetensors", cache_dir=cache)
out["snapshot"] = snapshot_download("acme/clean", cache_dir=cache)
try:
    hf_hub_download("acme/tiny", "pytorch_model.bin", cache_dir=cache)
    out["refused"] = None
except HfHubHTTPError as e:
    out["refused"] = {"status": e.response.status_code, "type": type(e).__module__ + "." + type(e).__name__, "text": str(e)}
# Again, into another cache: the gate knows the content and refuses at HEAD.
try:
    hf_hub_download("acme/tiny", "pytorch_model.bin", cache_dir=cache + "-again")
    out["refused_again"] = None
except HfHubHTTPError as e:
    out["refused_again"] = {"status": e.response.status_code, "text": str(e)}
try:
    snapshot_download("acme/tiny", cache_dir=cache)
    out["snapshot_refused"] = None
except HfHubHTTPError as e:
    out["snapshot_refused"] = {"status": e.response.status_code, "text": str(e)}
print(json.dumps(out))
"#;
    let out = Command::new(python)
        .args(["-c", script])
        .arg(&cache)
        .env("HF_ENDPOINT", &gate.url)
        .env("HF_HOME", d.path().join("hf-home"))
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    eprintln!(
        "huggingface_hub {} raised {}: {}",
        v["version"], v["refused"]["type"], v["refused"]["text"]
    );
    assert_eq!(
        std::fs::read(v["benign"].as_str().unwrap()).unwrap(),
        safetensors(300_000)
    );
    let snap = PathBuf::from(v["snapshot"].as_str().unwrap());
    assert_eq!(
        std::fs::read(snap.join("model.safetensors")).unwrap(),
        safetensors(40_000)
    );
    assert_eq!(
        std::fs::read(snap.join("sub/notes.txt")).unwrap(),
        b"hello\n"
    );
    assert_eq!(v["refused"]["status"], 403);
    let text = v["refused"]["text"].as_str().unwrap();
    assert!(
        text.contains("modelgate blocked acme/tiny/pytorch_model.bin"),
        "{text}"
    );
    assert!(text.contains("PKL001"), "{text}");
    assert_eq!(v["snapshot_refused"]["status"], 403);
    assert_eq!(v["refused_again"]["status"], 403);
    let again = v["refused_again"]["text"].as_str().unwrap();
    assert!(
        again.contains("modelgate blocked acme/tiny/pytorch_model.bin"),
        "{again}"
    );
    let head_refusals = gate
        .log()
        .lines()
        .filter(|l| l.contains("\"cached\":true") && l.contains("\"action\":\"block\""))
        .count();
    assert!(head_refusals >= 1, "{}", gate.log());
    // Nothing of the refused file is anywhere in the client's cache.
    let bad = fixture(MALICIOUS);
    let mut stack = vec![cache.clone()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            assert!(
                !path.to_string_lossy().ends_with("pytorch_model.bin"),
                "{}",
                path.display()
            );
            if e.file_type().unwrap().is_dir() {
                stack.push(path);
            } else if e.file_type().unwrap().is_file() {
                let data = std::fs::read(&path).unwrap();
                assert!(
                    !data
                        .windows(bad.len().min(16))
                        .any(|w| w == &bad[..bad.len().min(16)]),
                    "{} holds the refused bytes",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn require_signature_checks_each_file_against_the_snapshot_signature() {
    let d = tempfile::tempdir().unwrap();
    let hub = d.path().join("hub");
    hub_root(&hub);
    let sign = crate::common::sign_fixtures();
    let signed = hub.join("models/signed/model");
    crate::common::copy_dir(&sign.join("model"), &signed);
    std::fs::copy(sign.join("model.p256.sig"), signed.join("model.sig")).unwrap();
    let tampered = hub.join("models/signed/tampered");
    crate::common::copy_dir(&signed, &tampered);
    std::fs::write(tampered.join("config.json"), b"{\"auto_map\": {}}\n").unwrap();
    let unsigned = hub.join("models/signed/unsigned");
    crate::common::copy_dir(&sign.join("model"), &unsigned);
    crate::common::copy_dir(&sign.join("keys"), &d.path().join("keys"));
    std::fs::write(
        d.path().join("policy.toml"),
        "[proxy]\nrequire-signature = { keys = [\"keys/p256.pub\"], repos = [\"signed/*\"] }\n",
    )
    .unwrap();
    let stub = HubStub::start(&hub);
    let gate = Gate::start(&stub.url(), d.path(), &["--policy", "policy.toml"]);
    let get = |repo: &str, file: &str| {
        let out = curl(&["-i", &format!("{}/{repo}/resolve/main/{file}", gate.url)]);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    for f in [
        "model.safetensors",
        "config.json",
        "tokenizer/vocab.txt",
        "README.md",
    ] {
        let r = get("signed/model", f);
        assert!(r.starts_with("HTTP/1.1 200"), "{f}: {r}");
    }
    let r = get("signed/tampered", "config.json");
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert!(r.contains("signed config.json with sha256"), "{r}");
    let r = get("signed/tampered", "model.safetensors");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let r = get("signed/unsigned", "model.safetensors");
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert!(r.contains("has no model.sig"), "{r}");
    let r = get("acme/clean", "model.safetensors");
    assert!(r.starts_with("HTTP/1.1 200"), "not a listed repo: {r}");
}

#[test]
fn a_cluster_pulling_one_file_costs_one_upstream_download() {
    let d = tempfile::tempdir().unwrap();
    hub_root(&d.path().join("hub"));
    let stub = HubStub::start(&d.path().join("hub"));
    let cache = d.path().join("cache");
    let gate = Gate::start(
        &stub.url(),
        d.path(),
        &["--cache-dir", cache.to_str().unwrap()],
    );
    let full = safetensors(300_000);
    let url = format!("{}/acme/tiny/resolve/main/model.safetensors", gate.url);
    let bad = format!("{}/acme/tiny/resolve/main/pytorch_model.bin", gate.url);
    let children: Vec<_> = (0..30)
        .map(|i| {
            let dest = d.path().join(format!("c{i}"));
            let target = if i % 3 == 0 { &bad } else { &url };
            let child = Command::new("curl")
                .args(["-sS", "--max-time", "120", "-w", "%{http_code}", "-o"])
                .arg(&dest)
                .arg(target)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            (i, child, dest)
        })
        .collect();
    for (i, child, dest) in children {
        let out = child.wait_with_output().unwrap();
        let code = String::from_utf8_lossy(&out.stdout).to_string();
        if i % 3 == 0 {
            assert_eq!(code, "403");
        } else {
            assert_eq!(code, "200");
            assert_eq!(std::fs::read(&dest).unwrap(), full);
        }
    }
    assert_eq!(
        stub.control.hits_under("/cdn/"),
        2,
        "one download per content, whatever the number of clients"
    );
}

#[tokio::test]
async fn the_token_goes_to_the_hub_only_never_to_the_cdn() {
    let d = tempfile::tempdir().unwrap();
    hub_root(&d.path().join("hub"));
    let stub = HubStub::start(&d.path().join("hub"));
    // The CDN as another origin than the Hub, as in production.
    *stub.control.cdn_host.lock().unwrap() = Some("localhost".into());
    let gate = Gate::start(&stub.url(), d.path(), &[]);
    let r = client()
        .get(format!(
            "{}/acme/tiny/resolve/main/model.safetensors",
            gate.url
        ))
        .header("authorization", "Bearer hf_secret_token_123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), safetensors(300_000));
    assert_eq!(
        stub.control.authorized_under("/acme/tiny/resolve/"),
        2,
        "HEAD and GET"
    );
    assert_eq!(stub.control.hits_under("/cdn/"), 1);
    assert_eq!(stub.control.authorized_under("/cdn/"), 0);
    assert!(!gate.log().contains("hf_secret"));
}

#[test]
fn waiting_requests_are_bounded() {
    let d = tempfile::tempdir().unwrap();
    hub_root(&d.path().join("hub"));
    let stub = HubStub::start(&d.path().join("hub"));
    stub.control
        .set_mode("acme/tiny", "model.safetensors", Mode::HangAfter(10));
    let gate = Gate::start(
        &stub.url(),
        d.path(),
        &[
            "--max-fetches",
            "1",
            "--max-waiting",
            "1",
            "--upstream-timeout",
            "3",
        ],
    );
    let start = |file: &str| {
        Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "30",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .arg(format!("{}/acme/tiny/resolve/main/{file}", gate.url))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let code =
        |c: Child| String::from_utf8_lossy(&c.wait_with_output().unwrap().stdout).to_string();
    // The one slot hangs on the upstream; one request may wait for it.
    let holder = start("model.safetensors");
    std::thread::sleep(Duration::from_millis(500));
    let waiter = start("config.json");
    std::thread::sleep(Duration::from_millis(500));
    let turned_away = start("pytorch_model.bin");
    assert_eq!(code(turned_away), "503");
    assert_eq!(code(holder), "504");
    assert_eq!(code(waiter), "200");
}
