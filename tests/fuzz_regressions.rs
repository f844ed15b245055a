//! Replays inputs from the qcow2 fuzz campaign through the reader: a sample of the corpus the
//! fuzzer found interesting (`fuzz/regressions/corpus/`) and every crash it ever found
//! (`fuzz/regressions/crashes/`, kept after the fix). Each must open or fail with an error, and
//! read without panicking.
use rbdkit::disk::detect::{probe, probe_head};
use rbdkit::disk::{open, scan, Format, OpenOptions};
use std::path::Path;

fn replay(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries {
        let path = e.unwrap().path();
        let r = std::panic::catch_unwind(|| {
            if let Ok(disk) = open(
                &path,
                &OpenOptions {
                    format: Some(Format::Qcow2),
                    ..Default::default()
                },
            ) {
                let _ = scan(disk.as_ref(), 16 << 20);
            }
        });
        assert!(r.is_ok(), "the reader panicked on {}", path.display());
        n += 1;
    }
    n
}

#[test]
fn fuzz_corpus_and_crashes_replay_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let corpus = replay(&root.join("corpus"));
    replay(&root.join("crashes"));
    assert!(
        corpus >= 20,
        "the committed corpus sample is missing ({corpus} files in {})",
        root.display()
    );
}

/// The same files through format detection, as a file and as a stream head: qcow2-shaped
/// hostile inputs are hostile inputs for every inspector.
#[test]
fn fuzz_corpus_and_crashes_probe_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut n = 0;
    for dir in ["corpus", "crashes"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let r = std::panic::catch_unwind(|| {
                probe(&bytes).unwrap();
                probe_head(&bytes);
            });
            assert!(r.is_ok(), "detection panicked on {}", path.display());
            n += 1;
        }
    }
    assert!(
        n >= 20,
        "the committed corpus sample is missing ({n} files)"
    );
}

/// The VMDK campaign's corpus sample (`vmdk-*`): through the file reader (from memory, as
/// the fuzz target parses sparse extents), the descriptor parser, and the stream decoder.
#[test]
fn vmdk_fuzz_corpus_replays_cleanly() {
    use rbdkit::disk::vmdk::{Descriptor, Vmdk, VmdkStream};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut n = 0;
    for dir in ["corpus", "crashes"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            if !path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("vmdk-")
            {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let r = std::panic::catch_unwind(|| {
                if let Ok(v) = Vmdk::from_bytes(bytes.clone(), "fuzz") {
                    let _ = scan(&v, 16 << 20);
                }
                let _ = Descriptor::parse(&bytes, "fuzz");
                if let Ok(s) =
                    VmdkStream::open(Box::new(std::io::Cursor::new(bytes.clone())), "fuzz")
                {
                    let _ = s.run(&mut |n| vec![0u8; n], &mut |_| Ok(()));
                }
            });
            assert!(r.is_ok(), "the VMDK reader panicked on {}", path.display());
            n += 1;
        }
    }
    assert!(
        n >= 50,
        "the committed VMDK corpus sample is missing ({n} files)"
    );
}

/// The VHD and VHDX campaigns' corpus samples (`vhd-*`, `vhdx-*`) through their readers.
#[test]
fn vhd_and_vhdx_fuzz_corpus_replays_cleanly() {
    use rbdkit::disk::vhd::Vhd;
    use rbdkit::disk::vhdx::Vhdx;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut n = 0;
    for dir in ["corpus", "crashes"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            if !file.starts_with("vhd-") && !file.starts_with("vhdx-") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let r = std::panic::catch_unwind(|| {
                if let Ok(v) = Vhd::from_bytes(bytes.clone(), "fuzz") {
                    let _ = scan(&v, 16 << 20);
                }
                if let Ok(v) = Vhdx::from_bytes(bytes.clone(), "fuzz") {
                    let _ = scan(&v, 16 << 20);
                }
            });
            assert!(
                r.is_ok(),
                "a VHD/VHDX reader panicked on {}",
                path.display()
            );
            n += 1;
        }
    }
    assert!(
        n >= 20,
        "the committed VHD corpus sample is missing ({n} files)"
    );
}
