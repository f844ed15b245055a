//! `rbdkit clone POOL/IMAGE@SNAP POOL/DEST... [--size] [--max-clone-depth] [--flatten]`:
//! Cinder's volume-from-image, for one or many volumes at once.
use crate::global::Global;
use clap::Args;
use rbdkit::ceph::ImageSpec;
use rbdkit::clone::{clone_volumes, CloneRequest};
use rbdkit::units::format_size;
use rbdkit::Error;
use std::process::ExitCode;

// clap turns every literal `{n}` in help text into a line break (a clap 2 leftover), which hid
// the placeholder. An empty style (a reset) between `{` and `n` keeps clap from seeing it; it is
// stripped on the way out to a pipe or a man page and invisible on a terminal.
/// Help of DESTS, showing the `{n}` placeholder.
const DESTS_HELP: &str =
    "The new images, POOL[/NAMESPACE]/IMAGE (with {\x1b[0mn} in the name when --count is given, e.g. 'volumes/volume-{\x1b[0mn}')";
/// Help of `--count`, showing the `{n}` placeholder.
const COUNT_HELP: &str = "Make N clones per DEST, replacing {\x1b[0mn} in its name with 1..=N";

/// Arguments of `rbdkit clone`.
#[derive(Args)]
pub struct CloneArgs {
    /// The parent snapshot, POOL[/NAMESPACE]/IMAGE@SNAP.
    pub parent: ImageSpec,
    #[arg(required = true, help = DESTS_HELP)]
    pub dests: Vec<String>,
    #[arg(long, help = COUNT_HELP)]
    pub count: Option<u32>,
    /// Resize each clone to this size: 20G; a bare number is MiB, as in `rbd resize`.
    #[arg(long, value_parser = super::parse_image_size, allow_hyphen_values = true)]
    pub size: Option<u64>,
    /// Allow --size below the parent's size (the clone loses data past it).
    #[arg(long = "allow-shrink")]
    pub allow_shrink: bool,
    /// Flatten a clone whose parent already has this many ancestors (0: always).
    #[arg(long = "max-clone-depth", default_value_t = 5)]
    pub max_clone_depth: u32,
    /// Flatten every clone (independent of the parent afterwards).
    #[arg(long)]
    pub flatten: bool,
    /// Create the parent snapshot if it does not exist.
    #[arg(long = "create-snap")]
    pub create_snap: bool,
    /// Clones made at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    #[command(flatten)]
    pub layout: super::ImageLayout,
}

/// Expands `{n}` with --count, refusing a count without a placeholder (all names would collide).
fn expand_dests(dests: &[String], count: Option<u32>) -> rbdkit::Result<Vec<ImageSpec>> {
    let mut out = Vec::new();
    for d in dests {
        match count {
            None => out.push(ImageSpec::parse(d)?),
            Some(n) => {
                if !d.contains("{n}") {
                    return Err(Error::InvalidInput(format!(
                        "--count needs {{n}} in the destination name: '{d}'"
                    )));
                }
                for i in 1..=n {
                    out.push(ImageSpec::parse(&d.replace("{n}", &i.to_string()))?);
                }
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for d in &out {
        if !seen.insert(d.to_string()) {
            return Err(Error::InvalidInput(format!(
                "destination {d} is given twice"
            )));
        }
    }
    Ok(out)
}

/// Makes the clones and reports each one.
pub fn run(a: CloneArgs, g: &Global) -> rbdkit::Result<ExitCode> {
    a.parent.require_snap()?;
    let dests = expand_dests(&a.dests, a.count)?;
    let opts = a.layout.create_options(true)?;
    let req = CloneRequest {
        parent: a.parent.clone(),
        dests,
        size: a.size,
        allow_shrink: a.allow_shrink,
        max_clone_depth: a.max_clone_depth,
        flatten: a.flatten,
        create_snap: a.create_snap,
        features: opts.features,
        order: opts.order,
        striping: opts.stripe_unit.zip(opts.stripe_count),
        data_pool: opts.data_pool,
        concurrency: a.concurrency,
    };
    let cluster = g.connect()?;
    let bar = crate::progress::count_bar(req.dests.len() as u64, "cloning", !g.no_progress);
    let report = clone_volumes(&cluster, &req, &|_| bar.inc(1))?;
    bar.finish_and_clear();
    let failed: Vec<_> = report.failed().collect();
    if g.json() {
        super::print_json(g, &report)?;
    } else {
        outln!(
            "parent {} (clone v{}, depth {}{}{})",
            report.parent,
            if report.clone_format == rbdkit::ceph::CloneFormat::V1 {
                1
            } else {
                2
            },
            report.parent_depth,
            if report.snap_created {
                ", snapshot created"
            } else {
                ""
            },
            if report.snap_protected {
                ", snapshot protected"
            } else {
                ""
            },
        );
        for r in report.results.iter().filter(|r| r.ok) {
            outln!(
                "  {} {}{}",
                r.dest,
                format_size(r.size.unwrap_or(0)),
                if r.flattened { " (flattened)" } else { "" }
            );
        }
        outln!(
            "{} of {} clones made in {:.2} s",
            report.results.len() - failed.len(),
            report.results.len(),
            report.elapsed_s
        );
    }
    for r in &failed {
        eprintln!(
            "rbdkit: clone {} failed: {}",
            r.dest,
            r.error.as_deref().unwrap_or("unknown error")
        );
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
