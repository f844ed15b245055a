//! `pg check`: the PG picture of a running cluster through monitor commands (no mgr):
//! OSDs in/up, pools, the monitor's own `mon_max_pg_per_osd`, and the monitor's pool-create
//! rule applied to a proposed pool before anyone runs `ceph osd pool create`.
use super::calc::{autoscaler_would_change, pgcalc_pg_num};
use super::mon_max_pg_replicas;
use crate::ceph::Cluster;
use crate::error::{Error, Result};
use serde::Serialize;
use serde_json::Value;

/// A pool as the OSD map describes it.
#[derive(Clone, Debug, Serialize)]
pub struct LivePool {
    /// Pool name.
    pub name: String,
    /// Current pg_num.
    pub pg_num: u32,
    /// pg_num the monitor counts (pg_num_target; differs while a change is in progress).
    pub pg_num_target: u32,
    /// Replicas or k+m.
    pub size: u32,
    /// CRUSH rule id.
    pub crush_rule: i64,
    /// `replicated` or `erasure`.
    pub kind: String,
}

/// What the monitor knows about PGs.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterState {
    /// The monitor's mon_max_pg_per_osd, as in effect in the running monitor.
    pub mon_max_pg_per_osd: u32,
    /// Where that value came from.
    pub mon_max_pg_per_osd_source: String,
    /// OSDs in.
    pub in_osds: u32,
    /// OSDs up.
    pub up_osds: u32,
    /// Pools.
    pub pools: Vec<LivePool>,
}

/// A pool of the check, with the recommendation.
#[derive(Clone, Debug, Serialize)]
pub struct CheckedPool {
    /// Pool name.
    pub name: String,
    /// Current pg_num.
    pub pg_num: u32,
    /// Size.
    pub size: u32,
    /// Share of the data assumed for the recommendation, percent.
    pub percent: f64,
    /// PGCalc's pg_num for that share.
    pub recommended_pg_num: u32,
    /// Off by more than 3x (the autoscaler's threshold).
    pub off_by_more_than_3x: bool,
    /// PG replicas this pool puts on an average in OSD.
    pub pg_replicas_per_osd: f64,
}

/// The monitor's verdict on a proposed pool.
#[derive(Clone, Debug, Serialize)]
pub struct NewPoolVerdict {
    /// Pool name.
    pub name: String,
    /// Proposed pg_num.
    pub pg_num: u32,
    /// Size.
    pub size: u32,
    /// Whether `ceph osd pool create` would succeed on this count.
    pub allowed: bool,
    /// Σ pg_num × size over all pools, the new one included.
    pub projected_pg_replicas: u64,
    /// mon_max_pg_per_osd × max(in OSDs, 3).
    pub max_pg_replicas: u64,
    /// What the monitor would say.
    pub message: String,
}

/// The whole check.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    /// mon_max_pg_per_osd in effect.
    pub mon_max_pg_per_osd: u32,
    /// OSDs in.
    pub in_osds: u32,
    /// OSDs up.
    pub up_osds: u32,
    /// Pools.
    pub pools: Vec<CheckedPool>,
    /// PG replicas per in OSD, all pools.
    pub pg_replicas_per_osd: f64,
    /// Σ pg_num × size now.
    pub total_pg_replicas: u64,
    /// The monitor's ceiling.
    pub max_pg_replicas: u64,
    /// Things to look at.
    pub warnings: Vec<String>,
    /// Verdict on `--new-pool`, if asked.
    pub new_pool: Option<NewPoolVerdict>,
}

fn json(cluster: &Cluster, cmd: &str) -> Result<Value> {
    let (out, _) = cluster.mon_command(cmd)?;
    serde_json::from_slice(&out)
        .map_err(|e| Error::Other(format!("cannot parse the monitor's answer to {cmd}: {e}")))
}

fn as_u32(v: &Value) -> u32 {
    v.as_u64().unwrap_or(0).min(u32::MAX as u64) as u32
}

/// Reads OSDs, pools and the monitor's limit.
pub fn read_state(cluster: &Cluster) -> Result<ClusterState> {
    let dump = json(cluster, r#"{"prefix": "osd dump", "format": "json"}"#)?;
    let osds = dump["osds"].as_array().cloned().unwrap_or_default();
    let in_osds = osds.iter().filter(|o| o["in"].as_u64() == Some(1)).count() as u32;
    let up_osds = osds.iter().filter(|o| o["up"].as_u64() == Some(1)).count() as u32;
    let pools = dump["pools"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| LivePool {
            name: p["pool_name"].as_str().unwrap_or("?").to_string(),
            pg_num: as_u32(&p["pg_num"]),
            pg_num_target: if p["pg_num_target"].is_u64() {
                as_u32(&p["pg_num_target"])
            } else {
                as_u32(&p["pg_num"])
            },
            size: as_u32(&p["size"]),
            crush_rule: p["crush_rule"].as_i64().unwrap_or(-1),
            kind: if p["type"].as_u64() == Some(3) {
                "erasure".into()
            } else {
                "replicated".into()
            },
        })
        .collect();
    let (limit, source) = mon_max_pg_per_osd(cluster)?;
    Ok(ClusterState {
        mon_max_pg_per_osd: limit,
        mon_max_pg_per_osd_source: source,
        in_osds,
        up_osds,
        pools,
    })
}

/// The limit the monitor enforces. Asked of a running monitor first (its value in effect,
/// injectargs included), then of the monitors' config database.
fn mon_max_pg_per_osd(cluster: &Cluster) -> Result<(u32, String)> {
    let parse = |v: &Value| -> Option<u32> {
        let x = &v["mon_max_pg_per_osd"];
        x.as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| x.as_u64().map(|n| n as u32))
    };
    let mons = json(cluster, r#"{"prefix": "mon dump", "format": "json"}"#)?;
    if let Some(name) = mons["mons"]
        .as_array()
        .and_then(|m| m.first())
        .and_then(|m| m["name"].as_str())
    {
        let cmd = r#"{"prefix": "config get", "var": "mon_max_pg_per_osd", "format": "json"}"#;
        if let Ok((out, _)) = cluster.mon_command_target(name, cmd) {
            if let Some(n) = serde_json::from_slice::<Value>(&out)
                .ok()
                .as_ref()
                .and_then(parse)
            {
                return Ok((n, format!("running mon.{name}")));
            }
        }
    }
    let (out, _) = cluster
        .mon_command(r#"{"prefix": "config get", "who": "mon", "key": "mon_max_pg_per_osd"}"#)?;
    let text = String::from_utf8_lossy(&out);
    let n = text.trim().trim_matches('"').parse().map_err(|_| {
        Error::Other(format!(
            "cannot read mon_max_pg_per_osd from the monitor (got '{}')",
            text.trim()
        ))
    })?;
    Ok((n, "monitor config database".into()))
}

/// The monitor's rule for `ceph osd pool create NAME PG_NUM` with `size` (OSDMonitor::check_pg_num).
pub fn judge_new_pool(state: &ClusterState, name: &str, pg_num: u32, size: u32) -> NewPoolVerdict {
    let existing: u64 = state
        .pools
        .iter()
        .map(|p| p.pg_num_target as u64 * p.size as u64)
        .sum();
    let projected = existing + pg_num as u64 * size as u64;
    let max = mon_max_pg_replicas(state.mon_max_pg_per_osd, state.in_osds);
    let allowed = projected <= max;
    let message = if allowed {
        format!("pool create {name} would succeed: {projected} total pgs is within max {max}")
    } else {
        format!(
            "Error ERANGE: pg_num {pg_num} size {size} would mean {projected} total pgs, which exceeds max {max} (mon_max_pg_per_osd {} * num_in_osds {})",
            state.mon_max_pg_per_osd,
            state.in_osds.max(3)
        )
    };
    NewPoolVerdict {
        name: name.into(),
        pg_num,
        size,
        allowed,
        projected_pg_replicas: projected,
        max_pg_replicas: max,
        message,
    }
}

/// Checks the live pools. `shares` gives percent per pool name (others share the rest equally).
pub fn check(
    state: &ClusterState,
    shares: &[(String, f64)],
    target_per_osd: u32,
    new_pool: Option<(String, u32, u32)>,
) -> CheckReport {
    let in_osds = state.in_osds.max(1);
    let given: f64 = shares
        .iter()
        .filter(|(n, _)| state.pools.iter().any(|p| &p.name == n))
        .map(|s| s.1)
        .sum();
    let unnamed = state
        .pools
        .iter()
        .filter(|p| !shares.iter().any(|(n, _)| n == &p.name))
        .count();
    let default_share = if unnamed > 0 {
        (100.0 - given).max(0.0) / unnamed as f64
    } else {
        0.0
    };
    let mut warnings = Vec::new();
    let pools: Vec<CheckedPool> = state
        .pools
        .iter()
        .map(|p| {
            let percent = shares.iter().find(|(n, _)| n == &p.name).map_or(default_share, |s| s.1);
            let recommended = pgcalc_pg_num(state.in_osds, p.size, percent, target_per_osd);
            let off = autoscaler_would_change(p.pg_num, recommended);
            if off {
                warnings.push(format!(
                    "pool {} has pg_num {} but {}% of the data on {} OSDs calls for {} (off by more than 3x)",
                    p.name, p.pg_num, percent, state.in_osds, recommended
                ));
            }
            CheckedPool {
                name: p.name.clone(),
                pg_num: p.pg_num,
                size: p.size,
                percent,
                recommended_pg_num: recommended,
                off_by_more_than_3x: off,
                pg_replicas_per_osd: p.pg_num as f64 * p.size as f64 / in_osds as f64,
            }
        })
        .collect();
    let total: u64 = state
        .pools
        .iter()
        .map(|p| p.pg_num_target as u64 * p.size as u64)
        .sum();
    let max = mon_max_pg_replicas(state.mon_max_pg_per_osd, state.in_osds);
    let per_osd = total as f64 / in_osds as f64;
    if per_osd > state.mon_max_pg_per_osd as f64 {
        warnings.push(format!(
            "{per_osd:.0} PG replicas per OSD exceed mon_max_pg_per_osd {}: OSDs may refuse to activate PGs",
            state.mon_max_pg_per_osd
        ));
    }
    if state.up_osds < state.in_osds {
        warnings.push(format!(
            "{} of {} in OSDs are down",
            state.in_osds - state.up_osds,
            state.in_osds
        ));
    }
    CheckReport {
        mon_max_pg_per_osd: state.mon_max_pg_per_osd,
        in_osds: state.in_osds,
        up_osds: state.up_osds,
        pools,
        pg_replicas_per_osd: per_osd,
        total_pg_replicas: total,
        max_pg_replicas: max,
        warnings,
        new_pool: new_pool.map(|(n, pg, size)| judge_new_pool(state, &n, pg, size)),
    }
}
