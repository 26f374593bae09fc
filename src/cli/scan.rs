//! `modelgate scan PATH...`: scan files and directories, print findings,
//! exit 1 when anything reaches the failure threshold.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use rayon::prelude::*;

use modelgate::report::{Summary, human, json, sarif};
use modelgate::scan::walk::{self, Target};
use modelgate::scan::{FileReport, ScanConfig, Scanner, Verdict};

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
    /// Files or directories to scan (recursively); `-` reads one file from stdin.
    #[arg(default_value = ".")]
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    format: OutputFormat,
    /// Lowest verdict that makes the exit code 1.
    #[arg(long, value_enum, default_value_t = FailOn::Suspicious)]
    fail_on: FailOn,
    /// Also list clean and skipped files.
    #[arg(short, long)]
    verbose: bool,
}

pub fn run(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let scanner = Scanner::new(ScanConfig::default());
    let (mut reports, errors) = scan_all(&scanner, &args.paths)?;
    reports.sort_by(|a, b| a.path.cmp(&b.path));

    let threshold = match args.fail_on {
        FailOn::Suspicious => Verdict::Suspicious,
        FailOn::Malicious => Verdict::Malicious,
    };
    let mut stdout = std::io::stdout().lock();
    match args.format {
        OutputFormat::Human => {
            let opts = human::Options {
                verbose: args.verbose,
                color: std::io::stdout().is_terminal(),
            };
            for r in &reports {
                human::write_report(&mut stdout, r, opts)?;
            }
            stdout.flush()?;
            for (path, err) in &errors {
                eprintln!("modelgate: error: {path}: {err}");
            }
            let summary = Summary::of(&reports, errors.len());
            human::write_summary(
                &mut std::io::stderr(),
                &summary,
                started.elapsed().as_secs_f64(),
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
            serde_json::to_writer_pretty(&mut stdout, &json::document(&reports, errs))?;
            writeln!(stdout)?;
        }
        OutputFormat::Sarif => {
            let errs: Vec<_> = errors
                .iter()
                .map(|(path, error)| sarif::ScanError { path, error })
                .collect();
            let cwd = std::env::current_dir().context("reading the working directory")?;
            let log = sarif::document(&reports, &errs, &args.paths, &cwd);
            serde_json::to_writer_pretty(&mut stdout, &log)?;
            writeln!(stdout)?;
        }
    }
    stdout.flush()?;

    if !errors.is_empty() {
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    if reports.iter().any(|r| r.verdict >= threshold) {
        return Ok(ExitCode::from(EXIT_FINDINGS));
    }
    Ok(ExitCode::SUCCESS)
}

type Errors = Vec<(String, String)>;

fn scan_all(scanner: &Scanner, paths: &[PathBuf]) -> anyhow::Result<(Vec<FileReport>, Errors)> {
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    let (stdin, paths): (Vec<_>, Vec<_>) =
        paths.iter().cloned().partition(|p| p.as_os_str() == "-");
    if !stdin.is_empty() {
        let mut data = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut data)
            .context("reading stdin")?;
        reports.push(scanner.scan_bytes("-", &data));
    }
    let (targets, walk_errors) = walk::collect(&paths);
    errors.extend(
        walk_errors
            .into_iter()
            .map(|e| (e.path.display().to_string(), e.error.to_string())),
    );

    let progress = progress_bar(targets.len());
    let results: Vec<Result<FileReport, (String, String)>> = targets
        .par_iter()
        .map(|t| {
            let display = t.path().display().to_string();
            let result = match t {
                Target::File { path } => scanner.scan_file(path, &display),
                Target::ModelDir { path } => scanner.scan_model_dir(path, &display),
            };
            if let Some(p) = &progress {
                p.inc(1);
            }
            result.map_err(|e| (display, e.to_string()))
        })
        .collect();
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    for r in results {
        match r {
            Ok(report) => reports.push(report),
            Err(e) => errors.push(e),
        }
    }
    Ok((reports, errors))
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
