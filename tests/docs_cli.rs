//! What rbdkit says about itself without a cluster: shell completions and the man page
//! (generated from the same definitions that parse the command line), and the help text:
//! global options listed apart from each command's own, `clone --count`'s `{n}` placeholder
//! shown, and a prefixed `--id` refused with the fix; and the checksum recipes the README and
//! the demo show are the library's.
use std::process::{Command, Output};

fn rbdkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args(args)
        // No cluster is needed or contacted: point away from any real one.
        .env("CEPH_CONF", "/nonexistent/ceph.conf")
        .env_remove("CEPH_ARGS")
        .output()
        .expect("run rbdkit")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn completions_cover_the_subcommands() {
    let out = rbdkit(&["completions", "bash"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bash = text(&out);
    for word in ["import-raw", "--image-feature", "--data-pool", "_rbdkit"] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    for shell in ["zsh", "fish"] {
        let out = rbdkit(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        assert!(text(&out).contains("import-raw"), "{shell} completion");
    }
    let out = rbdkit(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn man_page_is_roff() {
    let out = rbdkit(&["man"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = text(&out);
    assert!(
        page.starts_with(".ie") || page.starts_with(".TH"),
        "{}",
        &page[..80.min(page.len())]
    );
    let th = page
        .lines()
        .find(|l| l.starts_with(".TH"))
        .expect("a .TH line");
    assert!(th.starts_with(".TH rbdkit 1"), "{th}");
    assert!(
        page.contains("import\\-raw"),
        "the page lists the subcommands"
    );

    let out = rbdkit(&["man", "create"]);
    assert!(out.status.success());
    let page = text(&out);
    let th = page
        .lines()
        .find(|l| l.starts_with(".TH"))
        .expect("a .TH line");
    assert!(th.starts_with(".TH rbdkit-create 1"), "{th}");
    assert!(page.contains("\\-\\-data\\-pool"), "create's own options");
    assert!(page.contains("\\-\\-conf"), "and the global ones");

    let out = rbdkit(&["man", "bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("import-raw"));
}

#[test]
fn help_lists_global_options_apart() {
    let out = rbdkit(&["create", "--help"]);
    assert!(out.status.success());
    let help = text(&out);
    let own = help.find("--size").expect("--size in create --help");
    let heading = help
        .find("\nGlobal options:\n")
        .expect("a Global options heading");
    let conf = help.find("--conf").expect("--conf in create --help");
    assert!(own < heading && heading < conf, "{help}");
    let (mine, global) = help.split_at(heading);
    for flag in ["--data-pool", "--order", "--stripe-unit", "--image-feature"] {
        assert!(mine.contains(flag), "{flag} is create's own: {help}");
    }
    for flag in ["--id", "--keyring", "--format", "--debug", "--verbose"] {
        assert!(global.contains(flag), "{flag} is global: {help}");
    }
}

#[test]
fn clone_help_shows_the_count_placeholder() {
    let out = rbdkit(&["clone", "--help"]);
    assert!(out.status.success());
    let help = text(&out);
    let count = help
        .lines()
        .skip_while(|l| !l.contains("--count"))
        .take(3)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(count.contains("{n}"), "--count help names {{n}}: {count}");
}

#[test]
fn prefixed_id_says_to_drop_the_prefix() {
    let out = rbdkit(&["info", "images/x", "--id", "client.glance"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("without the `client.` prefix") && err.contains("--id glance"),
        "{err}"
    );
}

#[test]
fn bad_debug_level_is_bad_usage() {
    let out = rbdkit(&["info", "images/x", "--debug-rbd", "loud"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--debug-rbd") && err.contains("loud"), "{err}");
}

/// The checksum recipes shown in the README are the library's, which `qcow2_reader` checks
/// against rbdkit's own checksums: a copy that drifted (the demo once kept `sha256-blocks`'
/// recipe after the default became `sha256-tree`) fails here. The demo prints its recipe with
/// `--print-recipe` instead of keeping a copy.
#[test]
fn the_checksum_recipes_shown_are_the_tested_ones() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    use rbdkit::copy::digest::{RECIPE, TREE_RECIPE};
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains(TREE_RECIPE),
        "README: the sha256-tree recipe"
    );
    assert!(readme.contains(RECIPE), "README: the sha256-blocks recipe");
    let demo = std::fs::read_to_string(root.join("scripts/demo.sh")).unwrap();
    assert!(
        demo.contains("checksum --print-recipe") && !demo.contains("hashlib.sha256(b)"),
        "the demo runs the printed recipe, not a copy"
    );
}

/// `checksum --print-recipe` prints, for each algorithm, a Python program that recomputes
/// from the raw bytes what `rbdkit checksum` prints for them (a partial last block included).
#[test]
fn printed_recipes_recompute_rbdkit_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("r.raw");
    let mut data: Vec<u8> = (0..(3 << 20) + 1234).map(|i| (i * 7 % 251) as u8).collect();
    data[1 << 20..2 << 20].fill(0);
    std::fs::write(&raw, &data).unwrap();
    for algo in ["sha256-tree", "sha256-blocks", "sha256"] {
        let recipe = rbdkit(&["checksum", "--print-recipe", "--checksum", algo]);
        assert!(recipe.status.success(), "{algo}");
        let py = std::process::Command::new("python3")
            .args(["-c", String::from_utf8_lossy(&recipe.stdout).trim_end()])
            .stdin(std::fs::File::open(&raw).unwrap())
            .output()
            .unwrap();
        assert!(
            py.status.success(),
            "{algo}: {}",
            String::from_utf8_lossy(&py.stderr)
        );
        let ours = rbdkit(&[
            "--no-progress",
            "checksum",
            "--checksum",
            algo,
            raw.to_str().unwrap(),
        ]);
        let ours = String::from_utf8_lossy(&ours.stdout).to_string();
        let theirs = String::from_utf8_lossy(&py.stdout).trim().to_string();
        assert_eq!(theirs.len(), 64, "{algo}: {theirs}");
        assert!(
            ours.contains(&theirs),
            "{algo}: rbdkit {ours}, recipe {theirs}"
        );
    }
}
