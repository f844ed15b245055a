//! Replays inputs from the qcow2 fuzz campaign through the reader: a sample of the corpus the
//! fuzzer found interesting (`fuzz/regressions/corpus/`) and every crash it ever found
//! (`fuzz/regressions/crashes/`, kept after the fix). Each must open or fail with an error, and
//! read without panicking.
use rbdkit::disk::{open, DiskSource, Format};
use std::path::Path;

fn exercise(disk: &dyn DiskSource) {
    let size = disk.virtual_size().min(16 << 20);
    let _ = disk.extents(0, disk.virtual_size());
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < size {
        let n = (size - off).min(buf.len() as u64) as usize;
        if disk.read_at(off, &mut buf[..n]).is_err() {
            break;
        }
        off += n as u64;
    }
}

fn replay(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries {
        let path = e.unwrap().path();
        let r = std::panic::catch_unwind(|| {
            if let Ok(disk) = open(&path, Some(Format::Qcow2)) {
                exercise(disk.as_ref());
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
