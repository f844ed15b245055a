//! The layout of a new image against the live cluster, with the `rbd` CLI as witness:
//! `--order` as `rbd --order` (12..=25, not with `--object-size`), `--stripe-unit` /
//! `--stripe-count` under librbd's rules (checked before anything is made), `--data-pool`
//! (a second pool for the data objects; `info` shows it as `rbd info` does), and the cluster
//! config's `rbd_default_features` / `rbd_default_data_pool` honoured when no flag names them,
//! for `create` and `import-raw`; `clone` passes the data pool and striping on.
//!
//! The data pool is the dev cluster's replicated `volumes` pool: an erasure-coded pool (what
//! Cinder usually names) needs k+m = 3 OSDs for its PGs to go active, and the dev cluster has
//! one. librbd treats any second pool the same way (data objects there, header and metadata in
//! the image's pool); only an EC pool's `allow_ec_overwrites` check is not exercised here.
mod common;
use common::*;
use std::process::{Command, Output};

/// rbdkit against the main cluster with `CEPH_ARGS` set (config options for librados).
fn rbdkit_ceph_args(ceph_args: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args(args)
        .arg("--no-progress")
        .env("CEPH_CONF", conf())
        .env("CEPH_ARGS", ceph_args)
        .output()
        .expect("run rbdkit")
}

fn rbd_info(spec: &str) -> serde_json::Value {
    rbd_json(&conf(), &["info", spec])
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        stdout(out),
        stderr(out)
    );
}

#[test]
fn order_is_an_object_size_in_rbds_range() {
    let conf = conf();
    let mut cleanup = Cleanup::new(&conf);
    let spec = format!("images/{}", unique("order"));
    let out = rbdkit(&["create", &spec, "--size", "16M", "--order", "20"]);
    cleanup.add(&spec);
    assert_ok(&out, "create --order 20");
    let info = rbd_info(&spec);
    assert_eq!(info["order"], 20, "{info}");
    assert_eq!(info["object_size"], 1 << 20, "{info}");
    for bad in ["11", "26", "4M", "-1"] {
        let name = format!("images/{}", unique("order-bad"));
        let out = rbdkit(&["create", &name, "--size", "16M", "--order", bad]);
        assert_one_line_error(&out, 2, &["--order"]);
        assert!(!image_exists(&conf, &name), "--order {bad} made {name}");
    }
    let name = format!("images/{}", unique("order-both"));
    let out = rbdkit(&[
        "create",
        &name,
        "--size",
        "16M",
        "--order",
        "20",
        "--object-size",
        "1M",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--object-size"), "{}", stderr(&out));
    assert!(!image_exists(&conf, &name));
}

#[test]
fn striping_follows_librbd_and_is_checked_first() {
    let conf = conf();
    let mut cleanup = Cleanup::new(&conf);
    let spec = format!("images/{}", unique("stripe"));
    let out = rbdkit(&[
        "create",
        &spec,
        "--size",
        "16M",
        "--stripe-unit",
        "64K",
        "--stripe-count",
        "4",
        "--format",
        "json",
    ]);
    cleanup.add(&spec);
    assert_ok(&out, "create --stripe-unit 64K --stripe-count 4");
    let info = rbd_info(&spec);
    assert_eq!(info["stripe_unit"], 65536, "{info}");
    assert_eq!(info["stripe_count"], 4, "{info}");
    let features = info["features"].as_array().expect("features");
    assert!(features.iter().any(|f| f == "striping"), "{info}");
    let printed: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(
        printed["features"], info["features"],
        "create reports what the image has"
    );

    // A stripe as big as the object over one object is no striping at all: librbd leaves the
    // feature off, and rbdkit reports what the image has.
    let plain = format!("images/{}", unique("stripe-plain"));
    let out = rbdkit(&[
        "create",
        &plain,
        "--size",
        "16M",
        "--stripe-unit",
        "4M",
        "--stripe-count",
        "1",
    ]);
    cleanup.add(&plain);
    assert_ok(&out, "create --stripe-unit 4M --stripe-count 1");
    assert!(!rbd_info(&plain)["features"]
        .as_array()
        .expect("features")
        .iter()
        .any(|f| f == "striping"));

    // Refused as bad usage with one line, nothing created: what librbd refuses with a bare
    // EINVAL (the object size here is the cluster's default, 4M, or --order's).
    let bad: &[(&[&str], &str)] = &[
        (
            &["--stripe-unit", "256", "--stripe-count", "2"],
            "at least 512",
        ),
        (
            &["--stripe-unit", "3000", "--stripe-count", "2"],
            "divide the object size",
        ),
        (
            &["--stripe-unit", "8M", "--stripe-count", "2"],
            "divide the object size",
        ),
        (
            &[
                "--order",
                "12",
                "--stripe-unit",
                "8K",
                "--stripe-count",
                "2",
            ],
            "4096 bytes",
        ),
        (
            &["--stripe-unit", "64K", "--stripe-count", "0"],
            "at least 1",
        ),
        (
            &["--stripe-unit", "64K", "--stripe-count", "-1"],
            "at least 1",
        ),
        (&["--stripe-unit", "64K"], "--stripe-count"),
        (&["--stripe-count", "2"], "--stripe-unit"),
    ];
    for (flags, needle) in bad {
        let name = format!("images/{}", unique("stripe-bad"));
        let mut args = vec!["create", name.as_str(), "--size", "16M"];
        args.extend_from_slice(flags);
        let out = rbdkit(&args);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{flags:?}: {}", stderr(&out));
        assert!(!image_exists(&conf, &name), "{flags:?} made {name}");
    }
}

#[test]
fn data_pool_holds_the_data_and_info_shows_it_as_rbd_does() {
    let conf = conf();
    let mut cleanup = Cleanup::new(&conf);
    let spec = format!("images/{}", unique("datapool"));
    let out = rbdkit(&[
        "create",
        &spec,
        "--size",
        "16M",
        "--data-pool",
        "volumes",
        "--format",
        "json",
    ]);
    cleanup.add(&spec);
    assert_ok(&out, "create --data-pool volumes");
    let theirs = rbd_info(&spec);
    assert_eq!(theirs["data_pool"], "volumes", "{theirs}");
    let printed: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(
        printed["data_pool"], "volumes",
        "create reports the data pool"
    );
    assert_eq!(printed["features"], theirs["features"]);

    let out = rbdkit(&["info", &spec, "--format", "json"]);
    assert_ok(&out, "info");
    let ours: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(ours["data_pool"], theirs["data_pool"]);
    let out = rbdkit(&["info", &spec]);
    assert!(
        stdout(&out).contains("\tdata_pool: volumes\n"),
        "{}",
        stdout(&out)
    );

    // The data objects really are in the data pool, the header in the image's pool.
    let id = theirs["id"].as_str().expect("id").to_string();
    let io = rbd_with(
        &conf,
        &["bench", "--io-type", "write", "--io-total", "4M", &spec],
    );
    assert_ok(&io, "rbd bench");
    let objects = Command::new("rados")
        .args(["-p", "volumes", "ls"])
        .env("CEPH_CONF", &conf)
        .output()
        .expect("run rados");
    let in_volumes = stdout(&objects);
    assert!(
        in_volumes
            .lines()
            .any(|o| o.starts_with("rbd_data.") && o.contains(&id)),
        "no data object of {id} in volumes"
    );

    // An image without one prints no data_pool, as rbd prints none.
    let plain = format!("images/{}", unique("datapool-none"));
    assert_ok(&rbdkit(&["create", &plain, "--size", "16M"]), "create");
    cleanup.add(&plain);
    let out = rbdkit(&["info", &plain, "--format", "json"]);
    let ours: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert!(ours.get("data_pool").is_none(), "{ours}");

    let missing = format!("images/{}", unique("datapool-missing"));
    let out = rbdkit(&[
        "create",
        &missing,
        "--size",
        "16M",
        "--data-pool",
        "nosuchpool",
    ]);
    assert_one_line_error(&out, 1, &["data pool nosuchpool", "does not exist"]);
    assert!(!image_exists(&conf, &missing));
}

#[test]
fn import_raw_takes_a_data_pool() {
    let conf = conf();
    let mut cleanup = Cleanup::new(&conf);
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("disk.raw");
    std::fs::write(&src, vec![0x5au8; 1 << 20]).expect("write source");
    let spec = format!("images/{}", unique("datapool-import"));
    let out = rbdkit(&[
        "import-raw",
        src.to_str().expect("utf-8 path"),
        &spec,
        "--data-pool",
        "volumes",
    ]);
    cleanup.add(&spec);
    assert_ok(&out, "import-raw --data-pool volumes");
    assert_eq!(rbd_info(&spec)["data_pool"], "volumes");
}

#[test]
fn rbd_default_features_is_honoured_when_no_flag_names_features() {
    let conf = conf();
    let mut cleanup = Cleanup::new(&conf);
    let features = |spec: &str| rbd_info(spec)["features"].clone();

    // Not set: rbdkit's own default, layering only.
    let plain = format!("images/{}", unique("deffeat-none"));
    assert_ok(&rbdkit(&["create", &plain, "--size", "16M"]), "create");
    cleanup.add(&plain);
    assert_eq!(features(&plain), serde_json::json!(["layering"]));

    // Set (here in CEPH_ARGS; a conf file or `ceph config set client` work the same way).
    let args = "--rbd_default_features=layering,exclusive-lock,deep-flatten";
    let spec = format!("images/{}", unique("deffeat"));
    let out = rbdkit_ceph_args(args, &["create", &spec, "--size", "16M", "-v"]);
    cleanup.add(&spec);
    assert_ok(&out, "create with rbd_default_features");
    assert_eq!(
        features(&spec),
        serde_json::json!(["layering", "exclusive-lock", "deep-flatten"])
    );
    assert!(
        stderr(&out).contains("rbd_default_features"),
        "-v says where the features came from: {}",
        stderr(&out)
    );

    // The flag wins over the config.
    let flagged = format!("images/{}", unique("deffeat-flag"));
    let out = rbdkit_ceph_args(
        args,
        &[
            "create",
            &flagged,
            "--size",
            "16M",
            "--image-feature",
            "layering",
        ],
    );
    cleanup.add(&flagged);
    assert_ok(&out, "create --image-feature layering");
    assert_eq!(features(&flagged), serde_json::json!(["layering"]));

    // import-raw honours it too.
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("disk.raw");
    std::fs::write(&src, vec![1u8; 1 << 20]).expect("write source");
    let imported = format!("images/{}", unique("deffeat-import"));
    let out = rbdkit_ceph_args(
        args,
        &["import-raw", src.to_str().expect("utf-8 path"), &imported],
    );
    cleanup.add(&imported);
    assert_ok(&out, "import-raw with rbd_default_features");
    assert_eq!(
        features(&imported),
        serde_json::json!(["layering", "exclusive-lock", "deep-flatten"])
    );

    // A default librbd would refuse is refused naming the option; nothing is made.
    let bad = format!("images/{}", unique("deffeat-bad"));
    let out = rbdkit_ceph_args(
        "--rbd_default_features=object-map",
        &["create", &bad, "--size", "16M"],
    );
    assert_one_line_error(&out, 1, &["rbd_default_features", "exclusive-lock"]);
    assert!(!image_exists(&conf, &bad));
}

#[test]
fn rbd_default_data_pool_is_honoured() {
    let conf = conf();
    let mut cleanup = Cleanup::new(&conf);
    let spec = format!("images/{}", unique("defdatapool"));
    let out = rbdkit_ceph_args(
        "--rbd_default_data_pool=volumes",
        &["create", &spec, "--size", "16M"],
    );
    cleanup.add(&spec);
    assert_ok(&out, "create with rbd_default_data_pool");
    assert!(
        stdout(&out).contains("data pool: volumes"),
        "{}",
        stdout(&out)
    );
    assert_eq!(rbd_info(&spec)["data_pool"], "volumes");

    let missing = format!("images/{}", unique("defdatapool-missing"));
    let out = rbdkit_ceph_args(
        "--rbd_default_data_pool=nosuchpool",
        &["create", &missing, "--size", "16M"],
    );
    assert_one_line_error(&out, 1, &["nosuchpool", "rbd_default_data_pool"]);
    assert!(!image_exists(&conf, &missing));
}

#[test]
fn clone_takes_a_data_pool_and_striping() {
    let conf = conf();
    let mut cleanup = Cleanup::new(&conf);
    let parent = format!("images/{}", unique("layout-parent"));
    assert_ok(
        &rbd_with(&conf, &["create", &parent, "--size", "16M"]),
        "rbd create",
    );
    cleanup.add(&parent);
    let snap = format!("{parent}@base");
    for args in [["snap", "create", &snap], ["snap", "protect", &snap]] {
        assert_ok(&rbd_with(&conf, &args), "rbd snap");
    }
    let child = format!("volumes/{}", unique("layout-clone"));
    let out = rbdkit(&[
        "clone",
        &snap,
        &child,
        "--data-pool",
        "images",
        "--stripe-unit",
        "64K",
        "--stripe-count",
        "2",
    ]);
    cleanup.add(&child);
    assert_ok(&out, "clone --data-pool --stripe-unit --stripe-count");
    let info = rbd_info(&child);
    assert_eq!(info["data_pool"], "images", "{info}");
    assert_eq!(info["stripe_unit"], 65536, "{info}");
    assert_eq!(info["stripe_count"], 2, "{info}");
}
