//! Interrupted imports: SIGINT and SIGTERM remove the temporary image; after SIGKILL the
//! leftover is recognisable by name and `rbdkit cleanup` removes it. Nothing ever appears
//! under the final name. The import reads a pipe we control, so the signal always lands
//! mid-import, whatever the machine's speed.
mod common;
use common::*;
use std::io::Write;
use std::process::Child;
use std::time::{Duration, Instant};

const MARKER: &str = ".rbdkit-partial.";

fn images_named(conf: &str, prefix: &str) -> Vec<String> {
    images_with_prefix(conf, "images", prefix)
}

/// Starts an import from a pipe, feeds it 32 MiB, and waits until its temporary image exists.
fn start_import(conf: &str, name: &str) -> (Child, std::process::ChildStdin) {
    let (child, mut stdin) = import_from_pipe(conf, name, &[]);
    let block: Vec<u8> = (0..(1 << 20)).map(|i: u32| (i % 251) as u8 + 1).collect();
    for _ in 0..32 {
        stdin.write_all(&block).unwrap();
    }
    wait_for_temp_image(conf, name);
    (child, stdin)
}

fn signal_and_wait(
    mut child: Child,
    stdin: std::process::ChildStdin,
    sig: i32,
) -> std::process::Output {
    // SAFETY: kill(2) on the pid of a child we own and have not reaped.
    let r = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(r, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rbdkit did not exit after signal {sig}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn sigint_and_sigterm_remove_the_temporary_image() {
    let conf = conf();
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let name = unique("sig");
        let (child, stdin) = start_import(&conf, &name);
        let out = signal_and_wait(child, stdin, sig);
        assert_eq!(
            out.status.code(),
            Some(130),
            "signal {sig}: {}",
            stderr(&out)
        );
        let err = stderr(&out);
        assert!(err.contains("temporary image was removed"), "{err}");
        assert!(
            images_named(&conf, &name).is_empty(),
            "signal {sig} left {:?}",
            images_named(&conf, &name)
        );
    }
}

#[test]
fn sigkill_leftover_is_found_and_removed_by_cleanup() {
    let conf = conf();
    let name = unique("kill");
    let (child, stdin) = start_import(&conf, &name);
    let out = signal_and_wait(child, stdin, libc::SIGKILL);
    assert_eq!(out.status.code(), None, "killed by a signal");
    let left = images_named(&conf, &name);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with(&format!("{name}{MARKER}")), "{left:?}");
    assert!(
        !image_exists(&conf, &format!("images/{name}")),
        "nothing under the final name"
    );

    let dry = rbdkit(&["cleanup", "images", "--dry-run", "--format", "json"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(stdout(&dry).contains(&left[0]));
    assert_eq!(
        images_named(&conf, &name).len(),
        1,
        "dry run removes nothing"
    );
    let out = rbdkit(&["cleanup", "images"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&left[0]), "{}", stdout(&out));
    assert!(images_named(&conf, &name).is_empty());
}

#[test]
fn sigint_during_a_qcow2_stream_removes_the_temporary_image() {
    let conf = conf();
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("s.qcow2");
    let p = img.to_str().unwrap();
    run_ok("qemu-img", &["create", "-q", "-f", "qcow2", p, "256M"]);
    run_ok("qemu-io", &["-f", "qcow2", "-c", "write -P 0x5a 0 64M", p]);
    let bytes = std::fs::read(&img).unwrap();
    let name = unique("sigq");
    let (child, mut stdin) = import_from_pipe(&conf, &name, &[]);
    // Half the image: the import is decoding and writing, and waits for the rest.
    stdin.write_all(&bytes[..bytes.len() / 2]).unwrap();
    wait_for_temp_image(&conf, &name);
    let out = signal_and_wait(child, stdin, libc::SIGINT);
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("temporary image was removed"),
        "{}",
        stderr(&out)
    );
    assert!(images_named(&conf, &name).is_empty());
}
