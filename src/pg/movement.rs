//! What the autoscaler's next pg_num change of a pool moves: PGs split or merged, the bytes
//! that become misplaced, and how many steps the mgr takes to keep misplacement under
//! `target_max_misplaced_ratio` (it raises or lowers `pgp_num` in steps, each misplacing at
//! most that share of the cluster's data).
//!
//! An estimate, said so in the output: a split's new PGs get their own CRUSH placement, so
//! their share of the pool's data, `(new - old) / new`, is counted as moving (on a small
//! cluster CRUSH keeps some of it on the same OSDs); a merge first moves the PGs that go away,
//! `(old - new) / old`, onto the ones they merge into. Raw bytes: every replica or chunk moves.
use serde::Serialize;

/// The data movement of one pool's pg_num change.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Movement {
    /// `split` or `merge`.
    pub kind: &'static str,
    /// pg_num now.
    pub from_pg_num: u32,
    /// pg_num the autoscaler sets.
    pub to_pg_num: u32,
    /// PGs created (split) or merged away.
    pub pgs_changed: u32,
    /// Share of the pool's data that moves.
    pub moved_fraction: f64,
    /// Raw bytes (all replicas or chunks) that become misplaced, estimated.
    pub bytes_misplaced: u64,
    /// `pgp_num` steps the mgr needs at the cluster's `target_max_misplaced_ratio`.
    pub steps: u64,
    /// The ratio the steps are computed with.
    pub target_max_misplaced_ratio: f64,
}

/// The movement of a change from `from` to `to` PGs of a pool storing `stored` logical bytes
/// at `raw_used_rate` raw bytes each, in a cluster storing `cluster_raw` raw bytes; `None` when
/// nothing changes.
pub fn estimate(
    from: u32,
    to: u32,
    stored: u64,
    raw_used_rate: f64,
    cluster_raw: u64,
    ratio: f64,
) -> Option<Movement> {
    if from == to || from == 0 || to == 0 {
        return None;
    }
    let (kind, changed, fraction) = if to > from {
        ("split", to - from, (to - from) as f64 / to as f64)
    } else {
        ("merge", from - to, (from - to) as f64 / from as f64)
    };
    let bytes = (stored as f64 * raw_used_rate * fraction).round() as u64;
    // Each step may misplace `ratio` of the cluster's raw bytes; a pool with no data still
    // takes one step.
    let per_step = (cluster_raw as f64 * ratio).max(1.0);
    let steps = ((bytes as f64 / per_step).ceil() as u64).max(1);
    Some(Movement {
        kind,
        from_pg_num: from,
        to_pg_num: to,
        pgs_changed: changed,
        moved_fraction: fraction,
        bytes_misplaced: bytes,
        steps,
        target_max_misplaced_ratio: ratio,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_merges_move_the_share_of_data_in_the_pgs_that_change() {
        // 32 -> 128: three quarters of a 100 GiB pool at size 3 moves, in a cluster holding
        // 1 TiB raw: 225 GiB at 5 % (51.2 GiB) a step is 5 steps.
        let m = estimate(32, 128, 100 << 30, 3.0, 1 << 40, 0.05).unwrap();
        assert_eq!((m.kind, m.pgs_changed), ("split", 96));
        assert!((m.moved_fraction - 0.75).abs() < 1e-12);
        assert_eq!(m.bytes_misplaced, 225 << 30);
        assert_eq!(m.steps, 5);
        let m = estimate(256, 64, 10 << 30, 1.5, 1 << 40, 0.05).unwrap();
        assert_eq!((m.kind, m.pgs_changed), ("merge", 192));
        assert_eq!(m.bytes_misplaced, (10u64 << 30) * 3 / 2 * 3 / 4);
        assert_eq!(m.steps, 1);
        // An empty pool: nothing moves, one step; no change: nothing at all.
        assert_eq!(estimate(8, 32, 0, 3.0, 0, 0.05).unwrap().steps, 1);
        assert_eq!(estimate(32, 32, 1 << 30, 3.0, 1 << 40, 0.05), None);
    }
}
