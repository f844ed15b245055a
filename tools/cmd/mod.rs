//! One module per subcommand. Each declares its clap `Args` and a `run` that calls the library
//! and renders the result (plain text or one JSON object on stdout).
use crate::global::Global;
use clap::Subcommand;
use std::process::ExitCode;

pub mod bench;
pub mod pg;

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// pg_num and capacity planning, offline (`plan`) and against a live cluster (`check`).
    #[command(subcommand)]
    Pg(pg::PgCommand),
    /// I/O benchmark of RBD images, files and NFS shares, side by side.
    Bench(bench::BenchArgs),
}

/// Runs one subcommand; the error, if any, is printed by `main` as one line.
pub fn run(command: Command, global: &Global) -> rbdkit::Result<ExitCode> {
    match command {
        Command::Pg(c) => pg::run(c, global),
        Command::Bench(a) => bench::run(a, global),
    }
}

/// Prints a serializable result as one JSON object on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> rbdkit::Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| rbdkit::Error::Other(format!("cannot render JSON: {e}")))?;
    println!("{text}");
    Ok(())
}
