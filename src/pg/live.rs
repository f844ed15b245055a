//! `pg check`: the PG picture of a running cluster: OSDs in/up, pools with the options the
//! autoscaler reads, CRUSH roots, usage, the monitor's own `mon_max_pg_per_osd`; what the
//! cluster's own autoscaler (of the cluster's release) will set next; and the monitor's check
//! of that release applied to a proposed pool before anyone runs `ceph osd pool create`.
//! Usage and OSD sizes come from the mgr (`df`, `osd df`): without one they read as zero and
//! the autoscaler part is left out, as the autoscaler itself is absent then.
use super::autoscale::{self, AsPool, AutoscaleInput, AutoscaleMode, AutoscaleResult};
use super::calc::{autoscaler_would_change, pgcalc_pg_num};
use super::mon_check::{self, MonChange, MonPool, MonState, MonVerdict};
use super::mon_max_pg_replicas;
use super::movement::{self, Movement};
use super::release::CephRelease;
use crate::ceph::Cluster;
use crate::error::{Error, Result};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

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
    /// Pool id.
    pub id: i64,
    /// Raw used rate: size, or (k+m)/k.
    pub raw_used_rate: f64,
    /// The autoscaler's view of the pool (options, flags, usage).
    #[serde(skip)]
    pub autoscale: Option<AsPool>,
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
    /// The release of the running monitor.
    pub release: Option<CephRelease>,
    /// OSDs under each CRUSH rule's roots.
    pub rule_osds: BTreeMap<i64, u32>,
    /// OSDs under each CRUSH root id.
    pub roots: BTreeMap<i64, BTreeSet<i64>>,
    /// Bytes of each OSD, from the mgr (`osd df`); empty without a mgr.
    pub osd_bytes: BTreeMap<i64, u64>,
    /// `mon_target_pg_per_osd` as the mgr reads it.
    pub target_pg_per_osd: u32,
    /// The autoscaler's threshold in effect (3 in pacific; its module option later).
    pub threshold: f64,
    /// Whether autoscaling is switched off for all pools (`noautoscale`).
    pub noautoscale: bool,
    /// The mgr's `target_max_misplaced_ratio` (default 0.05): how much data a pg_num step
    /// may misplace.
    pub target_max_misplaced_ratio: f64,
    /// The default CRUSH rule for a new replicated pool.
    pub default_rule: i64,
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
    /// What the cluster's autoscaler computes for the pool: `pg_num_final` of
    /// `ceph osd pool autoscale-status` (absent when it skips the pool or no usage is known).
    pub autoscale_pg_num: Option<u32>,
    /// Whether the autoscaler will set it (mode on, off by more than the threshold, and no
    /// `noautoscale`).
    pub autoscale_will_change: bool,
    /// `pg_autoscale_mode`.
    pub autoscale_mode: String,
    /// What the autoscaler's change moves, when it will make one (an estimate).
    pub movement: Option<Movement>,
}

/// The monitor's verdict on a proposed pool or size change.
pub type NewPoolVerdict = MonVerdict;

/// The whole check.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    /// Release modelled.
    pub release: CephRelease,
    /// The autoscaler's whole answer (None without usage from a mgr).
    pub autoscale: Option<AutoscaleResult>,
    /// Verdicts on `--set-size`.
    pub set_size: Vec<MonVerdict>,
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

/// Reads OSDs, pools, CRUSH roots, usage, the autoscaler's settings and the monitor's limit.
pub fn read_state(cluster: &Cluster) -> Result<ClusterState> {
    let dump = json(cluster, r#"{"prefix": "osd dump", "format": "json"}"#)?;
    let osds = dump["osds"].as_array().cloned().unwrap_or_default();
    let in_osds = osds.iter().filter(|o| o["in"].as_u64() == Some(1)).count() as u32;
    let up_osds = osds.iter().filter(|o| o["up"].as_u64() == Some(1)).count() as u32;
    let release = json(cluster, r#"{"prefix": "version", "format": "json"}"#)
        .ok()
        .and_then(|v| {
            v["version"]
                .as_str()
                .and_then(CephRelease::from_version_text)
        });
    let crush = json(cluster, r#"{"prefix": "osd crush dump", "format": "json"}"#)?;
    let (rule_roots, roots) = crush_roots(&crush);
    let rule_osds = rule_roots
        .iter()
        .map(|(rule, rs)| {
            let all: BTreeSet<i64> = rs
                .iter()
                .flat_map(|r| roots.get(r).cloned().unwrap_or_default())
                .collect();
            (*rule, all.len() as u32)
        })
        .collect();
    // Usage and OSD sizes live in the mgr; a cluster without one has neither (and no autoscaler).
    // The monitor says whether one is active: asking a missing mgr waits out the op timeout.
    let mgr = json(cluster, r#"{"prefix": "mgr stat", "format": "json"}"#)
        .ok()
        .and_then(|v| v["available"].as_bool())
        .unwrap_or(false);
    let from_mgr = |cmd: &str| if mgr { json(cluster, cmd).ok() } else { None };
    let usage: BTreeMap<i64, (u64, u64)> = from_mgr(r#"{"prefix": "df", "format": "json"}"#)
        .and_then(|v| v["pools"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let st = &p["stats"];
            (
                p["id"].as_i64().unwrap_or(-1),
                (
                    st["stored"].as_u64().unwrap_or(0),
                    st["bytes_used"].as_u64().unwrap_or(0),
                ),
            )
        })
        .collect();
    let osd_bytes: BTreeMap<i64, u64> = from_mgr(r#"{"prefix": "osd df", "format": "json"}"#)
        .and_then(|v| v["nodes"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|n| Some((n["id"].as_i64()?, n["kb"].as_u64()? * 1024)))
        .filter(|(_, b)| *b > 0)
        .collect();
    let profiles = |name: &str| -> Option<f64> {
        let cmd = serde_json::json!({"prefix": "osd erasure-code-profile get", "name": name, "format": "json"});
        let v = json(cluster, &cmd.to_string()).ok()?;
        let k: f64 = v["k"].as_str()?.parse().ok()?;
        let m: f64 = v["m"].as_str()?.parse().ok()?;
        Some((k + m) / k)
    };
    let pools = dump["pools"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let id = p["pool"].as_i64().unwrap_or(-1);
            let size = as_u32(&p["size"]);
            let erasure = p["type"].as_u64() == Some(3);
            let rate = if erasure {
                p["erasure_code_profile"]
                    .as_str()
                    .and_then(profiles)
                    .unwrap_or(size as f64)
            } else {
                size as f64
            };
            let pg_num_target = if p["pg_num_target"].is_u64() {
                as_u32(&p["pg_num_target"])
            } else {
                as_u32(&p["pg_num"])
            };
            let crush_rule = p["crush_rule"].as_i64().unwrap_or(-1);
            let o = &p["options"];
            let name = p["pool_name"].as_str().unwrap_or("?").to_string();
            let (stored, bytes_used) = usage.get(&id).copied().unwrap_or((0, 0));
            let root = rule_roots.get(&crush_rule).and_then(|r| r.first().copied());
            let autoscale = root.map(|crush_root| AsPool {
                id,
                name: name.clone(),
                size,
                raw_used_rate: rate,
                pg_num_target,
                crush_root,
                stored,
                bytes_used,
                target_size_ratio: o["target_size_ratio"].as_f64().unwrap_or(0.0),
                target_size_bytes: o["target_size_bytes"].as_u64().unwrap_or(0),
                bias: o["pg_autoscale_bias"].as_f64().unwrap_or(1.0),
                pg_num_min: o["pg_num_min"].as_u64().map(|n| n as u32),
                pg_num_max: o["pg_num_max"].as_u64().map(|n| n as u32),
                bulk: p["flags_names"]
                    .as_str()
                    .unwrap_or("")
                    .split(',')
                    .any(|f| f == "bulk"),
                mode: p["pg_autoscale_mode"]
                    .as_str()
                    .and_then(AutoscaleMode::parse)
                    .unwrap_or(AutoscaleMode::Off),
            });
            LivePool {
                name,
                pg_num: as_u32(&p["pg_num"]),
                pg_num_target,
                size,
                crush_rule,
                kind: if erasure {
                    "erasure".into()
                } else {
                    "replicated".into()
                },
                id,
                raw_used_rate: rate,
                autoscale,
            }
        })
        .collect();
    let (limit, source) = mon_max_pg_per_osd(cluster)?;
    let mgr_option = |key: &str| -> Option<String> {
        let cmd = serde_json::json!({"prefix": "config get", "who": "mgr", "key": key});
        let (out, _) = cluster.mon_command(&cmd.to_string()).ok()?;
        Some(
            String::from_utf8_lossy(&out)
                .trim()
                .trim_matches('"')
                .to_string(),
        )
    };
    let target_pg_per_osd = mgr_option("mon_target_pg_per_osd")
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let r = release.unwrap_or(CephRelease::Pacific);
    let threshold = if r == CephRelease::Pacific {
        3.0
    } else {
        mgr_option("mgr/pg_autoscaler/threshold")
            .and_then(|s| s.parse().ok())
            .unwrap_or(3.0)
    };
    // Pacific keeps noautoscale as a module option, later releases as an OSD map flag.
    let noautoscale = if r == CephRelease::Pacific {
        mgr_option("mgr/pg_autoscaler/noautoscale").is_some_and(|s| s == "true")
    } else {
        dump["flags"]
            .as_str()
            .unwrap_or("")
            .split(',')
            .any(|f| f == "noautoscale")
    };
    let default_rule = crush["rules"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["type"].as_u64() == Some(1)))
        .and_then(|r| r["rule_id"].as_i64())
        .unwrap_or(0);
    Ok(ClusterState {
        mon_max_pg_per_osd: limit,
        mon_max_pg_per_osd_source: source,
        in_osds,
        up_osds,
        pools,
        release,
        rule_osds,
        roots,
        osd_bytes,
        target_pg_per_osd,
        threshold,
        noautoscale,
        target_max_misplaced_ratio: mgr_option("target_max_misplaced_ratio")
            .and_then(|s| s.parse().ok())
            .filter(|r: &f64| *r > 0.0 && *r <= 1.0)
            .unwrap_or(0.05),
        default_rule,
    })
}

/// The roots each rule takes, and the OSDs under every bucket (shadow device-class trees
/// included, as `osd crush dump` lists them).
fn crush_roots(crush: &Value) -> (BTreeMap<i64, Vec<i64>>, BTreeMap<i64, BTreeSet<i64>>) {
    let mut children: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for b in crush["buckets"].as_array().cloned().unwrap_or_default() {
        let id = b["id"].as_i64().unwrap_or(0);
        let items = b["items"].as_array().cloned().unwrap_or_default();
        children.insert(id, items.iter().filter_map(|i| i["id"].as_i64()).collect());
    }
    let leaves = |root: i64| {
        let mut out = BTreeSet::new();
        let mut stack = vec![root];
        let mut seen = BTreeSet::new();
        while let Some(x) = stack.pop() {
            if x >= 0 {
                out.insert(x);
            } else if seen.insert(x) {
                stack.extend(children.get(&x).cloned().unwrap_or_default());
            }
        }
        out
    };
    let mut rule_roots = BTreeMap::new();
    let mut roots = BTreeMap::new();
    for r in crush["rules"].as_array().cloned().unwrap_or_default() {
        let takes: Vec<i64> = r["steps"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|s| s["op"].as_str() == Some("take"))
            .filter_map(|s| s["item"].as_i64())
            .collect();
        for &t in &takes {
            roots.entry(t).or_insert_with(|| leaves(t));
        }
        rule_roots.insert(r["rule_id"].as_i64().unwrap_or(-1), takes);
    }
    (rule_roots, roots)
}

/// The monitor state of the cluster for the release's check.
fn mon_state(state: &ClusterState, release: CephRelease) -> MonState {
    MonState {
        release,
        mon_max_pg_per_osd: state.mon_max_pg_per_osd,
        in_osds: state.in_osds,
        rule_osds: state.rule_osds.clone(),
        pools: state
            .pools
            .iter()
            .map(|p| MonPool {
                id: p.id,
                name: p.name.clone(),
                pg_num_target: p.pg_num_target,
                pg_num: p.pg_num,
                size: p.size,
                crush_rule: p.crush_rule,
            })
            .collect(),
    }
}

/// What the cluster's autoscaler computes now, or None without usage (no mgr).
pub fn autoscale_now(state: &ClusterState, release: CephRelease) -> Option<AutoscaleResult> {
    if state.osd_bytes.is_empty() {
        return None;
    }
    Some(autoscale::autoscale(&AutoscaleInput {
        release,
        pools: state
            .pools
            .iter()
            .filter_map(|p| p.autoscale.clone())
            .collect(),
        roots: state.roots.clone(),
        osd_bytes: state.osd_bytes.clone(),
        target_pg_per_osd: state.target_pg_per_osd,
        threshold: state.threshold,
    }))
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

/// The monitor's rule for `ceph osd pool create NAME PG_NUM --size SIZE` on the default rule.
pub fn judge_new_pool(
    state: &ClusterState,
    release: CephRelease,
    name: &str,
    pg_num: u32,
    size: u32,
) -> NewPoolVerdict {
    let change = MonChange::Create {
        name: name.into(),
        pg_num,
        size,
        rule: state.default_rule,
    };
    mon_check::check_pg_num(&mon_state(state, release), &change)
        .expect("a create always has a verdict")
}

/// Checks the live pools. `shares` gives percent per pool name; the other pools of a CRUSH root
/// share what is left of that root's 100 % equally.
pub fn check(
    state: &ClusterState,
    release: CephRelease,
    shares: &[(String, f64)],
    target_per_osd: u32,
    new_pool: Option<(String, u32, u32)>,
    set_size: &[(String, u32)],
) -> Result<CheckReport> {
    let in_osds = state.in_osds.max(1);
    // As in PGCalc, a share is of the data on one set of OSDs: the pools of each CRUSH root
    // split that root's 100 %, and a pool's PGs are spread over its root's OSDs only.
    let root_of = |p: &LivePool| p.autoscale.as_ref().map(|a| a.crush_root);
    let osds_of = |p: &LivePool| {
        state
            .rule_osds
            .get(&p.crush_rule)
            .copied()
            .filter(|&n| n > 0)
            .unwrap_or(in_osds)
    };
    let share_of = |p: &LivePool| {
        if let Some((_, s)) = shares.iter().find(|(n, _)| n == &p.name) {
            return *s;
        }
        let same_root = || state.pools.iter().filter(|q| root_of(q) == root_of(p));
        let given: f64 = same_root()
            .filter_map(|q| shares.iter().find(|(n, _)| n == &q.name).map(|s| s.1))
            .sum();
        let unnamed = same_root()
            .filter(|q| !shares.iter().any(|(n, _)| n == &q.name))
            .count();
        (100.0 - given).max(0.0) / unnamed.max(1) as f64
    };
    let auto = autoscale_now(state, release);
    let cluster_raw: u64 = state
        .pools
        .iter()
        .filter_map(|p| p.autoscale.as_ref().map(|a| a.bytes_used))
        .sum();
    let mut warnings = Vec::new();
    if auto.is_none() {
        warnings.push("no OSD sizes or usage from a mgr: the autoscaler's targets are not computed (the autoscaler lives in the mgr)".into());
    }
    let pools: Vec<CheckedPool> = state
        .pools
        .iter()
        .map(|p| {
            let percent = share_of(p);
            let osds = osds_of(p);
            let recommended = pgcalc_pg_num(osds, p.size, percent, target_per_osd);
            let off = autoscaler_would_change(p.pg_num, recommended);
            if off {
                warnings.push(format!(
                    "pool {} has pg_num {} but {}% of the data on {} OSDs calls for {} (off by more than 3x)",
                    p.name, p.pg_num, percent, osds, recommended
                ));
            }
            let a = auto.as_ref().and_then(|r| r.pools.iter().find(|a| a.name == p.name));
            let will_change = a.is_some_and(|a| a.would_adjust) && !state.noautoscale;
            CheckedPool {
                name: p.name.clone(),
                pg_num: p.pg_num,
                size: p.size,
                percent,
                recommended_pg_num: recommended,
                off_by_more_than_3x: off,
                pg_replicas_per_osd: p.pg_num as f64 * p.size as f64 / osds as f64,
                autoscale_pg_num: a.map(|a| a.pg_num_final),
                autoscale_will_change: will_change,
                autoscale_mode: p.autoscale.as_ref().map_or("off", |a| a.mode.name()).into(),
                movement: a.filter(|_| will_change).and_then(|a| {
                    let stored = p.autoscale.as_ref().map_or(0, |s| s.stored);
                    movement::estimate(
                        p.pg_num,
                        a.pg_num_final,
                        stored,
                        p.raw_used_rate,
                        cluster_raw,
                        state.target_max_misplaced_ratio,
                    )
                }),
            }
        })
        .collect();
    if let Some(r) = &auto {
        for s in &r.skipped {
            warnings.push(format!("pool {}: {}", s.name, s.reason));
        }
    }
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
    let mon = mon_state(state, release);
    let mut sizes = Vec::new();
    for (pool, size) in set_size {
        let v = mon_check::check_pg_num(
            &mon,
            &MonChange::SetSize {
                pool: pool.clone(),
                size: *size,
            },
        )
        .ok_or_else(|| {
            Error::InvalidInput(format!("--set-size {pool}:{size}: no pool named {pool}"))
        })?;
        sizes.push(v);
    }
    Ok(CheckReport {
        release,
        autoscale: auto,
        set_size: sizes,
        mon_max_pg_per_osd: state.mon_max_pg_per_osd,
        in_osds: state.in_osds,
        up_osds: state.up_osds,
        pools,
        pg_replicas_per_osd: per_osd,
        total_pg_replicas: total,
        max_pg_replicas: max,
        warnings,
        new_pool: new_pool.map(|(n, pg, size)| judge_new_pool(state, release, &n, pg, size)),
    })
}
