//! Fuzzes the VHDX reader: any input, parsed from memory (`Vhdx::from_bytes`), must open or
//! fail with an error, and a disk that opens must map and read (as `rbdkit::disk::scan` walks
//! it) without panicking, looping or allocating without bound. Headers, region tables and log
//! entries carry CRC-32C checksums, which random mutations break: the seeds are valid images,
//! and the fuzzer reaches past a checksum only where it mutates unchecked fields (metadata
//! items, the block table, block data).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rbdkit::disk::scan;
use rbdkit::disk::vhdx::Vhdx;

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = Vhdx::from_bytes(data.to_vec(), "fuzz") {
        let _ = scan(&img, 4 << 20);
    }
});
