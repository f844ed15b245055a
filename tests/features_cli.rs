//! `--image-feature` against the live cluster, with the `rbd` CLI as witness: a combination
//! librbd would refuse (or quietly change) is refused by `create`, `clone` and `import-raw`
//! as bad usage (exit 2) in one line naming the missing feature and the value that works, and
//! nothing is created; a good one prints exactly the `features` `rbd info --format json` shows.
mod common;
use common::*;

/// (value of --image-feature, words the error must contain).
const BAD: &[(&str, &[&str])] = &[
    (
        "fast-diff",
        &[
            "fast-diff needs object-map",
            "--image-feature exclusive-lock,object-map,fast-diff",
        ],
    ),
    (
        "object-map",
        &[
            "object-map needs exclusive-lock",
            "--image-feature exclusive-lock,object-map,fast-diff",
        ],
    ),
    (
        "layering,fast-diff",
        &["--image-feature layering,exclusive-lock,object-map,fast-diff"],
    ),
    (
        "journaling",
        &[
            "journaling needs exclusive-lock",
            "--image-feature exclusive-lock,journaling",
        ],
    ),
    // rbd accepts these names and librbd drops them: the image would not have them.
    ("striping", &["striping", "--stripe-unit"]),
    ("data-pool", &["data-pool"]),
    ("operations", &["operations"]),
    ("layering,migrating", &["migrating"]),
    ("non-primary", &["non-primary"]),
    // rbd refuses these.
    ("dirty-cache", &["unknown image feature 'dirty-cache'"]),
    ("61", &["feature names"]),
    ("bogus", &["unknown image feature 'bogus'", "layering"]),
];

/// Good combinations; the expected lists are what rbd 16.2 reports for the same flags
/// (librbd adds fast-diff to object-map).
const GOOD: &[(&str, &[&str])] = &[
    ("layering", &["layering"]),
    ("layering,", &["layering"]),
    (
        "exclusive-lock,object-map",
        &["exclusive-lock", "object-map", "fast-diff"],
    ),
    (
        "layering,exclusive-lock,object-map,fast-diff,deep-flatten",
        &[
            "layering",
            "exclusive-lock",
            "object-map",
            "fast-diff",
            "deep-flatten",
        ],
    ),
    (
        "exclusive-lock,journaling",
        &["exclusive-lock", "journaling"],
    ),
];

fn rbd_features(conf: &str, spec: &str) -> serde_json::Value {
    rbd_json(conf, &["info", spec])["features"].clone()
}

#[test]
fn create_refuses_bad_combinations_and_creates_nothing() {
    let conf = conf();
    for (flag, needles) in BAD {
        let name = unique("featbad");
        let spec = format!("volumes/{name}");
        let out = rbdkit(&["create", &spec, "--size", "64M", "--image-feature", flag]);
        assert_one_line_error(&out, 2, needles);
        assert!(stdout(&out).is_empty(), "{flag}: {}", stdout(&out));
        assert!(
            images_with_prefix(&conf, "volumes", &name).is_empty(),
            "{flag}: nothing created"
        );
    }
}

#[test]
fn create_prints_the_features_rbd_info_reports() {
    let conf = conf();
    let mut clean = Cleanup::new(&conf);
    for (flag, expected) in GOOD {
        let spec = format!("volumes/{}", unique("featok"));
        clean.add(&spec);
        let out = rbdkit(&[
            "create",
            &spec,
            "--size",
            "64M",
            "--image-feature",
            flag,
            "--format",
            "json",
        ]);
        assert!(out.status.success(), "{flag}: {}", stderr(&out));
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let witness = rbd_features(&conf, &spec);
        assert_eq!(j["features"], witness, "{flag}");
        assert_eq!(witness, serde_json::json!(expected), "{flag}");
        assert_eq!(j["size"], 64 << 20);
        assert_eq!(j["object_size"], 4 << 20, "read back, not echoed");
    }
    // Plain output lists the same names.
    let spec = format!("volumes/{}", unique("featok"));
    clean.add(&spec);
    let out = rbdkit(&[
        "create",
        &spec,
        "--size",
        "64M",
        "--image-feature",
        "exclusive-lock",
        "--image-feature",
        "object-map",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("created {spec} (64 MiB, features: exclusive-lock, object-map, fast-diff)")
    );
}

#[test]
fn clone_and_import_refuse_bad_combinations_before_touching_the_cluster() {
    let conf = conf();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("disk.raw");
    std::fs::write(&src, vec![7u8; 1 << 20]).unwrap();
    // A clone must have layering (librbd: ENOSYS "cloning image must support layering").
    let mut bad: Vec<(&str, &[&str])> = BAD.to_vec();
    bad.push((
        "exclusive-lock",
        &["a clone needs layering", "layering,exclusive-lock"],
    ));
    for (flag, needles) in &bad {
        let name = unique("featclone");
        let out = rbdkit(&[
            "clone",
            "volumes/no-such-parent@snap",
            &format!("volumes/{name}"),
            "--image-feature",
            flag,
        ]);
        // The advice for a clone always includes layering.
        let needles: Vec<String> = needles
            .iter()
            .map(|n| match n.strip_prefix("--image-feature ") {
                Some(v) if !v.contains("layering") => format!("--image-feature layering,{v}"),
                _ => n.to_string(),
            })
            .collect();
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        assert_one_line_error(&out, 2, &needles);
        assert!(
            images_with_prefix(&conf, "volumes", &name).is_empty(),
            "{flag}"
        );
    }
    for (flag, needles) in BAD {
        let name = unique("featimport");
        let out = rbdkit(&[
            "import-raw",
            src.to_str().unwrap(),
            &format!("images/{name}"),
            "--image-feature",
            flag,
        ]);
        assert_one_line_error(&out, 2, needles);
        assert!(
            images_with_prefix(&conf, "images", &name).is_empty(),
            "{flag}: no image, no temporary image"
        );
    }
}

#[test]
fn clone_and_import_make_what_was_asked() {
    let conf = conf();
    let mut clean = Cleanup::new(&conf);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("disk.raw");
    std::fs::write(&src, vec![7u8; 1 << 20]).unwrap();
    let image = format!("images/{}", unique("featimp"));
    clean.add(&image);
    let out = rbdkit(&[
        "import-raw",
        src.to_str().unwrap(),
        &image,
        "--image-feature",
        "layering,exclusive-lock,object-map",
        "--snap",
        "snap",
        "--protect",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let witness = rbd_features(&conf, &image);
    assert_eq!(j["features"], witness);
    assert_eq!(
        witness,
        serde_json::json!(["layering", "exclusive-lock", "object-map", "fast-diff"])
    );
    let clone = format!("volumes/{}", unique("featcl"));
    clean.add(&clone);
    let out = rbdkit(&[
        "clone",
        &format!("{image}@snap"),
        &clone,
        "--image-feature",
        "layering,exclusive-lock",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        rbd_features(&conf, &clone),
        serde_json::json!(["layering", "exclusive-lock"])
    );
}
