//! Fuzzes the VHDX reader: any input, parsed from memory (`Vhdx::from_bytes`), must open or
//! fail with an error, and a disk that opens must map and read (as `rbdkit::disk::scan` walks
//! it) without panicking, looping or allocating without bound. Headers and region tables carry
//! CRC-32C checksums that random mutations break, so half of the inputs get theirs recomputed
//! first (the other half keep them as mutated): the fuzzer then reaches the fields behind them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rbdkit::disk::scan;
use rbdkit::disk::vhdx::crc::crc32c_skipping;
use rbdkit::disk::vhdx::Vhdx;

/// Recomputes the checksum (at +4) of the `len`-byte structure at `at`, when it is there.
fn reseal(v: &mut [u8], at: usize, len: usize) {
    if let Some(s) = v.get_mut(at..at + len) {
        let c = crc32c_skipping(s, 4);
        s[4..8].copy_from_slice(&c.to_le_bytes());
    }
}

fuzz_target!(|data: &[u8]| {
    let mut v = data.to_vec();
    if data.first().is_some_and(|b| b & 1 == 0) || data.len() < 9 {
        for (at, len) in [(64 << 10, 4 << 10), (128 << 10, 4 << 10), (192 << 10, 64 << 10), (256 << 10, 64 << 10)] {
            reseal(&mut v, at, len);
        }
    }
    if let Ok(img) = Vhdx::from_bytes(v, "fuzz") {
        let _ = scan(&img, 4 << 20);
    }
});
