//! The stub Hugging Face Hub of the tests as a program, for benchmarks
//! (`bench/proxy.sh`) and manual trials:
//! `cargo run --example hub_stub -- --root DIR --listen 127.0.0.1:0`
//! prints `http://ADDR` once it listens, then serves until killed.

#[path = "../tests/support/hub_stub.rs"]
mod hub_stub;

use std::io::Write;
use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Folder holding `{models,datasets,spaces}/{org}/{name}/<files>`.
    #[arg(long)]
    root: PathBuf,
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = std::net::TcpListener::bind(&args.listen)?;
    let stub = hub_stub::HubStub::start_on(&args.root, listener)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", stub.url())?;
    out.flush()?;
    drop(out);
    loop {
        std::thread::park();
    }
}
