//! What a path inside the hub cache means: repo, commit, path in the repo.
//!
//! A model in the cache lives at
//! `<cache>/models--<org>--<name>/snapshots/<commit>/<path>`, where each
//! snapshot file is a relative symlink into the repo's `blobs/` (and, since
//! huggingface_hub 1.32, possibly on into the cache-wide `<cache>/blobs/`
//! store). [`locate`] reads that structure from a path lexically, without
//! following links, because following them lands in `blobs/` where the repo
//! id and commit are no longer visible. `--` cannot occur in a repo id, so
//! splitting the folder name on it is unambiguous.

use std::path::{Component, Path, PathBuf};

/// The kind of repo a cache folder holds (`<kind>s--org--name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoType {
    Model,
    Dataset,
    Space,
    Kernel,
}

/// A path inside a hub cache snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfLocation {
    /// The cache root (the parent of the repo folder).
    pub cache: PathBuf,
    /// `<cache>/models--org--name`.
    pub repo_dir: PathBuf,
    pub repo_type: RepoType,
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
fn parse_repo_folder(name: &str) -> Option<(RepoType, String)> {
    let (kind, id) = name.split_once("--")?;
    let repo_type = match kind {
        "models" => RepoType::Model,
        "datasets" => RepoType::Dataset,
        "spaces" => RepoType::Space,
        "kernels" => RepoType::Kernel,
        _ => return None,
    };
    if id.is_empty() || id.split("--").any(str::is_empty) {
        return None;
    }
    Some((repo_type, id.split("--").collect::<Vec<_>>().join("/")))
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(loc.repo_type, RepoType::Model);
        assert_eq!(loc.path_in_repo, "sub/model.safetensors");
        let snap = locate(&loc.snapshot_dir()).unwrap();
        assert_eq!(snap.path_in_repo, "");
        assert_eq!(
            locate(Path::new("hub/datasets--a--b/snapshots/c/f"))
                .unwrap()
                .repo_type,
            RepoType::Dataset
        );
        assert!(locate(Path::new("/x/hub/models--a--b/snapshots")).is_none());
        assert!(locate(Path::new("/x/hub/other/snapshots/c/f")).is_none());
        assert!(locate(Path::new("/x/models----b/snapshots/c/f")).is_none());
    }
}
