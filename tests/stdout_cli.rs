//! A closed stdout (`rbdkit ... | head -1` once head has gone) ends rbdkit quietly with status
//! 141, as a shell reports a process killed by SIGPIPE, instead of a println! panic (101).
//! The pipe's read end is closed before the child starts, so every write fails with EPIPE:
//! no race with how much the pipe buffers.
use std::process::{Command, Stdio};

/// Runs rbdkit with `args` and stdout a pipe nobody reads; returns (status, stderr).
fn with_closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn closed_stdout_is_a_quiet_exit_141() {
    for args in [
        &["pg", "plan", "--preset", "openstack", "--osds", "24"][..],
        &[
            "pg",
            "plan",
            "--preset",
            "openstack",
            "--osds",
            "24",
            "--format",
            "json",
        ],
        &["--help"],
        &["--version"],
    ] {
        let (status, err) = with_closed_stdout(args);
        assert_eq!(status, Some(141), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: expected no message, got: {err}");
    }
}

#[test]
fn open_stdout_still_gets_everything() {
    let out = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args(["pg", "plan", "--preset", "openstack", "--osds", "24"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("commands:"));
}
