//! Usable capacity per pool: raw × ratio (nearfull 0.85, full 0.95) × share × efficiency
//! (1/size replicated, k/(k+m) erasure-coded).
use super::PoolSpec;
use serde::Serialize;

/// The monitor's default nearfull ratio.
pub const NEARFULL_RATIO: f64 = 0.85;
/// The monitor's default full ratio (writes stop).
pub const FULL_RATIO: f64 = 0.95;

/// Usable bytes of one pool.
#[derive(Clone, Debug, Serialize)]
pub struct PoolCapacity {
    /// Pool name.
    pub name: String,
    /// Raw bytes this pool's share gets.
    pub raw_share: u64,
    /// Usable bytes at nearfull.
    pub usable_at_nearfull: u64,
    /// Usable bytes at full.
    pub usable_at_full: u64,
}

/// Capacity of each pool when `raw` bytes are split by the pools' percentages.
pub fn capacity(raw: u64, pools: &[PoolSpec]) -> Vec<PoolCapacity> {
    let total: f64 = pools
        .iter()
        .map(|p| p.percent)
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    pools
        .iter()
        .map(|p| {
            let share = raw as f64 * p.percent / total;
            let usable = share * p.size.efficiency();
            PoolCapacity {
                name: p.name.clone(),
                raw_share: share as u64,
                usable_at_nearfull: (usable * NEARFULL_RATIO) as u64,
                usable_at_full: (usable * FULL_RATIO) as u64,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::PoolSize;

    #[test]
    fn replicated_and_erasure() {
        let pools = vec![
            PoolSpec {
                name: "r".into(),
                percent: 50.0,
                size: PoolSize::Replicated(3),
                options: Default::default(),
            },
            PoolSpec {
                name: "e".into(),
                percent: 50.0,
                size: PoolSize::Erasure { k: 4, m: 2 },
                options: Default::default(),
            },
        ];
        let c = capacity(600 << 30, &pools);
        assert_eq!(c[0].usable_at_full, ((100u64 << 30) as f64 * 0.95) as u64);
        assert_eq!(
            c[1].usable_at_nearfull,
            ((200u64 << 30) as f64 * 0.85) as u64
        );
    }
}
