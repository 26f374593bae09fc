//! Manifest mode and sharding: `scan --manifest`, `modelgate manifest`,
//! `modelgate merge`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use rayon::prelude::*;

use modelgate::cache::CachedScanner;
use modelgate::cache::manifest::{ManifestEntry, ResultLine, ResultStatus, Shard};
use modelgate::policy::{Context, Decision, Place, Policy};
use modelgate::report::{Summary, human, json, sarif};
use modelgate::scan::{FileReport, Scanner, walk};

use super::scan::OutputFormat;
use super::{EXIT_ERROR, EXIT_FINDINGS};

/// `scan --manifest`: scans this shard's entries into `results`.
pub fn scan_manifest(
    policy: &Policy,
    cache: Option<modelgate::cache::Cache>,
    manifest: &Path,
    results: &Path,
    shard: Option<&str>,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let shard = shard
        .map(|s| Shard::parse(s, |v| std::env::var(v).ok()))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--shard: {e}"))?;
    let entries = read_manifest(manifest)?;
    let mine: Vec<&ManifestEntry> = entries
        .iter()
        .filter(|e| shard.is_none_or(|s| s.takes(e)))
        .collect();
    let scanner = std::sync::Arc::new(CachedScanner::new(
        Scanner::new(policy.scan_config()),
        cache,
        policy.scan_settings_digest(),
    ));
    let (urls, mine): (Vec<&ManifestEntry>, Vec<&ManifestEntry>) =
        mine.into_iter().partition(|e| e.path.is_none());
    let scan_one = |e: &&ManifestEntry| {
        // Every entry here has a path: the url entries were set apart.
        let path = e.path.as_deref().unwrap_or_default();
        match scanner.scan_file(Path::new(path), path, e.digest().as_deref()) {
            Ok(s) => ResultLine::scanned(&s),
            Err(err) => {
                let cause = std::error::Error::source(&err)
                    .map_or_else(|| err.to_string(), ToString::to_string);
                ResultLine::error(path, e.digest(), cause)
            }
        }
    };
    // The first entry of each digest first, its duplicates after: run side
    // by side, every copy would miss the cache and be scanned.
    let mut seen = std::collections::HashSet::new();
    let (first, dups): (Vec<&ManifestEntry>, Vec<&ManifestEntry>) = mine
        .iter()
        .partition(|e| e.digest().is_none_or(|d| seen.insert(d)));
    let mut lines: Vec<ResultLine> = first.par_iter().map(scan_one).collect();
    lines.extend(dups.par_iter().map(scan_one).collect::<Vec<_>>());
    lines.extend(super::remote::scan_manifest_urls(&scanner, &urls)?);
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(results)
            .with_context(|| format!("cannot write results to {}", results.display()))?,
    );
    for l in &lines {
        serde_json::to_writer(&mut out, l)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    let c = &scanner.counters;
    if !quiet {
        eprintln!(
            "modelgate: {} of {} manifest entries in this shard: {} scanned, {} from the cache, {} untrusted cache entries rescanned",
            lines.len(),
            entries.len(),
            c.scanned.load(std::sync::atomic::Ordering::Relaxed),
            c.cached.load(std::sync::atomic::Ordering::Relaxed),
            c.rejected.load(std::sync::atomic::Ordering::Relaxed),
        );
    }
    exit_code(policy, &lines)
}

fn read_manifest(path: &Path) -> anyhow::Result<Vec<ManifestEntry>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read the manifest {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}:{}", path.display(), n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let e: ManifestEntry = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a manifest entry", path.display(), n + 1))?;
        if e.name().is_none() {
            bail!(
                "{}:{}: an entry needs `path` or `url`",
                path.display(),
                n + 1
            );
        }
        out.push(e);
    }
    Ok(out)
}

fn decisions(policy: &Policy, reports: &[FileReport], lines: &[&ResultLine]) -> Vec<Decision> {
    reports
        .iter()
        .zip(lines)
        .map(|(r, l)| {
            let sha = l.sha256.clone().unwrap_or_default();
            policy.decide_with(r, Place::nowhere(&r.path), move || sha, Context::Scan)
        })
        .collect()
}

/// Typed reports and errors from result lines, as `scan` would have them.
type Folded<'a> = (Vec<FileReport>, Vec<&'a ResultLine>, Vec<(String, String)>);

fn fold(lines: &[ResultLine]) -> anyhow::Result<Folded<'_>> {
    let mut reports = Vec::new();
    let mut kept = Vec::new();
    let mut errors = Vec::new();
    for l in lines {
        match l.to_report().map_err(anyhow::Error::msg)? {
            Some(r) => {
                reports.push(r);
                kept.push(l);
            }
            None => errors.push((l.path.clone(), l.error.clone().unwrap_or_default())),
        }
    }
    Ok((reports, kept, errors))
}

fn exit_code(policy: &Policy, lines: &[ResultLine]) -> anyhow::Result<ExitCode> {
    let (reports, kept, errors) = fold(lines)?;
    if !errors.is_empty() {
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    if decisions(policy, &reports, &kept)
        .iter()
        .any(|d| d.action.stops())
    {
        return Ok(ExitCode::from(EXIT_FINDINGS));
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// Files or directories to list (recursively).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// `modelgate manifest PATH...`: one JSON line per file with its sha256
/// and size, hashed in parallel.
pub fn manifest(args: ManifestArgs) -> anyhow::Result<ExitCode> {
    let (targets, walk_errors) = walk::collect_with(&args.paths, &walk::WalkOptions::default())?;
    let files: Vec<PathBuf> = targets
        .iter()
        .filter_map(|t| match t {
            walk::Target::File { path } => Some(path.clone()),
            walk::Target::ModelDir { .. } => None,
        })
        .collect();
    let lines: Vec<Result<ManifestEntry, String>> = files
        .par_iter()
        .map(|p| {
            let size = std::fs::metadata(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .len();
            let sha =
                modelgate::digest::sha256_file(p).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok(ManifestEntry {
                path: Some(p.display().to_string()),
                url: None,
                sha256: Some(sha),
                size: Some(size),
            })
        })
        .collect();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut failed = !walk_errors.is_empty();
    for e in walk_errors {
        eprintln!("modelgate: error: {}: {}", e.path.display(), e.error);
    }
    for l in lines {
        match l {
            Ok(e) => {
                serde_json::to_writer(&mut out, &e)?;
                out.write_all(b"\n")?;
            }
            Err(e) => {
                failed = true;
                eprintln!("modelgate: error: {e}");
            }
        }
    }
    out.flush()?;
    Ok(if failed {
        ExitCode::from(EXIT_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Result files written by `scan --results` (one per shard).
    #[arg(required = true)]
    results: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    format: OutputFormat,
    /// Policy file (default: as for `scan`).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
}

/// `modelgate merge OUT*.jsonl`: one report from every shard's results,
/// exiting like `scan`. A path listed twice keeps its worst line.
pub fn merge(args: MergeArgs) -> anyhow::Result<ExitCode> {
    let policy = match super::load_policy(args.policy.as_deref())? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let mut by_path: std::collections::BTreeMap<String, ResultLine> = Default::default();
    for f in &args.results {
        let file = std::fs::File::open(f)
            .with_context(|| format!("cannot read results {}", f.display()))?;
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.with_context(|| format!("{}:{}", f.display(), n + 1))?;
            if line.trim().is_empty() {
                continue;
            }
            let r: ResultLine = serde_json::from_str(&line)
                .with_context(|| format!("{}:{}: not a result line", f.display(), n + 1))?;
            match by_path.get(&r.path) {
                Some(old)
                    if (old.verdict(), old.status == ResultStatus::Error)
                        >= (r.verdict(), r.status == ResultStatus::Error) => {}
                _ => {
                    by_path.insert(r.path.clone(), r);
                }
            }
        }
    }
    let lines: Vec<ResultLine> = by_path.into_values().collect();
    let (reports, kept, errors) = fold(&lines)?;
    let decisions = decisions(&policy, &reports, &kept);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match args.format {
        OutputFormat::Human => {
            let opts = human::Options {
                verbose: false,
                color: false,
                actionable: false,
            };
            human::write_decided(&mut out, &reports, &decisions, opts, true)?;
            out.flush()?;
            for (path, err) in &errors {
                eprintln!("modelgate: error: {path}: {err}");
            }
            let summary = Summary::of(&reports, errors.len());
            human::write_summary(
                &mut std::io::stderr(),
                &summary,
                decisions.iter().filter(|d| d.action.stops()).count(),
                0.0,
            )?;
        }
        OutputFormat::Json => {
            let errs = errors
                .iter()
                .map(|(path, error)| json::JsonError {
                    path: path.clone(),
                    error: error.clone(),
                })
                .collect();
            let mut doc = json::document(&reports, errs);
            for ((file, d), l) in doc.files.iter_mut().zip(&decisions).zip(&kept) {
                file.decided(d);
                file.sha256 = l.sha256.clone();
            }
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
        }
        OutputFormat::Sarif => {
            let errs: Vec<_> = errors
                .iter()
                .map(|(path, error)| sarif::ScanError { path, error })
                .collect();
            let cwd = std::env::current_dir()?;
            let exempted = sarif::exemptions(&decisions);
            let log = sarif::document(&reports, &exempted, &errs, &[], &cwd);
            serde_json::to_writer_pretty(&mut out, &log)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    if !errors.is_empty() {
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    Ok(if decisions.iter().any(|d| d.action.stops()) {
        ExitCode::from(EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    })
}
