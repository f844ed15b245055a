//! Fuzzes the qcow2 reader: any input must open or fail with an error, and an image that opens
//! must map and read its virtual disk (as `rbdkit::disk::scan` walks it) without panicking,
//! looping forever or allocating without bound.
//!
//! Most inputs are parsed from memory (`Qcow2::from_bytes`: no filesystem, fast). Inputs whose
//! header names a backing file or an external data file are written to a private directory
//! and opened from there, so chain resolution runs too: that directory holds `base.raw` (a
//! small raw disk, usable as backing or data file) and the input itself as `input.qcow2`
//! (naming it as backing file makes a loop).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rbdkit::disk::qcow2::{Header, Qcow2};
use rbdkit::disk::{scan, FilePolicy};
use std::path::PathBuf;
use std::sync::OnceLock;

/// Bytes of data read per input: enough to cross many clusters, small enough to stay fast.
const READ_BUDGET: u64 = 4 << 20;

fn workdir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rbdkit-fuzz-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let base: Vec<u8> = (0..64 * 1024u32).map(|i| (i / 512) as u8 ^ 0x5a).collect();
        let _ = std::fs::write(dir.join("base.raw"), base);
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let names_files = Header::parse(data, data.len() as u64, "fuzz")
        .map(|h| h.backing_file.is_some() || h.data_file.is_some())
        .unwrap_or(false);
    if !names_files {
        if let Ok(img) = Qcow2::from_bytes(data.to_vec(), "fuzz") {
            let _ = scan(&img, READ_BUDGET);
        }
        return;
    }
    let path = workdir().join("input.qcow2");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    // Files in the work directory are allowed, so chain resolution runs behind the gate.
    let Ok(files) = FilePolicy::allow(&[]) else {
        return;
    };
    if let Ok(img) = Qcow2::open(&path, &files) {
        let _ = scan(&img, READ_BUDGET);
    }
});
