//! Remote sources for `scan`: `hf://ORG/REPO[@REV]` and `hf://ORG`, read
//! through the same upstream client as the registry gate.
//!
//! The Hub's tree listing gives every LFS file's sha256 before a byte is
//! downloaded, so a file whose verdict the cache already holds is never
//! fetched. The rest are downloaded one by one into a private temporary
//! directory, scanned, and deleted; file names from the listing are never
//! used as local paths (a listing is upstream-controlled input).

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use futures_util::StreamExt as _;
use reqwest::header::HeaderValue;

use crate::cache::{CachedScanner, Scanned};
use crate::hub::{FileRef, HubClient, HubError, RepoKind};

/// Downloads in flight at once: enough to hide latency, few enough that
/// the temporary directory holds at most this many files.
const PARALLEL_DOWNLOADS: usize = 4;

/// A parsed `hf://` source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HfSource {
    /// One repository at a revision (`main` when none is given).
    Repo {
        kind: RepoKind,
        repo: String,
        rev: Option<String>,
    },
    /// Every model repository of an organisation or user.
    Org(String),
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("`{source_text}` is not an hf:// source: {why}")]
    Syntax { source_text: String, why: String },
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error("cannot make a download directory: {0}")]
    TempDir(#[source] std::io::Error),
    #[error("the upstream listing of {repo} is malformed: {why}")]
    Listing { repo: String, why: String },
}

/// A Hub name component: letters, digits, `-`, `_`, `.`, not starting with
/// a dot (so never `.` or `..`), as the Hub itself requires.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 96
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn syntax(text: &str, why: &str) -> RemoteError {
    RemoteError::Syntax {
        source_text: text.to_string(),
        why: why.to_string(),
    }
}

/// `hf://[datasets/|spaces/|models/]REST`: the repository kind and REST.
fn strip_scheme_and_kind(text: &str) -> Result<(RepoKind, &str), RemoteError> {
    let rest = text
        .strip_prefix("hf://")
        .ok_or_else(|| syntax(text, "no hf:// prefix"))?;
    Ok(match rest.split_once('/') {
        Some(("datasets", r)) => (RepoKind::Dataset, r),
        Some(("spaces", r)) => (RepoKind::Space, r),
        Some(("models", r)) => (RepoKind::Model, r),
        _ => (RepoKind::Model, rest),
    })
}

/// `NAME[@REV]`: a revision is non-empty and has no `..`.
fn split_revision<'a>(text: &str, s: &'a str) -> Result<(&'a str, Option<&'a str>), RemoteError> {
    match s.split_once('@') {
        Some((name, rev)) if !rev.is_empty() && !rev.contains("..") => Ok((name, Some(rev))),
        Some(_) => Err(syntax(text, "empty or invalid revision after @")),
        None => Ok((s, None)),
    }
}

const NAME_RULE: &str = "names are letters, digits, '-', '_' and '.', not starting with '.'";

impl FromStr for HfSource {
    type Err = RemoteError;

    fn from_str(s: &str) -> Result<HfSource, RemoteError> {
        let (kind, rest) = strip_scheme_and_kind(s)?;
        let (rest, rev) = split_revision(s, rest)?;
        let names: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        if !names.iter().all(|n| valid_name(n)) {
            return Err(syntax(s, NAME_RULE));
        }
        match (names.as_slice(), rev) {
            ([org], None) if kind == RepoKind::Model => Ok(HfSource::Org((*org).to_string())),
            ([_], Some(_)) => Err(syntax(
                s,
                "a revision needs a repository (hf://ORG/REPO@REV)",
            )),
            ([org, name], rev) => Ok(HfSource::Repo {
                kind,
                repo: format!("{org}/{name}"),
                rev: rev.map(str::to_string),
            }),
            _ => Err(syntax(
                s,
                "expected hf://ORG, hf://ORG/REPO[@REV] or hf://datasets/ORG/REPO",
            )),
        }
    }
}

/// One file named by URL, as a manifest's `url` gives it:
/// `hf://[datasets/|spaces/]ORG/REPO[@REV]/PATH` (`main` when no revision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfFileUrl {
    pub kind: RepoKind,
    pub repo: String,
    pub rev: String,
    pub path: String,
}

impl FromStr for HfFileUrl {
    type Err = RemoteError;

    fn from_str(s: &str) -> Result<HfFileUrl, RemoteError> {
        let (kind, rest) = strip_scheme_and_kind(s)?;
        let mut parts = rest.splitn(3, '/');
        let (Some(org), Some(name_rev), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(syntax(s, "expected hf://ORG/REPO[@REV]/PATH"));
        };
        let (name, rev) = split_revision(s, name_rev)?;
        if !valid_name(org) || !valid_name(name) {
            return Err(syntax(s, NAME_RULE));
        }
        // The path goes into a URL only (percent-encoded per segment), but
        // `..` or empty segments are never a file the Hub lists.
        if path
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        {
            return Err(syntax(s, "the file path has an empty, `.` or `..` segment"));
        }
        Ok(HfFileUrl {
            kind,
            repo: format!("{org}/{name}"),
            rev: rev.unwrap_or("main").to_string(),
            path: path.to_string(),
        })
    }
}

/// How remote files are fetched.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// `Authorization` for the upstream (from `HF_TOKEN`), never logged.
    pub auth: Option<HeaderValue>,
    /// Largest single download.
    pub max_file_bytes: u64,
}

/// One file of a remote source.
#[derive(Debug)]
pub struct RemoteFile {
    /// `hf://ORG/REPO@REV/PATH`.
    pub display: String,
    pub outcome: Result<Scanned, String>,
    /// Whether the file was downloaded (false: served from the cache).
    pub downloaded: bool,
}

/// An entry of a tree listing that is a file.
struct Listed {
    path: String,
    /// The LFS sha256, when the file is stored in LFS.
    sha256: Option<String>,
}

fn listed_files(repo: &str, tree: &[serde_json::Value]) -> Result<Vec<Listed>, RemoteError> {
    let malformed = |why: String| RemoteError::Listing {
        repo: repo.to_string(),
        why,
    };
    let mut out = Vec::new();
    for entry in tree {
        match entry.get("type").and_then(|t| t.as_str()) {
            Some("file") => {}
            Some("directory") => continue,
            other => return Err(malformed(format!("an entry has type {other:?}"))),
        }
        let path = entry
            .get("path")
            .and_then(|p| p.as_str())
            .filter(|p| !p.is_empty())
            .ok_or_else(|| malformed("a file entry has no path".into()))?;
        let sha256 = match entry.get("lfs") {
            None | Some(serde_json::Value::Null) => None,
            Some(lfs) => {
                let oid = lfs.get("oid").and_then(|o| o.as_str()).unwrap_or_default();
                let oid = oid.strip_prefix("sha256:").unwrap_or(oid);
                if oid.len() != 64 || !oid.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(malformed(format!(
                        "{path}: LFS oid {oid:?} is not a sha256"
                    )));
                }
                Some(oid.to_ascii_lowercase())
            }
        };
        out.push(Listed {
            path: path.to_string(),
            sha256,
        });
    }
    Ok(out)
}

/// What remote scans run with: the upstream, the cached scanner and how to
/// fetch.
pub struct Remote<'a> {
    pub client: &'a HubClient,
    pub scanner: &'a Arc<CachedScanner>,
    pub opts: &'a RemoteOptions,
}

impl Remote<'_> {
    /// Scans `source`: one repository, or every model of an organisation.
    /// An error listing a repository of an organisation is that
    /// repository's result; an error listing the organisation itself is
    /// the call's.
    pub async fn scan_source(&self, source: &HfSource) -> Result<Vec<RemoteFile>, RemoteError> {
        match source {
            HfSource::Repo { kind, repo, rev } => {
                let rev = rev.as_deref().unwrap_or("main");
                self.scan_repo(*kind, repo, rev).await
            }
            HfSource::Org(org) => {
                let models = self
                    .client
                    .list_models(org, self.opts.auth.as_ref())
                    .await?;
                let mut out = Vec::new();
                for m in models {
                    let Some(id) = m
                        .get("id")
                        .or_else(|| m.get("modelId"))
                        .and_then(|i| i.as_str())
                        .filter(|id| {
                            id.split_once('/')
                                .is_some_and(|(o, n)| valid_name(o) && valid_name(n))
                        })
                    else {
                        return Err(RemoteError::Listing {
                            repo: org.clone(),
                            why: format!("a model entry has no valid id: {m}"),
                        });
                    };
                    match self.scan_repo(RepoKind::Model, id, "main").await {
                        Ok(files) => out.extend(files),
                        Err(e) => out.push(RemoteFile {
                            display: format!("hf://{id}@main"),
                            outcome: Err(e.to_string()),
                            downloaded: false,
                        }),
                    }
                }
                Ok(out)
            }
        }
    }

    /// Scans one file named by URL. With `sha256` (a manifest's) that the
    /// cache knows, nothing is downloaded; a download whose bytes are not
    /// that sha256 is an error.
    pub async fn scan_file_url(
        &self,
        url: &HfFileUrl,
        display: String,
        sha256: Option<String>,
    ) -> RemoteFile {
        let tmp = match tempfile::Builder::new().prefix("modelgate-hf-").tempdir() {
            Ok(t) => t,
            Err(e) => {
                return RemoteFile {
                    display,
                    outcome: Err(RemoteError::TempDir(e).to_string()),
                    downloaded: false,
                };
            }
        };
        let at = FileRef {
            kind: url.kind,
            repo: &url.repo,
            rev: &url.rev,
            path: &url.path,
        };
        self.scan_one(at, sha256, display, &tmp.path().join("0.download"))
            .await
    }

    /// The commit a revision names, so the listing and every download read
    /// one snapshot even if the branch moves meanwhile.
    async fn pin_revision(
        &self,
        kind: RepoKind,
        repo: &str,
        rev: &str,
    ) -> Result<String, RemoteError> {
        let info = self
            .client
            .revision_info(kind, repo, rev, self.opts.auth.as_ref())
            .await?;
        Ok(info
            .get("sha")
            .and_then(|s| s.as_str())
            .filter(|s| s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .map_or_else(|| rev.to_string(), str::to_string))
    }

    /// Scans every file of one repository.
    async fn scan_repo(
        &self,
        kind: RepoKind,
        repo: &str,
        rev: &str,
    ) -> Result<Vec<RemoteFile>, RemoteError> {
        let commit = self.pin_revision(kind, repo, rev).await?;
        let tree = self
            .client
            .tree(kind, repo, &commit, self.opts.auth.as_ref())
            .await?;
        let files = listed_files(repo, &tree)?;
        let tmp = tempfile::Builder::new()
            .prefix("modelgate-hf-")
            .tempdir()
            .map_err(RemoteError::TempDir)?;
        let prefix = format!("hf://{}{repo}@{rev}", kind.url_prefix());
        let results = futures_util::stream::iter(files.into_iter().enumerate())
            .map(|(n, file)| {
                let display = format!("{prefix}/{}", file.path);
                let dest = tmp.path().join(format!("{n}.download"));
                let commit = &commit;
                async move {
                    let at = FileRef {
                        kind,
                        repo,
                        rev: commit,
                        path: &file.path,
                    };
                    self.scan_one(at, file.sha256.clone(), display, &dest).await
                }
            })
            .buffer_unordered(PARALLEL_DOWNLOADS)
            .collect::<Vec<_>>()
            .await;
        Ok(results)
    }

    /// One file: its verdict from the cache when `sha256` (the listing's)
    /// is known there, else downloaded to `dest`, checked against that
    /// sha256, scanned and deleted.
    async fn scan_one(
        &self,
        at: FileRef<'_>,
        sha256: Option<String>,
        display: String,
        dest: &Path,
    ) -> RemoteFile {
        if let Some(sha) = &sha256 {
            let hit = {
                let scanner = Arc::clone(self.scanner);
                let (sha, display) = (sha.clone(), display.clone());
                tokio::task::spawn_blocking(move || scanner.from_cache(&sha, &display)).await
            };
            if let Ok(Some(scanned)) = hit {
                return RemoteFile {
                    display,
                    outcome: Ok(scanned),
                    downloaded: false,
                };
            }
        }
        let fetched = self
            .client
            .download(&at, self.opts.auth.as_ref(), dest, self.opts.max_file_bytes)
            .await;
        let outcome = match fetched {
            Err(e) => Err(e.to_string()),
            Ok((spooled, _)) => match &sha256 {
                // The bytes must be the ones the listing named: a mismatch
                // is an upstream that serves other content than it lists.
                Some(listed) if *listed != spooled.sha256 => Err(format!(
                    "the upstream listed sha256 {listed} but served {}",
                    spooled.sha256
                )),
                _ => {
                    let scanner = Arc::clone(self.scanner);
                    let (path, shown, sha) = (dest.to_path_buf(), display.clone(), spooled.sha256);
                    // The spool's own sha256 (equal to the listed one when
                    // there is one): the download is not hashed again.
                    tokio::task::spawn_blocking(move || {
                        scanner
                            .scan_hashed_file(&path, &shown, &sha)
                            .map_err(|e| e.to_string())
                    })
                    .await
                    .unwrap_or_else(|e| Err(format!("the scan did not finish: {e}")))
                }
            },
        };
        // Deleting the download is best effort: the temporary directory
        // goes when the repository is done.
        let _ = tokio::fs::remove_file(dest).await;
        RemoteFile {
            display,
            outcome,
            downloaded: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_hostile_names_are_refused() {
        let repo = |kind, repo: &str, rev: Option<&str>| HfSource::Repo {
            kind,
            repo: repo.into(),
            rev: rev.map(Into::into),
        };
        for (text, want) in [
            ("hf://acme", HfSource::Org("acme".into())),
            ("hf://acme/bert", repo(RepoKind::Model, "acme/bert", None)),
            (
                "hf://acme/bert@v1.0",
                repo(RepoKind::Model, "acme/bert", Some("v1.0")),
            ),
            (
                "hf://datasets/acme/data",
                repo(RepoKind::Dataset, "acme/data", None),
            ),
        ] {
            assert_eq!(text.parse::<HfSource>().ok(), Some(want), "{text}");
        }
        for text in [
            "hf://",
            "hf://acme/../x",
            "hf://../x",
            "hf://acme/bert/extra",
            "hf://acme@main",
            "hf://acme/bert@",
            "hf://acme/bert@../../x",
            "hf://acme/be rt",
            "https://huggingface.co/acme/bert",
        ] {
            assert!(text.parse::<HfSource>().is_err(), "{text}");
        }
    }

    #[test]
    fn file_urls_parse_and_hostile_paths_are_refused() {
        let u: HfFileUrl = "hf://datasets/acme/data@v2/a/b.bin".parse().unwrap();
        assert_eq!(
            (u.kind, u.repo.as_str(), u.rev.as_str(), u.path.as_str()),
            (RepoKind::Dataset, "acme/data", "v2", "a/b.bin")
        );
        let u: HfFileUrl = "hf://acme/bert/pytorch_model.bin".parse().unwrap();
        assert_eq!(
            (u.rev.as_str(), u.path.as_str()),
            ("main", "pytorch_model.bin")
        );
        for bad in [
            "hf://acme/bert",
            "hf://acme/bert/../x",
            "hf://acme/bert//x",
            "hf://acme/bert@/x",
            "hf://../bert/x",
            "s3://bucket/x",
        ] {
            assert!(bad.parse::<HfFileUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn listings_are_typed_and_lfs_oids_checked() {
        let sha = "ab".repeat(32);
        let tree: Vec<serde_json::Value> = serde_json::from_str(&format!(
            r#"[{{"type":"directory","path":"d"}},
                {{"type":"file","path":"d/w.bin","lfs":{{"oid":"{sha}","size":9}}}},
                {{"type":"file","path":"README.md","oid":"0123"}}]"#
        ))
        .unwrap();
        let files = listed_files("a/b", &tree).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].sha256.as_deref(), Some(sha.as_str()));
        assert_eq!(files[1].sha256, None);
        for bad in [
            r#"[{"type":"file"}]"#,
            r#"[{"type":"symlink","path":"x"}]"#,
            r#"[{"type":"file","path":"x","lfs":{"oid":"short"}}]"#,
        ] {
            let tree: Vec<serde_json::Value> = serde_json::from_str(bad).unwrap();
            assert!(listed_files("a/b", &tree).is_err(), "{bad}");
        }
    }
}
