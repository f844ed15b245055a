//! `-v` and `--debug` against the live cluster: `-v` names the conf file, the client, the
//! monitors and the keyring path it used; `--debug` turns on librados/librbd's own log (at
//! debug_rbd 20, debug_rados 20, debug_ms 1) on stderr, whatever the conf says about log
//! files; neither ever prints the client's key, and without them stderr stays quiet.
mod common;
use common::*;

/// The key in the dev cluster's admin keyring.
fn admin_key() -> String {
    let keyring = cluster_dir().join("ceph.client.admin.keyring");
    let text = std::fs::read_to_string(&keyring)
        .unwrap_or_else(|e| panic!("read {}: {e}", keyring.display()));
    text.lines()
        .find_map(|l| l.trim().strip_prefix("key = ").map(str::to_string))
        .expect("the keyring has a key")
}

fn make_image(cleanup: &mut Cleanup) -> String {
    let spec = format!("images/{}", unique("debug"));
    let out = rbd_with(&conf(), &["create", &spec, "--size", "16M"]);
    assert!(out.status.success(), "{}", stderr(&out));
    cleanup.add(&spec);
    spec
}

#[test]
fn verbose_names_conf_client_and_monitors_never_the_key() {
    let conf = conf();
    let mut cleanup = Cleanup::new(&conf);
    let spec = make_image(&mut cleanup);
    let mon_host = std::fs::read_to_string(&conf)
        .expect("read conf")
        .lines()
        .find_map(|l| l.trim().strip_prefix("mon_host = ").map(str::to_string))
        .expect("mon_host in the dev cluster's conf");

    let out = rbdkit(&["info", &spec, "-v"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    for needle in [
        conf.as_str(),
        "client.admin",
        mon_host.as_str(),
        "ceph.client.admin.keyring",
        "fsid",
    ] {
        assert!(err.contains(needle), "-v should name {needle:?}: {err}");
    }
    assert!(!err.contains(&admin_key()), "-v printed the key");
    assert!(
        err.lines().all(|l| l.starts_with("rbdkit: ")),
        "-v alone adds rbdkit's lines only: {err}"
    );

    let quiet = rbdkit(&["info", &spec]);
    assert!(quiet.status.success());
    assert!(stderr(&quiet).is_empty(), "{}", stderr(&quiet));
}

#[test]
fn debug_logs_librados_and_librbd_on_stderr_without_the_key() {
    let conf = conf();
    let mut cleanup = Cleanup::new(&conf);
    let spec = make_image(&mut cleanup);
    let out = rbdkit(&["info", &spec, "--debug"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("debug_rbd=20"), "{err}");
    // librbd's and librados' own log lines, at the levels asked for.
    assert!(
        err.contains("librbd::"),
        "no librbd log on stderr: {}",
        &err[..err.len().min(2000)]
    );
    assert!(
        err.contains(" -- "),
        "no messenger (debug_ms) log on stderr"
    );
    assert!(!err.contains(&admin_key()), "--debug printed the key");
    // stdout is still the command's result alone.
    assert!(stdout(&out).starts_with("rbd image '"), "{}", stdout(&out));

    // One level at a time.
    let out = rbdkit(&["info", &spec, "--debug-rbd", "20"]);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(err.contains("librbd::"), "--debug-rbd logs librbd");
    assert!(!err.contains(&admin_key()));
}
