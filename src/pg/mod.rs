//! pg_num and capacity planning: the ceph docs' PGCalc, the mgr pg_autoscaler's target, the
//! monitor's `mon_max_pg_per_osd` rule, usable capacity; and (`live`, feature `rbd`) the same
//! math against a running cluster through monitor commands (no mgr needed).
pub mod calc;
pub mod capacity;
#[cfg(feature = "rbd")]
pub mod live;
mod spec;

pub use calc::{
    autoscale_pg_num, nearest_pow2_autoscaler, nearest_pow2_pgcalc, pgcalc_pg_num, PG_NUM_MIN,
};
pub use spec::{PoolSize, PoolSpec};

use serde::Serialize;

/// How pg_num is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The ceph docs' PGCalc.
    Pgcalc,
    /// The mgr pg_autoscaler's final target (target_size_ratio = percent).
    Autoscale,
}

/// Inputs of a plan.
#[derive(Clone, Debug)]
pub struct PlanInput {
    /// OSDs (in).
    pub osds: u32,
    /// Pools with their share of the data.
    pub pools: Vec<PoolSpec>,
    /// Target PG replicas per OSD (PGCalc) / mon_target_pg_per_osd (autoscaler).
    pub target_pgs_per_osd: u32,
    /// Method.
    pub method: Method,
    /// The monitor's mon_max_pg_per_osd.
    pub max_pg_per_osd: u32,
    /// Autoscaler bias.
    pub bias: f64,
}

/// One pool of a plan.
#[derive(Clone, Debug, Serialize)]
pub struct PoolPlan {
    /// Pool name.
    pub name: String,
    /// pg_num (= pgp_num).
    pub pg_num: u32,
    /// Replicas, or k+m for erasure-coded pools.
    pub size: u32,
    /// `replicated` or `erasure k+m`.
    pub kind: String,
    /// Share of the data, percent.
    pub percent: f64,
    /// PG replicas this pool puts on an average OSD.
    pub pg_replicas_per_osd: f64,
}

/// A plan.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// Method used.
    pub method: Method,
    /// OSDs.
    pub osds: u32,
    /// Pools.
    pub pools: Vec<PoolPlan>,
    /// PG replicas per OSD, all pools.
    pub pg_replicas_per_osd: f64,
    /// Sum of pg_num × size over the pools.
    pub total_pg_replicas: u64,
    /// The monitor's limit on that sum: mon_max_pg_per_osd × max(OSDs, 3).
    pub max_pg_replicas: u64,
    /// Things to look at.
    pub warnings: Vec<String>,
    /// The commands that create the pools.
    pub commands: Vec<String>,
}

/// The monitor's ceiling on Σ pg_num × size: it assumes at least 3 OSDs.
pub fn mon_max_pg_replicas(max_pg_per_osd: u32, in_osds: u32) -> u64 {
    max_pg_per_osd as u64 * in_osds.max(3) as u64
}

/// Plans pg_num for every pool.
pub fn plan(input: &PlanInput) -> Plan {
    let total_pct: f64 = input.pools.iter().map(|p| p.percent).sum();
    let mut warnings = Vec::new();
    if input.method == Method::Pgcalc && (total_pct - 100.0).abs() > 0.01 {
        warnings.push(format!("pool percentages add up to {total_pct}%, not 100%"));
    }
    let pools: Vec<PoolPlan> = input
        .pools
        .iter()
        .map(|p| {
            let size = p.size.size();
            let pg_num = match input.method {
                Method::Pgcalc => {
                    pgcalc_pg_num(input.osds, size, p.percent, input.target_pgs_per_osd)
                }
                Method::Autoscale => {
                    let ratio = if total_pct > 0.0 {
                        p.percent / total_pct
                    } else {
                        0.0
                    };
                    autoscale_pg_num(
                        input.osds,
                        size,
                        ratio,
                        input.target_pgs_per_osd,
                        input.bias,
                    )
                }
            };
            PoolPlan {
                name: p.name.clone(),
                pg_num,
                size,
                kind: p.size.kind(),
                percent: p.percent,
                pg_replicas_per_osd: pg_num as f64 * size as f64 / input.osds.max(1) as f64,
            }
        })
        .collect();
    for (p, spec) in pools.iter().zip(&input.pools) {
        if spec.size.size() > input.osds {
            warnings.push(format!(
                "pool {}: size {} needs at least {} OSDs (failure domain osd), the plan has {}",
                p.name, p.size, p.size, input.osds
            ));
        }
    }
    let total: u64 = pools.iter().map(|p| p.pg_num as u64 * p.size as u64).sum();
    let max = mon_max_pg_replicas(input.max_pg_per_osd, input.osds);
    if total > max {
        warnings.push(format!(
            "{total} PG replicas exceed the monitor's limit of {max} (mon_max_pg_per_osd {} * max(OSDs, 3)): pool creation would fail with ERANGE; lower --target-pgs-per-osd or add OSDs",
            input.max_pg_per_osd
        ));
    }
    let per_osd = total as f64 / input.osds.max(1) as f64;
    let commands = pools
        .iter()
        .zip(&input.pools)
        .map(|(p, s)| s.size.create_command(&p.name, p.pg_num))
        .collect();
    Plan {
        method: input.method,
        osds: input.osds,
        pools,
        pg_replicas_per_osd: per_osd,
        total_pg_replicas: total,
        max_pg_replicas: max,
        warnings,
        commands,
    }
}

/// The OpenStack preset of PGCalc: volumes 53 %, backups 25 %, vms 15 %, images 7 %.
pub fn openstack_preset(size: PoolSize) -> Vec<PoolSpec> {
    [
        ("volumes", 53.0),
        ("backups", 25.0),
        ("vms", 15.0),
        ("images", 7.0),
    ]
    .into_iter()
    .map(|(name, percent)| PoolSpec {
        name: name.into(),
        percent,
        size,
    })
    .collect()
}
