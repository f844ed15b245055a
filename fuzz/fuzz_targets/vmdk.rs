//! Fuzzes the VMDK reader: any input must open or fail with an error, and an image that opens
//! must map and read its virtual disk (as `rbdkit::disk::scan` walks it: extents, data grains
//! decoded, zero and unallocated ranges) without panicking, looping or allocating without bound.
//!
//! Sparse extents ("KDMV") are parsed from memory (`Vmdk::from_bytes`: no filesystem, fast).
//! Anything else is taken as a descriptor file and opened from a private directory that holds
//! `flat.raw` (a small raw extent) and `sparse.vmdk` (a small sparse extent), with named files
//! allowed there, so descriptor parsing and extent assembly run behind the gate too.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rbdkit::disk::vmdk::Vmdk;
use rbdkit::disk::{scan, FilePolicy};
use std::path::PathBuf;
use std::sync::OnceLock;

/// Bytes of data read per input: enough to cross many grains, small enough to stay fast.
const READ_BUDGET: u64 = 4 << 20;

fn workdir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rbdkit-fuzz-vmdk-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let flat: Vec<u8> = (0..64 * 1024u32).map(|i| (i / 512) as u8 ^ 0x5a).collect();
        let _ = std::fs::write(dir.join("flat.raw"), flat);
        // A sparse extent of 128 sectors with no grains: header, one-entry directory, table.
        let mut s = vec![0u8; 4 * 512];
        s[..4].copy_from_slice(b"KDMV");
        s[4..8].copy_from_slice(&1u32.to_le_bytes());
        s[12..20].copy_from_slice(&128u64.to_le_bytes());
        s[20..28].copy_from_slice(&128u64.to_le_bytes());
        s[44..48].copy_from_slice(&512u32.to_le_bytes());
        s[56..64].copy_from_slice(&1u64.to_le_bytes());
        s[512..516].copy_from_slice(&2u32.to_le_bytes());
        let _ = std::fs::write(dir.join("sparse.vmdk"), s);
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    if data.starts_with(b"KDMV") {
        if let Ok(img) = Vmdk::from_bytes(data.to_vec(), "fuzz") {
            let _ = scan(&img, READ_BUDGET);
        }
        return;
    }
    let path = workdir().join("input.vmdk");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Ok(files) = FilePolicy::allow(&[]) else {
        return;
    };
    if let Ok(img) = Vmdk::open(&path, &files) {
        let _ = scan(&img, READ_BUDGET);
    }
});
