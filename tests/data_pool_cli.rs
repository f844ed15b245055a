//! Images whose data lives in an erasure-coded pool (`--data-pool`, as Cinder's
//! `rbd_default_data_pool` and `rbd --data-pool` do), on the clone-v2 dev cluster with three
//! more OSDs under a CRUSH root of their own (`second_root`): a real EC 2+1 pool with
//! overwrites, written by `create`, `import-raw` and `copy`, read back identical; the
//! cluster's `rbd_default_data_pool` honoured; and an EC pool without overwrites refused in one
//! line that names the fix, with nothing left behind.
mod common;
use common::*;
use serde_json::Value;
use std::process::Command;

/// Erasure-coded pools (and their profile) made for one test, removed when it ends: declare it
/// before the images' `Cleanup`, so the images go first.
struct EcPools {
    conf: String,
    profile: String,
    pools: Vec<String>,
}

impl EcPools {
    /// A k=2 m=1 profile on the second root (one chunk per OSD).
    fn new(conf: &str) -> Self {
        let profile = unique("ec21");
        ceph_ok(
            conf,
            &[
                "osd",
                "erasure-code-profile",
                "set",
                &profile,
                "k=2",
                "m=1",
                "crush-failure-domain=osd",
                &format!("crush-root={SECOND_ROOT}"),
            ],
        );
        EcPools {
            conf: conf.into(),
            profile,
            pools: Vec::new(),
        }
    }

    /// A new EC pool for RBD data, with `allow_ec_overwrites` as given; waits until its PGs
    /// are active (listing a pool blocks until then).
    fn pool(&mut self, overwrites: bool) -> String {
        let name = unique("ecdata");
        let c = &self.conf;
        ceph_ok(
            c,
            &[
                "osd",
                "pool",
                "create",
                &name,
                "8",
                "8",
                "erasure",
                &self.profile,
            ],
        );
        self.pools.push(name.clone());
        if overwrites {
            ceph_ok(
                c,
                &["osd", "pool", "set", &name, "allow_ec_overwrites", "true"],
            );
        }
        ceph_ok(c, &["osd", "pool", "application", "enable", &name, "rbd"]);
        let o = Command::new("timeout")
            .args(["60", "rados", "-p", &name, "ls"])
            .env("CEPH_CONF", c)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "pool {name} did not become active: {}",
            stderr(&o)
        );
        name
    }
}

impl Drop for EcPools {
    fn drop(&mut self) {
        for p in &self.pools {
            let _ = ceph_with(
                &self.conf,
                &["osd", "pool", "rm", p, p, "--yes-i-really-really-mean-it"],
            );
        }
        let _ = ceph_with(
            &self.conf,
            &["osd", "erasure-code-profile", "rm", &self.profile],
        );
    }
}

fn data_pool_of(conf: &str, spec: &str) -> Value {
    rbd_json(conf, &["info", spec])["data_pool"].clone()
}

fn exported(conf: &str, spec: &str) -> Vec<u8> {
    let o = rbd_with(conf, &["export", "--no-progress", spec, "-"]);
    assert!(o.status.success(), "rbd export {spec}: {}", stderr(&o));
    o.stdout
}

#[test]
fn images_with_data_in_an_erasure_coded_pool() {
    let conf = conf_v2();
    second_root(&conf);
    let mut ec = EcPools::new(&conf);
    let data_pool = ec.pool(true);
    let mut cleanup = Cleanup::new(&conf);

    // 12 MiB: data, a 4 MiB zero run (not written), data; not a whole number of objects.
    let mut raw: Vec<u8> = (0..12u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    raw[4 << 20..8 << 20].fill(0);
    raw.truncate((12 << 20) - 4096);
    let file = std::env::temp_dir().join(unique("ecraw"));
    std::fs::write(&file, &raw).unwrap();

    let created = format!("volumes/{}", unique("eccreate"));
    cleanup.add(&created);
    let o = rbdkit_with(
        &conf,
        &[
            "create",
            &created,
            "--size",
            "64M",
            "--data-pool",
            &data_pool,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("data pool: {data_pool}")),
        "{}",
        stdout(&o)
    );
    assert_eq!(data_pool_of(&conf, &created), data_pool.as_str());

    let imported = format!("volumes/{}", unique("ecimport"));
    cleanup.add(&imported);
    let o = rbdkit_with(
        &conf,
        &[
            "import-raw",
            file.to_str().unwrap(),
            &imported,
            "--data-pool",
            &data_pool,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(data_pool_of(&conf, &imported), data_pool.as_str());
    assert!(
        exported(&conf, &imported) == raw,
        "import into the EC data pool differs"
    );
    // The data objects are in the EC pool, none in the image's own pool.
    let prefix = rbd_json(&conf, &["info", &imported])["block_name_prefix"]
        .as_str()
        .unwrap()
        .to_string();
    let listing = |pool: &str| {
        let o = Command::new("timeout")
            .args(["60", "rados", "-p", pool, "ls"])
            .env("CEPH_CONF", &conf)
            .output()
            .unwrap();
        stdout(&o)
    };
    let in_ec = listing(&data_pool)
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .count();
    // Objects 0, 2 (12 MiB - 4 KiB ends in object 2) hold data; object 1 is all zeros.
    assert_eq!(in_ec, 2, "data objects of {imported} in {data_pool}");
    assert!(
        !listing("volumes").contains(&prefix),
        "data objects in volumes"
    );

    let copied = format!("volumes/{}", unique("eccopy"));
    cleanup.add(&copied);
    let o = rbdkit_with(
        &conf,
        &["copy", &imported, &copied, "--data-pool", &data_pool],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(data_pool_of(&conf, &copied), data_pool.as_str());
    assert!(
        exported(&conf, &copied) == raw,
        "copy into the EC data pool differs"
    );

    // The cluster's rbd_default_data_pool (here from CEPH_ARGS, as `rbd` reads it).
    let defaulted = format!("volumes/{}", unique("ecdefault"));
    cleanup.add(&defaulted);
    let o = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args(["--no-progress", "create", &defaulted, "--size", "8M"])
        .env("CEPH_CONF", &conf)
        .env("CEPH_ARGS", format!("--rbd-default-data-pool {data_pool}"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(data_pool_of(&conf, &defaulted), data_pool.as_str());
    let _ = std::fs::remove_file(&file);
}

#[test]
fn an_erasure_coded_pool_without_overwrites_is_refused_with_the_fix() {
    let conf = conf_v2();
    second_root(&conf);
    let mut ec = EcPools::new(&conf);
    let no_overwrites = ec.pool(false);
    let _cleanup = Cleanup::new(&conf);
    let name = unique("ecrefused");
    let spec = format!("volumes/{name}");
    let o = rbdkit_with(
        &conf,
        &[
            "create",
            &spec,
            "--size",
            "8M",
            "--data-pool",
            &no_overwrites,
        ],
    );
    let fix = format!("ceph osd pool set {no_overwrites} allow_ec_overwrites true");
    assert_one_line_error(&o, 1, &[&spec, "erasure-coded", &fix]);
    assert!(!image_exists(&conf, &spec));

    let file = std::env::temp_dir().join(unique("ecraw"));
    std::fs::write(&file, vec![1u8; 1 << 20]).unwrap();
    let o = rbdkit_with(
        &conf,
        &[
            "import-raw",
            file.to_str().unwrap(),
            &spec,
            "--data-pool",
            &no_overwrites,
        ],
    );
    let _ = std::fs::remove_file(&file);
    assert_one_line_error(&o, 1, &[&fix]);
    assert!(
        images_with_prefix(&conf, "volumes", &name).is_empty(),
        "an image or temporary image was left behind"
    );
}
