//! `modelgate quarantine list | show ID | restore ID | delete ID`: inspect
//! and undo what the daemon quarantined.

use anyhow::Context;
use clap::{Args, Subcommand};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::ExitCode;

use modelgate::quarantine::{Record, Store, default_state_dir};

use super::Format;

#[derive(Debug, Args)]
pub struct QuarantineArgs {
    #[command(subcommand)]
    command: QuarantineCommand,
}

#[derive(Debug, Subcommand)]
enum QuarantineCommand {
    /// List quarantined files (with --all, also restored and deleted ones).
    List {
        /// Also list records that were restored or deleted.
        #[arg(long)]
        all: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Same as `--format json` (the former spelling).
        #[arg(long, hide = true)]
        json: bool,
    },
    /// Show one record: original paths, hash, findings.
    Show {
        /// The record's id (from `quarantine list`).
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Same as `--format json` (the former spelling).
        #[arg(long, hide = true)]
        json: bool,
    },
    /// Put the exact bytes back and allow this content from now on.
    Restore {
        /// The record's id (from `quarantine list`).
        id: String,
    },
    /// Destroy the quarantined bytes (the tombstone and deny-list entry stay).
    Delete {
        /// The record's id (from `quarantine list`).
        id: String,
    },
}

/// The version of the JSON that `quarantine list` and `show` print: bumped
/// on any change that could break a consumer.
const SCHEMA_VERSION: u32 = 1;

#[derive(serde::Serialize)]
struct ListDocument<'a> {
    schema_version: u32,
    records: &'a [Record],
}

#[derive(serde::Serialize)]
struct ShowDocument<'a> {
    schema_version: u32,
    #[serde(flatten)]
    record: &'a Record,
}

/// A name as one line of text: a repo author chooses file names, and a
/// newline or an escape sequence in one must not forge lines of this
/// output. Control characters are escaped, bytes that are not UTF-8 shown
/// as `\xNN`.
fn esc(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '\\' {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

fn esc_path(p: &Path) -> String {
    esc(p.as_os_str().as_bytes())
}

fn esc_str(s: &str) -> String {
    esc(s.as_bytes())
}

fn print_record(out: &mut impl Write, r: &Record) -> std::io::Result<()> {
    writeln!(out, "id:          {}", esc_str(&r.id))?;
    writeln!(out, "state:       {}", r.state.as_str())?;
    writeln!(out, "file:        {}", esc_str(&r.display))?;
    writeln!(out, "path:        {}", esc_path(&r.path))?;
    for l in &r.links {
        writeln!(
            out,
            "link:        {} -> {}",
            esc_path(&l.path),
            esc_path(&l.target)
        )?;
    }
    writeln!(out, "sha256:      {}", r.sha256)?;
    writeln!(out, "size:        {}", r.size)?;
    writeln!(
        out,
        "verdict:     {} ({})",
        esc_str(&r.verdict),
        esc_str(&r.format)
    )?;
    writeln!(
        out,
        "rules:       {}",
        if r.rules.is_empty() {
            "-".to_string()
        } else {
            esc_str(&r.rules.join(", "))
        }
    )?;
    writeln!(out, "reason:      {}", esc_str(&r.reason))?;
    writeln!(
        out,
        "content:     {}",
        if r.content_denied {
            "denied wherever it lands again"
        } else {
            "not denied (only where it landed was wrong)"
        }
    )?;
    writeln!(out, "quarantined: {}", r.quarantined_at)?;
    writeln!(out, "updated:     {}", r.updated_at)?;
    writeln!(out, "by:          modelgate {}", esc_str(&r.tool_version))?;
    if let Some(findings) = r.findings.as_array() {
        for f in findings {
            let rule = f.get("rule").and_then(|v| v.as_str()).unwrap_or("?");
            let msg = f.get("message").and_then(|v| v.as_str()).unwrap_or("");
            writeln!(out, "finding:     {}: {}", esc_str(rule), esc_str(msg))?;
        }
    }
    Ok(())
}

pub fn run(args: QuarantineArgs) -> anyhow::Result<ExitCode> {
    let state =
        default_state_dir().context("cannot find a state directory; set MODELGATE_STATE_DIR")?;
    let store = Store::open(&state)?;
    let mut out = std::io::stdout().lock();
    match args.command {
        QuarantineCommand::List { all, format, json } => {
            let (recs, broken) = store.list_checked(all)?;
            for (id, e) in &broken {
                eprintln!(
                    "modelgate: quarantine record {} is unreadable: {e}",
                    esc_str(id)
                );
            }
            if json || format == Format::Json {
                let doc = ListDocument {
                    schema_version: SCHEMA_VERSION,
                    records: &recs,
                };
                writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
            } else if recs.is_empty() {
                writeln!(out, "nothing quarantined")?;
            } else {
                for r in &recs {
                    let rules = if r.rules.is_empty() {
                        r.reason.clone()
                    } else {
                        r.rules.join(",")
                    };
                    writeln!(
                        out,
                        "{}  {:<11}  {:<16}  {}",
                        esc_str(&r.id),
                        r.state.as_str(),
                        esc_str(&rules),
                        esc_str(&r.display)
                    )?;
                }
            }
        }
        QuarantineCommand::Show { id, format, json } => {
            let r = store.get(&id)?;
            if json || format == Format::Json {
                let doc = ShowDocument {
                    schema_version: SCHEMA_VERSION,
                    record: &r,
                };
                writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
            } else {
                print_record(&mut out, &r)?;
            }
        }
        QuarantineCommand::Restore { id } => {
            let r = store.restore(&id)?;
            writeln!(
                out,
                "restored {} ({} bytes, sha256 {}); this content is now allowed",
                esc_path(&r.path),
                r.size,
                r.sha256
            )?;
        }
        QuarantineCommand::Delete { id } => {
            let r = store.delete(&id)?;
            writeln!(
                out,
                "deleted the quarantined bytes of {}; the tombstone stays at {}",
                r.id,
                esc_path(&r.path)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
