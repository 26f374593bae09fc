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
            let all = rules::all();
            // Verdict's Display ignores width flags, so pad the rendered text.
            let id_width = all.iter().map(|r| r.id.len()).max().unwrap_or(0);
            let name_width = all.iter().map(|r| r.name.len()).max().unwrap_or(0);
            for r in all {
                let verdict = r.verdict.to_string();
                writeln!(
                    out,
                    "{:<id_width$}  {verdict:<10}  {:<name_width$}  {}",
                    r.id, r.name, r.summary
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
