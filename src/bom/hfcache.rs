//! Where the Hugging Face hub cache is, and what a path inside it means.
//!
//! The root is resolved in the order `huggingface_hub` uses
//! (`constants.py`): `HF_HUB_CACHE`, the legacy `HUGGINGFACE_HUB_CACHE`,
//! `$HF_HOME/hub`, `$XDG_CACHE_HOME/huggingface/hub`,
//! `~/.cache/huggingface/hub`. Anything that must agree with the user's
//! Python processes (the BOM, the cache daemon) should call [`cache_root`]
//! rather than re-deriving it. Only a leading `~` is expanded; Python also
//! expands `$VARS` inside the values, which nobody relies on in practice.
//!
//! A model in the cache lives at
//! `<cache>/models--<org>--<name>/snapshots/<commit>/<path>`, where each
//! snapshot file is a relative symlink into the repo's `blobs/` (and, since
//! huggingface_hub 1.32, possibly on into the cache-wide `<cache>/blobs/`
//! store). [`locate`] reads that structure from a path lexically, without
//! following links, because following them lands in `blobs/` where the repo
//! id and commit are no longer visible. `--` cannot occur in a repo id, so
//! splitting the folder name on it is unambiguous.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// Resolves the hub cache root from the process environment and home
/// directory. `None` only when no variable is set and there is no home.
pub fn cache_root() -> Option<PathBuf> {
    cache_root_from(
        |name| std::env::var_os(name),
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from),
    )
}

/// [`cache_root`] with the environment and home directory supplied, for
/// tests and for daemons that read a service environment file.
pub fn cache_root_from(
    env: impl Fn(&str) -> Option<OsString>,
    home: Option<PathBuf>,
) -> Option<PathBuf> {
    let var = |name: &str| {
        env(name)
            .filter(|v| !v.is_empty())
            .map(|v| expand_home(PathBuf::from(v), home.as_deref()))
    };
    if let Some(p) = var("HF_HUB_CACHE").or_else(|| var("HUGGINGFACE_HUB_CACHE")) {
        return Some(p);
    }
    if let Some(hf_home) = var("HF_HOME") {
        return Some(hf_home.join("hub"));
    }
    if let Some(xdg) = var("XDG_CACHE_HOME") {
        return Some(xdg.join("huggingface").join("hub"));
    }
    home.map(|h| h.join(".cache").join("huggingface").join("hub"))
}

fn expand_home(p: PathBuf, home: Option<&Path>) -> PathBuf {
    match (p.strip_prefix("~"), home) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => p,
    }
}

/// A path inside a hub cache snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfLocation {
    /// The cache root (the parent of the repo folder).
    pub cache: PathBuf,
    /// `<cache>/models--org--name`.
    pub repo_dir: PathBuf,
    /// `model`, `dataset`, `space` or `kernel`.
    pub repo_type: String,
    /// `org/name` (or just `name` for the few un-namespaced repos).
    pub repo_id: String,
    /// The snapshot folder name: the commit hash.
    pub commit: String,
    /// The path below the snapshot folder, `/`-separated; empty for the
    /// snapshot folder itself.
    pub path_in_repo: String,
}

impl HfLocation {
    /// `<cache>/<repo>/snapshots/<commit>`.
    pub fn snapshot_dir(&self) -> PathBuf {
        self.repo_dir.join("snapshots").join(&self.commit)
    }

    /// The package URL of a model repo at this commit (purl-spec
    /// `huggingface` type: lowercase commit as the version).
    pub fn purl(&self) -> Option<String> {
        if self.repo_type != "model" {
            return None;
        }
        let path: Vec<String> = self.repo_id.split('/').map(purl_escape).collect();
        Some(format!(
            "pkg:huggingface/{}@{}",
            path.join("/"),
            purl_escape(&self.commit.to_ascii_lowercase())
        ))
    }

    /// Directories a snapshot's symlinks may point into: the repo's own
    /// `blobs/` and the cache-wide shared blob store.
    pub fn blob_dirs(&self) -> [PathBuf; 2] {
        [self.repo_dir.join("blobs"), self.cache.join("blobs")]
    }
}

/// Reads the cache structure from `path` (lexically; no link is followed).
pub fn locate(path: &Path) -> Option<HfLocation> {
    let comps: Vec<&std::ffi::OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect();
    // The last `snapshots` component preceded by a repo folder wins.
    let idx = (1..comps.len()).rev().find(|&i| {
        comps.get(i).is_some_and(|c| *c == "snapshots")
            && comps
                .get(i - 1)
                .and_then(|c| c.to_str())
                .and_then(parse_repo_folder)
                .is_some()
            && i + 1 < comps.len()
    })?;
    let repo_folder = comps.get(idx - 1)?.to_str()?;
    let (repo_type, repo_id) = parse_repo_folder(repo_folder)?;
    let commit = comps.get(idx + 1)?.to_str()?.to_string();
    let rest: Option<Vec<&str>> = comps.get(idx + 2..)?.iter().map(|c| c.to_str()).collect();
    // Rebuild the prefix from the original path so that roots and `..` survive.
    let mut repo_dir = PathBuf::new();
    let mut seen = 0usize;
    for c in path.components() {
        repo_dir.push(c.as_os_str());
        if matches!(c, Component::Normal(_)) {
            seen += 1;
            if seen == idx {
                break;
            }
        }
    }
    let cache = repo_dir.parent()?.to_path_buf();
    Some(HfLocation {
        cache,
        repo_dir,
        repo_type,
        repo_id,
        commit,
        path_in_repo: rest?.join("/"),
    })
}

/// `models--org--name` → (`model`, `org/name`).
fn parse_repo_folder(name: &str) -> Option<(String, String)> {
    let (kind, id) = name.split_once("--")?;
    let repo_type = match kind {
        "models" => "model",
        "datasets" => "dataset",
        "spaces" => "space",
        "kernels" => "kernel",
        _ => return None,
    };
    if id.is_empty() || id.split("--").any(str::is_empty) {
        return None;
    }
    Some((
        repo_type.to_string(),
        id.split("--").collect::<Vec<_>>().join("/"),
    ))
}

/// Every snapshot folder of every model repo in the cache, sorted.
pub fn model_snapshots(cache: &Path) -> std::io::Result<Vec<HfLocation>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(cache)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with("models--") || !entry.file_type()?.is_dir() {
            continue;
        }
        let snapshots = entry.path().join("snapshots");
        let Ok(commits) = std::fs::read_dir(&snapshots) else {
            continue;
        };
        for commit in commits.flatten() {
            if commit.file_type().is_ok_and(|t| t.is_dir())
                && let Some(loc) = locate(&commit.path())
            {
                out.push(loc);
            }
        }
    }
    out.sort_by(|a, b| (&a.repo_id, &a.commit).cmp(&(&b.repo_id, &b.commit)));
    Ok(out)
}

/// Percent-encodes everything but the purl-safe characters.
fn purl_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn cache_root_order() {
        let home = Some(PathBuf::from("/home/u"));
        let all = [
            ("HF_HUB_CACHE", "/a"),
            ("HUGGINGFACE_HUB_CACHE", "/b"),
            ("HF_HOME", "/c"),
            ("XDG_CACHE_HOME", "/d"),
        ];
        assert_eq!(cache_root_from(env(&all), home.clone()), Some("/a".into()));
        assert_eq!(
            cache_root_from(env(&all[1..]), home.clone()),
            Some("/b".into())
        );
        assert_eq!(
            cache_root_from(env(&all[2..]), home.clone()),
            Some("/c/hub".into())
        );
        assert_eq!(
            cache_root_from(env(&all[3..]), home.clone()),
            Some("/d/huggingface/hub".into())
        );
        assert_eq!(
            cache_root_from(env(&[]), home.clone()),
            Some("/home/u/.cache/huggingface/hub".into())
        );
        assert_eq!(
            cache_root_from(env(&[("HF_HOME", "~/hf")]), home),
            Some("/home/u/hf/hub".into())
        );
        assert_eq!(cache_root_from(env(&[("HF_HOME", "")]), None), None);
    }

    #[test]
    fn locates_snapshot_paths() {
        let c = "0123456789abcdef0123456789ABCDEF01234567";
        let p = PathBuf::from(format!(
            "/x/hub/models--google--gemma-2b/snapshots/{c}/sub/model.safetensors"
        ));
        let loc = locate(&p).unwrap();
        assert_eq!(loc.cache, PathBuf::from("/x/hub"));
        assert_eq!(
            loc.repo_dir,
            PathBuf::from("/x/hub/models--google--gemma-2b")
        );
        assert_eq!(loc.repo_id, "google/gemma-2b");
        assert_eq!(loc.repo_type, "model");
        assert_eq!(loc.path_in_repo, "sub/model.safetensors");
        assert_eq!(
            loc.purl().unwrap(),
            format!("pkg:huggingface/google/gemma-2b@{}", c.to_ascii_lowercase())
        );
        let snap = locate(&loc.snapshot_dir()).unwrap();
        assert_eq!(snap.path_in_repo, "");
        assert_eq!(
            locate(Path::new("hub/datasets--a--b/snapshots/c/f"))
                .unwrap()
                .purl(),
            None
        );
        assert!(locate(Path::new("/x/hub/models--a--b/snapshots")).is_none());
        assert!(locate(Path::new("/x/hub/other/snapshots/c/f")).is_none());
        assert!(locate(Path::new("/x/models----b/snapshots/c/f")).is_none());
    }
}
