//! `modelgate rules [ID]`: the rule catalogue, as the user's help.

use anyhow::bail;
use clap::Args;
use std::io::Write;
use std::process::ExitCode;

use modelgate::scan::rules;

#[derive(Debug, Args)]
pub struct RulesArgs {
    /// A rule id (e.g. PKL001) or name to explain in full.
    id: Option<String>,
}

pub fn run(args: RulesArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match args.id {
        None => {
            for r in rules::all() {
                writeln!(
                    out,
                    "{:<8} {:<11} {:<32} {}",
                    r.id, r.verdict, r.name, r.summary
                )?;
            }
        }
        Some(key) => {
            let Some(r) = rules::find(&key) else {
                bail!("no rule `{key}`; `modelgate rules` lists them all");
            };
            writeln!(out, "{} {} ({})\n", r.id, r.name, r.verdict)?;
            writeln!(out, "{}\n", r.summary)?;
            writeln!(out, "Why it matters:\n  {}\n", r.explanation)?;
            writeln!(out, "How to fix it:\n  {}", r.remediation)?;
            if !r.references.is_empty() {
                writeln!(out, "\nReferences:")?;
                for reference in r.references {
                    writeln!(out, "  {reference}")?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
