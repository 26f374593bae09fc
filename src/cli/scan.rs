//! `modelgate scan PATH...`: scan files and directories, let the policy
//! decide, print findings, exit 1 when anything is blocked.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use rayon::prelude::*;

use modelgate::digest;
use modelgate::git::lfs;
use modelgate::policy::{Context, Decision, Place, Policy, SignatureSource};
use modelgate::report::{Summary, human, json, sarif};
use modelgate::scan::walk::{self, Target};
use modelgate::scan::{FileReport, ScanStatus, Scanner, Verdict};

use super::{EXIT_ERROR, EXIT_FINDINGS};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
    /// SARIF 2.1.0, for GitHub code scanning.
    Sarif,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Suspicious,
    Malicious,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or directories to scan (recursively); `-` reads one file from
    /// stdin; `hf://ORG/REPO[@REV]`, `hf://datasets/ORG/REPO` or `hf://ORG`
    /// (every model) reads from the Hub at `HF_ENDPOINT` with `HF_TOKEN`,
    /// downloading only files the verdict cache does not know.
    #[arg(default_value = ".")]
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    format: OutputFormat,
    /// Lowest verdict that makes the exit code 1, instead of the policy's
    /// actions (exemptions still apply). Without it, the policy decides:
    /// by default malicious and suspicious both block.
    #[arg(long, value_enum)]
    fail_on: Option<FailOn>,
    /// Policy file (default: policy.toml / .modelgate.toml found from the
    /// working directory upwards, else the built-in defaults).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Also list clean and skipped files.
    #[arg(short, long, conflicts_with = "quiet")]
    verbose: bool,
    /// Print nothing but errors; the exit code tells the outcome.
    #[arg(short, long)]
    quiet: bool,
    /// Write the report to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Leave out paths matching GLOB (gitignore syntax, relative to each
    /// directory scanned; repeatable).
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Also scan what .gitignore, .git/info/exclude and .ignore files leave
    /// out (they are honoured inside git work trees by default; a path named
    /// on the command line is always scanned).
    #[arg(long)]
    no_ignore: bool,
    #[command(flatten)]
    cache: super::cache::CacheLocation,
    /// Use the verdict cache for path scans too (manifest scans use it
    /// unless --no-cache): hashing every file costs more than scanning a
    /// large checkpoint's pickle, so path scans skip it by default.
    #[arg(long = "use-cache", conflicts_with = "no_cache")]
    use_cache: bool,
    /// Never read or write the verdict cache.
    #[arg(long)]
    no_cache: bool,
    /// Scan the files a JSON-lines manifest lists (`path`, or `url` as
    /// `hf://ORG/REPO[@REV]/PATH`; optional `sha256` and `size`); requires
    /// --results.
    #[arg(
        long,
        value_name = "FILE.jsonl",
        requires = "results",
        conflicts_with = "paths"
    )]
    manifest: Option<PathBuf>,
    /// Where manifest mode writes one JSON line per file.
    #[arg(long, value_name = "OUT.jsonl", requires = "manifest")]
    results: Option<PathBuf>,
    /// Take only shard I of N of the manifest (by content digest); `auto/N`
    /// reads the index from JOB_COMPLETION_INDEX or AWS_BATCH_JOB_ARRAY_INDEX.
    #[arg(long, value_name = "I/N", requires = "manifest")]
    shard: Option<String>,
}

/// Where a report's bytes came from, to hash them when an exemption needs it.
enum Source {
    File(PathBuf),
    Stdin(Vec<u8>),
    ModelDir,
    /// An `hf://` file, downloaded and deleted; its sha256.
    Remote(String),
}

/// The files of a run with the policy's decisions, in path order, and the
/// paths that could not be scanned.
struct Judged {
    reports: Vec<FileReport>,
    sources: Vec<Source>,
    decisions: Vec<Decision>,
    errors: Errors,
}

/// The stages: collect the inputs and scan them → judge → render → exit
/// code. Manifest mode (`--manifest`) has its own runner.
pub fn run(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let policy = match super::load_policy(args.policy.as_deref())? {
        Ok(policy) => policy,
        Err(code) => return Ok(code),
    };
    if let (Some(manifest), Some(results)) = (&args.manifest, &args.results) {
        let cache = (!args.no_cache).then(|| args.cache.open()).transpose()?;
        return super::scaleout::scan_manifest(
            &policy,
            cache,
            manifest,
            results,
            args.shard.as_deref(),
            args.quiet,
        );
    }
    let (scanned, errors) = scan_inputs(&args, &policy)?;
    let judged = judge(&policy, scanned, errors);
    render(&args, &policy, &judged, started)?;
    Ok(exit_code(&judged, args.fail_on))
}

/// Walks the paths and scans every file, through the verdict cache when
/// one is asked for.
fn scan_inputs(
    args: &ScanArgs,
    policy: &Policy,
) -> anyhow::Result<(Vec<(FileReport, Source)>, Errors)> {
    let scanner = Scanner::new(policy.scan_config());
    let cached = if args.use_cache || (args.cache.cache.is_some() && !args.no_cache) {
        Some(modelgate::cache::CachedScanner::new(
            scanner.clone(),
            Some(args.cache.open()?),
            policy.scan_settings_digest(),
        ))
    } else {
        None
    };
    let walk_options = walk::WalkOptions {
        excludes: args.exclude.clone(),
        no_ignore: args.no_ignore,
    };
    let (remote, local): (Vec<PathBuf>, Vec<PathBuf>) = args
        .paths
        .iter()
        .cloned()
        .partition(|p| super::remote::is_remote(p));
    let (mut scanned, mut errors) =
        scan_all_cached(&scanner, cached.as_ref(), &local, &walk_options)?;
    if !remote.is_empty() {
        // The Hub lists each LFS file's sha256, so the cache costs no
        // hashing here: on unless --no-cache.
        let cache = (!args.no_cache).then(|| args.cache.open()).transpose()?;
        let sources: Vec<String> = remote.iter().map(|p| p.display().to_string()).collect();
        let (reports, remote_errors) = super::remote::scan(policy, cache, &sources, args.quiet)?;
        scanned.extend(reports.into_iter().map(|(r, sha)| (r, Source::Remote(sha))));
        errors.extend(remote_errors);
    }
    Ok((scanned, errors))
}

/// The policy's decision on every file, in path order.
fn judge(policy: &Policy, mut scanned: Vec<(FileReport, Source)>, errors: Errors) -> Judged {
    scanned.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    let decisions = scanned
        .iter()
        .map(|(r, source)| decide(policy, r, source))
        .collect();
    let (reports, sources) = scanned.into_iter().unzip();
    Judged {
        reports,
        sources,
        decisions,
        errors,
    }
}

/// Writes the report where and how it was asked for.
fn render(args: &ScanArgs, policy: &Policy, j: &Judged, started: Instant) -> anyhow::Result<()> {
    let (mut out, to_terminal): (Box<dyn Write>, bool) = match &args.output {
        Some(file) => (
            Box::new(std::io::BufWriter::new(
                std::fs::File::create(file)
                    .with_context(|| format!("cannot write the report to {}", file.display()))?,
            )),
            false,
        ),
        None if args.quiet && matches!(args.format, OutputFormat::Human) => {
            (Box::new(std::io::sink()), false)
        }
        None => (
            Box::new(std::io::stdout().lock()),
            std::io::stdout().is_terminal(),
        ),
    };
    match args.format {
        OutputFormat::Human => {
            let opts = human::Options {
                verbose: args.verbose,
                color: super::color_enabled(to_terminal),
                actionable: false,
            };
            human::write_decided(&mut out, &j.reports, &j.decisions, opts, true)?;
            out.flush()?;
            warn_human(args, policy, j, started)?;
        }
        OutputFormat::Json => {
            let errs = j
                .errors
                .iter()
                .map(|(path, error)| json::JsonError {
                    path: path.clone(),
                    error: error.clone(),
                })
                .collect();
            let mut doc = json::document(&j.reports, errs);
            for (((file, d), r), source) in doc
                .files
                .iter_mut()
                .zip(&j.decisions)
                .zip(&j.reports)
                .zip(&j.sources)
            {
                file.decided(d);
                if !d.basis.is_empty() || !d.exempted.is_empty() || !r.findings.is_empty() {
                    file.sha256 = d.sha256.clone().or_else(|| content_sha256(source));
                }
            }
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
        }
        OutputFormat::Sarif => {
            let errs: Vec<_> = j
                .errors
                .iter()
                .map(|(path, error)| sarif::ScanError { path, error })
                .collect();
            let cwd = std::env::current_dir().context("reading the working directory")?;
            let exempted = sarif::exemptions(&j.decisions);
            let log = sarif::document(&j.reports, &exempted, &errs, &args.paths, &cwd);
            serde_json::to_writer_pretty(&mut out, &log)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// What the human report says on stderr: scan errors, path rules that
/// reached no file, unused exemptions, and the summary line.
fn warn_human(
    args: &ScanArgs,
    policy: &Policy,
    j: &Judged,
    started: Instant,
) -> anyhow::Result<()> {
    for (path, err) in &j.errors {
        eprintln!("modelgate: error: {path}: {err}");
    }
    // Path rules often make things stricter: files they cannot
    // reach are said, not passed silently.
    let outside: Vec<&str> = j
        .reports
        .iter()
        .map(|r| r.path.as_str())
        .filter(|p| *p != "-" && !policy.path_rules_reach(Place::disk(p, Path::new(p))))
        .collect();
    if let Some(first) = outside.first() {
        let folders: Vec<String> = policy
            .path_rule_folders()
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        eprintln!(
            "warning: no path rule applies to {} scanned file(s) (e.g. {first}): path rules apply in the folder of the policy file declaring them ({})",
            outside.len(),
            folders.join(", ")
        );
    }
    for e in policy.unused_exemptions() {
        eprintln!(
            "warning: exemption {} for sha256 {} matched no scanned file",
            e.origin, e.sha256
        );
    }
    if !args.quiet {
        let summary = Summary::of(&j.reports, j.errors.len());
        human::write_summary(
            &mut std::io::stderr(),
            &summary,
            j.decisions.iter().filter(|d| d.action.stops()).count(),
            started.elapsed().as_secs_f64(),
        )?;
    }
    Ok(())
}

/// 2 when a file could not be scanned, else 1 when a decision (or
/// `--fail-on`) fails the run, else 0.
fn exit_code(j: &Judged, fail_on: Option<FailOn>) -> ExitCode {
    if !j.errors.is_empty() {
        return ExitCode::from(EXIT_ERROR);
    }
    let fails = |d: &Decision| match fail_on {
        None => d.action.stops(),
        Some(FailOn::Suspicious) => d.basis.iter().any(|b| b.verdict >= Verdict::Suspicious),
        Some(FailOn::Malicious) => d.basis.iter().any(|b| b.verdict >= Verdict::Malicious),
    };
    if j.decisions.iter().any(fails) {
        return ExitCode::from(EXIT_FINDINGS);
    }
    ExitCode::SUCCESS
}

/// The sha256 of what was scanned, when it can be read again.
fn content_sha256(source: &Source) -> Option<String> {
    match source {
        Source::File(p) => digest::sha256_file(p).ok(),
        Source::Stdin(bytes) => Some(digest::sha256_bytes(bytes)),
        Source::ModelDir => None,
        Source::Remote(sha) => Some(sha.clone()),
    }
}

/// The policy's decision on one file. Path rules match the file's path
/// relative to the policy file (see [`Place`]), whatever the working
/// directory; the content hash is only computed when an exemption could
/// apply. Files on disk are also held to the path rules'
/// `require-signature`.
fn decide(policy: &Policy, report: &FileReport, source: &Source) -> Decision {
    let path = relative(&report.path);
    let place = match source {
        Source::File(p) => Place::disk(&path, p),
        Source::ModelDir => Place::disk(&path, Path::new(&report.path)),
        Source::Stdin(_) | Source::Remote(_) => Place::nowhere(&path),
    };
    let hash = || match source {
        Source::File(p) => digest::sha256_file(p).unwrap_or_default(),
        Source::Stdin(bytes) => digest::sha256_bytes(bytes),
        Source::ModelDir => String::new(),
        Source::Remote(sha) => sha.clone(),
    };
    match source {
        Source::File(p) if matches!(report.status, ScanStatus::Skipped { .. }) => {
            match lfs_pointer(p) {
                // A checkout without `git lfs pull` holds pointers where the
                // models should be: passing them would pass unseen content.
                Some(pointer) => {
                    let reason = format!(
                        "a Git LFS pointer to object sha256:{} ({} bytes), whose content is not here to scan",
                        pointer.oid, pointer.size
                    );
                    policy.decide_unverifiable(place, Some(&pointer.oid), &reason, Context::Scan)
                }
                None => policy.decide_signed(
                    report,
                    place,
                    SignatureSource::Disk(p),
                    hash,
                    Context::Scan,
                ),
            }
        }
        Source::File(p) => {
            policy.decide_signed(report, place, SignatureSource::Disk(p), hash, Context::Scan)
        }
        Source::Stdin(_) | Source::ModelDir | Source::Remote(_) => {
            policy.decide_with(report, place, hash, Context::Scan)
        }
    }
}

/// The Git LFS pointer `path` holds, read as git-lfs's smudge filter would.
fn lfs_pointer(path: &Path) -> Option<lfs::Pointer> {
    let mut prefix = Vec::with_capacity(lfs::BLOB_SIZE_CUTOFF);
    std::fs::File::open(path)
        .ok()?
        .take(lfs::BLOB_SIZE_CUTOFF as u64)
        .read_to_end(&mut prefix)
        .ok()?;
    lfs::parse_pointer(&prefix)
}

/// How messages name a file: relative to the working directory when it is
/// inside it.
fn relative(path: &str) -> String {
    let p = Path::new(path);
    let stripped = std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(&cwd).ok().map(Path::to_path_buf));
    let p = stripped.unwrap_or_else(|| p.to_path_buf());
    let s = p.to_string_lossy();
    s.strip_prefix("./").unwrap_or(&s).to_string()
}

type Errors = Vec<(String, String)>;

fn scan_all(
    scanner: &Scanner,
    paths: &[PathBuf],
    walk_options: &walk::WalkOptions,
) -> anyhow::Result<(Vec<(FileReport, Source)>, Errors)> {
    scan_all_cached(scanner, None, paths, walk_options)
}

fn scan_all_cached(
    scanner: &Scanner,
    cached: Option<&modelgate::cache::CachedScanner>,
    paths: &[PathBuf],
    walk_options: &walk::WalkOptions,
) -> anyhow::Result<(Vec<(FileReport, Source)>, Errors)> {
    let mut scanned = Vec::new();
    let mut errors = Vec::new();
    let (stdin, paths): (Vec<_>, Vec<_>) =
        paths.iter().cloned().partition(|p| p.as_os_str() == "-");
    if !stdin.is_empty() {
        let mut data = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut data)
            .context("reading stdin")?;
        scanned.push((scanner.scan_bytes("-", &data), Source::Stdin(data)));
    }
    let (targets, walk_errors) = walk::collect_with(&paths, walk_options)?;
    errors.extend(
        walk_errors
            .into_iter()
            .map(|e| (e.path.display().to_string(), e.error.to_string())),
    );

    let progress = progress_bar(targets.len());
    let results: Vec<Result<(FileReport, Source), (String, String)>> = targets
        .par_iter()
        .map(|t| {
            let display = t.path().display().to_string();
            let result = match t {
                Target::File { path } => match cached {
                    Some(c) => c.scan_file(path, &display, None).map(|s| s.report),
                    None => scanner.scan_file(path, &display),
                }
                .map(|r| (r, Source::File(path.clone()))),
                Target::ModelDir { path } => scanner
                    .scan_model_dir(path, &display)
                    .map(|r| (r, Source::ModelDir)),
            };
            if let Some(p) = &progress {
                p.inc(1);
            }
            // The error names the path, which is printed beside it: say
            // only the cause, as for the walk's errors.
            result.map_err(|e| {
                let cause = std::error::Error::source(&e)
                    .map_or_else(|| e.to_string(), ToString::to_string);
                (display, cause)
            })
        })
        .collect();
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    for r in results {
        match r {
            Ok(pair) => scanned.push(pair),
            Err(e) => errors.push(e),
        }
    }
    Ok((scanned, errors))
}

/// A progress bar on stderr, only for long scans on a terminal.
fn progress_bar(total: usize) -> Option<indicatif::ProgressBar> {
    if total < 50 || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files {elapsed}")
    {
        bar.set_style(style);
    }
    Some(bar)
}

#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// Files or directories to scan (recursively).
    #[arg(default_value = ".")]
    paths: Vec<PathBuf>,
    /// Policy file (default: as for `scan`).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
}

/// `modelgate policy baseline`: the exemptions that would let today's tree
/// pass, one per blocked file and rule, pinned to the content's sha256.
pub fn baseline(args: BaselineArgs) -> anyhow::Result<ExitCode> {
    let policy = match super::load_policy(args.policy.as_deref())? {
        Ok(policy) => policy,
        Err(code) => return Ok(code),
    };
    let scanner = Scanner::new(policy.scan_config());
    let (mut scanned, errors) = scan_all(&scanner, &args.paths, &walk::WalkOptions::default())?;
    scanned.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "# Generated by `modelgate policy baseline`. Review each file, then replace every\n\
         # reason: `modelgate policy check` refuses the placeholder."
    )?;
    let mut count = 0;
    for (report, source) in &scanned {
        let decision = decide(&policy, report, source);
        let mut rules: Vec<&str> = decision
            .basis
            .iter()
            .filter(|b| b.action.stops())
            .map(|b| b.rule.id)
            .collect();
        rules.sort_unstable();
        rules.dedup();
        let Some(sha256) = (!rules.is_empty())
            .then(|| decision.sha256.clone().or_else(|| content_sha256(source)))
            .flatten()
        else {
            continue;
        };
        for rule in rules {
            count += 1;
            writeln!(out, "\n[[exemptions]]")?;
            writeln!(out, "sha256 = \"{sha256}\"")?;
            writeln!(out, "rule = \"{rule}\"")?;
            writeln!(
                out,
                "reason = \"{}\"",
                modelgate::policy::REASON_PLACEHOLDER
            )?;
            writeln!(out, "note = {}", toml::Value::String(report.path.clone()))?;
        }
    }
    out.flush()?;
    eprintln!("modelgate: {count} exemption(s) written for review");
    for (path, err) in &errors {
        eprintln!("modelgate: error: {path}: {err}");
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_ERROR)
    })
}
