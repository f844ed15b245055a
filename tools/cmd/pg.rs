//! `rbdkit pg plan` (offline) and `rbdkit pg check` (live cluster): pg_num and capacity planning.
use crate::global::Global;
use clap::{Args, Subcommand, ValueEnum};
use rbdkit::pg::{self, capacity, Method, PlanInput, PoolSize, PoolSpec};
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
    /// A pool: NAME:PERCENT[:SIZE] (SIZE replicas, or k+m for erasure coding). Repeatable.
    #[arg(long = "pool")]
    pub pools: Vec<String>,
    /// Pool set: `openstack` (volumes 53 %, backups 25 %, vms 15 %, images 7 %).
    #[arg(long)]
    pub preset: Option<String>,
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
    /// Expected data share of a live pool, NAME:PERCENT (others share the rest). Repeatable.
    #[arg(long = "pool")]
    pub pools: Vec<String>,
    /// `openstack` shares for the recommendation.
    #[arg(long)]
    pub preset: Option<String>,
    /// Target PG replicas per OSD for the recommendation.
    #[arg(long = "target-pgs-per-osd", default_value_t = 100)]
    pub target: u32,
}

fn pools_from(
    pools: &[String],
    preset: Option<&str>,
    size: PoolSize,
) -> rbdkit::Result<Vec<PoolSpec>> {
    let mut out = match preset {
        None => Vec::new(),
        Some("openstack") => pg::openstack_preset(size),
        Some(other) => {
            return Err(Error::InvalidInput(format!(
                "unknown preset '{other}': use openstack"
            )))
        }
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
            "no pools: give --pool NAME:PERCENT[:SIZE] or --preset openstack".into(),
        ));
    }
    let input = PlanInput {
        osds: a.osds,
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
        "{} OSDs, {} PG replicas per OSD target, method {}",
        plan.osds,
        a.target,
        if plan.method == Method::Pgcalc {
            "pgcalc"
        } else {
            "autoscale"
        }
    );
    outln!(
        "{:<16} {:>8} {:<14} {:>8} {:>12}",
        "pool",
        "percent",
        "size",
        "pg_num",
        "PGs/OSD"
    );
    for p in &plan.pools {
        outln!(
            "{:<16} {:>7}% {:<14} {:>8} {:>12.1}",
            p.name,
            p.percent,
            format!("{} ({})", p.size, p.kind),
            p.pg_num,
            p.pg_replicas_per_osd
        );
    }
    outln!(
        "total: {} PG replicas, {:.1} per OSD (monitor limit {} = mon_max_pg_per_osd {} x max(OSDs, 3))",
        plan.total_pg_replicas, plan.pg_replicas_per_osd, plan.max_pg_replicas, a.max_pg_per_osd
    );
    if let Some(c) = &caps {
        outln!(
            "{:<16} {:>14} {:>18} {:>14}",
            "pool",
            "raw share",
            "usable (nearfull)",
            "usable (full)"
        );
        for p in c {
            outln!(
                "{:<16} {:>14} {:>18} {:>14}",
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
    let report = live::check(&state, &shares, a.target, new_pool);
    // A check that predicts the monitor's refusal has failed: scripts gate `ceph osd pool
    // create` on this exit status, whichever output format they read.
    let code = match &report.new_pool {
        Some(v) if !v.allowed => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    };
    if g.json() {
        super::print_json(g, &report)?;
        return Ok(code);
    }
    outln!(
        "{} OSDs in, {} up; mon_max_pg_per_osd {} (from {})",
        report.in_osds,
        report.up_osds,
        report.mon_max_pg_per_osd,
        state.mon_max_pg_per_osd_source
    );
    outln!(
        "{:<16} {:>8} {:>6} {:>8} {:>12} {:>10}",
        "pool",
        "pg_num",
        "size",
        "share",
        "recommended",
        "PGs/OSD"
    );
    for p in &report.pools {
        outln!(
            "{:<16} {:>8} {:>6} {:>7.1}% {:>12} {:>10.1}{}",
            p.name,
            p.pg_num,
            p.size,
            p.percent,
            p.recommended_pg_num,
            p.pg_replicas_per_osd,
            if p.off_by_more_than_3x {
                "  (off by >3x)"
            } else {
                ""
            }
        );
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
    Ok(code)
}
