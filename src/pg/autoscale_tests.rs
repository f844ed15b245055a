//! Table tests of the Pacific 16.2.15 autoscaler. The cases are the shapes of ceph's own
//! `pg_autoscaler/tests/test_cal_final_pg_target.py` (even, uneven, two roots, overlapping
//! roots; each with and without the bulk flag) plus options that file does not cover. Every
//! expected number was produced by running Debian's installed 16.2.15
//! `/usr/share/ceph/mgr/pg_autoscaler/module.py` (`_get_pool_status`) over the same pools, maps
//! and usage with stub mgr bindings: the real module is the oracle, not a formula restated here.
use super::*;

const OSD_BYTES: u64 = 1 << 30;

struct Case {
    name: &'static str,
    roots: &'static [(i64, std::ops::Range<i64>)],
    /// (name, root, size, fraction of the root's raw capacity used, bulk)
    pools: &'static [(&'static str, i64, u32, f64, bool)],
    /// (name, pg_num_final, pg_num_ideal, would_adjust), in the mgr's order.
    expect: &'static [(&'static str, u32, i64, bool)],
}

fn input(c: &Case) -> AutoscaleInput {
    let roots: BTreeMap<i64, BTreeSet<i64>> = c
        .roots
        .iter()
        .map(|(r, osds)| (*r, osds.clone().collect()))
        .collect();
    let osd_bytes = roots.values().flatten().map(|&o| (o, OSD_BYTES)).collect();
    let pools = c
        .pools
        .iter()
        .enumerate()
        .map(|(i, &(name, root, size, frac, bulk))| {
            let cap = roots[&root].len() as f64 * OSD_BYTES as f64;
            AsPool {
                id: i as i64 + 1,
                name: name.into(),
                size,
                raw_used_rate: size as f64,
                pg_num_target: 32,
                crush_root: root,
                stored: (frac * cap / size as f64) as u64,
                bytes_used: (frac * cap) as u64,
                target_size_ratio: 0.0,
                target_size_bytes: 0,
                bias: 1.0,
                pg_num_min: None,
                pg_num_max: None,
                bulk,
                mode: AutoscaleMode::On,
            }
        })
        .collect();
    AutoscaleInput {
        release: CephRelease::Pacific,
        pools,
        roots,
        osd_bytes,
        target_pg_per_osd: 100,
        threshold: 3.0,
    }
}

fn check(c: &Case, input: &AutoscaleInput) {
    let r = autoscale(input);
    let got: Vec<(&str, u32, i64, bool)> = r
        .pools
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.pg_num_final,
                p.pg_num_ideal,
                p.would_adjust,
            )
        })
        .collect();
    assert_eq!(got, c.expect, "{}", c.name);
}

const R4: &[(i64, std::ops::Range<i64>)] = &[(0, 0..4)];
const TWO: &[(i64, std::ops::Range<i64>)] = &[(0, 0..50), (1, 50..100)];

const CASES: &[Case] = &[
    Case {
        name: "all even, not bulk: each takes its ratio of what is left",
        roots: R4,
        pools: &[
            ("test0", 0, 1, 0.2, false),
            ("test1", 0, 1, 0.2, false),
            ("test2", 0, 1, 0.2, false),
            ("test3", 0, 1, 0.1, false),
        ],
        expect: &[
            ("test0", 64, 79, false),
            ("test1", 64, 64, false),
            ("test2", 64, 51, false),
            ("test3", 32, 20, false),
        ],
    },
    Case {
        name: "all even, bulk: an even split in the third pass",
        roots: R4,
        pools: &[
            ("test0", 0, 1, 0.2, true),
            ("test1", 0, 1, 0.2, true),
            ("test2", 0, 1, 0.2, true),
            ("test3", 0, 1, 0.1, true),
        ],
        expect: &[
            ("test0", 128, 100, true),
            ("test1", 128, 100, true),
            ("test2", 128, 100, true),
            ("test3", 128, 100, true),
        ],
    },
    Case {
        name: "uneven, not bulk",
        roots: R4,
        pools: &[
            ("test0", 0, 1, 0.1, false),
            ("test1", 0, 1, 0.5, false),
            ("test2", 0, 1, 0.1, false),
            ("test3", 0, 1, 0.1, false),
        ],
        expect: &[
            ("test0", 32, 39, false),
            ("test1", 128, 180, true),
            ("test2", 32, 18, false),
            ("test3", 32, 16, false),
        ],
    },
    Case {
        name: "uneven, bulk: the big pool first (second pass), the rest split 1/3 each",
        roots: R4,
        pools: &[
            ("test0", 0, 1, 0.1, true),
            ("test1", 0, 1, 0.5, true),
            ("test2", 0, 1, 0.1, true),
            ("test3", 0, 1, 0.1, true),
        ],
        expect: &[
            ("test1", 256, 200, true),
            ("test0", 64, 66, false),
            ("test2", 64, 66, false),
            ("test3", 64, 66, false),
        ],
    },
    Case {
        name: "two roots, not bulk",
        roots: TWO,
        pools: &[
            ("test0", 0, 1, 0.4, false),
            ("test1", 1, 1, 0.6, false),
            ("test2", 0, 1, 0.5, false),
            ("test3", 0, 1, 0.1, false),
            ("test4", 1, 1, 0.4, false),
        ],
        expect: &[
            ("test0", 2048, 2000, true),
            ("test1", 2048, 3000, true),
            ("test2", 1024, 1500, true),
            ("test3", 128, 150, true),
            ("test4", 1024, 800, true),
        ],
    },
    Case {
        name: "two roots, bulk",
        roots: TWO,
        pools: &[
            ("test0", 0, 1, 0.4, true),
            ("test1", 1, 1, 0.6, true),
            ("test2", 0, 1, 0.5, true),
            ("test3", 0, 1, 0.1, true),
            ("test4", 1, 1, 0.4, true),
        ],
        expect: &[
            ("test0", 2048, 2000, true),
            ("test1", 2048, 3000, true),
            ("test2", 1024, 1500, true),
            ("test3", 1024, 1500, true),
            ("test4", 2048, 2000, true),
        ],
    },
    Case {
        name: "overlapping roots: nothing is scaled or listed",
        roots: &[(0, 0..50), (1, 40..100)],
        pools: &[("test0", 0, 1, 0.4, false), ("test1", 1, 1, 0.6, false)],
        expect: &[],
    },
];

#[test]
fn upstream_shaped_cases_match_the_real_module() {
    for c in CASES {
        check(c, &input(c));
    }
}

#[test]
fn options_bias_min_max_ratio_bytes_match_the_real_module() {
    let c = Case {
        name: "mixed options",
        roots: R4,
        pools: &[
            ("small", 0, 3, 0.01, false),
            ("big", 0, 3, 0.0, true),
            ("other", 0, 3, 0.05, true),
            ("capped", 0, 2, 0.0, false),
        ],
        expect: &[
            ("small", 32, 1, false),
            ("capped", 16, 99, false),
            ("big", 32, 33, false),
            ("other", 128, 132, true),
        ],
    };
    let mut i = input(&c);
    i.pools[1].target_size_ratio = 0.8;
    i.pools[2].pg_num_min = Some(8);
    i.pools[2].bias = 4.0;
    i.pools[3].target_size_bytes = 1 << 30;
    i.pools[3].pg_num_max = Some(16);
    check(&c, &i);
    let r = autoscale(&i);
    let passes: Vec<Pass> = r.pools.iter().map(|p| p.pass).collect();
    // big and other share what is left evenly: neither is above an even share after the first pass.
    assert_eq!(passes, [Pass::First, Pass::First, Pass::Third, Pass::Third]);
}

#[test]
fn overlapping_roots_are_reported_as_skipped() {
    let c = &CASES[6];
    let r = autoscale(&input(c));
    assert_eq!(r.skipped.len(), 2);
    assert!(r.skipped[0].reason.contains("overlaps"), "{:?}", r.skipped);
}

#[test]
fn nearest_power_of_two_is_module_py_s() {
    for (n, want) in [
        (0.0, 0),
        (0.5, 0),
        (1.0, 1),
        (1.5, 1),
        (3.0, 4),
        (383.9, 256),
        (384.0, 512),
        (1766.7, 2048),
        (69.93, 64),
        (176.25, 128),
        (391.7, 512),
    ] {
        assert_eq!(nearest_power_of_two(n), want, "{n}");
    }
}

/// Tentacle grows a pool headed for 512 or 1024 PGs on any increase (2048 on a doubling) where
/// earlier releases wait for the 3x threshold; shrinking keeps the threshold in every release.
#[test]
fn tentacle_grows_on_its_dynamic_threshold() {
    let c = &CASES[4];
    let mut inp = input(c);
    let finals: Vec<u32> = autoscale(&inp)
        .pools
        .iter()
        .map(|p| p.pg_num_final)
        .collect();
    let grown = finals
        .iter()
        .position(|&f| f == 512 || f == 1024)
        .expect("a case pool headed for 512 or 1024");
    for (p, &f) in inp.pools.iter_mut().zip(&finals) {
        p.pg_num_target = f;
    }
    inp.pools[grown].pg_num_target = finals[grown] / 2;
    let adjust = |inp: &AutoscaleInput| -> Vec<bool> {
        autoscale(inp)
            .pools
            .iter()
            .map(|p| p.would_adjust)
            .collect()
    };
    for release in [CephRelease::Pacific, CephRelease::Reef, CephRelease::Squid] {
        inp.release = release;
        assert!(
            adjust(&inp).iter().all(|a| !a),
            "{release}: a 2x step is under the threshold"
        );
    }
    inp.release = CephRelease::Tentacle;
    let got = adjust(&inp);
    assert!(
        got[grown],
        "tentacle grows {} to {}",
        finals[grown] / 2,
        finals[grown]
    );
    assert_eq!(got.iter().filter(|a| **a).count(), 1, "{got:?}");
    inp.pools[grown].pg_num_target = finals[grown] * 2;
    assert!(
        !adjust(&inp)[grown],
        "tentacle shrinks only past the threshold"
    );
    assert_eq!(CephRelease::Tentacle.grow_threshold(2048, 3.0), 2.0);
    assert_eq!(CephRelease::Tentacle.grow_threshold(256, 3.0), 3.0);
}
