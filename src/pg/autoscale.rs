//! The mgr `pg_autoscaler`'s pg_num targets, pass for pass as the module of each modelled
//! release computes them (Pacific 16.2.15's and tentacle 20.2.4's `module.py` as Debian ships
//! them; quincy, reef and squid as read from ceph's tree, reef checked against Debian's 18.2.7).
//! Pure: the caller gathers pools, CRUSH roots and usage (offline from the command line, live
//! from the cluster) and this module never talks to a cluster.
//!
//! The shape of the computation, and why results depend on pool order:
//! - Pools are grouped into CRUSH subtrees by the OSDs under their rule's root; a root whose OSDs
//!   overlap another root's makes both "overlapped" and their pools are not scaled at all.
//! - Each subtree has a budget `pg_left` = OSDs × `mon_target_pg_per_osd`.
//! - First pass, non-bulk pools in pool-id order: each takes its capacity ratio of the PGs
//!   *still left*, so the first pools take more than their share.
//! - Second pass, bulk pools using more than an even share of the pools not yet served.
//! - Third pass, the remaining bulk pools split what is left evenly.
use super::release::CephRelease;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// The autoscaler's floor when a pool sets no `pg_num_min` (`PG_NUM_MIN` in module.py).
pub const DEFAULT_PG_NUM_MIN: u32 = 32;

/// A pool's `pg_autoscale_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoscaleMode {
    /// The autoscaler sets pg_num itself.
    On,
    /// It raises a health warning only.
    Warn,
    /// It does nothing (autoscale-status still shows its target).
    Off,
}

impl AutoscaleMode {
    /// Parses `on`, `warn`, `off`.
    pub fn parse(text: &str) -> Option<AutoscaleMode> {
        match text {
            "on" => Some(AutoscaleMode::On),
            "warn" => Some(AutoscaleMode::Warn),
            "off" => Some(AutoscaleMode::Off),
            _ => None,
        }
    }

    /// Lower-case name.
    pub fn name(&self) -> &'static str {
        match self {
            AutoscaleMode::On => "on",
            AutoscaleMode::Warn => "warn",
            AutoscaleMode::Off => "off",
        }
    }
}

/// A pool as the autoscaler sees it.
#[derive(Clone, Debug, Serialize)]
pub struct AsPool {
    /// Pool id: pools are visited in id order, which the result depends on.
    pub id: i64,
    /// Pool name.
    pub name: String,
    /// `size`: replicas, or k+m.
    pub size: u32,
    /// Raw bytes per stored byte: size for replicated pools, (k+m)/k for erasure-coded ones.
    pub raw_used_rate: f64,
    /// Current `pg_num_target`.
    pub pg_num_target: u32,
    /// Id of the CRUSH root its rule takes.
    pub crush_root: i64,
    /// Logical bytes stored (`ceph df` `stored`).
    pub stored: u64,
    /// Raw bytes used (`ceph df` `bytes_used`).
    pub bytes_used: u64,
    /// `target_size_ratio` (0 = unset).
    pub target_size_ratio: f64,
    /// `target_size_bytes` (0 = unset); ignored when a ratio is set, as the autoscaler does.
    pub target_size_bytes: u64,
    /// `pg_autoscale_bias`.
    pub bias: f64,
    /// `pg_num_min`, if set.
    pub pg_num_min: Option<u32>,
    /// `pg_num_max`, if set.
    pub pg_num_max: Option<u32>,
    /// The `bulk` flag.
    pub bulk: bool,
    /// `pg_autoscale_mode`.
    pub mode: AutoscaleMode,
}

/// What the autoscaler needs besides the pools.
#[derive(Clone, Debug)]
pub struct AutoscaleInput {
    /// Release whose module is modelled.
    pub release: CephRelease,
    /// Pools (any order: they are visited by id).
    pub pools: Vec<AsPool>,
    /// OSD ids under each CRUSH root id (the root's leaves).
    pub roots: BTreeMap<i64, BTreeSet<i64>>,
    /// Capacity of each OSD in bytes (`osd_stats` `kb` × 1024).
    pub osd_bytes: BTreeMap<i64, u64>,
    /// `mon_target_pg_per_osd` (100).
    pub target_pg_per_osd: u32,
    /// The factor a target must differ by before the autoscaler acts: 3 in pacific, the
    /// `mgr/pg_autoscaler/threshold` module option (default 3) later.
    pub threshold: f64,
}

/// The pass that sized a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pass {
    /// Non-bulk pools: their ratio of the PGs still left.
    First,
    /// Bulk pools above an even share.
    Second,
    /// The other bulk pools: an even split of what is left.
    Third,
}

/// The autoscaler's verdict on one pool: the fields of `ceph osd pool autoscale-status`.
#[derive(Clone, Debug, Serialize)]
pub struct AutoscalePool {
    /// Pool id.
    pub pool_id: i64,
    /// Pool name.
    pub name: String,
    /// CRUSH root id.
    pub crush_root_id: i64,
    /// Current pg_num_target.
    pub pg_num_target: u32,
    /// Bytes of the pool's subtree.
    pub subtree_capacity: u64,
    /// max(actual, target) raw use over capacity, and at least the effective target ratio.
    pub capacity_ratio: f64,
    /// target_size_ratio normalised over the subtree and shrunk by target_size_bytes.
    pub effective_target_ratio: f64,
    /// The ratio of the budget the pass gave the pool.
    pub final_ratio: f64,
    /// The unrounded target (`pg_num_ideal`, truncated).
    pub pg_num_ideal: i64,
    /// The new pg_num (`pg_num_final`).
    pub pg_num_final: u32,
    /// Whether the autoscaler acts: off by more than the threshold, and mode on.
    pub would_adjust: bool,
    /// Bulk flag.
    pub bulk: bool,
    /// Bias.
    pub bias: f64,
    /// Mode.
    pub mode: AutoscaleMode,
    /// Which pass sized it.
    pub pass: Pass,
}

/// A pool the autoscaler leaves out of its report, and why.
#[derive(Clone, Debug, Serialize)]
pub struct SkippedPool {
    /// Pool name.
    pub name: String,
    /// Why.
    pub reason: String,
}

/// The autoscaler's whole answer, pools in the order the mgr lists them.
#[derive(Clone, Debug, Serialize)]
pub struct AutoscaleResult {
    /// Release modelled.
    pub release: CephRelease,
    /// Pools it sized, in its order (first-pass pools, then second, then third).
    pub pools: Vec<AutoscalePool>,
    /// Pools it skips (overlapping roots, empty subtrees).
    pub skipped: Vec<SkippedPool>,
}

/// module.py's `nearest_power_of_two`, bit for bit: the power of two above the integer part
/// and the one below it, the nearer by linear distance (ties go up); 0 below 1.
pub fn nearest_power_of_two(n: f64) -> i64 {
    let mut v = n as i64;
    v -= 1;
    for s in [1, 2, 4, 8, 16] {
        v |= v >> s;
    }
    v += 1;
    let x = v >> 1;
    if (v as f64 - n) > (n - x as f64) {
        x
    } else {
        v
    }
}

/// `effective_target_ratio` of module.py: normalised over the subtree's ratios, then scaled by
/// the capacity the subtree's target_size_bytes leave.
pub fn effective_target_ratio(
    ratio: f64,
    total_ratio: f64,
    total_bytes: f64,
    capacity: u64,
) -> f64 {
    let mut r = ratio;
    if total_ratio != 0.0 {
        r /= total_ratio;
    }
    if total_bytes != 0.0 && capacity != 0 {
        r *= 1.0 - (total_bytes / capacity as f64).min(1.0);
    }
    r
}

struct Subtree {
    osds: BTreeSet<i64>,
    pool_count: usize,
    pool_used: usize,
    pg_left: i64,
    capacity: u64,
    total_target_ratio: f64,
    total_target_bytes: f64,
}

/// Runs the autoscaler of `input.release` over the pools.
pub fn autoscale(input: &AutoscaleInput) -> AutoscaleResult {
    let mut pools: Vec<&AsPool> = input.pools.iter().collect();
    pools.sort_by_key(|p| p.id);
    let empty = BTreeSet::new();
    // Subtrees, and root id → subtree in the insertion order of module.py's dict (the first
    // intersecting subtree wins).
    let mut subtrees: Vec<Subtree> = Vec::new();
    let mut by_root: Vec<(i64, usize)> = Vec::new();
    let mut overlapped: BTreeSet<i64> = BTreeSet::new();
    for p in &pools {
        let osds = input.roots.get(&p.crush_root).unwrap_or(&empty);
        let mut found = None;
        for &(prev_root, idx) in &by_root {
            if !subtrees[idx].osds.is_disjoint(osds) {
                found = Some(idx);
                if prev_root != p.crush_root {
                    overlapped.insert(prev_root);
                    overlapped.insert(p.crush_root);
                }
                break;
            }
        }
        let idx = found.unwrap_or_else(|| {
            subtrees.push(Subtree {
                osds: BTreeSet::new(),
                pool_count: 0,
                pool_used: 0,
                pg_left: 0,
                capacity: 0,
                total_target_ratio: 0.0,
                total_target_bytes: 0.0,
            });
            subtrees.len() - 1
        });
        match by_root.iter_mut().find(|(r, _)| *r == p.crush_root) {
            Some(entry) => entry.1 = idx,
            None => by_root.push((p.crush_root, idx)),
        }
        let s = &mut subtrees[idx];
        s.osds.extend(osds.iter().copied());
        s.pool_count += 1;
        if p.target_size_ratio != 0.0 {
            s.total_target_ratio += p.target_size_ratio;
        } else if p.target_size_bytes != 0 {
            s.total_target_bytes += p.target_size_bytes as f64 * p.raw_used_rate;
        }
    }
    for s in &mut subtrees {
        s.pg_left = s.osds.len() as i64 * input.target_pg_per_osd as i64;
        s.capacity = s
            .osds
            .iter()
            .map(|o| input.osd_bytes.get(o).copied().unwrap_or(0))
            .sum();
    }
    let subtree_of = |root: i64| by_root.iter().find(|(r, _)| *r == root).map(|e| e.1);

    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let mut bulk_pools = Vec::new();
    let mut even_pools = Vec::new();
    for pass in [Pass::First, Pass::Second, Pass::Third] {
        let list: Vec<&AsPool> = match pass {
            Pass::First => pools.clone(),
            Pass::Second => std::mem::take(&mut bulk_pools),
            Pass::Third => std::mem::take(&mut even_pools),
        };
        for p in list {
            if overlapped.contains(&p.crush_root) {
                if pass == Pass::First {
                    skipped.push(SkippedPool {
                        name: p.name.clone(),
                        reason: format!(
                            "its CRUSH root {} overlaps another pool's root: the autoscaler does not scale it",
                            p.crush_root
                        ),
                    });
                }
                continue;
            }
            let Some(idx) = subtree_of(p.crush_root) else {
                continue;
            };
            let s = &mut subtrees[idx];
            if s.capacity == 0 {
                if pass == Pass::First {
                    skipped.push(SkippedPool {
                        name: p.name.clone(),
                        reason: format!("its CRUSH root {} has no capacity", p.crush_root),
                    });
                }
                continue;
            }
            let rate = p.raw_used_rate;
            let target_bytes = if p.target_size_ratio == 0.0 {
                p.target_size_bytes
            } else {
                0
            };
            let raw_used = if input.release.autoscaler_uses_bytes_used() {
                (p.bytes_used as f64).max(target_bytes as f64 * rate)
            } else {
                p.stored.max(target_bytes) as f64 * rate
            };
            let target_ratio = effective_target_ratio(
                p.target_size_ratio,
                s.total_target_ratio,
                s.total_target_bytes,
                s.capacity,
            );
            let capacity_ratio = (raw_used / s.capacity as f64).max(target_ratio);
            let size = p.size.max(1) as f64;
            let (final_ratio, pool_pg_target) = match pass {
                Pass::First => {
                    if p.bulk {
                        bulk_pools.push(p);
                        continue;
                    }
                    let used_pg = capacity_ratio * s.pg_left as f64;
                    s.pg_left -= used_pg as i64;
                    s.pool_used += 1;
                    (capacity_ratio, used_pg / size * p.bias)
                }
                Pass::Second => {
                    let even_ratio = 1.0 / (s.pool_count as f64 - s.pool_used as f64);
                    if capacity_ratio > even_ratio {
                        s.pool_used += 1;
                    } else {
                        even_pools.push(p);
                        continue;
                    }
                    let final_ratio = capacity_ratio.max(even_ratio);
                    let used_pg = final_ratio * s.pg_left as f64;
                    s.pg_left -= used_pg as i64;
                    (final_ratio, used_pg / size * p.bias)
                }
                Pass::Third => {
                    let final_ratio = 1.0 / (s.pool_count as f64 - s.pool_used as f64);
                    (final_ratio, final_ratio * s.pg_left as f64 / size * p.bias)
                }
            };
            let min_pg = p.pg_num_min.unwrap_or(DEFAULT_PG_NUM_MIN) as i64;
            let mut final_pg = nearest_power_of_two(pool_pg_target).max(min_pg);
            if let Some(max) = p.pg_num_max.filter(|&m| m > 0) {
                final_pg = final_pg.min(max as i64);
            }
            let current = p.pg_num_target as f64;
            let grow = input.release.grow_threshold(final_pg, input.threshold);
            let would_adjust = (final_pg as f64 > current * grow
                || (final_pg as f64) < current / input.threshold)
                && (0.0..=1.0).contains(&final_ratio)
                && p.mode == AutoscaleMode::On;
            out.push(AutoscalePool {
                pool_id: p.id,
                name: p.name.clone(),
                crush_root_id: p.crush_root,
                pg_num_target: p.pg_num_target,
                subtree_capacity: s.capacity,
                capacity_ratio,
                effective_target_ratio: target_ratio,
                final_ratio,
                pg_num_ideal: pool_pg_target as i64,
                pg_num_final: final_pg.clamp(0, u32::MAX as i64) as u32,
                would_adjust,
                bulk: p.bulk,
                bias: p.bias,
                mode: p.mode,
                pass,
            });
        }
    }
    AutoscaleResult {
        release: input.release,
        pools: out,
        skipped,
    }
}

#[cfg(test)]
#[path = "autoscale_tests.rs"]
mod tests;
