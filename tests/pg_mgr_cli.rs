//! `rbdkit pg` against the real mgr `pg_autoscaler` of the dev cluster: the cluster's own
//! autoscaler (`ceph osd pool autoscale-status -f json`, `pg_num_final`) is the oracle for
//! `pg check`'s `pools[].autoscale_pg_num`, on pools with bulk, target ratios, target bytes,
//! bias, pg_num_min and written data, and with overlapping CRUSH roots. The printed
//! `ceph osd pool create` commands are run and must succeed. The mgr is started here (once per
//! run, ~3 s) through `scripts/dev-cluster.sh mgr`: only these tests need one.
mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

/// Starts the dev cluster's mgr (the script does nothing when one runs).
fn mgr(conf: &str) {
    dev_cluster(conf, "mgr", &[]);
}

fn mgr_finals(conf: &str) -> BTreeMap<String, u64> {
    let o = ceph_with(conf, &["osd", "pool", "autoscale-status", "-f", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["pool_name"].as_str().unwrap().to_string(),
                p["pg_num_final"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Pools seen with a predicted data movement (the change the autoscaler will make next).
static MOVEMENTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn rbdkit_finals(conf: &str) -> BTreeMap<String, u64> {
    let o = rbdkit_with(conf, &["pg", "check", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    // The movement is predicted exactly for the pools the autoscaler will change, from their
    // pg_num to its target, and never more than all of their raw data.
    for p in v["pools"].as_array().unwrap() {
        let m = &p["movement"];
        if p["autoscale_will_change"] == true {
            assert_eq!(m["from_pg_num"], p["pg_num"], "{p}");
            assert_eq!(m["to_pg_num"], p["autoscale_pg_num"], "{p}");
            assert!(m["moved_fraction"].as_f64().unwrap() <= 1.0, "{p}");
            assert!(m["steps"].as_u64().unwrap() >= 1, "{p}");
            MOVEMENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else {
            assert!(m.is_null(), "{p}");
        }
    }
    v["pools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            Some((
                p["name"].as_str()?.to_string(),
                p["autoscale_pg_num"].as_u64()?,
            ))
        })
        .collect()
}

/// Waits until the mgr's answer is stable across a read of rbdkit's and equal to it: the mgr's
/// usage lags the OSD map by a stats period, so one sample may see a pool before its bytes.
fn assert_agrees(conf: &str, what: &str, expect_pools: &[&str]) -> BTreeMap<String, u64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let before = mgr_finals(conf);
        let ours = rbdkit_finals(conf);
        let after = mgr_finals(conf);
        let listed = expect_pools.iter().all(|p| after.contains_key(*p));
        if before == after && ours == after && listed {
            return after;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: rbdkit {ours:?} vs the mgr's pg_num_final {after:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

struct Pools(String, Vec<String>);
impl Drop for Pools {
    fn drop(&mut self) {
        for p in &self.1 {
            let _ = ceph_with(
                &self.0,
                &["osd", "pool", "rm", p, p, "--yes-i-really-really-mean-it"],
            );
        }
    }
}

#[test]
fn check_predicts_the_real_pacific_autoscaler() {
    assert_models(&conf(), "pacific");
    predicts_the_real_autoscaler(&conf());
}

#[test]
fn check_predicts_the_real_reef_autoscaler() {
    in_turn(&conf_reef(), |conf| {
        assert_models(conf, "reef");
        predicts_the_real_autoscaler(conf);
    });
}

#[test]
fn check_predicts_the_real_tentacle_autoscaler() {
    in_turn(&conf_tentacle(), |conf| {
        assert_models(conf, "tentacle");
        predicts_the_real_autoscaler(conf);
    });
}

/// The release `pg check` models by default is the running monitor's.
fn assert_models(conf: &str, release: &str) {
    let o = rbdkit_with(conf, &["pg", "check", "--format", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["release"], release, "{}", stderr(&o));
}

/// rbdkit's model of the release the cluster runs against that cluster's own mgr.
fn predicts_the_real_autoscaler(conf: &str) {
    let conf = conf.to_string();
    mgr(&conf);
    let names: Vec<String> = ["bulkbig", "ratio", "bytes", "minpg", "written"]
        .iter()
        .map(|n| unique(&format!("as{n}")))
        .collect();
    let pools = Pools(conf.clone(), names.clone());
    let n = |i: usize| pools.1[i].as_str();
    // Created in this order on purpose: pacific's first pass serves pools in id order.
    ceph_ok(
        &conf,
        &[
            "osd",
            "pool",
            "create",
            n(0),
            "8",
            "8",
            "replicated",
            "--size",
            "1",
            "--bulk",
            "--target-size-ratio",
            "0.5",
        ],
    );
    ceph_ok(
        &conf,
        &["osd", "pool", "set", n(0), "pg_autoscale_bias", "2"],
    );
    ceph_ok(
        &conf,
        &[
            "osd",
            "pool",
            "create",
            n(1),
            "8",
            "8",
            "replicated",
            "--size",
            "1",
            "--target-size-ratio",
            "0.2",
        ],
    );
    ceph_ok(
        &conf,
        &[
            "osd",
            "pool",
            "create",
            n(2),
            "8",
            "8",
            "replicated",
            "--size",
            "1",
            "--target-size-bytes",
            "4294967296",
        ],
    );
    ceph_ok(
        &conf,
        &[
            "osd",
            "pool",
            "create",
            n(3),
            "8",
            "8",
            "replicated",
            "--size",
            "1",
            "--pg-num-min",
            "16",
        ],
    );
    ceph_ok(
        &conf,
        &[
            "osd",
            "pool",
            "create",
            n(4),
            "8",
            "8",
            "replicated",
            "--size",
            "1",
        ],
    );
    // 64 MiB of data in the last pool: its ratio comes from usage, not from a target.
    let file = std::env::temp_dir().join(unique("asdata"));
    std::fs::write(&file, vec![7u8; 64 << 20]).unwrap();
    let o = Command::new("timeout")
        .args(["60", "rados", "-p", n(4), "put", "obj"])
        .arg(&file)
        .env("CEPH_CONF", &conf)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(o.status.success(), "{}", stderr(&o));
    let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    let finals = assert_agrees(&conf, "bulk, ratios, bytes, bias, pg_num_min, data", &refs);
    eprintln!("agreed with the mgr: {finals:?}");
    // The options moved the numbers: the bulk pool gets most of the budget, and pg_num_min
    // replaces the default floor of 32 (16 is below it).
    assert!(finals[n(0)] > 32 && finals[n(3)] == 16, "{finals:?}");

    // A pool the autoscaler changes next (mode on; the dev cluster's default is off): the
    // check says what the split moves. The mgr applies it within its minute-long loop, so a
    // check that comes after the mgr acted tries again with a new pool.
    let mut seen = false;
    for _ in 0..3 {
        let name = unique("asmoves");
        ceph_ok(
            &conf,
            &[
                "osd",
                "pool",
                "create",
                &name,
                "8",
                "8",
                "replicated",
                "--size",
                "1",
                "--bulk",
                "--autoscale-mode",
                "on",
            ],
        );
        let _gone = Pools(conf.clone(), vec![name.clone()]);
        let before = MOVEMENTS.load(std::sync::atomic::Ordering::Relaxed);
        let o = rbdkit_with(&conf, &["pg", "check", "--format", "json"]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let p = v["pools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name.as_str())
            .unwrap()
            .clone();
        if p["autoscale_will_change"] == true {
            rbdkit_finals(&conf);
            assert!(MOVEMENTS.load(std::sync::atomic::Ordering::Relaxed) > before);
            assert_eq!(p["movement"]["kind"], "split", "{p}");
            let plain = stdout(&rbdkit_with(&conf, &["pg", "check"]));
            assert!(
                plain.contains(&format!("next for {name}: split 8 -> ")),
                "{plain}"
            );
            seen = true;
            break;
        }
    }
    assert!(
        seen,
        "the mgr changed every new pool before the check saw it"
    );

    // A rule on the hdd device class takes the shadow root default~hdd, whose OSD overlaps
    // the default root's: the autoscaler then scales none of the pools on either root.
    let rule = unique("hddrule");
    ceph_ok(
        &conf,
        &[
            "osd",
            "crush",
            "rule",
            "create-replicated",
            &rule,
            "default",
            "osd",
            "hdd",
        ],
    );
    let overlap = unique("asoverlap");
    let _rule_gone = RuleGone(conf.clone(), rule.clone());
    let _p2 = Pools(conf.clone(), vec![overlap.clone()]);
    ceph_ok(
        &conf,
        &[
            "osd",
            "pool",
            "create",
            &overlap,
            "8",
            "8",
            "replicated",
            &rule,
            "--size",
            "1",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = mgr_finals(&conf);
        let ours = rbdkit_finals(&conf);
        if m.is_empty() && ours.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "overlapping roots: rbdkit {ours:?}, mgr {m:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let o = rbdkit_with(&conf, &["pg", "check"]);
    assert!(
        stdout(&o).contains("overlaps another pool's root"),
        "{}",
        stdout(&o)
    );
}

struct RuleGone(String, String);
impl Drop for RuleGone {
    fn drop(&mut self) {
        // After the pools using it (fields drop in declaration order within the test; this
        // guard is declared first so it drops last).
        let _ = ceph_with(&self.0, &["osd", "crush", "rule", "rm", &self.1]);
    }
}

#[test]
fn printed_create_commands_succeed() {
    let conf = conf();
    let a = unique("plana");
    let b = unique("planb");
    let _pools = Pools(conf.clone(), vec![a.clone(), b.clone()]);
    // The case: 3 OSDs, size 2, 200 PGs per OSD: the creates carry --size 2 and the
    // autoscaler's options, so the monitor checks them at the size planned.
    for method in ["pgcalc", "autoscale"] {
        let o = rbdkit_with(
            &conf,
            &[
                "pg",
                "plan",
                "--osds",
                "3",
                "--pool",
                &format!("{a}:60:2:bulk,pg_num_min=8"),
                "--pool",
                &format!("{b}:40:2"),
                "--target-pgs-per-osd",
                "100",
                "--method",
                method,
                "--ceph-release",
                "pacific",
                "--format",
                "json",
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let j: Value = serde_json::from_slice(&o.stdout).unwrap();
        for c in j["commands"].as_array().unwrap() {
            let c = c.as_str().unwrap();
            let out = Command::new("timeout")
                .args(["60", "sh", "-c", c])
                .env("CEPH_CONF", &conf)
                .output()
                .unwrap();
            assert!(out.status.success(), "{c}: {}", stderr(&out));
        }
        for (i, p) in [&a, &b].iter().enumerate() {
            let o = ceph_with(&conf, &["osd", "pool", "get", p, "size", "-f", "json"]);
            let v: Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(v["size"], 2, "{p}");
            let o = ceph_with(&conf, &["osd", "pool", "get", p, "pg_num", "-f", "json"]);
            let v: Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(v["pg_num"], j["pools"][i]["pg_num"], "{p} ({method})");
            ceph_ok(
                &conf,
                &["osd", "pool", "rm", p, p, "--yes-i-really-really-mean-it"],
            );
        }
    }
}

/// The tests on the clone-v2, reef and tentacle clusters change pools and sizes that the others there
/// count: one at a time, so each sees the pools it compares.
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `check` on the cluster of `conf` in its turn (see [`TURN`]).
fn in_turn(conf: &str, check: fn(&str)) {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    check(conf)
}

#[test]
fn two_crush_roots_match_the_pacific_mgr() {
    in_turn(&conf_v2(), two_crush_roots_match_the_mgr);
}

#[test]
fn two_crush_roots_match_the_reef_mgr() {
    in_turn(&conf_reef(), two_crush_roots_match_the_mgr);
}

#[test]
fn two_crush_roots_match_the_tentacle_mgr() {
    in_turn(&conf_tentacle(), two_crush_roots_match_the_mgr);
}

fn two_crush_roots_match_the_mgr(conf: &str) {
    let conf = conf.to_string();
    second_root(&conf);
    mgr(&conf);
    let rule = unique("secondrule");
    ceph_ok(
        &conf,
        &[
            "osd",
            "crush",
            "rule",
            "create-replicated",
            &rule,
            SECOND_ROOT,
            "osd",
        ],
    );
    let _rule_gone = RuleGone(conf.clone(), rule.clone());
    let names: Vec<String> = ["bulk", "ratio", "dflt"]
        .iter()
        .map(|n| unique(&format!("root{n}")))
        .collect();
    let _pools = Pools(conf.clone(), names.clone());
    let n = |i: usize| names[i].as_str();
    // Two pools on the second root's three OSDs (size 3 and 2), one on the default root's one:
    // each root has its own PG budget, mon_target_pg_per_osd times its OSDs.
    for (name, rule, size, extra) in [
        (n(0), rule.as_str(), "3", vec!["--bulk"]),
        (n(1), rule.as_str(), "2", vec!["--target-size-ratio", "0.3"]),
        (
            n(2),
            "replicated_rule",
            "1",
            vec!["--target-size-ratio", "0.5"],
        ),
    ] {
        let mut args = vec![
            "osd",
            "pool",
            "create",
            name,
            "8",
            "8",
            "replicated",
            rule,
            "--size",
            size,
        ];
        args.extend(extra);
        ceph_ok(&conf, &args);
    }
    let finals = assert_agrees(&conf, "two CRUSH roots", &[n(0), n(1), n(2)]);
    eprintln!("agreed with the mgr on two roots: {finals:?}");
    // PGs per OSD are counted on each pool's own root.
    let o = rbdkit_with(&conf, &["pg", "check", "--format", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    for (name, size, osds) in [(n(0), 3.0, 3.0), (n(2), 1.0, 1.0)] {
        let p = v["pools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap();
        let pg = p["pg_num"].as_f64().unwrap();
        assert_eq!(
            p["pg_replicas_per_osd"].as_f64().unwrap(),
            pg * size / osds,
            "{p}"
        );
    }
}

#[test]
fn set_size_verdicts_match_the_pacific_monitor() {
    in_turn(&conf_v2(), set_size_verdicts_match_the_monitor);
}

#[test]
fn set_size_verdicts_match_the_reef_monitor() {
    in_turn(&conf_reef(), set_size_verdicts_match_the_monitor);
}

#[test]
fn set_size_verdicts_match_the_tentacle_monitor() {
    in_turn(&conf_tentacle(), set_size_verdicts_match_the_monitor);
}

fn set_size_verdicts_match_the_monitor(conf: &str) {
    let conf = conf.to_string();
    second_root(&conf);
    let pool = unique("setsize");
    let _pools = Pools(conf.clone(), vec![pool.clone()]);
    // A pg_num that makes the monitor's ceiling (mon_max_pg_per_osd x max(in OSDs, 3)) fall
    // between sizes 3 and 6: the largest power of two within a third of the room left.
    let o = rbdkit_with(&conf, &["pg", "check", "--format", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let room = v["max_pg_replicas"].as_u64().unwrap() - v["total_pg_replicas"].as_u64().unwrap();
    let pg_num = 1u64 << (room / 3).ilog2();
    ceph_ok(
        &conf,
        &[
            "osd",
            "pool",
            "create",
            &pool,
            &pg_num.to_string(),
            &pg_num.to_string(),
            "replicated",
            "--size",
            "1",
        ],
    );
    let (mut allowed, mut refused) = (0, 0);
    for size in 2..=10u32 {
        let arg = format!("{pool}:{size}");
        let o = rbdkit_with(
            &conf,
            &["pg", "check", "--set-size", &arg, "--format", "json"],
        );
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let predicted = v["set_size"][0]["allowed"].as_bool().unwrap();
        assert_eq!(o.status.code(), Some(if predicted { 0 } else { 1 }), "{v}");
        let real = ceph_with(
            &conf,
            &["osd", "pool", "set", &pool, "size", &size.to_string()],
        );
        assert_eq!(
            predicted,
            real.status.success(),
            "size {size}: rbdkit {}, the monitor: {}",
            v["set_size"][0],
            stderr(&real)
        );
        if predicted {
            allowed += 1;
        } else {
            assert!(stderr(&real).contains("ERANGE"), "{}", stderr(&real));
            let plain = stdout(&rbdkit_with(&conf, &["pg", "check", "--set-size", &arg]));
            assert!(
                plain.contains(&format!("set size {pool} {size}: ")),
                "{plain}"
            );
            refused += 1;
            break;
        }
    }
    assert!(
        allowed > 0 && refused > 0,
        "allowed {allowed}, refused {refused}"
    );
}

#[test]
fn reef_leaves_a_2x_growth_as_its_mgr_does() {
    in_turn(&conf_reef(), |conf| {
        growth_verdict_matches_the_mgr(conf, false)
    });
}

#[test]
fn tentacle_grows_on_its_dynamic_threshold_as_its_mgr_does() {
    in_turn(&conf_tentacle(), |conf| {
        growth_verdict_matches_the_mgr(conf, true)
    });
}

/// Sets `norecover` (the autoscaler of reef and later acts on nothing while it is set, but
/// still answers autoscale-status) until dropped.
struct NoRecover(String);
impl NoRecover {
    fn set(conf: &str) -> NoRecover {
        ceph_ok(conf, &["osd", "set", "norecover"]);
        NoRecover(conf.to_string())
    }
}
impl Drop for NoRecover {
    fn drop(&mut self) {
        let _ = ceph_with(&self.0, &["osd", "unset", "norecover"]);
    }
}

/// A bulk pool at half of its 512 or 1024 target: tentacle's dynamic threshold grows it, the
/// 3x threshold of earlier releases does not. rbdkit's `autoscale_will_change` must equal the
/// mgr's `would_adjust`, read while the mgr is kept from acting.
fn growth_verdict_matches_the_mgr(conf: &str, grows: bool) {
    mgr(conf);
    let pool = unique("asgrow");
    let _pools = Pools(conf.to_string(), vec![pool.clone()]);
    let _hold = NoRecover::set(conf);
    ceph_ok(
        conf,
        &[
            "osd",
            "pool",
            "create",
            &pool,
            "8",
            "8",
            "replicated",
            "--size",
            "1",
            "--bulk",
            "--autoscale-mode",
            "warn",
        ],
    );
    ceph_ok(
        conf,
        &["osd", "pool", "set", &pool, "pg_autoscale_bias", "4"],
    );
    let target = assert_agrees(conf, "a bulk pool", &[&pool])[&pool];
    assert!(
        target == 512 || target == 1024,
        "the set-up expects a bulk pool headed for 512 or 1024 PGs, the mgr says {target}"
    );
    let half = (target / 2).to_string();
    ceph_ok(conf, &["osd", "pool", "set", &pool, "pg_num", &half]);
    ceph_ok(
        conf,
        &["osd", "pool", "set", &pool, "pg_autoscale_mode", "on"],
    );
    let mgr_adjusts = || -> (u64, bool) {
        let o = ceph_with(conf, &["osd", "pool", "autoscale-status", "-f", "json"]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let p = v
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pool_name"] == pool.as_str())
            .cloned();
        let p = p.expect("the pool in autoscale-status");
        (
            p["pg_num_target"].as_u64().unwrap(),
            p["would_adjust"] == true,
        )
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let before = mgr_adjusts();
        let o = rbdkit_with(conf, &["pg", "check", "--format", "json"]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let ours = v["pools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == pool.as_str())
            .cloned();
        let ours = ours.expect("the pool in pg check");
        let after = mgr_adjusts();
        let settled = before == after && after.0 == target / 2 && ours["pg_num"] == after.0;
        if settled && ours["autoscale_will_change"] == after.1 {
            assert_eq!(
                after.1, grows,
                "the mgr's would_adjust for {half} -> {target}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "rbdkit {ours} vs the mgr's (pg_num_target, would_adjust) {after:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
