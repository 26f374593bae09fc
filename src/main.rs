//! The `modelgate` binary: a thin shell over the library's CLI adapter.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
