//! `rbdkit pg plan` (offline) and `rbdkit pg check` (live cluster): pg_num and capacity planning.
use crate::global::Global;
use clap::{Args, Subcommand, ValueEnum};
use rbdkit::pg::{self, capacity, CephRelease, Method, PlanInput, PlanRoot, PoolSize, PoolSpec};
use rbdkit::units::format_size;
use rbdkit::Error;
use std::process::ExitCode;

/// pg subcommands.
#[derive(Subcommand)]
pub enum PgCommand {
    /// Plan pg_num per pool (PGCalc or the autoscaler's math), offline.
    Plan(PlanArgs),
    /// Check the live cluster: PGs per OSD against mon_max_pg_per_osd, pools off by >3x,
    /// and whether a new pool would be refused (ERANGE) before anyone creates it.
    #[cfg(feature = "rbd")]
    Check(CheckArgs),
}

/// `--method`.
#[derive(Clone, Copy, ValueEnum)]
pub enum MethodArg {
    /// The ceph docs' PGCalc.
    Pgcalc,
    /// The mgr pg_autoscaler's target.
    Autoscale,
}

/// Arguments of `pg plan`.
#[derive(Args)]
pub struct PlanArgs {
    /// Number of OSDs.
    #[arg(long)]
    pub osds: u32,
    /// A pool: NAME:PERCENT[:SIZE][:KEY=VALUE,...] (SIZE replicas, or k+m for erasure coding;
    /// keys bulk, bias, target_size_ratio, target_size_bytes, pg_num_min, pg_num_max, root,
    /// mode, stored, pg_num). Repeatable; pools are created, and autoscaled, in this order.
    #[arg(long = "pool")]
    pub pools: Vec<String>,
    /// A PGCalc preset: `openstack` (volumes 53 %, backups 25 %, vms 15 %, images 7 %),
    /// `openstack-rgw` (those and RGW's pools), `rgw`, `rbd` (rbd 75 %, myObjects 25 %).
    #[arg(long)]
    pub preset: Option<String>,
    /// A further CRUSH root NAME:OSDS (pools opt in with root=NAME). Repeatable.
    #[arg(long = "root")]
    pub roots: Vec<String>,
    /// Release whose autoscaler and monitor check are modelled: pacific, quincy, reef, squid,
    /// tentacle (default: the installed ceph client's, else pacific).
    #[arg(long = "ceph-release")]
    pub ceph_release: Option<String>,
    /// Default pool size (replicas or k+m).
    #[arg(long, default_value = "3")]
    pub size: String,
    /// Target PG replicas per OSD (100 classic; 200-300 when expecting growth).
    #[arg(long = "target-pgs-per-osd", default_value_t = 100)]
    pub target: u32,
    /// pgcalc or autoscale.
    #[arg(long, value_enum, default_value_t = MethodArg::Pgcalc)]
    pub method: MethodArg,
    /// The monitor's mon_max_pg_per_osd (Pacific default 250).
    #[arg(long = "max-pg-per-osd", default_value_t = 250)]
    pub max_pg_per_osd: u32,
    /// Autoscaler bias.
    #[arg(long, default_value_t = 1.0)]
    pub bias: f64,
    /// Raw capacity of the OSDs (e.g. 100T): prints usable capacity per pool.
    #[arg(long = "raw-capacity", value_parser = super::parse_nonzero_size, allow_hyphen_values = true)]
    pub raw_capacity: Option<u64>,
}

/// Arguments of `pg check`.
#[cfg(feature = "rbd")]
#[derive(Args)]
pub struct CheckArgs {
    /// A proposed pool NAME:PG_NUM[:SIZE] to judge by the monitor's rule; exit status 1 when the
    /// monitor would refuse it.
    #[arg(long = "new-pool")]
    pub new_pool: Option<String>,
    /// Expected data share of a live pool on its CRUSH root, NAME:PERCENT (the root's other
    /// pools share the rest). Repeatable.
    #[arg(long = "pool")]
    pub pools: Vec<String>,
    /// A PGCalc preset's shares for the recommendation (as `pg plan --preset`).
    #[arg(long)]
    pub preset: Option<String>,
    /// Target PG replicas per OSD for the recommendation.
    #[arg(long = "target-pgs-per-osd", default_value_t = 100)]
    pub target: u32,
    /// A size change POOL:N to judge by the monitor's rule (`osd pool set POOL size N`);
    /// exit status 1 when refused. Repeatable.
    #[arg(long = "set-size")]
    pub set_size: Vec<String>,
    /// Release whose autoscaler and monitor are modelled (default: the running monitor's).
    #[arg(long = "ceph-release")]
    pub ceph_release: Option<String>,
}

fn pools_from(
    pools: &[String],
    preset: Option<&str>,
    size: PoolSize,
) -> rbdkit::Result<Vec<PoolSpec>> {
    let mut out = match preset {
        None => Vec::new(),
        Some(name) => pg::preset(name, size).ok_or_else(|| {
            Error::InvalidInput(format!(
                "unknown preset '{}': use one of {}",
                name.escape_debug(),
                pg::PRESETS.join(", ")
            ))
        })?,
    };
    for p in pools {
        let spec = PoolSpec::parse(p, size)?;
        out.retain(|q| q.name != spec.name);
        out.push(spec);
    }
    Ok(out)
}

/// Runs a pg subcommand.
pub fn run(c: PgCommand, g: &Global) -> rbdkit::Result<ExitCode> {
    match c {
        PgCommand::Plan(a) => plan(a, g),
        #[cfg(feature = "rbd")]
        PgCommand::Check(a) => check(a, g),
    }
}

/// The installed client's release, from `ceph --version`: what an offline plan models unless
/// told, since that is the cluster the operator is most likely about to create pools on.
/// Width of a table's pool column: 16, or the longest name (RGW's run to 25).
fn name_width<'a>(names: impl Iterator<Item = &'a str>) -> usize {
    names.map(|n| n.chars().count()).max().unwrap_or(0).max(16)
}

fn installed_release() -> Option<CephRelease> {
    let out = std::process::Command::new("ceph")
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    CephRelease::from_version_text(&String::from_utf8_lossy(&out.stdout))
}

fn parse_root(text: &str) -> rbdkit::Result<PlanRoot> {
    let bad = || {
        Error::InvalidInput(format!(
            "invalid --root '{text}': use NAME:OSDS, e.g. ssd:12"
        ))
    };
    let (name, osds) = text.split_once(':').ok_or_else(bad)?;
    let osds: u32 = osds.parse().ok().filter(|&n| n > 0).ok_or_else(bad)?;
    if name.is_empty() || name == "default" {
        return Err(bad());
    }
    Ok(PlanRoot {
        name: name.into(),
        osds,
    })
}

fn plan(a: PlanArgs, g: &Global) -> rbdkit::Result<ExitCode> {
    if a.osds == 0 {
        return Err(Error::InvalidInput("--osds must be at least 1".into()));
    }
    if !(a.bias > 0.0 && a.bias.is_finite()) {
        return Err(Error::InvalidInput(format!(
            "--bias {}: must be a positive number",
            a.bias
        )));
    }
    if a.target == 0 {
        return Err(Error::InvalidInput(
            "--target-pgs-per-osd must be at least 1".into(),
        ));
    }
    let size = PoolSize::parse(&a.size)?;
    let pools = pools_from(&a.pools, a.preset.as_deref(), size)?;
    if pools.is_empty() {
        return Err(Error::InvalidInput(
            "no pools: give --pool NAME:PERCENT[:SIZE] or --preset openstack (or openstack-rgw, rgw, rbd)".into(),
        ));
    }
    if matches!(a.method, MethodArg::Autoscale) {
        if let Some(p) = pools
            .iter()
            .find(|p| p.options.target_pgs_per_osd.is_some())
        {
            return Err(Error::InvalidInput(format!(
                "pool {}: target_pgs_per_osd is PGCalc's per-pool target; the autoscaler has one for the cluster (mon_target_pg_per_osd): use --target-pgs-per-osd",
                p.name
            )));
        }
    }
    let roots = a
        .roots
        .iter()
        .map(|r| parse_root(r))
        .collect::<rbdkit::Result<Vec<_>>>()?;
    let (release, release_source) = match &a.ceph_release {
        Some(r) => (CephRelease::parse(r)?, "--ceph-release"),
        None => match installed_release() {
            Some(r) => (r, "the installed ceph client"),
            None => (CephRelease::Pacific, "default"),
        },
    };
    let input = PlanInput {
        osds: a.osds,
        roots,
        release,
        raw_capacity: a.raw_capacity,
        pools: pools.clone(),
        target_pgs_per_osd: a.target,
        method: match a.method {
            MethodArg::Pgcalc => Method::Pgcalc,
            MethodArg::Autoscale => Method::Autoscale,
        },
        max_pg_per_osd: a.max_pg_per_osd,
        bias: a.bias,
    };
    let plan = pg::plan(&input);
    let caps = a.raw_capacity.map(|raw| capacity::capacity(raw, &pools));
    if g.json() {
        let mut v = serde_json::to_value(&plan).map_err(|e| Error::Other(e.to_string()))?;
        if let Some(c) = &caps {
            v["capacity"] = serde_json::to_value(c).map_err(|e| Error::Other(e.to_string()))?;
        }
        super::print_json(g, &v)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{} OSDs, {} PG replicas per OSD target, method {}, modelling ceph {} (from {release_source})",
        plan.osds,
        a.target,
        if plan.method == Method::Pgcalc {
            "pgcalc"
        } else {
            "autoscale"
        },
        plan.release
    );
    let w = name_width(plan.pools.iter().map(|p| p.name.as_str()));
    // PGCalc's per-row targets get a column when a pool has its own.
    let own_targets = plan
        .pools
        .iter()
        .any(|p| p.target_pgs_per_osd.is_some_and(|t| t != a.target));
    let target_col = |t: Option<u32>| match t {
        Some(t) if own_targets => format!(" {t:>7}"),
        _ => String::new(),
    };
    outln!(
        "{:<w$} {:>8} {:<14} {:>8} {:>12}{}",
        "pool",
        "percent",
        "size",
        "pg_num",
        "PGs/OSD",
        if own_targets { "  target" } else { "" }
    );
    for p in &plan.pools {
        outln!(
            "{:<w$} {:>7}% {:<14} {:>8} {:>12.1}{}",
            p.name,
            p.percent,
            format!("{} ({})", p.size, p.kind),
            p.pg_num,
            p.pg_replicas_per_osd,
            target_col(p.target_pgs_per_osd)
        );
    }
    outln!(
        "total: {} PG replicas, {:.1} per OSD (monitor limit {} = mon_max_pg_per_osd {} x max(OSDs, 3))",
        plan.total_pg_replicas, plan.pg_replicas_per_osd, plan.max_pg_replicas, a.max_pg_per_osd
    );
    if let Some(c) = &caps {
        outln!(
            "{:<w$} {:>14} {:>18} {:>14}",
            "pool",
            "raw share",
            "usable (nearfull)",
            "usable (full)"
        );
        for p in c {
            outln!(
                "{:<w$} {:>14} {:>18} {:>14}",
                p.name,
                format_size(p.raw_share),
                format_size(p.usable_at_nearfull),
                format_size(p.usable_at_full)
            );
        }
    }
    for w in &plan.warnings {
        outln!("warning: {w}");
    }
    outln!("commands:");
    for c in &plan.commands {
        outln!("  {c}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "rbd")]
fn check(a: CheckArgs, g: &Global) -> rbdkit::Result<ExitCode> {
    use rbdkit::pg::live;
    let new_pool = match &a.new_pool {
        None => None,
        Some(text) => {
            let bad = || {
                Error::InvalidInput(format!(
                    "invalid --new-pool '{text}': use NAME:PG_NUM[:SIZE], e.g. metrics:512:3"
                ))
            };
            let parts: Vec<&str> = text.split(':').collect();
            let (name, pg, size) = match parts.as_slice() {
                [n, p] => (*n, *p, None),
                [n, p, s] => (*n, *p, Some(*s)),
                _ => return Err(bad()),
            };
            let pg: u32 = pg.parse().ok().filter(|&n| n > 0).ok_or_else(bad)?;
            if name.is_empty() {
                return Err(bad());
            }
            Some((name.to_string(), pg, size))
        }
    };
    let shares: Vec<(String, f64)> =
        pools_from(&a.pools, a.preset.as_deref(), PoolSize::Replicated(3))?
            .into_iter()
            .map(|p| (p.name, p.percent))
            .collect();
    let cluster = g.connect()?;
    let state = live::read_state(&cluster)?;
    // Without an explicit size the new pool gets the cluster's default (osd_pool_default_size).
    let new_pool = match new_pool {
        None => None,
        Some((n, pg, Some(s))) => Some((n, pg, PoolSize::parse(s)?.size())),
        Some((n, pg, None)) => {
            let d = cluster
                .conf_get("osd_pool_default_size")?
                .trim()
                .parse()
                .unwrap_or(3);
            Some((n, pg, d))
        }
    };
    let set_size = a
        .set_size
        .iter()
        .map(|t| {
            let bad = || {
                Error::InvalidInput(format!(
                    "invalid --set-size '{t}': use POOL:SIZE, e.g. volumes:2"
                ))
            };
            let (p, n) = t.rsplit_once(':').ok_or_else(bad)?;
            let n: u32 = n.parse().ok().filter(|&n| n > 0).ok_or_else(bad)?;
            Ok((p.to_string(), n))
        })
        .collect::<rbdkit::Result<Vec<_>>>()?;
    let (release, release_source) = match (&a.ceph_release, state.release) {
        (Some(r), _) => (CephRelease::parse(r)?, "--ceph-release"),
        (None, Some(r)) => (r, "the running monitor"),
        (None, None) => (
            installed_release().unwrap_or(CephRelease::Pacific),
            "the installed client (the monitor's version is not modelled)",
        ),
    };
    let report = live::check(&state, release, &shares, a.target, new_pool, &set_size)?;
    // A check that predicts the monitor's refusal has failed: scripts gate `ceph osd pool
    // create` on this exit status, whichever output format they read.
    let refused = report
        .new_pool
        .iter()
        .chain(&report.set_size)
        .any(|v| !v.allowed);
    let code = if refused {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    };
    if g.json() {
        super::print_json(g, &report)?;
        return Ok(code);
    }
    outln!(
        "{} OSDs in, {} up; mon_max_pg_per_osd {} (from {}); modelling ceph {} (from {release_source})",
        report.in_osds,
        report.up_osds,
        report.mon_max_pg_per_osd,
        state.mon_max_pg_per_osd_source,
        report.release
    );
    let w = name_width(report.pools.iter().map(|p| p.name.as_str()));
    outln!(
        "{:<w$} {:>8} {:>6} {:>8} {:>12} {:>10} {:>10} {:<6}",
        "pool",
        "pg_num",
        "size",
        "share",
        "recommended",
        "PGs/OSD",
        "autoscale",
        "mode"
    );
    for p in &report.pools {
        let auto = match p.autoscale_pg_num {
            Some(n) if p.autoscale_will_change => format!("{n} (next)"),
            Some(n) => n.to_string(),
            None => "-".into(),
        };
        outln!(
            "{:<w$} {:>8} {:>6} {:>7.1}% {:>12} {:>10.1} {:>10} {:<6}{}",
            p.name,
            p.pg_num,
            p.size,
            p.percent,
            p.recommended_pg_num,
            p.pg_replicas_per_osd,
            auto,
            p.autoscale_mode,
            if p.off_by_more_than_3x {
                "  (off by >3x)"
            } else {
                ""
            }
        );
    }
    for p in &report.pools {
        if let Some(m) = &p.movement {
            outln!(
                "next for {}: {} {} -> {} PGs ({} {}); ~{} raw misplaced ({:.0}% of its data), in about {} step{} of at most {:.0}% of the cluster's data (target_max_misplaced_ratio {}); an estimate: CRUSH may keep some of it in place",
                p.name,
                m.kind,
                m.from_pg_num,
                m.to_pg_num,
                m.pgs_changed,
                if m.kind == "split" { "new" } else { "merged away" },
                rbdkit::units::format_size(m.bytes_misplaced),
                m.moved_fraction * 100.0,
                m.steps,
                if m.steps == 1 { "" } else { "s" },
                m.target_max_misplaced_ratio * 100.0,
                m.target_max_misplaced_ratio
            );
        }
    }
    outln!(
        "total: {} PG replicas, {:.1} per in OSD; the monitor refuses pool changes past {}",
        report.total_pg_replicas,
        report.pg_replicas_per_osd,
        report.max_pg_replicas
    );
    for w in &report.warnings {
        outln!("warning: {w}");
    }
    if let Some(v) = &report.new_pool {
        outln!(
            "new pool {} (pg_num {}, size {}): {}",
            v.name,
            v.pg_num,
            v.size,
            if v.allowed { "allowed" } else { "refused" }
        );
        outln!("  {}", v.message);
    }
    for v in &report.set_size {
        outln!(
            "set size {} {}: {}",
            v.name,
            v.size,
            if v.allowed { "allowed" } else { "refused" }
        );
        outln!("  {}", v.message);
    }
    Ok(code)
}
