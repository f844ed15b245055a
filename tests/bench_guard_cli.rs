//! `rbdkit bench` never writes into a target it did not create unless told: on RBD images,
//! files and NFS files, an existing target is refused before any I/O with one line, read-only
//! workloads read it as it is, `--allow-existing` says what it overwrites, a different `--size`
//! is refused, and an existing target is never removed or truncated. Targets the run creates are
//! removed afterwards.
mod common;
use common::*;
use sha2::{Digest, Sha256};

const SIZE: usize = 16 << 20;

/// `bench TARGET args...`, with the MOUNT port when the server's is not the portmapper's.
fn bench(target: &str, args: &[&str]) -> std::process::Output {
    let mut a = vec!["bench", target, "--runtime", "1s", "--iodepth", "4"];
    let port = std::env::var("RBDKIT_NFS_MOUNT_PORT").unwrap_or_default();
    if target.starts_with("nfs://") && !port.is_empty() {
        a.extend(["--nfs-mount-port", &port]);
    }
    a.extend(args);
    rbdkit(&a)
}

fn random_data() -> Vec<u8> {
    let mut data = vec![0u8; SIZE];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    data
}

fn digest(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The guard's promises on one existing target holding `SIZE` random bytes; `read` returns its
/// bytes as an independent witness sees them (None once it is gone).
fn guards(target: &str, read: &dyn Fn() -> Option<Vec<u8>>) {
    let original = digest(&read().expect("the target exists"));
    let unchanged = |why: &str| {
        let now = read().unwrap_or_else(|| panic!("{target} was removed after {why}"));
        assert_eq!(now.len(), SIZE, "{target}: size changed after {why}");
        assert_eq!(
            digest(&now),
            original,
            "{target}: content changed after {why}"
        );
    };
    // A writing workload: refused with one line, before any I/O.
    let out = bench(target, &[]);
    assert_one_line_error(&out, 1, &[target, "already exists", "--allow-existing"]);
    unchanged("a refused randwrite");
    let out = bench(target, &["--phases"]);
    assert_one_line_error(&out, 1, &[target, "--allow-existing"]);
    unchanged("refused --phases");
    // Another size: refused even with --allow-existing (never resized).
    let out = bench(target, &["--allow-existing", "--size", "1G"]);
    assert_one_line_error(&out, 1, &[target, "--size", "16 MiB", "never resizes"]);
    unchanged("a refused --size");
    // Reading is harmless: it runs, without the prefill that would write.
    let out = bench(target, &["--rw", "randread", "--size", "16M"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("writing nothing"), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("not prefilled") && !stdout(&out).contains("prefilled 16"),
        "{}",
        stdout(&out)
    );
    unchanged("a read-only run");
    // Told: it runs at the target's own size and says what it overwrites, one line.
    let out = bench(target, &["--allow-existing", "--io-total", "1M"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let warn: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("--allow-existing"))
        .collect();
    assert_eq!(warn.len(), 1, "{err}");
    assert!(
        warn[0].contains(target) && warn[0].contains("16 MiB") && warn[0].contains("0..16777216"),
        "{err}"
    );
    let after = read().unwrap_or_else(|| panic!("{target} was removed by an allowed run"));
    assert_eq!(after.len(), SIZE, "{target}: not truncated or grown");
    assert_ne!(digest(&after), original, "the allowed run did write");
}

#[test]
fn existing_rbd_image_is_guarded() {
    let conf = conf();
    let mut cleanup = Cleanup::new(&conf);
    let spec = format!("volumes/{}", unique("guard"));
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("data");
    std::fs::write(&src, random_data()).unwrap();
    run_ok(
        "rbd",
        &[
            "-c",
            &conf,
            "import",
            "--no-progress",
            src.to_str().unwrap(),
            &spec,
        ],
    );
    cleanup.add(&spec);
    let read = || {
        let out = rbd_with(&conf, &["export", "--no-progress", &spec, "-"]);
        out.status.success().then_some(out.stdout)
    };
    guards(&format!("rbd:{spec}"), &read);
    // A target the run creates is removed afterwards.
    let fresh = format!("volumes/{}", unique("guardnew"));
    let out = bench(&format!("rbd:{fresh}"), &["--size", "16"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!image_exists(&conf, &fresh), "{fresh} left behind");
}

#[test]
fn existing_file_is_guarded() {
    let path = nfs_dir().join(unique("guardfile"));
    std::fs::write(&path, random_data()).unwrap();
    let read = || std::fs::read(&path).ok();
    guards(&format!("file:{}", path.display()), &read);
    std::fs::remove_file(&path).unwrap();
    let fresh = nfs_dir().join(unique("guardfilenew"));
    let out = bench(&format!("file:{}", fresh.display()), &["--size", "16M"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!fresh.exists(), "{} left behind", fresh.display());
}

#[test]
fn existing_nfs_file_is_guarded() {
    let name = unique("guardnfs");
    let path = nfs_dir().join(&name);
    std::fs::write(&path, random_data()).unwrap();
    let read = || std::fs::read(&path).ok();
    guards(&format!("{}/{name}", nfs_url()), &read);
    std::fs::remove_file(&path).unwrap();
    let fresh = unique("guardnfsnew");
    let out = bench(&format!("{}/{fresh}", nfs_url()), &["--size", "16M"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!nfs_dir().join(&fresh).exists(), "{fresh} left behind");
}
