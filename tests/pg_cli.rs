//! `rbdkit pg`: worked examples, properties of the formulas, CLI output, and the live check
//! whose ERANGE prediction is compared with what the real `ceph osd pool create` does.
mod common;
use common::*;
use proptest::prelude::*;
use rbdkit::pg::{autoscale_pg_num, pgcalc_pg_num, plan, CephRelease, Method, PlanInput, PoolSize};
use std::process::Command;

fn openstack(osds: u32, method: Method) -> Vec<(String, u32)> {
    let p = plan(&PlanInput {
        osds,
        roots: Vec::new(),
        release: CephRelease::Pacific,
        raw_capacity: None,
        pools: rbdkit::pg::preset("openstack", PoolSize::Replicated(3)).unwrap(),
        target_pgs_per_osd: 100,
        method,
        max_pg_per_osd: 250,
        bias: 1.0,
    });
    p.pools.into_iter().map(|p| (p.name, p.pg_num)).collect()
}

#[test]
fn worked_examples() {
    assert_eq!(pgcalc_pg_num(12, 3, 100.0, 100), 512);
    // OpenStack preset, PGCalc, computed by hand from the calculator's formula:
    // 10 OSDs: volumes floor(176.6)=176→128<132→256; backups 83→64; vms 50→64; images 23→16<17.25→32.
    let names = |v: Vec<(String, u32)>| v.into_iter().map(|(_, n)| n).collect::<Vec<_>>();
    assert_eq!(names(openstack(10, Method::Pgcalc)), [256, 64, 64, 32]);
    // 50 OSDs: 883→1024; 416→512; 250→256; 116→128.
    assert_eq!(names(openstack(50, Method::Pgcalc)), [1024, 512, 256, 128]);
    // 100 OSDs: 1766→2048; 833→1024; 500→512; 233→256.
    assert_eq!(
        names(openstack(100, Method::Pgcalc)),
        [2048, 1024, 512, 256]
    );
    // Pacific 16.2.15's autoscaler, 10 OSDs: each pool takes its ratio of the PGs still left:
    // volumes 530/3 = 176.7 → 128 (470 left); backups 117.5/3 → 32; vms, images → 32 (floor).
    assert_eq!(names(openstack(10, Method::Autoscale)), [128, 32, 32, 32]);
    // 100 OSDs: what the real 16.2.15 module proposes (volumes 1766.7, backups 391.7, vms
    // 176.25, images 69.9 before rounding), where a one-pass autoscaler says 2048/1024/512/256.
    assert_eq!(
        names(openstack(100, Method::Autoscale)),
        [2048, 512, 128, 64]
    );
    // EC 4+2 holding everything on 12 OSDs: floor(1200/6)=200→256.
    assert_eq!(pgcalc_pg_num(12, 6, 100.0, 100), 256);
}

proptest! {
    #[test]
    fn results_are_powers_of_two(osds in 1u32..2000, size in 1u32..12, pct in 0.1f64..100.0, target in 1u32..400) {
        prop_assert!(pgcalc_pg_num(osds, size, pct, target).is_power_of_two());
        prop_assert!(autoscale_pg_num(osds, size, pct / 100.0, target, 1.0).is_power_of_two());
        prop_assert!(autoscale_pg_num(osds, size, pct / 100.0, target, 1.0) >= 32);
    }

    #[test]
    fn monotone_in_osds_and_target(osds in 1u32..2000, size in 1u32..12, pct in 0.1f64..100.0, target in 1u32..400) {
        prop_assert!(pgcalc_pg_num(osds + 1, size, pct, target) >= pgcalc_pg_num(osds, size, pct, target));
        prop_assert!(pgcalc_pg_num(osds, size, pct, target + 1) >= pgcalc_pg_num(osds, size, pct, target));
        prop_assert!(autoscale_pg_num(osds + 1, size, pct / 100.0, target, 1.0) >= autoscale_pg_num(osds, size, pct / 100.0, target, 1.0));
        prop_assert!(autoscale_pg_num(osds, size, pct / 100.0, target + 1, 1.0) >= autoscale_pg_num(osds, size, pct / 100.0, target, 1.0));
    }
}

fn rbdkit_offline(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn plan_cli_json_warnings_and_bad_input() {
    let out = rbdkit_offline(&[
        "pg", "plan", "--osds", "12", "--pool", "rbd:100", "--format", "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["pools"][0]["pg_num"], 512);
    assert_eq!(j["pools"][0]["size"], 3);
    assert_eq!(j["pg_replicas_per_osd"], 128.0);
    assert_eq!(j["warnings"].as_array().unwrap().len(), 0);
    // Percentages not adding up, and a plan past the monitor's limit, are warned about.
    let out = rbdkit_offline(&[
        "pg",
        "plan",
        "--osds",
        "3",
        "--pool",
        "a:50",
        "--target-pgs-per-osd",
        "400",
        "--max-pg-per-osd",
        "100",
        "--format",
        "json",
    ]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let w = j["warnings"].to_string();
    assert!(w.contains("add up to 50%") && w.contains("ERANGE"), "{w}");
    // Plain output ends with the create commands.
    let out = rbdkit_offline(&[
        "pg",
        "plan",
        "--preset",
        "openstack",
        "--osds",
        "10",
        "--raw-capacity",
        "100T",
    ]);
    let text = stdout(&out);
    assert!(
        text.contains(
            "ceph osd pool create volumes 256 256 replicated --size 3 --autoscale-mode off"
        ),
        "{text}"
    );
    assert!(text.contains("usable"), "{text}");
    // The CLI, offline, modelling pacific: the OpenStack preset on 100 OSDs.
    let out = rbdkit_offline(&[
        "pg",
        "plan",
        "--preset",
        "openstack",
        "--osds",
        "100",
        "--method",
        "autoscale",
        "--ceph-release",
        "pacific",
        "--format",
        "json",
    ]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<u64> = j["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pg_num"].as_u64().unwrap())
        .collect();
    assert_eq!(got, [2048, 512, 128, 64], "{j}");
    assert_eq!(j["release"], "pacific");
    for bad in [
        vec!["--osds", "3", "--pool", "a:5", "--ceph-release", "octopus"],
        vec!["--osds", "3", "--pool", "a:5:3:bias=x"],
        vec!["--osds", "3", "--pool", "a:5", "--root", "ssd"],
        vec!["--osds", "0", "--pool", "a:5"],
        vec!["--osds", "3", "--pool", "a:150"],
        vec!["--osds", "3", "--pool", "a:-1"],
        vec!["--osds", "3", "--pool", "a:5:4+"],
        vec!["--osds", "3"],
    ] {
        let mut args = vec!["pg", "plan"];
        args.extend(bad.iter());
        let out = rbdkit_offline(&args);
        assert_one_line_error(&out, 2, &[]);
    }
}

fn plan_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["pg", "plan", "--format", "json"];
    all.extend(args);
    let out = rbdkit_offline(&all);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// PGCalc's own rules for a row (from its calculator's script): a %Data of 0 gets the
/// minimum, above 100 is an error, each row can have its own OSD set and Target PGs per OSD,
/// and the %Data of the pools on one OSD set add up to 100. rbdkit's 65536 cap is said.
#[test]
fn pgcalc_row_rules() {
    // %Data 0: the minimum, nearestPow2(floor(OSDs / size) + 1), doubled while below the OSDs:
    // 10 OSDs, size 3: nearestPow2(4) = 4 < 10 → 8.
    let j = plan_json(&["--osds", "10", "--pool", "empty:0", "--pool", "rest:100"]);
    assert_eq!(j["pools"][0]["pg_num"], 8, "{j}");
    assert_eq!(j["warnings"].as_array().unwrap().len(), 0, "{j}");
    // Two OSD sets, each holding 100 % of its own data: no percentage warning; a set that
    // does not add up is named.
    let j = plan_json(&[
        "--osds",
        "10",
        "--root",
        "ssd:5",
        "--pool",
        "a:100",
        "--pool",
        "b:100:3:root=ssd",
    ]);
    assert_eq!(j["warnings"].as_array().unwrap().len(), 0, "{j}");
    // Root ssd's 5 OSDs: floor(100 * 5 / 3) = 166 → 128 (not below 0.75 * 166).
    assert_eq!(j["pools"][1]["pg_num"], 128, "{j}");
    let j = plan_json(&[
        "--osds",
        "10",
        "--root",
        "ssd:5",
        "--pool",
        "a:100",
        "--pool",
        "b:60:3:root=ssd",
    ]);
    let w = j["warnings"].to_string();
    assert!(w.contains("root ssd add up to 60%"), "{w}");
    assert!(!w.contains("root default"), "{w}");
    // A row's own Target PGs per OSD: floor(300 * 12 * 50 / 300) = 600 → 512, where the
    // plan's 100 gives floor(200) → 256.
    let j = plan_json(&[
        "--osds",
        "12",
        "--pool",
        "a:50:3:target=300",
        "--pool",
        "b:50",
    ]);
    assert_eq!(j["pools"][0]["pg_num"], 512, "{j}");
    assert_eq!(j["pools"][0]["target_pgs_per_osd"], 300, "{j}");
    assert_eq!(j["pools"][1]["pg_num"], 256, "{j}");
    assert_eq!(j["pools"][1]["target_pgs_per_osd"], 100, "{j}");
    let text = stdout(&rbdkit_offline(&[
        "pg",
        "plan",
        "--osds",
        "12",
        "--pool",
        "a:50:3:target=300",
        "--pool",
        "b:50",
    ]));
    assert!(text.lines().nth(1).unwrap().ends_with("target"), "{text}");
    // The autoscaler has one target for the cluster: a per-pool one is refused, not ignored.
    let out = rbdkit_offline(&[
        "pg",
        "plan",
        "--osds",
        "12",
        "--pool",
        "a:50:3:target=300",
        "--method",
        "autoscale",
    ]);
    assert_one_line_error(&out, 2, &["target_pgs_per_osd", "--target-pgs-per-osd"]);
    // Past mon_max_pool_pg_num: what PGCalc gives is said, and the plan caps it.
    let j = plan_json(&[
        "--osds",
        "10000",
        "--pool",
        "a:100",
        "--size",
        "1",
        "--target-pgs-per-osd",
        "300",
    ]);
    assert_eq!(j["pools"][0]["pg_num"], 65536, "{j}");
    assert!(
        j["warnings"]
            .to_string()
            .contains("PGCalc gives 4194304 PGs"),
        "{j}"
    );
    // A root past mon_max_pg_per_osd is named.
    let j = plan_json(&["--osds", "4", "--pool", "a:100:3:target=400"]);
    assert!(j["warnings"].to_string().contains("root default: "), "{j}");
    // PGCalc's presets: each adds up to 100 % (no warning), and PGCalc's own numbers for
    // 100 OSDs at 200 PGs per OSD come out (its "RBD and libRados": 75 % → floor(5000) →
    // 4096; 25 % → 1666 → 2048).
    for preset in ["openstack", "openstack-rgw", "rgw", "rbd"] {
        let j = plan_json(&["--osds", "100", "--preset", preset]);
        assert_eq!(j["warnings"].as_array().unwrap().len(), 0, "{preset}: {j}");
    }
    let j = plan_json(&[
        "--osds",
        "100",
        "--preset",
        "rbd",
        "--target-pgs-per-osd",
        "200",
    ]);
    assert_eq!(j["pools"][0]["pg_num"], 4096, "{j}");
    assert_eq!(j["pools"][1]["pg_num"], 2048, "{j}");
    let out = rbdkit_offline(&["pg", "plan", "--osds", "3", "--preset", "ceph"]);
    assert_one_line_error(&out, 2, &["openstack, openstack-rgw, rgw, rbd"]);
}

fn check_json(conf: &str, new_pool: &str) -> serde_json::Value {
    let out = rbdkit_with(
        conf,
        &["pg", "check", "--new-pool", new_pool, "--format", "json"],
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The exit status is the verdict: 0 allowed, 1 refused (the JSON is printed either way).
    let allowed = j["new_pool"]["allowed"].as_bool().unwrap();
    assert_eq!(
        out.status.code(),
        Some(if allowed { 0 } else { 1 }),
        "{new_pool}: {}",
        stderr(&out)
    );
    j
}

#[test]
fn a_refused_new_pool_exits_1_plain_and_json() {
    let conf = conf();
    // 1024 * 3 PG replicas is past mon_max_pg_per_osd (250) * max(in OSDs, 3) on the
    // one-OSD dev cluster, without changing the monitor's settings.
    let refused = rbdkit_with(&conf, &["pg", "check", "--new-pool", "metrics:1024:3"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let text = stdout(&refused);
    assert!(
        text.contains("new pool metrics (pg_num 1024, size 3): refused"),
        "{text}"
    );
    assert!(text.contains("Error ERANGE"), "{text}");
    assert!(stderr(&refused).is_empty(), "{}", stderr(&refused));
    let j = check_json(&conf, "metrics:1024:3");
    assert_eq!(j["new_pool"]["allowed"], false);
    let allowed = rbdkit_with(&conf, &["pg", "check", "--new-pool", "metrics:1:1"]);
    assert_eq!(allowed.status.code(), Some(0), "{}", stderr(&allowed));
    assert!(
        stdout(&allowed).contains("): allowed"),
        "{}",
        stdout(&allowed)
    );
    // Without a proposed pool there is no verdict to fail.
    let plain = rbdkit_with(&conf, &["pg", "check"]);
    assert_eq!(plain.status.code(), Some(0), "{}", stderr(&plain));
}

#[test]
fn live_check_predicts_what_pacific_pool_create_does() {
    live_check_predicts_what_pool_create_does(&conf());
}

#[test]
fn live_check_predicts_what_reef_pool_create_does() {
    live_check_predicts_what_pool_create_does(&conf_reef());
}

#[test]
fn live_check_predicts_what_tentacle_pool_create_does() {
    live_check_predicts_what_pool_create_does(&conf_tentacle());
}

fn live_check_predicts_what_pool_create_does(conf: &str) {
    let conf = conf.to_string();
    let j = check_json(&conf, "probe:1:1");
    let names: Vec<&str> = j["pools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for p in ["images", "volumes", "vms", "backups"] {
        assert!(names.contains(&p), "{names:?}");
    }
    assert!(j["in_osds"].as_u64().unwrap() >= 1);
    // Lower the monitor's limit so the boundary is a few dozen PGs, and read it back.
    assert!(
        ceph_with(&conf, &["config", "set", "mon", "mon_max_pg_per_osd", "20"])
            .status
            .success()
    );
    let restore = Restore(conf.clone());
    let mut limit = 0;
    for _ in 0..50 {
        limit = check_json(&conf, "probe:1:1")["mon_max_pg_per_osd"]
            .as_u64()
            .unwrap();
        if limit == 20 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(limit, 20, "the running monitor's value is read");
    let j = check_json(&conf, "probe:1:1");
    let max = j["new_pool"]["max_pg_replicas"].as_u64().unwrap();
    let used = j["total_pg_replicas"].as_u64().unwrap();
    let fits = (max - used) as u32;
    let refused_name = unique("pgrefused");
    let v = check_json(&conf, &format!("{refused_name}:{}:1", fits + 1));
    assert_eq!(v["new_pool"]["allowed"], false);
    let out = ceph_with(
        &conf,
        &[
            "osd",
            "pool",
            "create",
            &refused_name,
            &(fits + 1).to_string(),
            &(fits + 1).to_string(),
            "replicated",
            "--size",
            "1",
        ],
    );
    assert!(!out.status.success(), "the monitor refused it as predicted");
    let err = stderr(&out);
    assert!(err.contains("ERANGE"), "{err}");
    // The monitor's refusal, word for word, in the release it runs (pacific counts all PGs
    // against all in OSDs, reef those of the pool's CRUSH rule on the OSDs under its root).
    let predicted = v["new_pool"]["message"].as_str().unwrap();
    assert!(
        err.contains(predicted),
        "the monitor: {err}\nrbdkit: {predicted}"
    );
    let allowed_name = unique("pgallowed");
    let v = check_json(&conf, &format!("{allowed_name}:{fits}:1"));
    assert_eq!(v["new_pool"]["allowed"], true);
    let out = ceph_with(
        &conf,
        &[
            "osd",
            "pool",
            "create",
            &allowed_name,
            &fits.to_string(),
            &fits.to_string(),
            "replicated",
            "--size",
            "1",
        ],
    );
    let created = out.status.success();
    let _ = ceph_with(
        &conf,
        &[
            "osd",
            "pool",
            "rm",
            &allowed_name,
            &allowed_name,
            "--yes-i-really-really-mean-it",
        ],
    );
    assert!(
        created,
        "the monitor accepted it as predicted: {}",
        stderr(&out)
    );
    drop(restore);
}

/// Puts the monitor's limit back even when the test fails.
struct Restore(String);
impl Drop for Restore {
    fn drop(&mut self) {
        let _ = ceph_with(&self.0, &["config", "rm", "mon", "mon_max_pg_per_osd"]);
    }
}
