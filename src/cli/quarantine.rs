//! `modelgate quarantine list | show ID | restore ID | delete ID`: inspect
//! and undo what the daemon quarantined.

use anyhow::Context;
use clap::{Args, Subcommand};
use std::io::Write;
use std::process::ExitCode;

use modelgate::quarantine::{Record, Store, default_state_dir};

#[derive(Debug, Args)]
pub struct QuarantineArgs {
    #[command(subcommand)]
    command: QuarantineCommand,
}

#[derive(Debug, Subcommand)]
enum QuarantineCommand {
    /// List quarantined files (with --all, also restored and deleted ones).
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show one record: original paths, hash, findings.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Put the exact bytes back and allow this content from now on.
    Restore { id: String },
    /// Destroy the quarantined bytes (the tombstone and deny-list entry stay).
    Delete { id: String },
}

fn print_record(out: &mut impl Write, r: &Record) -> std::io::Result<()> {
    writeln!(out, "id:          {}", r.id)?;
    writeln!(out, "state:       {}", r.state.as_str())?;
    writeln!(out, "file:        {}", r.display)?;
    writeln!(out, "path:        {}", r.path.display())?;
    for l in &r.links {
        writeln!(
            out,
            "link:        {} -> {}",
            l.path.display(),
            l.target.display()
        )?;
    }
    writeln!(out, "sha256:      {}", r.sha256)?;
    writeln!(out, "size:        {}", r.size)?;
    writeln!(out, "verdict:     {} ({})", r.verdict, r.format)?;
    writeln!(
        out,
        "rules:       {}",
        if r.rules.is_empty() {
            "-".to_string()
        } else {
            r.rules.join(", ")
        }
    )?;
    writeln!(out, "reason:      {}", r.reason)?;
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
    writeln!(out, "by:          modelgate {}", r.tool_version)?;
    if let Some(findings) = r.findings.as_array() {
        for f in findings {
            let rule = f.get("rule").and_then(|v| v.as_str()).unwrap_or("?");
            let msg = f.get("message").and_then(|v| v.as_str()).unwrap_or("");
            writeln!(out, "finding:     {rule}: {msg}")?;
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
        QuarantineCommand::List { all, json } => {
            let recs = store.list(all)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&recs)?)?;
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
                        r.id,
                        r.state.as_str(),
                        rules,
                        r.display
                    )?;
                }
            }
        }
        QuarantineCommand::Show { id, json } => {
            let r = store.get(&id)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&r)?)?;
            } else {
                print_record(&mut out, &r)?;
            }
        }
        QuarantineCommand::Restore { id } => {
            let r = store.restore(&id)?;
            writeln!(
                out,
                "restored {} ({} bytes, sha256 {}); this content is now allowed",
                r.path.display(),
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
                r.path.display()
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
