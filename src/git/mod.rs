//! Git integration: the pre-commit, pre-push and pre-receive checks, and
//! the installer that wires them into a repository without clobbering
//! existing hooks.
//!
//! Each hook first *enumerates* the blobs it must judge, then hands each to
//! one [`Checker`], which scans it from memory with the detection core and
//! lets the [`Policy`] decide:
//!
//! - pre-commit ([`staged`]) diffs HEAD's tree against the **index** (the one
//!   named by `GIT_INDEX_FILE`, which `git commit -a` and `git commit PATH`
//!   point at temporary index files), so the staged content is judged, never
//!   the working tree;
//! - pre-push ([`push`]) walks every commit the push would add (not just the
//!   tip: a model added and deleted again is still pushed) and judges every
//!   blob each commit introduces;
//! - pre-receive ([`push`]) does the same on the server, where the pushed
//!   objects are only visible through the quarantine environment
//!   (`GIT_OBJECT_DIRECTORY`, `GIT_ALTERNATE_OBJECT_DIRECTORIES`,
//!   `GIT_QUARANTINE_PATH`): the repository is opened from the environment
//!   and the quarantine directory is added as an alternate.
//!
//! Cost: a commit that touches no model pays for the diff and for reading
//! each changed blob's first bytes; text is recognised by the sniffer and
//! skipped before anything else happens. Each blob is judged once per run
//! (pushes share blobs between commits). Hashing (sha256, for exemptions
//! and the ready-to-paste exemption snippet) happens only for files that
//! something flagged.
//!
//! Git LFS ([`lfs`]): a pointer blob is resolved to the local LFS object and
//! that is scanned; when the object is absent the policy decides
//! (`unverifiable`, warn by default).
//!
//! `require-signature` path rules are checked against what is being
//! committed or pushed, never the working tree: the signature covering a
//! blob is looked up in the same index (pre-commit) or commit tree (push
//! hooks), and a signature file the change adds must itself verify.
//!
//! Both SHA-1 and SHA-256 repositories work (git2 is built with its
//! SHA-256 support; object ids are parsed in the repository's format).
//! This module never runs hooks' payloads, never writes objects and never
//! updates refs.

pub mod install;
pub mod lfs;
pub mod push;
pub mod render;
pub mod staged;

use std::collections::HashSet;
use std::path::PathBuf;

use git2::{Oid, Repository};
use serde::Serialize;

use crate::cache::{Cache, CachedScanner};
use crate::policy::{Action, Context, Decision, Place, Policy, SignatureSource};
use crate::scan::{self, FileReport, Scanner};
use crate::sign;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// libgit2's message without its `; class=…; code=…` tail, which
    /// says nothing to a person.
    #[error("git: {}", .0.message())]
    Git(#[from] git2::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Input(String),
}

/// The verdict on one blob that deserves mention (anything not silently
/// allowed).
#[derive(Debug, Serialize)]
pub struct FileOutcome {
    /// The commit that introduced the blob (push hooks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    pub path: String,
    pub blob: String,
    /// Set when the blob was a Git LFS pointer: the LFS oid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lfs_oid: Option<String>,
    pub decision: Decision,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<FileReport>,
    /// Why the blob could not be judged; the decision is then the policy's
    /// `on-error` action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Push hooks: the blocked content is not at the tip of any pushed ref
    /// (a later commit removed or changed it), so only rewriting history
    /// removes it from the push.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub history_only: bool,
}

/// What a hook run found.
#[derive(Debug, Default, Serialize)]
pub struct Outcome {
    /// Blobs judged, once per path they appear at.
    pub checked: usize,
    /// Blobs that went through a model parser (not text).
    pub scanned: usize,
    /// Of those, how many verdicts came from the verdict cache (`--cache`).
    pub cached: usize,
    pub files: Vec<FileOutcome>,
}

impl Outcome {
    pub fn action(&self) -> Action {
        self.files
            .iter()
            .map(|f| f.decision.action)
            .max()
            .unwrap_or(Action::Allow)
    }

    /// The worst action among the blobs that were judged (not those that
    /// failed).
    pub fn judged_action(&self) -> Action {
        self.files
            .iter()
            .filter(|f| f.error.is_none())
            .map(|f| f.decision.action)
            .max()
            .unwrap_or(Action::Allow)
    }

    pub fn errors(&self) -> impl Iterator<Item = &FileOutcome> {
        self.files.iter().filter(|f| f.error.is_some())
    }
}

/// Blobs at least this large are scanned from an identical working-tree
/// file when there is one (see [`Checker::worktree_copy`]).
const WORKTREE_SCAN_MIN_BYTES: usize = 64 << 20;

/// Blobs up to this size are inflated into memory; larger ones are
/// streamed to a temporary file and scanned from there (see
/// [`spool_blob`]), so that a hook's memory stays bounded whatever is
/// committed.
const IN_MEMORY_MAX_BYTES: usize = 16 << 20;

/// Judges blobs of one repository against one policy.
pub struct Checker<'r> {
    repo: &'r Repository,
    scanner: Scanner,
    /// The verdict cache, when the hook was given one: content judged
    /// before (by any hook, `scan` or the daemon) is not scanned again.
    cached: Option<CachedScanner>,
    policy: &'r Policy,
    context: Context,
    /// Blob and path pairs already judged: a push shares blobs between
    /// commits, but the same content at another path can meet other path
    /// rules.
    seen: HashSet<(Oid, String)>,
    lfs_objects: PathBuf,
    /// The index being committed (pre-commit): where `require-signature`
    /// looks for signatures. Push hooks look in each commit's tree.
    index: Option<git2::Index>,
    outcome: Outcome,
}

impl<'r> Checker<'r> {
    pub fn new(repo: &'r Repository, policy: &'r Policy, cache: Option<Cache>) -> Self {
        let storage = repo
            .config()
            .ok()
            .and_then(|c| c.get_string("lfs.storage").ok());
        let scanner = Scanner::new(policy.scan_config());
        Checker {
            repo,
            cached: cache.map(|c| {
                CachedScanner::new(scanner.clone(), Some(c), policy.scan_settings_digest())
            }),
            scanner,
            policy,
            context: Context::Hook,
            seen: HashSet::new(),
            lfs_objects: lfs::objects_dir(repo.commondir(), storage.as_deref()),
            index: None,
            outcome: Outcome::default(),
        }
    }

    /// `path` (relative to the repository root) for the policy's path
    /// rules, which are relative to the policy file's directory when it is
    /// in this work tree.
    fn place<'p>(&'p self, path: &'p str) -> Place<'p> {
        Place::repo(path, self.repo.workdir())
    }

    /// Judges blobs as staged in `index`: signatures are looked up there.
    pub fn with_index(mut self, index: git2::Index) -> Self {
        self.index = Some(index);
        self
    }

    /// Judges every blob a diff adds or changes (added, copied, modified,
    /// renamed, type-changed), by its new side. Gitlinks (submodules) are
    /// someone else's repository and are skipped.
    pub fn check_diff(&mut self, diff: &git2::Diff<'_>, commit: Option<Oid>) {
        use git2::{Delta, FileMode};
        for delta in diff.deltas() {
            if !matches!(
                delta.status(),
                Delta::Added | Delta::Copied | Delta::Modified | Delta::Typechange | Delta::Renamed
            ) {
                continue;
            }
            let file = delta.new_file();
            if file.mode() == FileMode::Commit {
                continue;
            }
            let path = file
                .path()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            self.check(commit, &path, file.id());
        }
    }

    /// Judges every blob of `tree` (a tag that names a tree directly), with
    /// paths relative to it. Gitlinks are skipped as in a diff.
    pub fn check_tree(&mut self, tree: &git2::Tree<'_>) {
        let mut blobs = Vec::new();
        let walked = tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() == Some(git2::ObjectType::Blob) {
                let name = String::from_utf8_lossy(entry.name_bytes());
                blobs.push((format!("{dir}{name}"), entry.id()));
            }
            git2::TreeWalkResult::Ok
        });
        if let Err(e) = walked {
            self.record_error(None, &format!("tree {}", tree.id()), tree.id(), &e.into());
        }
        for (path, id) in blobs {
            self.check(None, &path, id);
        }
    }

    /// Judges the blob `id` found at `path` (in `commit`, for push hooks).
    /// A blob already judged at this path in this run is skipped. A blob that cannot be
    /// read or scanned becomes an outcome of its own (the policy's
    /// `on-error` action) and the run carries on, so that one bad object
    /// never hides a block found in another.
    pub fn check(&mut self, commit: Option<Oid>, path: &str, id: Oid) {
        if !self.seen.insert((id, path.to_string())) {
            return;
        }
        self.outcome.checked += 1;
        if let Err(e) = self.judge(commit, path, id) {
            self.record_error(commit, path, id, &e);
        }
    }

    fn judge(&mut self, commit: Option<Oid>, path: &str, id: Oid) -> Result<(), GitError> {
        let (size, kind) = self.repo.odb()?.read_header(id)?;
        if kind != git2::ObjectType::Blob {
            return Err(GitError::Input(format!("{id} is a {kind}, not a blob")));
        }
        if let Some(file) = self.worktree_copy(path, id, size) {
            return self.judge_file(commit, path, id, &file);
        }
        if size <= IN_MEMORY_MAX_BYTES {
            let blob = self.repo.find_blob(id)?;
            let data = blob.content();
            if let Some(pointer) = lfs::parse_pointer(data) {
                self.judge_pointer(commit, path, id, &pointer)?;
                // git-lfs decodes only the first bytes: a larger blob is
                // also checked for what it holds without git-lfs.
                if data.len() < lfs::BLOB_SIZE_CUTOFF {
                    return Ok(());
                }
            }
            self.judge_bytes(commit, path, id, data);
            return Ok(());
        }
        let spooled = spool_blob(self.repo, id)?;
        let mut prefix = Vec::with_capacity(lfs::BLOB_SIZE_CUTOFF);
        {
            use std::io::Read;
            std::fs::File::open(spooled.path())
                .and_then(|f| {
                    f.take(lfs::BLOB_SIZE_CUTOFF as u64)
                        .read_to_end(&mut prefix)
                })
                .map_err(|source| GitError::Io {
                    what: format!("cannot read back blob {id}"),
                    source,
                })?;
        }
        if let Some(pointer) = lfs::parse_pointer(&prefix) {
            self.judge_pointer(commit, path, id, &pointer)?;
        }
        self.judge_file(commit, path, id, spooled.path())
    }

    /// Scans a file holding the blob's exact bytes.
    fn judge_file(
        &mut self,
        commit: Option<Oid>,
        path: &str,
        id: Oid,
        file: &std::path::Path,
    ) -> Result<(), GitError> {
        let (report, sha256) = self.scan_path(file, path, None).map_err(|e| GitError::Io {
            what: format!("cannot scan {path}"),
            source: std::io::Error::other(e.to_string()),
        })?;
        let hash = || sha256.clone().unwrap_or_else(|| hash_file(file));
        let read = |p: &str| self.read_in_change(commit, p);
        let mut decision = self.policy.decide_signed(
            &report,
            self.place(path),
            SignatureSource::Tree(&read),
            hash,
            self.context,
        );
        if decision.action > Action::Allow && decision.sha256.is_none() {
            decision.sha256 = Some(hash());
        }
        self.record(commit, path, id, None, decision, Some(report));
        Ok(())
    }

    /// Judges the local object an LFS pointer names, or, when it is not
    /// here, lets the policy's `unverifiable` action decide.
    fn judge_pointer(
        &mut self,
        commit: Option<Oid>,
        path: &str,
        id: Oid,
        pointer: &lfs::Pointer,
    ) -> Result<(), GitError> {
        let lfs_oid = Some(pointer.oid.clone());
        let object = lfs::local_object(&self.lfs_objects, pointer);
        let why_not = match (&object, pointer.extensions.is_empty()) {
            (Some(_), true) => None,
            (None, _) => Some(format!(
                "Git LFS object sha256:{} ({} bytes) is not present locally, so its content could not be checked",
                pointer.oid, pointer.size
            )),
            // The object is the extensions' input; the file git-lfs checks
            // out is whatever those programs make of it.
            (Some(_), false) => Some(format!(
                "Git LFS pointer with extensions ({}): the checked-out file is produced from \
                 object sha256:{} by programs configured on each machine, so it could not be checked",
                pointer.extensions.join(", "),
                pointer.oid
            )),
        };
        let (Some(object), None) = (object, why_not.as_ref()) else {
            let reason = why_not.unwrap_or_default();
            let mut decision = self.policy.decide_unverifiable(
                self.place(path),
                Some(&pointer.oid),
                &reason,
                self.context,
            );
            if decision.action > Action::Allow && decision.sha256.is_none() {
                decision.sha256 = Some(pointer.oid.clone());
            }
            self.record(commit, path, id, lfs_oid, decision, None);
            return Ok(());
        };
        // git-lfs stores (and verifies on transfer) each object under its
        // sha256: with a cache, the pointer's oid finds the verdict without
        // reading the object.
        let (report, sha256) = self
            .scan_path(&object, path, Some(&pointer.oid))
            .map_err(|e| GitError::Io {
                what: format!("cannot scan LFS object of {path}"),
                source: std::io::Error::other(e.to_string()),
            })?;
        let hash = || sha256.clone().unwrap_or_else(|| hash_file(&object));
        let read = |p: &str| self.read_in_change(commit, p);
        let mut decision = self.policy.decide_signed(
            &report,
            self.place(path),
            SignatureSource::Tree(&read),
            hash,
            self.context,
        );
        if decision.action > Action::Allow && decision.sha256.is_none() {
            decision.sha256 = Some(hash());
        }
        self.record(commit, path, id, lfs_oid, decision, Some(report));
        Ok(())
    }

    /// Scans a file holding a blob's (or LFS object's) bytes, through the
    /// verdict cache when there is one; with the cache, the content's
    /// sha256 comes back too (it was computed to find the entry).
    fn scan_path(
        &mut self,
        file: &std::path::Path,
        path: &str,
        claimed: Option<&str>,
    ) -> Result<(FileReport, Option<String>), scan::ScanError> {
        self.outcome.scanned += 1;
        match &self.cached {
            Some(c) => {
                let s = c.scan_file(file, path, claimed)?;
                self.outcome.cached += usize::from(s.cached);
                Ok((s.report, Some(s.sha256)))
            }
            None => Ok((self.scanner.scan_file(file, path)?, None)),
        }
    }

    /// Judges a blob held in memory.
    fn judge_bytes(&mut self, commit: Option<Oid>, path: &str, id: Oid, data: &[u8]) {
        // The cheap exit that keeps text-only commits fast; the scanner
        // would skip these too, after building a report.
        if !scan::is_model_content(data, path) {
            if is_signature_name(path)
                && let Some(decision) =
                    self.policy
                        .decide_signature_file(self.place(path), data, self.context)
            {
                self.record(commit, path, id, None, decision, None);
            }
            return;
        }
        self.outcome.scanned += 1;
        let report = match &self.cached {
            Some(c) => {
                let s = c.scan_bytes(path, data);
                self.outcome.cached += usize::from(s.cached);
                s.report
            }
            None => self.scanner.scan_bytes(path, data),
        };
        let read = |p: &str| self.read_in_change(commit, p);
        let mut decision = self.policy.decide_signed(
            &report,
            self.place(path),
            SignatureSource::Tree(&read),
            || hash_bytes(data),
            self.context,
        );
        if decision.action > Action::Allow && decision.sha256.is_none() {
            // The ready-to-paste exemption needs the content hash.
            decision.sha256 = Some(hash_bytes(data));
        }
        self.record(commit, path, id, None, decision, Some(report));
    }

    fn record(
        &mut self,
        commit: Option<Oid>,
        path: &str,
        id: Oid,
        lfs_oid: Option<String>,
        decision: Decision,
        report: Option<FileReport>,
    ) {
        if decision.action == Action::Allow && decision.basis.is_empty() {
            return;
        }
        self.outcome.files.push(FileOutcome {
            commit: commit.map(|c| c.to_string()),
            path: path.to_string(),
            blob: id.to_string(),
            lfs_oid,
            decision,
            report,
            error: None,
            history_only: false,
        });
    }

    /// A blob that could not be judged: the policy's `on-error` action.
    fn record_error(&mut self, commit: Option<Oid>, path: &str, id: Oid, error: &GitError) {
        self.outcome.files.push(FileOutcome {
            commit: commit.map(|c| c.to_string()),
            path: path.to_string(),
            blob: id.to_string(),
            lfs_oid: None,
            decision: Decision {
                action: self.policy.on_error(),
                basis: Vec::new(),
                exempted: Vec::new(),
                expired: Vec::new(),
                path_rules: Vec::new(),
                sha256: None,
            },
            report: None,
            error: Some(error.to_string()),
            history_only: false,
        });
    }

    /// The content at `path` in what is being committed or pushed: the
    /// index for pre-commit, `commit`'s tree for the push hooks; an LFS
    /// pointer is followed to its local object. Only signature-sized files
    /// are read.
    fn read_in_change(&self, commit: Option<Oid>, path: &str) -> Option<Vec<u8>> {
        let at = std::path::Path::new(path);
        let id = match commit {
            Some(c) => self
                .repo
                .find_commit(c)
                .ok()?
                .tree()
                .ok()?
                .get_path(at)
                .ok()?
                .id(),
            None => self.index.as_ref()?.get_path(at, 0)?.id,
        };
        let (size, kind) = self.repo.odb().ok()?.read_header(id).ok()?;
        if kind != git2::ObjectType::Blob || size as u64 > sign::MAX_SIGNATURE_BYTES {
            return None;
        }
        let blob = self.repo.find_blob(id).ok()?;
        match lfs::parse_pointer(blob.content()) {
            Some(pointer) if pointer.size <= sign::MAX_SIGNATURE_BYTES => {
                std::fs::read(lfs::local_object(&self.lfs_objects, &pointer)?).ok()
            }
            Some(_) => None,
            None => Some(blob.content().to_vec()),
        }
    }

    /// A large blob is scanned from the working tree when the file there
    /// is byte for byte the staged blob (git's own blob hash of it equals
    /// the blob id): git2 would otherwise inflate the whole object into
    /// memory, a gigabyte for a gigabyte checkpoint, where a memory map
    /// costs only the pages the scanner reads. Any difference (an edit after
    /// `git add`, clean filters, CRLF conversion) falls back to the blob.
    fn worktree_copy(&self, path: &str, id: Oid, size: usize) -> Option<PathBuf> {
        let workdir = self.repo.workdir()?;
        if size < WORKTREE_SCAN_MIN_BYTES {
            return None;
        }
        let file = workdir.join(path);
        let meta = std::fs::symlink_metadata(&file).ok()?;
        if !meta.is_file() || meta.len() != size as u64 {
            return None;
        }
        if self.index_vouches_for(path, id, &meta) {
            return Some(file);
        }
        (Oid::hash_file(git2::ObjectType::Blob, &file).ok()? == id).then_some(file)
    }

    /// git's own shortcut (`git diff-files`): the index entry for `path`
    /// records blob `id` with the file's current size, inode, mtime and
    /// ctime, and the file was last modified before the index was written
    /// (otherwise an edit in the same clock tick could hide: "racy git"),
    /// so the file still holds the staged blob and need not be rehashed.
    /// Nanoseconds are compared when git recorded them.
    fn index_vouches_for(&self, path: &str, id: Oid, meta: &std::fs::Metadata) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Some(index) = &self.index else {
            return false;
        };
        let Some(entry) = index.get_path(std::path::Path::new(path), 0) else {
            return false;
        };
        let same_time = |t: git2::IndexTime, secs: i64, nanos: i64| {
            i64::from(t.seconds()) == secs
                && (t.nanoseconds() == 0 || i64::from(t.nanoseconds()) == nanos)
        };
        let stat_matches = entry.id == id
            // git keeps the size modulo 2^32.
            && entry.file_size == meta.len() as u32
            && entry.ino == meta.ino() as u32
            && same_time(entry.mtime, meta.mtime(), meta.mtime_nsec())
            && same_time(entry.ctime, meta.ctime(), meta.ctime_nsec());
        let index_written = index
            .path()
            .and_then(|p| std::fs::metadata(p).ok())
            .and_then(|m| m.modified().ok());
        stat_matches
            && meta
                .modified()
                .is_ok_and(|m| index_written.is_some_and(|w| m < w))
    }

    pub fn finish(self) -> Outcome {
        self.outcome
    }
}

/// Copies blob `id` into a temporary file without holding it in memory:
/// through libgit2's streaming reader where the object's backend has one
/// (loose objects), otherwise (packed objects, which libgit2 can only
/// inflate whole) through `git cat-file blob`, which streams large packed
/// blobs. The copy's size is checked against the object header.
fn spool_blob(repo: &Repository, id: Oid) -> Result<tempfile::NamedTempFile, GitError> {
    let io = |what: &str| {
        let what = format!("{what} (blob {id})");
        move |source| GitError::Io { what, source }
    };
    let mut file = tempfile::Builder::new()
        .prefix("modelgate-blob.")
        .tempfile()
        .map_err(io("cannot create a temporary file"))?;
    let odb = repo.odb()?;
    let (size, _) = odb.read_header(id)?;
    let copied = match odb.reader(id) {
        Ok((mut reader, _, _)) => {
            std::io::copy(&mut reader, file.as_file_mut()).map_err(io("cannot read"))?
        }
        Err(_) => {
            let status = std::process::Command::new("git")
                .arg("--git-dir")
                .arg(repo.path())
                .args(["cat-file", "blob", &id.to_string()])
                .stdin(std::process::Stdio::null())
                .stdout(
                    file.reopen()
                        .map_err(io("cannot reopen the temporary file"))?,
                )
                .status()
                .map_err(io("cannot run `git cat-file`"))?;
            if !status.success() {
                return Err(GitError::Input(format!(
                    "`git cat-file blob {id}` failed ({status})"
                )));
            }
            file.as_file().metadata().map_err(io("cannot stat"))?.len()
        }
    };
    if copied != size as u64 {
        return Err(GitError::Input(format!(
            "blob {id}: read {copied} bytes, the object header says {size}"
        )));
    }
    Ok(file)
}

/// Signature files by convention (`model.sig`, `<file>.sig`), as
/// [`sign::find_signature_in`] looks for them.
fn is_signature_name(path: &str) -> bool {
    path.ends_with(".sig")
}

fn hash_bytes(data: &[u8]) -> String {
    crate::digest::sha256_bytes(data)
}

/// An unreadable object hashes to the empty string, which matches no
/// exemption.
fn hash_file(path: &std::path::Path) -> String {
    crate::digest::sha256_file(path).unwrap_or_default()
}

/// Opens the repository a client-side hook runs in, from the environment
/// git sets for hooks (`GIT_DIR`, `GIT_INDEX_FILE`, ...).
pub fn open() -> Result<Repository, GitError> {
    Ok(Repository::open_from_env()?)
}

/// Parses a hex object id in the repository's format; `None` for the
/// all-zero id (whose length depends on the format).
pub fn parse_oid(repo: &Repository, hex: &str) -> Result<Option<Oid>, GitError> {
    if !hex.is_empty() && hex.bytes().all(|b| b == b'0') {
        return Ok(None);
    }
    Oid::from_str_ext(hex, repo.object_format())
        .map(Some)
        .map_err(|_| GitError::Input(format!("`{hex}` is not an object id")))
}
