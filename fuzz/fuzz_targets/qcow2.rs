//! Fuzzes the qcow2 reader: any file must open or fail with an error, and an image that opens
//! must map and read every byte of its virtual disk without panicking or looping forever.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rbdkit::disk::{open, scan, Format};

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("rbdkit-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("input.qcow2");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Ok(disk) = open(&path, Some(Format::Qcow2)) else { return };
    // Errors are fine; panics, hangs and runaway allocations are what the fuzzer looks for.
    // A 64 PiB virtual disk is legal; reading all of it is not a test, so cap the bytes read.
    let _ = scan(disk.as_ref(), 16 << 20);
});
