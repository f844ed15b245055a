//! Fuzzes the qcow2 reader: any file must open or fail with an error, and an image that opens
//! must map and read every byte of its virtual disk without panicking or looping forever.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rbdkit::disk::{open, DiskSource, Format};

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("rbdkit-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("input.qcow2");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Ok(disk) = open(&path, Some(Format::Qcow2)) else { return };
    exercise(disk.as_ref());
});

fn exercise(disk: &dyn DiskSource) {
    // Cap the work per input: a 64 PiB virtual disk is legal, reading all of it is not a test.
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
