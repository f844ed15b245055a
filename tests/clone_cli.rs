//! Live tests of `rbdkit create`, `clone`, `info` and `rm` on the dev clusters, with the `rbd`
//! CLI as the independent witness.
mod common;
use common::*;

const G: u64 = 1 << 30;

fn create_parent(conf: &str, cleanup: &mut Cleanup, size: &str) -> String {
    let parent = format!("images/{}", unique("parent"));
    let out = rbdkit_with(conf, &["create", &parent, "--size", size]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    cleanup.add(&parent);
    parent
}

#[test]
fn create_makes_a_layering_only_format2_image() {
    let conf = conf();
    let mut cleanup = Cleanup::new(&conf);
    let name = format!("volumes/{}", unique("create"));
    let out = rbdkit(&["create", &name, "--size", "1G", "--object-size", "8M"]);
    assert!(out.status.success(), "{}", stderr(&out));
    cleanup.add(&name);
    let info = rbd_json(&conf, &["info", &name]);
    assert_eq!(info["features"], serde_json::json!(["layering"]));
    assert_eq!(info["size"].as_u64(), Some(G));
    assert_eq!(info["order"].as_u64(), Some(23));
    assert_eq!(info["format"].as_u64(), Some(2));
    // An existing image is never overwritten.
    let again = rbdkit(&["create", &name, "--size", "2G"]);
    assert_one_line_error(&again, 1, &[&name, "EEXIST"]);
    assert_eq!(rbd_json(&conf, &["info", &name])["size"].as_u64(), Some(G));
}

#[test]
fn clone_v1_protects_the_snapshot_and_resizes_each_volume() {
    let conf = conf();
    let mut cleanup = Cleanup::new(&conf);
    let parent = create_parent(&conf, &mut cleanup, "1G");
    let dests: Vec<String> = (0..3)
        .map(|_| format!("volumes/{}", unique("vol")))
        .collect();
    for d in &dests {
        cleanup.add(d);
    }
    let snap = format!("{parent}@snap");
    let mut args = vec!["clone", &snap];
    args.extend(dests.iter().map(String::as_str));
    args.extend(["--size", "2G", "--create-snap", "--format", "json"]);
    let out = rbdkit(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["clone_format"], "v1");
    assert_eq!(report["snap_created"], true);
    assert_eq!(report["results"].as_array().map(Vec::len), Some(3));

    let snap_info = rbd_json(&conf, &["info", &snap]);
    assert_eq!(
        snap_info["protected"], "true",
        "clone v1 needs a protected snapshot"
    );
    let (pool, image) = parent.split_once('/').unwrap();
    for d in &dests {
        let info = rbd_json(&conf, &["info", d]);
        assert_eq!(info["features"], serde_json::json!(["layering"]), "{d}");
        assert_eq!(info["size"].as_u64(), Some(2 * G), "{d}");
        assert_eq!(info["parent"]["pool"], pool);
        assert_eq!(info["parent"]["image"], image);
        assert_eq!(info["parent"]["snapshot"], "snap");
        assert_eq!(info["parent"]["overlap"].as_u64(), Some(G));
    }

    // rbdkit info agrees with rbd.
    let out = rbdkit(&["info", &dests[0], "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["size"].as_u64(), Some(2 * G));
    assert_eq!(info["overlap"].as_u64(), Some(G));
    assert_eq!(info["clone_depth"].as_u64(), Some(1));
    assert_eq!(info["krbd_compatible"], true);
    assert_eq!(info["parent"]["image"], image);
    let out = rbdkit(&["info", &parent, "--format", "json"]);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["snapshots"][0]["name"], "snap");
    assert_eq!(info["snapshots"][0]["protected"], true);

    // The parent cannot be removed while it has a snapshot; the error names it.
    let rm = rbdkit(&["rm", &parent]);
    assert_one_line_error(&rm, 1, &[&parent, "snap"]);
    assert!(image_exists(&conf, &parent));
}

#[test]
fn clone_v2_leaves_the_snapshot_unprotected() {
    let conf = conf_v2();
    let mut cleanup = Cleanup::new(&conf);
    let parent = create_parent(&conf, &mut cleanup, "256M");
    let snap = format!("{parent}@base");
    assert!(rbd_with(&conf, &["snap", "create", &snap]).status.success());
    let dest = format!("volumes/{}", unique("v2"));
    cleanup.add(&dest);
    let out = rbdkit_with(
        &conf,
        &["clone", &snap, &dest, "--size", "1G", "--format", "json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["clone_format"], "v2");
    assert_eq!(report["snap_protected"], false);
    assert_eq!(rbd_json(&conf, &["info", &snap])["protected"], "false");
    let info = rbd_json(&conf, &["info", &dest]);
    assert_eq!(info["parent"]["snapshot"], "base");
    assert_eq!(info["size"].as_u64(), Some(G));
    let ops = info["op_features"].as_array().cloned().unwrap_or_default();
    assert!(ops.iter().any(|o| o == "clone-child"), "{info}");
}

#[test]
fn reaching_the_clone_depth_limit_flattens_the_new_clone() {
    let conf = conf();
    let mut cleanup = Cleanup::new(&conf);
    let parent = create_parent(&conf, &mut cleanup, "128M");
    let c1 = format!("volumes/{}", unique("depth1"));
    let c2 = format!("volumes/{}", unique("depth2"));
    cleanup.add(&c1);
    cleanup.add(&c2);
    let out = rbdkit(&[
        "clone",
        &format!("{parent}@s"),
        &c1,
        "--create-snap",
        "--max-clone-depth",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        rbd_json(&conf, &["info", &c1]).get("parent").is_some(),
        "depth 0 parent: no flatten"
    );
    let out = rbdkit(&[
        "clone",
        &format!("{c1}@s"),
        &c2,
        "--create-snap",
        "--max-clone-depth",
        "1",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["parent_depth"].as_u64(), Some(1));
    assert_eq!(report["results"][0]["flattened"], true);
    let info = rbd_json(&conf, &["info", &c2]);
    assert!(
        info.get("parent").is_none(),
        "flattened clone keeps no parent: {info}"
    );
}

#[test]
fn count_expands_and_a_failed_destination_is_reported_without_touching_it() {
    let conf = conf();
    let mut cleanup = Cleanup::new(&conf);
    let parent = create_parent(&conf, &mut cleanup, "64M");
    let base = unique("batch");
    let existing = format!("volumes/{base}-2");
    assert!(rbd_with(&conf, &["create", &existing, "--size", "8M"])
        .status
        .success());
    for i in 1..=4 {
        cleanup.add(&format!("volumes/{base}-{i}"));
    }
    let out = rbdkit(&[
        "clone",
        &format!("{parent}@s"),
        &format!("volumes/{base}-{{n}}"),
        "--count",
        "4",
        "--create-snap",
        "--size",
        "128M",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&existing) && err.contains("EEXIST"), "{err}");
    for i in [1, 3, 4] {
        let info = rbd_json(&conf, &["info", &format!("volumes/{base}-{i}")]);
        assert_eq!(info["size"].as_u64(), Some(128 << 20));
    }
    // The image that was in the way is untouched.
    let info = rbd_json(&conf, &["info", &existing]);
    assert_eq!(info["size"].as_u64(), Some(8 << 20));
    assert!(info.get("parent").is_none());
}

#[test]
fn shrinking_below_the_parent_is_refused_and_leaves_nothing() {
    let conf = conf();
    let mut cleanup = Cleanup::new(&conf);
    let parent = create_parent(&conf, &mut cleanup, "1G");
    let dest = format!("volumes/{}", unique("shrink"));
    cleanup.add(&dest);
    let out = rbdkit(&[
        "clone",
        &format!("{parent}@s"),
        &dest,
        "--create-snap",
        "--size",
        "512M",
    ]);
    assert_one_line_error(&out, 2, &[&parent, "--allow-shrink"]);
    assert!(!image_exists(&conf, &dest));
    let out = rbdkit(&[
        "clone",
        &format!("{parent}@s"),
        &dest,
        "--size",
        "512M",
        "--allow-shrink",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        rbd_json(&conf, &["info", &dest])["size"].as_u64(),
        Some(512 << 20)
    );
}

#[test]
fn missing_pool_image_and_snapshot_are_one_line_errors() {
    let conf = conf();
    let mut cleanup = Cleanup::new(&conf);
    let parent = create_parent(&conf, &mut cleanup, "8M");
    let out = rbdkit(&["info", "nosuchpool/x"]);
    assert_one_line_error(&out, 1, &["nosuchpool", "ENOENT"]);
    let out = rbdkit(&["info", "images/no-such-image-here"]);
    assert_one_line_error(&out, 1, &["images/no-such-image-here", "ENOENT"]);
    let dest = format!("volumes/{}", unique("nosnap"));
    let out = rbdkit(&["clone", &format!("{parent}@nosnap"), &dest]);
    assert_one_line_error(&out, 1, &[&format!("{parent}@nosnap"), "--create-snap"]);
    assert!(!image_exists(&conf, &dest));
    let out = rbdkit(&["clone", &parent, &dest]);
    assert_one_line_error(&out, 2, &[&parent, "SNAP"]);
    let out = rbdkit(&["create", "volumes", "--size", "1G"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("invalid image spec"));
    let out = rbdkit(&["create", "volumes/x", "--size", "12Q"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("invalid size"));
}

#[test]
fn rm_removes_a_plain_image() {
    let conf = conf();
    let name = format!("volumes/{}", unique("rm"));
    assert!(rbdkit(&["create", &name, "--size", "16M"]).status.success());
    let out = rbdkit(&["rm", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!image_exists(&conf, &name));
}
