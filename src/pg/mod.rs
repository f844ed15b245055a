//! pg_num and capacity planning: the ceph docs' PGCalc, the mgr pg_autoscaler of each modelled
//! release (`autoscale`, `release`), the monitor's `mon_max_pg_per_osd` check of that release
//! (`mon_check`), usable capacity; and (`live`, feature `rbd`) the same against a running cluster.
//! Nothing here prints; every number names the release it models.
pub mod autoscale;
pub mod calc;
pub mod capacity;
#[cfg(feature = "rbd")]
pub mod live;
pub mod mon_check;
pub mod movement;
pub mod release;
mod spec;

pub use calc::{
    autoscale_pg_num, nearest_pow2_autoscaler, nearest_pow2_pgcalc, pgcalc_pg_num, PG_NUM_MIN,
};
pub use release::CephRelease;
pub use spec::{PoolOptions, PoolSize, PoolSpec};

use autoscale::{AsPool, AutoscaleInput, AutoscaleMode};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// `mon_max_pool_pg_num`'s default: the monitor refuses a pool with more PGs.
pub const MON_MAX_POOL_PG_NUM: u32 = 65536;

/// How pg_num is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The ceph docs' PGCalc.
    Pgcalc,
    /// The mgr pg_autoscaler of the modelled release (target_size_ratio = percent unless set).
    Autoscale,
}

/// A CRUSH root of an offline plan: pools with `root=NAME` live on its OSDs.
#[derive(Clone, Debug, Serialize)]
pub struct PlanRoot {
    /// Root name (`default` is the one `--osds` describes).
    pub name: String,
    /// OSDs under it.
    pub osds: u32,
}

/// Inputs of a plan.
#[derive(Clone, Debug)]
pub struct PlanInput {
    /// OSDs (in) of the default root.
    pub osds: u32,
    /// Further CRUSH roots, disjoint from the default one.
    pub roots: Vec<PlanRoot>,
    /// Release modelled (autoscaler and monitor check).
    pub release: CephRelease,
    /// Raw bytes of all OSDs (split evenly over them): needed for target_size_bytes and stored.
    pub raw_capacity: Option<u64>,
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
    /// PG replicas this pool puts on an average OSD of its root.
    pub pg_replicas_per_osd: f64,
    /// CRUSH root.
    pub root: String,
    /// Bulk flag.
    pub bulk: bool,
    /// PGCalc's "Target PGs per OSD" this pool was sized with (its own `target_pgs_per_osd`, else
    /// the plan's); absent for the autoscaler.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_pgs_per_osd: Option<u32>,
    /// The autoscaler pass that sized it (autoscale method).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<autoscale::Pass>,
}

/// A plan.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// Method used.
    pub method: Method,
    /// Release whose autoscaler and monitor check the plan models.
    pub release: CephRelease,
    /// OSDs, all roots.
    pub osds: u32,
    /// Pools.
    pub pools: Vec<PoolPlan>,
    /// PG replicas per OSD, all pools.
    pub pg_replicas_per_osd: f64,
    /// Sum of pg_num × size over the pools.
    pub total_pg_replicas: u64,
    /// The monitor's limit on that sum: mon_max_pg_per_osd × max(OSDs, 3) in pacific; from
    /// quincy on, the sum over roots of the largest Σ each root's rule accepts.
    pub max_pg_replicas: u64,
    /// Things to look at.
    pub warnings: Vec<String>,
    /// The commands that create the pools.
    pub commands: Vec<String>,
    /// The monitor's verdict on each create, in command order.
    pub create_checks: Vec<mon_check::MonVerdict>,
}

/// The monitor's ceiling on Σ pg_num × size: it assumes at least 3 OSDs.
pub fn mon_max_pg_replicas(max_pg_per_osd: u32, in_osds: u32) -> u64 {
    max_pg_per_osd as u64 * in_osds.max(3) as u64
}

/// Plans pg_num for every pool, with the commands that create them in the modelled release.
pub fn plan(input: &PlanInput) -> Plan {
    let mut warnings = Vec::new();
    let mut roots = vec![PlanRoot {
        name: "default".into(),
        osds: input.osds,
    }];
    roots.extend(input.roots.iter().cloned());
    let root_index = |spec: &PoolSpec| {
        let name = spec.options.root.as_deref().unwrap_or("default");
        roots.iter().position(|r| r.name == name).unwrap_or(0)
    };
    for spec in &input.pools {
        if let Some(r) = &spec.options.root {
            if !roots.iter().any(|x| &x.name == r) {
                warnings.push(format!(
                    "pool {}: root {r} is not declared (--root {r}:OSDS); planned on the default root",
                    spec.name
                ));
            }
        }
    }
    if input.method == Method::Pgcalc {
        // PGCalc's %Data is a share of one OSD set's data: the pools of each root add up to 100.
        for (i, root) in roots.iter().enumerate() {
            let on_root = input.pools.iter().filter(|p| root_index(p) == i);
            let (count, total) = on_root.fold((0, 0.0), |(n, t), p| (n + 1, t + p.percent));
            if count > 0 && (total - 100.0_f64).abs() > 0.01 {
                warnings.push(format!(
                    "the pools on root {} add up to {total}% of its data, not 100%",
                    root.name
                ));
            }
        }
    }
    let sized: Vec<(u32, Option<autoscale::Pass>)> = match input.method {
        Method::Pgcalc => input
            .pools
            .iter()
            .map(|p| {
                let osds = roots[root_index(p)].osds;
                let target = p
                    .options
                    .target_pgs_per_osd
                    .unwrap_or(input.target_pgs_per_osd);
                (pgcalc_pg_num(osds, p.size.size(), p.percent, target), None)
            })
            .collect(),
        Method::Autoscale => autoscale_plan(input, &roots, &root_index, &mut warnings),
    };
    let mut pools: Vec<PoolPlan> = Vec::new();
    for ((mut pg_num, pass), spec) in sized.into_iter().zip(&input.pools) {
        let size = spec.size.size();
        let root = &roots[root_index(spec)];
        if pg_num > MON_MAX_POOL_PG_NUM {
            warnings.push(format!(
                "pool {}: {} gives {pg_num} PGs; rbdkit plans {MON_MAX_POOL_PG_NUM}, the monitor's mon_max_pool_pg_num default, which refuses more",
                spec.name,
                match input.method {
                    Method::Pgcalc => "PGCalc",
                    Method::Autoscale => "the autoscaler",
                }
            ));
            pg_num = MON_MAX_POOL_PG_NUM;
        }
        if size > root.osds {
            warnings.push(format!(
                "pool {}: size {size} needs at least {size} OSDs (failure domain osd), root {} has {}",
                spec.name, root.name, root.osds
            ));
        }
        pools.push(PoolPlan {
            name: spec.name.clone(),
            pg_num,
            size,
            kind: spec.size.kind(),
            percent: spec.percent,
            pg_replicas_per_osd: pg_num as f64 * size as f64 / root.osds.max(1) as f64,
            root: root.name.clone(),
            bulk: spec.options.bulk,
            target_pgs_per_osd: (input.method == Method::Pgcalc).then(|| {
                spec.options
                    .target_pgs_per_osd
                    .unwrap_or(input.target_pgs_per_osd)
            }),
            pass,
        });
    }
    // The monitor checks each create against the pools made before it, with the size the
    // create names: the commands carry `--size`, so the check sees the final size.
    let mut mon = mon_check::MonState {
        release: input.release,
        mon_max_pg_per_osd: input.max_pg_per_osd,
        in_osds: roots.iter().map(|r| r.osds).sum(),
        rule_osds: roots
            .iter()
            .enumerate()
            .map(|(i, r)| (i as i64, r.osds))
            .collect(),
        pools: Vec::new(),
    };
    let mut create_checks = Vec::new();
    for (i, (p, spec)) in pools.iter().zip(&input.pools).enumerate() {
        let rule = root_index(spec) as i64;
        let change = mon_check::MonChange::Create {
            name: p.name.clone(),
            pg_num: p.pg_num,
            size: p.size,
            rule,
        };
        if let Some(v) = mon_check::check_pg_num(&mon, &change) {
            if !v.allowed {
                warnings.push(format!(
                    "{} (the {} monitor refuses creating pool {}); lower --target-pgs-per-osd or add OSDs",
                    v.message, input.release, p.name
                ));
            }
            create_checks.push(v);
        }
        mon.pools.push(mon_check::MonPool {
            id: i as i64,
            name: p.name.clone(),
            pg_num_target: p.pg_num,
            pg_num: p.pg_num,
            size: p.size,
            crush_rule: rule,
        });
    }
    for root in &roots {
        let per_osd: f64 = pools
            .iter()
            .filter(|p| p.root == root.name)
            .map(|p| p.pg_replicas_per_osd)
            .sum();
        if per_osd > input.max_pg_per_osd as f64 {
            warnings.push(format!(
                "root {}: {per_osd:.0} PG replicas per OSD, above mon_max_pg_per_osd {} (health warning TOO_MANY_PGS; OSDs stop creating PGs at 3x): lower the targets or add OSDs",
                root.name, input.max_pg_per_osd
            ));
        }
    }
    let total: u64 = pools.iter().map(|p| p.pg_num as u64 * p.size as u64).sum();
    let all_osds: u32 = roots.iter().map(|r| r.osds).sum();
    let max = if input.release.mon_checks_per_rule() {
        roots
            .iter()
            .filter(|r| pools.iter().any(|p| p.root == r.name))
            .map(|r| (input.max_pg_per_osd as u64 + 1) * r.osds.max(3) as u64 - 1)
            .sum()
    } else {
        mon_max_pg_replicas(input.max_pg_per_osd, all_osds)
    };
    let per_osd = total as f64 / all_osds.max(1) as f64;
    let commands = create_commands(input, &roots, &pools);
    Plan {
        method: input.method,
        release: input.release,
        osds: all_osds,
        pools,
        pg_replicas_per_osd: per_osd,
        total_pg_replicas: total,
        max_pg_replicas: max,
        warnings,
        commands,
        create_checks,
    }
}

/// Nominal OSD size when no `--raw-capacity` is given: only ratios matter then.
const NOMINAL_OSD_BYTES: u64 = 1 << 40;

fn autoscale_plan(
    input: &PlanInput,
    roots: &[PlanRoot],
    root_index: &dyn Fn(&PoolSpec) -> usize,
    warnings: &mut Vec<String>,
) -> Vec<(u32, Option<autoscale::Pass>)> {
    let all_osds: u32 = roots.iter().map(|r| r.osds).sum();
    let osd_bytes = match input.raw_capacity {
        Some(raw) => raw / all_osds.max(1) as u64,
        None => {
            if input
                .pools
                .iter()
                .any(|p| p.options.target_size_bytes.is_some() || p.options.stored.is_some())
            {
                warnings.push("target_size_bytes / stored without --raw-capacity: measured against a nominal 1 TiB per OSD".into());
            }
            NOMINAL_OSD_BYTES
        }
    };
    // Root i gets CRUSH id -(i+1) and OSD ids after the previous roots' (disjoint roots).
    let mut as_roots = BTreeMap::new();
    let mut bytes = BTreeMap::new();
    let mut next = 0i64;
    for (i, r) in roots.iter().enumerate() {
        let set: BTreeSet<i64> = (next..next + r.osds as i64).collect();
        for &o in &set {
            bytes.insert(o, osd_bytes);
        }
        next += r.osds as i64;
        as_roots.insert(-(i as i64) - 1, set);
    }
    let pools = input
        .pools
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let o = &p.options;
            let rate = p.size.raw_used_rate();
            let stored = o.stored.unwrap_or(0);
            AsPool {
                id: i as i64 + 1,
                name: p.name.clone(),
                size: p.size.size(),
                raw_used_rate: rate,
                pg_num_target: o.pg_num.unwrap_or(32),
                crush_root: -(root_index(p) as i64) - 1,
                stored,
                bytes_used: (stored as f64 * rate) as u64,
                // The percentage is the pool's target_size_ratio unless the pool names its
                // own ratio, or bytes (a ratio would win over them, as in the autoscaler).
                target_size_ratio: o.target_size_ratio.unwrap_or(
                    if o.target_size_bytes.is_some() {
                        0.0
                    } else {
                        p.percent / 100.0
                    },
                ),
                target_size_bytes: o.target_size_bytes.unwrap_or(0),
                bias: o.bias.unwrap_or(input.bias),
                pg_num_min: o.pg_num_min,
                pg_num_max: o.pg_num_max,
                bulk: o.bulk,
                mode: o.mode.unwrap_or(AutoscaleMode::On),
            }
        })
        .collect();
    let r = autoscale::autoscale(&AutoscaleInput {
        release: input.release,
        pools,
        roots: as_roots,
        osd_bytes: bytes,
        target_pg_per_osd: input.target_pgs_per_osd,
        threshold: 3.0,
    });
    input
        .pools
        .iter()
        .map(|p| {
            r.pools
                .iter()
                .find(|a| a.name == p.name)
                .map(|a| (a.pg_num_final, Some(a.pass)))
                .unwrap_or((autoscale::DEFAULT_PG_NUM_MIN, None))
        })
        .collect()
}

/// `ceph` commands that make the plan, in pool order (the autoscaler visits pools by id, so
/// creating them in this order keeps its results), each create naming its final size so the
/// monitor checks it as planned (a create without `--size` is checked at
/// `osd_pool_default_size` before any `set size` runs). Options the autoscaler reads are set
/// at create time; PGCalc plans are created with autoscaling off, or it would undo them.
pub fn create_commands(input: &PlanInput, roots: &[PlanRoot], pools: &[PoolPlan]) -> Vec<String> {
    let mut cmds = Vec::new();
    for r in roots.iter().skip(1) {
        if pools.iter().any(|p| p.root == r.name) {
            cmds.push(format!(
                "ceph osd crush rule create-replicated rbdkit-{0} {0} host",
                r.name
            ));
        }
    }
    let mut profiles = BTreeSet::new();
    for (p, spec) in pools.iter().zip(&input.pools) {
        let o = &spec.options;
        let mut c = match spec.size {
            PoolSize::Replicated(n) => format!(
                "ceph osd pool create {0} {1} {1} replicated --size {n}",
                p.name, p.pg_num
            ),
            PoolSize::Erasure { k, m } => {
                if profiles.insert((k, m)) {
                    cmds.push(format!(
                        "ceph osd erasure-code-profile set ec-{k}-{m} k={k} m={m}"
                    ));
                }
                format!(
                    "ceph osd pool create {0} {1} {1} erasure ec-{k}-{m}",
                    p.name, p.pg_num
                )
            }
        };
        if p.root != "default" && matches!(spec.size, PoolSize::Replicated(_)) {
            c.push_str(&format!(" --rule rbdkit-{}", p.root));
        }
        match input.method {
            Method::Pgcalc => c.push_str(" --autoscale-mode off"),
            Method::Autoscale => {
                if let Some(m) = o.mode {
                    c.push_str(&format!(" --autoscale-mode {}", m.name()));
                }
                if o.bulk {
                    c.push_str(" --bulk");
                }
                if let Some(b) = o
                    .target_size_bytes
                    .filter(|_| o.target_size_ratio.is_none())
                {
                    c.push_str(&format!(" --target-size-bytes {b}"));
                } else {
                    let ratio = o.target_size_ratio.unwrap_or(spec.percent / 100.0);
                    c.push_str(&format!(" --target-size-ratio {ratio}"));
                }
                if let Some(n) = o.pg_num_min {
                    c.push_str(&format!(" --pg-num-min {n}"));
                }
                if let Some(n) = o.pg_num_max {
                    c.push_str(&format!(" --pg-num-max {n}"));
                }
            }
        }
        cmds.push(c);
        let bias = o.bias.unwrap_or(input.bias);
        if input.method == Method::Autoscale && bias != 1.0 {
            cmds.push(format!(
                "ceph osd pool set {} pg_autoscale_bias {bias}",
                p.name
            ));
        }
    }
    cmds
}

/// PGCalc's "Ceph Use Case Selector" presets that rbdkit offers, by the name `--preset` takes.
pub const PRESETS: [&str; 4] = ["openstack", "openstack-rgw", "rgw", "rbd"];

/// The pools of a PGCalc preset (`PRESETS`), each of `size`: PGCalc's shares of the data, with
/// OpenStack's default pool names (Cinder `volumes` and `backups`, Nova `vms`, Glance `images`)
/// in place of PGCalc's (`cinder-volumes`, ...), and its Jewel-and-later RGW pools. `None` for
/// a name PGCalc has no preset of.
pub fn preset(name: &str, size: PoolSize) -> Option<Vec<PoolSpec>> {
    const RGW_SMALL: [&str; 12] = [
        ".rgw.root",
        "default.rgw.control",
        "default.rgw.data.root",
        "default.rgw.gc",
        "default.rgw.log",
        "default.rgw.intent-log",
        "default.rgw.meta",
        "default.rgw.usage",
        "default.rgw.users.keys",
        "default.rgw.users.email",
        "default.rgw.users.swift",
        "default.rgw.users.uid",
    ];
    let rgw = |data: f64| {
        let mut v: Vec<(&str, f64)> = RGW_SMALL.iter().map(|n| (*n, 0.1)).collect();
        v.push(("default.rgw.buckets.extra", 1.0));
        v.push(("default.rgw.buckets.index", 3.0));
        v.push(("default.rgw.buckets.data", data));
        v
    };
    let shares: Vec<(&str, f64)> = match name {
        "openstack" => vec![
            ("volumes", 53.0),
            ("backups", 25.0),
            ("vms", 15.0),
            ("images", 7.0),
        ],
        "openstack-rgw" => {
            let mut v = rgw(19.0);
            v.extend([
                ("backups", 18.0),
                ("volumes", 42.8),
                ("vms", 10.0),
                ("images", 5.0),
            ]);
            v
        }
        "rgw" => rgw(94.8),
        "rbd" => vec![("rbd", 75.0), ("myObjects", 25.0)],
        _ => return None,
    };
    Some(
        shares
            .into_iter()
            .map(|(name, percent)| PoolSpec {
                name: name.into(),
                percent,
                size,
                options: PoolOptions::default(),
            })
            .collect(),
    )
}
