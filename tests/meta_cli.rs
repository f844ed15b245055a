//! What rbdkit says about itself: `--version` with the libraries it runs against.
use std::process::Command;

fn rbdkit(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args(args)
        .output()
        .expect("run rbdkit")
}

#[test]
fn version_names_the_loaded_libraries() {
    let out = rbdkit(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.trim_end();
    assert!(
        line.starts_with(concat!("rbdkit ", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    #[cfg(feature = "rbd")]
    assert!(
        line.contains("(librbd ") && line.contains(", librados ") && line.ends_with(')'),
        "{line}"
    );
    assert_eq!(text.lines().count(), 1);
}
