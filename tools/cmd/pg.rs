//! `rbdkit pg plan|check` (being written: issue 5).
use crate::global::Global;
use clap::Subcommand;
use std::process::ExitCode;

/// pg subcommands.
#[derive(Subcommand)]
pub enum PgCommand {
    /// Offline pg_num plan.
    Plan,
}

/// Runs a pg subcommand.
pub fn run(_c: PgCommand, _g: &Global) -> rbdkit::Result<ExitCode> {
    Err(rbdkit::Error::Other("pg: not yet implemented".into()))
}
