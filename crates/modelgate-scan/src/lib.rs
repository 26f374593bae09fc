//! The detection core.
//!
//! `Scanner` takes bytes (a memory-mapped file, stdin, a git blob, a
//! decompressed archive member) and returns a [`FileReport`]: what the bytes
//! are, every finding, and whether the scan could see everything. It never
//! deserializes, imports, evaluates or executes anything; it never prints,
//! never reads a policy file and knows nothing of git or the watcher.
//!
//! Flow: [`sniff`] decides the format from content, the format's parser walks
//! it (containers recurse through [`Ctx::scan_member`]), parsers report
//! findings against rules from [`rules`]. Every loop is bounded by
//! [`Limits`]; a tripped limit is a finding, never a crash.

#![deny(missing_docs)]

#[macro_use]
mod bytes;

pub mod archive;
pub mod engine_digest;
pub mod finding;
pub mod formats;
pub mod kind;
pub mod limits;
pub mod pickle;
pub mod rules;
pub mod sniff;
mod tables;
pub mod walk;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use engine_digest::ENGINE_DIGEST;
pub use finding::{FileReport, Finding, Location, ScanStatus, Verdict};
pub use kind::Kind;
pub use limits::Limits;
pub use pickle::globals::{GlobalLists, Resolver, allowlist, builtin_denial, python2_aliases};
pub use sniff::{Format, TOMBSTONE_MAGIC, base_name};

use rules::Rule;

/// Whether a blob needs a scan at all: false for plain text (text that can
/// carry no chat template) and images, which the scanner would only report
/// as skipped. Adapters that see many files (the git hooks walk every
/// changed blob) use it to keep the common case cheap without knowing the
/// formats themselves.
pub fn is_model_content(data: &[u8], name: &str) -> bool {
    match sniff::sniff(data, name) {
        Format::Text => formats::jinja::text_may_hold_template(data, name),
        Format::Image => false,
        _ => true,
    }
}

/// Whether a file's first bytes are a model or an archive format (what a
/// folder of weights holds), by content: false for text, images, unknown
/// bytes and the daemon's tombstones. The ML-BOM uses it to tell model
/// folders from others without knowing the formats.
pub fn is_model_or_archive(head: &[u8], name: &str) -> bool {
    !matches!(
        sniff::sniff(head, name),
        Format::Text | Format::Image | Format::Unknown | Format::Tombstone
    )
}

/// Errors that stop a file from being scanned at all (as opposed to
/// findings, which are about the file's content).
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The file (or model directory) could not be opened, mapped or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path as given, for the message.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
}

/// What the scanner is configured with. Built by adapters (CLI, policy,
/// hooks, daemon); the core never reads configuration files itself.
#[derive(Debug, Clone, Default)]
pub struct ScanConfig {
    /// Budgets every parser and container walk stays within.
    pub limits: Limits,
    /// Pickle globals allowed or denied on top of the built-in tables.
    pub globals: GlobalLists,
}

/// The detection core's entry point. Cheap to share between threads.
#[derive(Debug, Clone, Default)]
pub struct Scanner {
    config: ScanConfig,
}

impl Scanner {
    /// A scanner with these limits and pickle lists; [`Scanner::default`]
    /// has the built-in ones.
    pub fn new(config: ScanConfig) -> Self {
        Scanner { config }
    }

    /// The limits every scan of this scanner runs under.
    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    /// The pickle globals allowed or denied on top of the built-in tables.
    pub fn globals(&self) -> &GlobalLists {
        &self.config.globals
    }

    /// Scans one file on disk. The file is memory-mapped so that only the
    /// parts a parser touches are read: a 10 GB checkpoint costs its pickle
    /// and headers, not its tensors.
    pub fn scan_file(&self, path: &Path, display: &str) -> Result<FileReport, ScanError> {
        let io = |source| ScanError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len == 0 {
            return Ok(self.scan_bytes_at(display, &[], Some(path)));
        }
        // SAFETY: the map is read-only and private to this scan. A concurrent
        // truncation by another process could fault; the daemon only scans
        // files after their final rename, and git blobs are immutable.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Ok(self.scan_bytes_at(display, &map, Some(path)))
    }

    /// Scans bytes the caller mapped from the file at `origin` itself, so
    /// that it can hash exactly the bytes that are scanned (the daemon keys
    /// its verdict cache by that hash).
    pub fn scan_mapped(&self, display: &str, data: &[u8], origin: &Path) -> FileReport {
        self.scan_bytes_at(display, data, Some(origin))
    }

    /// Scans bytes that have no file on disk (stdin, a git blob).
    pub fn scan_bytes(&self, display: &str, data: &[u8]) -> FileReport {
        self.scan_bytes_at(display, data, None)
    }

    fn scan_bytes_at(&self, display: &str, data: &[u8], origin: Option<&Path>) -> FileReport {
        let mut cx = Ctx::new(self, origin.map(Path::to_path_buf));
        let format = sniff::sniff(data, display);
        cx.top_format = Some(format);
        dispatch(&mut cx, data, display, format);
        cx.finish(display, data.len() as u64)
    }

    /// Scans a directory-shaped model (a TensorFlow SavedModel) as one unit.
    pub fn scan_model_dir(&self, dir: &Path, display: &str) -> Result<FileReport, ScanError> {
        let mut cx = Ctx::new(self, Some(dir.to_path_buf()));
        cx.top_format = Some(Format::SavedModel);
        let size = formats::savedmodel::scan_dir(&mut cx, dir).map_err(|source| ScanError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(cx.finish(display, size))
    }
}

/// Scan state for one top-level file: findings so far, where in the
/// container tree we are, and what is left of the budgets.
pub struct Ctx<'s> {
    scanner: &'s Scanner,
    findings: Vec<Finding>,
    members: Vec<String>,
    inconclusive: Vec<String>,
    decompressed: u64,
    deadline: Instant,
    timed_out: bool,
    top_format: Option<Format>,
    /// Refined name of the outermost format (e.g. `pytorch-zip` for a zip),
    /// set by the parser that recognised it.
    top_kind: Option<Kind>,
    skipped: Option<String>,
    origin: Option<PathBuf>,
    /// Who would resolve the imports of pickles scanned now.
    resolver: Resolver,
}

impl<'s> Ctx<'s> {
    fn new(scanner: &'s Scanner, origin: Option<PathBuf>) -> Self {
        let budget = Duration::from_millis(scanner.config.limits.max_scan_millis);
        Ctx {
            scanner,
            findings: Vec::new(),
            members: Vec::new(),
            inconclusive: Vec::new(),
            decompressed: 0,
            deadline: Instant::now() + budget,
            timed_out: false,
            top_format: None,
            top_kind: None,
            skipped: None,
            origin,
            resolver: Resolver::Python,
        }
    }

    /// The limits of the scanner running this scan.
    pub fn limits(&self) -> &Limits {
        &self.scanner.config.limits
    }

    /// The extra pickle lists of the scanner running this scan.
    pub fn globals(&self) -> &GlobalLists {
        &self.scanner.config.globals
    }

    /// Which unpickler would resolve the imports of a pickle scanned now
    /// (TorchScript inside a TorchScript archive, Python elsewhere).
    pub fn resolver(&self) -> Resolver {
        self.resolver
    }

    /// Runs `f` with pickles resolved by `resolver` (the members of a
    /// TorchScript archive).
    pub fn with_resolver<R>(&mut self, resolver: Resolver, f: impl FnOnce(&mut Ctx) -> R) -> R {
        let outer = std::mem::replace(&mut self.resolver, resolver);
        let r = f(self);
        self.resolver = outer;
        r
    }

    /// The file on disk this scan started from, when there is one (needed to
    /// resolve ONNX external data and SavedModel siblings).
    pub fn origin(&self) -> Option<&Path> {
        self.origin.as_deref()
    }

    /// How deep in the container tree the current blob is (0 = the file).
    pub fn depth(&self) -> usize {
        self.members.len()
    }

    /// Names the outermost format more precisely than the sniffer could
    /// (`pytorch-zip`, `keras-v3`, `joblib`). Only the first call at depth 0
    /// counts.
    pub fn set_kind(&mut self, kind: Kind) {
        if self.members.is_empty() && self.top_kind.is_none() {
            self.top_kind = Some(kind);
        }
    }

    /// Reports a finding with the rule's default verdict.
    pub fn report(
        &mut self,
        rule: &'static Rule,
        offset: Option<u64>,
        message: impl Into<String>,
        evidence: Option<String>,
    ) {
        self.report_as(rule, rule.verdict, offset, message, evidence);
    }

    /// Reports a finding with an explicit verdict.
    pub fn report_as(
        &mut self,
        rule: &'static Rule,
        verdict: Verdict,
        offset: Option<u64>,
        message: impl Into<String>,
        evidence: Option<String>,
    ) {
        self.findings.push(Finding {
            rule,
            verdict,
            message: message.into(),
            location: Location {
                members: self.members.clone(),
                offset,
            },
            evidence: evidence.map(|e| finding::evidence(&e)),
        });
    }

    /// Reports that part of the input could not be inspected: a finding of
    /// `rule` (normally GEN001 or GEN002) and an inconclusive scan status.
    pub fn inconclusive(
        &mut self,
        rule: &'static Rule,
        offset: Option<u64>,
        reason: impl Into<String>,
    ) {
        let reason = reason.into();
        let where_ = if self.members.is_empty() {
            String::new()
        } else {
            format!("{}: ", self.members.join(" → "))
        };
        self.inconclusive.push(format!("{where_}{reason}"));
        self.report(rule, offset, reason, None);
    }

    /// Checks the wall-clock budget. Parsers call this in their outer loops;
    /// once it returns false they stop and the scan is inconclusive.
    pub fn in_time(&mut self) -> bool {
        if self.timed_out {
            return false;
        }
        if Instant::now() > self.deadline {
            self.timed_out = true;
            let ms = self.limits().max_scan_millis;
            self.inconclusive(
                &rules::LIMIT_EXCEEDED,
                None,
                format!("scan time budget of {ms} ms exhausted"),
            );
            return false;
        }
        true
    }

    /// Takes `n` bytes from the per-file decompression budget. Returns false
    /// (and reports once) when the budget would be exceeded.
    pub fn take_decompression_budget(&mut self, n: u64) -> bool {
        let max = self.limits().max_decompressed_bytes;
        if self.decompressed.saturating_add(n) > max {
            self.inconclusive(
                &rules::DECOMPRESSION_BOMB,
                None,
                format!("decompressing would exceed the budget of {max} bytes for one file"),
            );
            return false;
        }
        self.decompressed += n;
        true
    }

    /// What is left of the decompression budget.
    pub fn decompression_left(&self) -> u64 {
        self.limits()
            .max_decompressed_bytes
            .saturating_sub(self.decompressed)
    }

    /// Scans an archive member (or a decompressed stream) as a blob of its
    /// own, with `name` appended to the location chain.
    pub fn scan_member(&mut self, name: &str, data: &[u8]) {
        if self.members.len() as u32 >= self.limits().max_nesting_depth {
            let max = self.limits().max_nesting_depth;
            self.inconclusive(
                &rules::LIMIT_EXCEEDED,
                None,
                format!("archive nesting deeper than {max} levels; `{name}` not inspected"),
            );
            return;
        }
        if !self.in_time() {
            return;
        }
        self.members.push(name.to_string());
        let format = sniff::sniff(data, name);
        dispatch(self, data, name, format);
        self.members.pop();
    }

    /// Runs `f` with `name` appended to the location chain, for members a
    /// container parser dispatches itself (e.g. a Keras `config.json`).
    pub fn in_member<R>(&mut self, name: &str, f: impl FnOnce(&mut Ctx) -> R) -> R {
        self.members.push(name.to_string());
        let r = f(self);
        self.members.pop();
        r
    }

    fn finish(mut self, display: &str, size: u64) -> FileReport {
        dedupe(&mut self.findings);
        let status = if !self.inconclusive.is_empty() {
            ScanStatus::Inconclusive {
                reasons: self.inconclusive,
            }
        } else if let Some(reason) = self.skipped {
            ScanStatus::Skipped { reason }
        } else {
            ScanStatus::Complete
        };
        let format = self
            .top_kind
            .unwrap_or_else(|| Kind::from(self.top_format.unwrap_or(Format::Unknown)));
        FileReport {
            path: display.to_string(),
            format,
            size,
            verdict: FileReport::compute_verdict(&self.findings),
            status,
            findings: self.findings,
        }
    }
}

/// Identical findings (same rule, place and message) are reported once:
/// nested walks can reach the same stream twice.
fn dedupe(findings: &mut Vec<Finding>) {
    let mut seen = std::collections::HashSet::new();
    findings.retain(|f| seen.insert((f.rule.id, f.location.clone(), f.message.clone())));
}

/// Routes a blob to the parser of its format.
fn dispatch(cx: &mut Ctx, data: &[u8], name: &str, format: Format) {
    if format.can_execute() && sniff::claims_safe_format(name) {
        cx.report(
            &rules::DISGUISED_FORMAT,
            None,
            format!(
                "named like a safe format but the content is {}",
                format.name()
            ),
            Some(sniff::base_name(name).to_string()),
        );
    }
    scan_format(cx, data, name, format);
    scan_polyglot_parts(cx, data, format);
}

/// Readers disagree on where a file starts: pickle and PyTorch read from
/// the front, zip readers (Python's zipfile, hence Keras) from the end, HDF5
/// skips a user block. A file built for two readers is scanned as both.
fn scan_polyglot_parts(cx: &mut Ctx, data: &[u8], format: Format) {
    // safetensors and GGUF declare where their data ends and scan whatever
    // trails it themselves, so their tails are not read again here (a 1 GB
    // file costs its header only).
    let checks_own_tail = matches!(format, Format::Safetensors | Format::Gguf);
    if !matches!(format, Format::Zip | Format::Tombstone)
        && !checks_own_tail
        && sniff::looks_like_zip_without_local_header(data)
        && archive::zip::readable_from_end(cx, data)
    {
        // The TFLite metadata writer (and so MediaPipe) appends a model's
        // associated files (labels, vocabularies) as a zip: scanned, but
        // not a polyglot unless the zip is laid out like a model archive.
        if format == Format::TfLite && !archive::zip::has_model_layout(cx, data) {
            cx.in_member("<TFLite associated files>", |cx| {
                archive::zip::scan(cx, data)
            });
        } else {
            cx.report(
                &rules::POLYGLOT,
                None,
                format!(
                    "the file is {} from the front and a zip archive from the end",
                    format.name()
                ),
                None,
            );
            cx.in_member("<zip read from the end>", |cx| archive::zip::scan(cx, data));
        }
    }
    if format != Format::Hdf5
        && let Some(offset) = sniff::hdf5_superblock_offset(data)
        && offset > 0
    {
        cx.report(
            &rules::POLYGLOT,
            None,
            format!(
                "the file is {} from the front and HDF5 after a {offset}-byte user block",
                format.name()
            ),
            None,
        );
        cx.in_member("<HDF5 after the user block>", |cx| {
            formats::hdf5::scan(cx, data)
        });
    }
    if format == Format::Hdf5
        && let Some(offset) = sniff::hdf5_superblock_offset(data)
        && offset > 0
        && let Some(user_block) = data.get(..offset)
    {
        let inner = sniff::sniff(user_block, "");
        if !matches!(inner, Format::Unknown | Format::Text) {
            cx.report(
                &rules::POLYGLOT,
                None,
                format!("the HDF5 user block holds {} data", inner.name()),
                None,
            );
            cx.scan_member("<HDF5 user block>", user_block);
        }
    }
}

fn scan_format(cx: &mut Ctx, data: &[u8], name: &str, format: Format) {
    match format {
        Format::Zip => archive::zip::scan(cx, data),
        Format::Tar => archive::tar::scan(cx, data),
        Format::SevenZ => archive::sevenz::scan(cx, data),
        Format::Gzip
        | Format::Bzip2
        | Format::Xz
        | Format::Lzma
        | Format::Zlib
        | Format::Zstd
        | Format::Lz4
        | Format::ZFile => archive::compress::scan(cx, data, format),
        Format::Pickle => pickle::scan(cx, data),
        Format::Numpy => formats::numpy::scan(cx, data),
        Format::Hdf5 => formats::hdf5::scan(cx, data),
        Format::Gguf => formats::gguf::scan(cx, data),
        Format::Safetensors => formats::safetensors::scan(cx, data),
        Format::TfLite => formats::tflite::scan(cx, data),
        Format::Onnx => formats::onnx::scan(cx, data),
        Format::SavedModel => formats::savedmodel::scan_pb(cx, data),
        Format::Tombstone => {
            if cx.depth() == 0 {
                cx.skipped = Some("quarantined by modelgate (tombstone)".to_string());
            }
        }
        Format::Text if formats::jinja::scan_text(cx, data, name) => {}
        Format::Text | Format::Image | Format::Unknown => {
            if sniff::claims_model_format(name) && !sniff::is_lfs_pointer(data) {
                cx.inconclusive(
                    &rules::UNRECOGNISED_MODEL,
                    None,
                    format!(
                        "content is {} although the name says it is a model file",
                        format.name()
                    ),
                );
            } else if cx.depth() == 0 {
                cx.skipped = Some(match format {
                    Format::Text => "text, not a model format".to_string(),
                    Format::Image => "image, not a model format".to_string(),
                    _ => "no model format recognised in its content".to_string(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_model_content;

    #[test]
    fn plain_text_and_images_need_no_scan() {
        assert!(!is_model_content(b"# A README\n\nhello\n", "README.md"));
        assert!(!is_model_content(
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
            "logo.png"
        ));
        assert!(is_model_content(
            br#"{"chat_template": "{{ messages }}"}"#,
            "tokenizer_config.json"
        ));
        assert!(is_model_content(b"\x80\x02N.", "model.pkl"));
    }
}

#[cfg(test)]
mod disguise_tests {
    use super::{Scanner, Verdict};

    /// A zstd or LZ4 stream named like a safe format is a disguise (GEN003),
    /// like any other compression wrapper.
    #[test]
    fn compressed_stream_named_safetensors_is_disguised() {
        let zstd = ruzstd::encoding::compress_to_vec(
            &b"\x80\x02N."[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let mut lz4 = lz4_flex::frame::FrameEncoder::new(Vec::new());
        std::io::Write::write_all(&mut lz4, b"\x80\x02N.").expect("in memory");
        let lz4 = lz4.finish().expect("in memory");
        for data in [zstd, lz4] {
            let r = Scanner::default().scan_bytes("model.safetensors", &data);
            assert!(
                r.findings.iter().any(|f| f.rule.id == "GEN003"),
                "{:?}",
                r.findings
            );
            assert!(r.verdict >= Verdict::Suspicious, "{r:?}");
        }
    }
}
