//! The monitor's `OSDMonitor::check_pg_num`, per release: the rule behind `Error ERANGE` on
//! `ceph osd pool create`, `osd pool set pg_num` and `osd pool set size`. Pure; the caller
//! supplies pools and OSD counts.
//! - Pacific: Σ pg_num_target × size over *every* pool (the changed one at its new values) must
//!   not exceed `mon_max_pg_per_osd` × max(in OSDs, 3).
//! - Quincy and later: only the pools of the same CRUSH rule count, over the OSDs under that
//!   rule's roots (max with 3), and the test is on the integer quotient: `projected / osds >
//!   mon_max_pg_per_osd` refuses, so up to `osds - 1` more PG replicas fit than in pacific.
use super::release::CephRelease;
use serde::Serialize;
use std::collections::BTreeMap;

/// A pool as the monitor counts it.
#[derive(Clone, Debug, Serialize)]
pub struct MonPool {
    /// Pool id.
    pub id: i64,
    /// Pool name.
    pub name: String,
    /// pg_num_target (what the monitor counts while a change is under way).
    pub pg_num_target: u32,
    /// pg_num.
    pub pg_num: u32,
    /// size.
    pub size: u32,
    /// CRUSH rule id.
    pub crush_rule: i64,
}

/// What the check needs to know of the cluster.
#[derive(Clone, Debug)]
pub struct MonState {
    /// Release whose monitor is modelled.
    pub release: CephRelease,
    /// `mon_max_pg_per_osd` in effect.
    pub mon_max_pg_per_osd: u32,
    /// OSDs in.
    pub in_osds: u32,
    /// OSDs under each CRUSH rule's roots (quincy+ counts these, in or not, as the monitor does).
    pub rule_osds: BTreeMap<i64, u32>,
    /// Pools.
    pub pools: Vec<MonPool>,
}

/// A change the monitor is asked for.
#[derive(Clone, Debug)]
pub enum MonChange {
    /// `ceph osd pool create NAME PG_NUM ... --size SIZE` with CRUSH rule `rule`.
    Create {
        /// Pool name.
        name: String,
        /// pg_num.
        pg_num: u32,
        /// size the create is checked with (`--size`, else `osd_pool_default_size`).
        size: u32,
        /// CRUSH rule id.
        rule: i64,
    },
    /// `ceph osd pool set POOL size N`.
    SetSize {
        /// Pool name.
        pool: String,
        /// New size.
        size: u32,
    },
}

/// The monitor's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct MonVerdict {
    /// Release modelled.
    pub release: CephRelease,
    /// Pool name.
    pub name: String,
    /// pg_num checked.
    pub pg_num: u32,
    /// Size checked.
    pub size: u32,
    /// Whether the monitor accepts it.
    pub allowed: bool,
    /// Σ pg_num × size the monitor counts, the change included.
    pub projected_pg_replicas: u64,
    /// The OSDs it divides by (at least 3).
    pub osds: u32,
    /// The largest Σ it accepts.
    pub max_pg_replicas: u64,
    /// What the monitor would say (its ERANGE text when refused).
    pub message: String,
}

/// Judges one change by the release's `check_pg_num`. None when a named pool does not exist.
pub fn check_pg_num(state: &MonState, change: &MonChange) -> Option<MonVerdict> {
    let (pool_id, name, pg_num, size, rule) = match change {
        MonChange::Create {
            name,
            pg_num,
            size,
            rule,
        } => (None, name.clone(), *pg_num, *size, *rule),
        MonChange::SetSize { pool, size } => {
            let p = state.pools.iter().find(|p| &p.name == pool)?;
            // `osd pool set size` checks the pool's pg_num (not its target) at the new size.
            (Some(p.id), p.name.clone(), p.pg_num, *size, p.crush_rule)
        }
    };
    let per_rule = state.release.mon_checks_per_rule();
    let mut projected: u64 = 0;
    if pool_id.is_none() {
        projected += pg_num as u64 * size as u64;
    }
    for p in &state.pools {
        if per_rule && p.crush_rule != rule {
            continue;
        }
        if Some(p.id) == pool_id {
            projected += pg_num as u64 * size as u64;
        } else {
            projected += p.pg_num_target as u64 * p.size as u64;
        }
    }
    let m = state.mon_max_pg_per_osd as u64;
    let prefix = match pool_id {
        Some(id) => format!("pool id {id}"),
        None => String::new(),
    };
    if per_rule {
        let osds = state.rule_osds.get(&rule).copied().unwrap_or(0).max(3);
        let per_osd = projected / osds as u64;
        let allowed = per_osd <= m;
        let message = if allowed {
            format!("{name}: {projected} PG replicas, {per_osd} per OSD on {osds} OSDs of its CRUSH rule, within mon_max_pg_per_osd {m}")
        } else {
            format!("Error ERANGE: {prefix} pg_num {pg_num} size {size} for this pool would result in {per_osd} cumulative PGs per OSD ({projected} total PG replicas on {osds} 'in' root OSDs by crush rule) which exceeds the mon_max_pg_per_osd value of {m}")
        };
        Some(MonVerdict {
            release: state.release,
            name,
            pg_num,
            size,
            allowed,
            projected_pg_replicas: projected,
            osds,
            max_pg_replicas: (m + 1) * osds as u64 - 1,
            message,
        })
    } else {
        let osds = state.in_osds.max(3);
        let max = m * osds as u64;
        let allowed = projected <= max;
        let message = if allowed {
            format!("{name}: {projected} total pgs is within max {max}")
        } else {
            format!("Error ERANGE: {prefix} pg_num {pg_num} size {size} would mean {projected} total pgs, which exceeds max {max} (mon_max_pg_per_osd {m} * num_in_osds {osds})")
        };
        Some(MonVerdict {
            release: state.release,
            name,
            pg_num,
            size,
            allowed,
            projected_pg_replicas: projected,
            osds,
            max_pg_replicas: max,
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(release: CephRelease) -> MonState {
        MonState {
            release,
            mon_max_pg_per_osd: 250,
            in_osds: 4,
            rule_osds: [(0, 4), (1, 1)].into_iter().collect(),
            pools: vec![
                MonPool {
                    id: 1,
                    name: "a".into(),
                    pg_num_target: 128,
                    pg_num: 128,
                    size: 3,
                    crush_rule: 0,
                },
                MonPool {
                    id: 2,
                    name: "b".into(),
                    pg_num_target: 256,
                    pg_num: 256,
                    size: 3,
                    crush_rule: 1,
                },
            ],
        }
    }

    #[test]
    fn pacific_counts_every_pool_quincy_only_the_rule() {
        let create = MonChange::Create {
            name: "n".into(),
            pg_num: 64,
            size: 3,
            rule: 0,
        };
        // pacific: 384 + 768 + 192 = 1344 > 250 × 4.
        let v = check_pg_num(&state(CephRelease::Pacific), &create).unwrap();
        assert!(!v.allowed);
        assert_eq!((v.projected_pg_replicas, v.max_pg_replicas), (1344, 1000));
        assert!(v.message.contains("would mean 1344 total pgs, which exceeds max 1000 (mon_max_pg_per_osd 250 * num_in_osds 4)"), "{}", v.message);
        // quincy: rule 0 only, 576 / 4 = 144 ≤ 250.
        let v = check_pg_num(&state(CephRelease::Quincy), &create).unwrap();
        assert!(v.allowed, "{}", v.message);
        assert_eq!(v.projected_pg_replicas, 576);
        // A rule with one OSD is divided by 3, and the quotient is what is compared.
        let v = check_pg_num(
            &state(CephRelease::Reef),
            &MonChange::Create {
                name: "m".into(),
                pg_num: 1,
                size: 3,
                rule: 1,
            },
        )
        .unwrap();
        assert_eq!((v.projected_pg_replicas, v.osds), (771, 3));
        assert!(!v.allowed, "771 / 3 = 257 > 250: {}", v.message);
    }

    #[test]
    fn quotient_boundary_and_set_size() {
        let mut s = state(CephRelease::Squid);
        s.pools.truncate(1);
        // 384 + 3·x; per OSD (384 + 3x)/4 ≤ 250 ⇔ 384 + 3x ≤ 1003 ⇔ x ≤ 206.
        let ok = check_pg_num(
            &s,
            &MonChange::Create {
                name: "n".into(),
                pg_num: 206,
                size: 3,
                rule: 0,
            },
        )
        .unwrap();
        let no = check_pg_num(
            &s,
            &MonChange::Create {
                name: "n".into(),
                pg_num: 207,
                size: 3,
                rule: 0,
            },
        )
        .unwrap();
        assert!(ok.allowed && !no.allowed);
        assert!(no.message.contains("would result in 251 cumulative PGs per OSD (1005 total PG replicas on 4 'in' root OSDs by crush rule)"), "{}", no.message);
        let p = state(CephRelease::Pacific);
        let v = check_pg_num(
            &p,
            &MonChange::SetSize {
                pool: "b".into(),
                size: 2,
            },
        )
        .unwrap();
        assert_eq!(v.projected_pg_replicas, 384 + 512);
        assert!(v.allowed);
        assert!(check_pg_num(
            &p,
            &MonChange::SetSize {
                pool: "zz".into(),
                size: 2
            }
        )
        .is_none());
    }
}
