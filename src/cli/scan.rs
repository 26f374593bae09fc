//! `modelgate scan PATH...` (work in progress by the lead)
use clap::Args;
use std::process::ExitCode;
#[derive(Debug, Args)]
pub struct ScanArgs {
    paths: Vec<std::path::PathBuf>,
}
pub fn run(_args: ScanArgs) -> anyhow::Result<ExitCode> {
    Ok(ExitCode::SUCCESS)
}
