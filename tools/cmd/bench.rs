//! `rbdkit bench` (being written: issue 6).
use crate::global::Global;
use clap::Args;
use std::process::ExitCode;

/// bench arguments.
#[derive(Args)]
pub struct BenchArgs {
    /// Targets: rbd:POOL/IMAGE, file:PATH, nfs://HOST[:PORT]/EXPORT/FILE.
    pub targets: Vec<String>,
}

/// Runs the benchmark.
pub fn run(_a: BenchArgs, _g: &Global) -> rbdkit::Result<ExitCode> {
    Err(rbdkit::Error::Other("bench: not yet implemented".into()))
}
