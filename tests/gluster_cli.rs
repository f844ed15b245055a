//! Live tests of `rbdkit bench gluster://HOST/VOLUME/PATH` against the real GlusterFS volume of
//! scripts/gluster-server.sh (libgfapi, no mount): the sparse phases, the fields of every
//! result, what the run leaves on the brick, the refusal to write someone's file, and the
//! connect errors. The volume comes from RBDKIT_GLUSTER_URL; unset is a failure, not a skip.
mod common;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn phases_first_write_then_overwrite_then_read() {
    let name = unique("glph");
    let target = format!("{}/{name}", gluster_url());
    let report = bench_local_json(&[
        &target,
        "--size",
        "32M",
        "--phases",
        "--runtime",
        "1s",
        "--iodepth",
        "8",
    ]);
    let results = report["results"].as_array().unwrap();
    let phases: Vec<&str> = results
        .iter()
        .map(|r| r["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["first-write", "overwrite", "read"]);
    let first = &results[0];
    let (before, after) = (
        first["allocated_before"].as_u64().unwrap(),
        first["allocated_after"].as_u64().unwrap(),
    );
    assert!(
        after > before + (1 << 20),
        "first writes allocate: {before} -> {after}"
    );
    for r in results {
        assert_measured(r, "libgfapi");
    }
    // The run created the file, so it removed it: the brick is the witness.
    assert!(!gluster_brick().join(&name).exists());
}

#[test]
fn kept_file_is_sparse_on_the_brick_and_refused_next_time() {
    let name = unique("glkeep");
    let target = format!("{}/{name}", gluster_url());
    let out = bench_local(&[
        &target,
        "--size",
        "16M",
        "--rw",
        "randwrite",
        "--io-total",
        "1M",
        "--keep",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let on_brick = gluster_brick().join(&name);
    let meta = std::fs::metadata(&on_brick).unwrap();
    assert_eq!(meta.len(), 16 << 20);
    use std::os::unix::fs::MetadataExt;
    assert!(
        meta.blocks() * 512 < 8 << 20,
        "sparse: {} bytes used",
        meta.blocks() * 512
    );
    // The data that arrived is what rbdkit wrote: the written 4 KiB blocks are not all zero.
    let bytes = std::fs::read(&on_brick).unwrap();
    assert!(bytes.iter().any(|&b| b != 0));
    // Someone's file now: a writing benchmark is refused before any I/O, and it is not removed.
    let out = bench_local(&[&target, "--rw", "randwrite", "--runtime", "1s"]);
    assert_one_line_error(&out, 1, &[&target, "--allow-existing"]);
    assert_eq!(std::fs::read(&on_brick).unwrap(), bytes, "untouched");
    // Reading it is allowed and leaves it there.
    let out = bench_local(&[&target, "--rw", "randread", "--runtime", "1s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("reading it as it is"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&on_brick).unwrap(), bytes, "untouched");
    let out = bench_local(&[
        &target,
        "--rw",
        "randwrite",
        "--runtime",
        "1s",
        "--allow-existing",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(on_brick.exists(), "an existing file is never removed");
    std::fs::remove_file(&on_brick).unwrap();
}

#[test]
fn missing_volume_and_unreachable_server_are_one_line_errors_in_time() {
    let base = gluster_url();
    let host = base
        .trim_start_matches("gluster://")
        .split('/')
        .next()
        .unwrap();
    let missing = format!("gluster://{host}/nosuchvolume/f");
    let t = Instant::now();
    let out = bench_local(&[&missing, "--runtime", "1s", "--size", "16M"]);
    assert!(t.elapsed() < Duration::from_secs(12), "{:?}", t.elapsed());
    assert_one_line_error(&out, 1, &["gluster://", "nosuchvolume", "does not exist"]);
    let nobody = "gluster://127.0.0.1:1/rbdkit/f";
    let t = Instant::now();
    let out = bench_local(&[nobody, "--runtime", "1s", "--size", "16M"]);
    assert!(t.elapsed() < Duration::from_secs(12), "{:?}", t.elapsed());
    assert_one_line_error(&out, 1, &["gluster://127.0.0.1:1/rbdkit", "glusterd"]);
    let out = bench_local(&["gluster://h/volume-only", "--runtime", "1s"]);
    assert_one_line_error(&out, 2, &["gluster://HOST[:PORT]/VOLUME/PATH"]);
}
