//! The two pg_num formulas, exactly as their reference implementations compute them.
//! PGCalc (ceph docs' calculator): nearest power of two in log space, doubled when that falls
//! more than 25 % below the value; a per-pool minimum. pg_autoscaler (mgr, Pacific): the
//! capacity share of the root's PG budget divided by size times bias, rounded to the nearest
//! power of two by the linear midpoint, never below `pg_num_min` (32).

/// The autoscaler's floor (`PG_NUM_MIN` in Pacific's pg_autoscaler).
pub const PG_NUM_MIN: u32 = 32;

/// Largest pg_num either formula returns, only to keep the arithmetic in `u32`: far above
/// `mon_max_pool_pg_num` (65536), so the plan can say what the formula gave before it caps it.
const MAX_PG: f64 = (1u32 << 30) as f64;

/// PGCalc's `nearestPow2`: 2^round(log2 x), doubled when below 0.75·x. 1 for x < 1.
pub fn nearest_pow2_pgcalc(x: f64) -> u32 {
    if x.is_nan() || x < 1.0 {
        return 1;
    }
    let x = x.min(MAX_PG);
    let mut p = 2f64.powf(x.log2().round());
    if p < 0.75 * x {
        p *= 2.0;
    }
    p as u32
}

/// The autoscaler's `nearest_power_of_two`: of the powers of two around n, the nearer one by
/// linear distance (ties go up). 1 for n < 1.
pub fn nearest_pow2_autoscaler(n: f64) -> u32 {
    if n.is_nan() || n < 1.0 {
        return 1;
    }
    let n = n.min(MAX_PG);
    let up = (n.ceil() as u32).next_power_of_two();
    let down = up / 2;
    if down > 0 && (up as f64 - n) > (n - down as f64) {
        down
    } else {
        up
    }
}

/// PGCalc's pg_num for one pool.
pub fn pgcalc_pg_num(osds: u32, size: u32, percent: f64, target_per_osd: u32) -> u32 {
    let size = size.max(1);
    let mut min = nearest_pow2_pgcalc((osds / size) as f64 + 1.0);
    if min < osds {
        min *= 2;
    }
    let calc = nearest_pow2_pgcalc(
        (target_per_osd as f64 * osds as f64 * percent / (100.0 * size as f64)).floor(),
    );
    min.max(calc)
}

/// The autoscaler's final pg_num target for a pool with capacity ratio `ratio` (0..=1).
pub fn autoscale_pg_num(osds: u32, size: u32, ratio: f64, target_per_osd: u32, bias: f64) -> u32 {
    let root_target = osds as f64 * target_per_osd as f64;
    let pool_target = ratio * root_target / size.max(1) as f64 * bias;
    nearest_pow2_autoscaler(pool_target).max(PG_NUM_MIN)
}

/// Whether the autoscaler would change a pool from `current` to `target` (factor-3 threshold).
pub fn autoscaler_would_change(current: u32, target: u32) -> bool {
    target as f64 > current as f64 * 3.0 || (target as f64) < current as f64 / 3.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgcalc_worked_example_from_the_docs() {
        // 12 OSDs, size 3, 100 % of the data, 100 PGs per OSD → 512.
        assert_eq!(pgcalc_pg_num(12, 3, 100.0, 100), 512);
    }

    #[test]
    fn pgcalc_rounding_and_minimum() {
        assert_eq!(nearest_pow2_pgcalc(400.0), 512);
        assert_eq!(nearest_pow2_pgcalc(360.0), 512); // 256 < 0.75·360 → doubled
        assert_eq!(nearest_pow2_pgcalc(300.0), 256);
        assert_eq!(nearest_pow2_pgcalc(0.0), 1);
        // 7 % of 10 OSDs at size 3: floor(23.3)=23 → 16 < 17.25 → 32; minimum 4 doubled to 8.
        assert_eq!(pgcalc_pg_num(10, 3, 7.0, 100), 32);
        // Tiny share: the minimum wins (floor(10/3)+1 = 4 → 4, below 10 OSDs → 8).
        assert_eq!(pgcalc_pg_num(10, 3, 0.1, 100), 8);
    }

    #[test]
    fn autoscaler_linear_midpoint() {
        assert_eq!(nearest_pow2_autoscaler(383.0), 256);
        assert_eq!(nearest_pow2_autoscaler(384.0), 512);
        assert_eq!(nearest_pow2_autoscaler(400.0), 512);
        assert_eq!(nearest_pow2_autoscaler(512.0), 512);
        assert_eq!(autoscale_pg_num(12, 3, 1.0, 100, 1.0), 512);
        assert_eq!(autoscale_pg_num(3, 3, 0.07, 100, 1.0), 32);
        assert!(autoscaler_would_change(32, 128));
        assert!(!autoscaler_would_change(32, 64));
        assert!(autoscaler_would_change(512, 128));
    }
}
