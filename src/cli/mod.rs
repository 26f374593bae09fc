//! The command-line adapter: parses arguments with clap and calls one
//! function per subcommand. Exit codes are a published contract:
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | nothing at or above the failure threshold |
//! | 1 | findings at or above the threshold (or a hook blocked) |
//! | 2 | operational error: unreadable path, bad arguments |
//! | 3 | configuration error: the policy file is invalid |

mod bom;
mod rules;
mod scan;
mod sign;
mod verify;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit code for findings at or above the threshold.
pub const EXIT_FINDINGS: u8 = 1;
/// Exit code for operational errors (I/O, arguments).
pub const EXIT_ERROR: u8 = 2;
/// Exit code for an invalid policy file.
#[allow(dead_code)] // used by the policy subcommands
pub const EXIT_CONFIG: u8 = 3;

#[derive(Debug, Parser)]
#[command(name = "modelgate", version, about = "A firewall for machine-learning model files", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scan model files and directories for code that runs when they are loaded.
    Scan(scan::ScanArgs),
    /// List the detection rules, or explain one.
    Rules(rules::RulesArgs),
    /// Verify a model against its OpenSSF Model Signing signature (key mode, offline).
    Verify(verify::VerifyArgs),
    /// Sign a model (OpenSSF Model Signing, key mode).
    Sign(sign::SignArgs),
    /// Write an AI bill of materials (CycloneDX 1.6 ML-BOM).
    Bom(bom::BomArgs),
}

/// Runs the CLI and maps every outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Scan(args) => scan::run(args),
        Command::Rules(args) => rules::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Sign(args) => sign::run(args),
        Command::Bom(args) => bom::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("modelgate: error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
