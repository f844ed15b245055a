//! `rbdkit cleanup POOL`: finds temporary images left by imports (and full backups) that were
//! killed (SIGKILL, power loss), and the temporary volume snapshots of killed backups, and
//! removes them on request. What a still-running process owns is kept.
use crate::global::Global;
use clap::Args;
use rbdkit::backup::rbd::{find_partial_snaps, remove_partial_snap};
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
    let snaps = find_partial_snaps(&io)?;
    let (mut snaps_removed, mut snaps_kept) = (Vec::new(), Vec::new());
    for p in &snaps {
        if p.alive || a.dry_run {
            snaps_kept.push(p);
            continue;
        }
        let name = p.image.rsplit('/').next().unwrap_or(&p.image);
        remove_partial_snap(&io, name, &p.snap)?;
        snaps_removed.push(p);
    }
    if g.json() {
        super::print_json(
            g,
            &serde_json::json!({
                "removed": removed,
                "kept": kept,
                "snapshots_removed": snaps_removed,
                "snapshots_kept": snaps_kept,
            }),
        )?;
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
        for p in &snaps_removed {
            outln!(
                "removed snapshot {}@{} (unfinished backup by pid {} on {})",
                p.image,
                p.snap,
                p.pid,
                p.host
            );
        }
        for p in &snaps_kept {
            let why = if p.alive {
                "its backup is still running"
            } else {
                "dry run"
            };
            outln!("kept snapshot {}@{} ({why})", p.image, p.snap);
        }
        if leftovers.is_empty() && snaps.is_empty() {
            outln!("no unfinished imports or backups in {}", a.pool);
        }
    }
    Ok(ExitCode::SUCCESS)
}
