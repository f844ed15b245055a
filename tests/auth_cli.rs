//! Live tests of how rbdkit fails when it cannot get in: wrong key, missing keyring, no
//! monitor, and the caps OpenStack gives Glance and Cinder. Every failure is one line, names
//! the object, exits non-zero, and never shows a key.
mod common;
use common::*;
use std::process::Command;

fn keyring_of(client: &str) -> String {
    let dir = cluster_dir();
    let candidates = [
        format!("ceph.client.{client}.keyring"),
        format!("client.{client}.keyring"),
    ];
    for c in &candidates {
        let p = dir.join(c);
        if p.exists() {
            return p.display().to_string();
        }
    }
    panic!(
        "no keyring for client.{client} in {}: the dev cluster creates it",
        dir.display()
    );
}

fn key_in(keyring: &str) -> String {
    let text = std::fs::read_to_string(keyring).expect("read keyring");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("key = ").map(str::to_string))
        .expect("keyring has a key")
}

fn assert_no_key(out: &std::process::Output, key: &str) {
    assert!(
        !stdout(out).contains(key) && !stderr(out).contains(key),
        "a key was printed"
    );
}

#[test]
fn wrong_key_is_an_authentication_error_without_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = dir.path().join("wrong.keyring");
    let st = Command::new("ceph-authtool")
        .args([
            "--create-keyring",
            keyring.to_str().unwrap(),
            "--gen-key",
            "-n",
            "client.admin",
        ])
        .output()
        .unwrap();
    assert!(st.status.success());
    let out = rbdkit(&[
        "info",
        "images/x",
        "--keyring",
        keyring.to_str().unwrap(),
        "--connect-timeout",
        "10",
    ]);
    assert_one_line_error(&out, 1, &["client.admin", "authentication failed"]);
    assert_no_key(&out, &key_in(keyring.to_str().unwrap()));
}

#[test]
fn missing_keyring_names_the_path() {
    let out = rbdkit(&[
        "info",
        "images/x",
        "--keyring",
        "/nonexistent/ceph.client.admin.keyring",
    ]);
    assert_one_line_error(
        &out,
        2,
        &["/nonexistent/ceph.client.admin.keyring", "--keyring"],
    );
}

#[test]
fn unreachable_monitor_fails_within_the_connect_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ceph.conf");
    std::fs::write(
        &conf,
        "[global]\nmon_host = 127.0.0.1:1\nauth_client_required = none\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args([
            "info",
            "images/x",
            "--connect-timeout",
            "3",
            "-c",
            conf.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_one_line_error(
        &out,
        1,
        &["no monitor answered within 3 s", "--connect-timeout"],
    );
}

#[test]
fn glance_caps_cannot_write_volumes_but_cinder_can_clone_from_images() {
    let conf = conf();
    let mut cleanup = Cleanup::new(&conf);
    let glance = keyring_of("glance");
    let cinder = keyring_of("cinder");
    let image = format!("images/{}", unique("glance"));
    // Glance can write its own pool.
    let out = rbdkit(&[
        "create",
        &image,
        "--size",
        "64M",
        "--id",
        "glance",
        "--keyring",
        &glance,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    cleanup.add(&image);
    assert!(
        rbd_with(&conf, &["snap", "create", &format!("{image}@snap")])
            .status
            .success()
    );
    assert!(
        rbd_with(&conf, &["snap", "protect", &format!("{image}@snap")])
            .status
            .success()
    );
    // ... but not volumes.
    let vol = format!("volumes/{}", unique("glance-denied"));
    let out = rbdkit(&[
        "create",
        &vol,
        "--size",
        "64M",
        "--id",
        "glance",
        "--keyring",
        &glance,
    ]);
    assert_one_line_error(&out, 1, &[&vol, "caps"]);
    assert_no_key(&out, &key_in(&glance));
    assert!(!image_exists(&conf, &vol));
    // Cinder clones from images into volumes.
    let dest = format!("volumes/{}", unique("cinder"));
    cleanup.add(&dest);
    let out = rbdkit(&[
        "clone",
        &format!("{image}@snap"),
        &dest,
        "--size",
        "128M",
        "--id",
        "cinder",
        "--keyring",
        &cinder,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        rbd_json(&conf, &["info", &dest])["parent"]["image"],
        image.split_once('/').unwrap().1
    );
    assert_no_key(&out, &key_in(&cinder));
    // Cinder's read-only images caps do not let it write there.
    let denied = format!("images/{}", unique("cinder-denied"));
    let out = rbdkit(&[
        "create",
        &denied,
        "--size",
        "8M",
        "--id",
        "cinder",
        "--keyring",
        &cinder,
    ]);
    assert_one_line_error(&out, 1, &[&denied, "caps"]);
}

#[test]
fn world_readable_keyring_gets_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("ceph.client.glance.keyring");
    std::fs::copy(keyring_of("glance"), &copy).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = rbdkit(&[
        "info",
        "images/does-not-exist",
        "--id",
        "glance",
        "--keyring",
        copy.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert!(
        err.contains("readable by other users") && err.contains("chmod 600"),
        "{err}"
    );
    assert!(!err.contains(&key_in(copy.to_str().unwrap())));
}

fn rbdkit_ceph_args(ceph_args: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args(args)
        .env("CEPH_CONF", conf())
        .env("CEPH_ARGS", ceph_args)
        .arg("--no-progress")
        .output()
        .expect("run rbdkit")
}

#[test]
fn ceph_args_identity_is_honoured_and_flags_win() {
    // The id in CEPH_ARGS is who connects (it used to be ignored: admin connected).
    let out = rbdkit_ceph_args(
        "--id nobody",
        &["info", "images/x", "--connect-timeout", "10"],
    );
    assert_one_line_error(&out, 1, &["client.nobody"]);
    // ... unless the command line names someone else.
    let out = rbdkit_ceph_args(
        "--id nobody",
        &["info", "images/does-not-exist", "--id", "admin"],
    );
    assert_one_line_error(&out, 1, &["ENOENT", "no such image"]);
    // Glance from CEPH_ARGS alone: reads images, refused on volumes by its caps.
    let glance = keyring_of("glance");
    let env = format!("--name client.glance --keyring={glance}");
    let out = rbdkit_ceph_args(&env, &["info", "images/does-not-exist"]);
    assert_one_line_error(&out, 1, &["ENOENT", "no such image"]);
    let out = rbdkit_ceph_args(&env, &["info", "volumes/does-not-exist"]);
    assert_one_line_error(&out, 1, &["EPERM"]);
    assert_no_key(&out, &key_in(&glance));
}

#[test]
fn name_flag_and_prefixed_id() {
    let glance = keyring_of("glance");
    let out = rbdkit(&[
        "info",
        "volumes/x",
        "-n",
        "client.glance",
        "--keyring",
        &glance,
    ]);
    assert_one_line_error(&out, 1, &["EPERM"]);
    let out = rbdkit(&["info", "images/x", "--id", "client.glance"]);
    assert_one_line_error(&out, 2, &["--id glance"]);
    let out = rbdkit(&["info", "images/x", "--name", "glance"]);
    assert_one_line_error(&out, 2, &["client.ID"]);
}
