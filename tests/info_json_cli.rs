//! Live test of `rbdkit info --format json` against `rbd info --format json`: every key `rbd`
//! prints is there with the same value (timestamps as the same strings), for a plain image, a
//! snapshot, a clone, a striped image and one with a data pool; and the output is one line
//! unless `--pretty-format`.
mod common;
use common::*;
use serde_json::Value;

/// rbdkit's JSON for `spec`, checked to be a single line.
fn rbdkit_info(conf: &str, spec: &str) -> Value {
    let out = rbdkit_with(conf, &["info", spec, "--format", "json"]);
    assert!(out.status.success(), "rbdkit info {spec}: {}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(
        text.trim_end().lines().count(),
        1,
        "--format json is one line, as rbd prints it: {text}"
    );
    serde_json::from_str(&text).expect("rbdkit printed JSON")
}

/// Asserts that every key of rbd's `info` for `spec` is in rbdkit's with an equal value.
fn assert_same_as_rbd(conf: &str, spec: &str) -> Value {
    let theirs = rbd_json(conf, &["info", spec]);
    let ours = rbdkit_info(conf, spec);
    let theirs_obj = theirs.as_object().expect("rbd info is an object");
    assert!(theirs_obj.len() >= 15, "rbd printed few keys: {theirs}");
    for (key, want) in theirs_obj {
        assert_eq!(
            ours.get(key),
            Some(want),
            "{spec}: key {key:?} differs\n rbd:    {theirs}\n rbdkit: {ours}"
        );
    }
    ours
}

#[test]
fn info_json_matches_rbd_key_by_key() {
    let conf = conf();
    let mut cleanup = Cleanup::new(&conf);
    let parent = format!("images/{}", unique("infojson"));
    let out = rbd_with(&conf, &["create", &parent, "--size", "64M"]);
    assert!(out.status.success(), "{}", stderr(&out));
    cleanup.add(&parent);
    let snap = format!("{parent}@base");
    for args in [["snap", "create", &snap], ["snap", "protect", &snap]] {
        let out = rbd_with(&conf, &args);
        assert!(out.status.success(), "rbd {args:?}: {}", stderr(&out));
    }
    let clone = format!("volumes/{}", unique("infojson-clone"));
    let out = rbd_with(&conf, &["clone", &snap, &clone]);
    assert!(out.status.success(), "{}", stderr(&out));
    cleanup.add(&clone);
    let striped = format!("volumes/{}", unique("infojson-striped"));
    let out = rbd_with(
        &conf,
        &[
            "create",
            &striped,
            "--size",
            "64M",
            "--stripe-unit",
            "65536",
            "--stripe-count",
            "4",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    cleanup.add(&striped);

    let plain = assert_same_as_rbd(&conf, &parent);
    assert_eq!(plain["snapshot_count"].as_u64(), Some(1));
    assert!(plain.get("parent").is_none(), "no parent key: {plain}");
    assert_eq!(plain["clone_depth"].as_u64(), Some(0));

    let at_snap = assert_same_as_rbd(&conf, &snap);
    assert_eq!(at_snap["protected"], "true");

    let cloned = assert_same_as_rbd(&conf, &clone);
    assert_eq!(cloned["parent"]["snapshot"], "base");
    assert_eq!(cloned["clone_depth"].as_u64(), Some(1));
    assert_eq!(cloned["overlap"].as_u64(), Some(64 << 20));

    let s = assert_same_as_rbd(&conf, &striped);
    assert_eq!(s["stripe_unit"].as_u64(), Some(65536));
    assert_eq!(s["stripe_count"].as_u64(), Some(4));

    // Data in a second pool (replicated here: the one-OSD dev cluster cannot activate an
    // erasure-coded pool's PGs; librbd treats both the same), made by rbd.
    let with_data_pool = format!("images/{}", unique("infojson-datapool"));
    let out = rbd_with(
        &conf,
        &[
            "create",
            &with_data_pool,
            "--size",
            "64M",
            "--data-pool",
            "volumes",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    cleanup.add(&with_data_pool);
    let d = assert_same_as_rbd(&conf, &with_data_pool);
    assert_eq!(d["data_pool"], "volumes");
    assert!(
        plain.get("data_pool").is_none(),
        "no data_pool key: {plain}"
    );

    // --pretty-format indents the same document.
    let out = rbdkit_with(
        &conf,
        &["info", &clone, "--format", "json", "--pretty-format"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.lines().count() > 10, "indented: {text}");
    let pretty: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(pretty, cloned);
}
