//! `rbdkit cleanup POOL`: finds temporary images left by imports that were killed (SIGKILL,
//! power loss) and removes them on request. Images whose importer still runs are kept.
use crate::global::Global;
use clap::Args;
use rbdkit::import::{find_leftovers, remove_leftover};
use std::process::ExitCode;

/// Arguments of `rbdkit cleanup`.
#[derive(Args)]
pub struct CleanupArgs {
    /// Pool (optionally POOL/NAMESPACE) to scan.
    pub pool: String,
    /// Only list what would be removed.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
}

/// Lists and removes leftovers.
pub fn run(a: CleanupArgs, g: &Global) -> rbdkit::Result<ExitCode> {
    let (pool, ns) = match a.pool.split_once('/') {
        Some((p, n)) => (p, Some(n)),
        None => (a.pool.as_str(), None),
    };
    let cluster = g.connect()?;
    let io = cluster.ioctx(pool, ns)?;
    let leftovers = find_leftovers(&io)?;
    let mut removed = Vec::new();
    let mut kept = Vec::new();
    for l in &leftovers {
        if l.importer_alive || a.dry_run {
            kept.push(l);
            continue;
        }
        let name = l.image.rsplit('/').next().unwrap_or(&l.image);
        remove_leftover(&io, name)?;
        removed.push(l);
    }
    if g.json() {
        super::print_json(g, &serde_json::json!({ "removed": removed, "kept": kept }))?;
    } else {
        for l in &removed {
            outln!(
                "removed {} (unfinished import of {} by pid {} on {})",
                l.image,
                l.final_name,
                l.pid,
                l.host
            );
        }
        for l in &kept {
            let why = if l.importer_alive {
                "its import is still running"
            } else {
                "dry run"
            };
            outln!("kept {} ({why})", l.image);
        }
        if leftovers.is_empty() {
            outln!("no unfinished imports in {}", a.pool);
        }
    }
    Ok(ExitCode::SUCCESS)
}
