//! Fuzzes the VHD reader: any input, parsed from memory (`Vhd::from_bytes`), must open or fail
//! with an error, and a disk that opens must map and read (as `rbdkit::disk::scan` walks it)
//! without panicking, looping or allocating without bound. The footer's checksum breaks under
//! random mutation, so half of the inputs get it recomputed (at offset 0 and at the end) first:
//! the fuzzer then reaches the fields behind it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rbdkit::disk::scan;
use rbdkit::disk::vhd::footer::checksum;
use rbdkit::disk::vhd::Vhd;

fn reseal(v: &mut [u8], at: usize) {
    if let Some(f) = v.get_mut(at..at + 512) {
        let c = checksum(f, 64);
        f[64..68].copy_from_slice(&c.to_be_bytes());
    }
}

fuzz_target!(|data: &[u8]| {
    let mut v = data.to_vec();
    if data.get(100).is_some_and(|b| b & 1 == 0) {
        reseal(&mut v, 0);
        if v.len() >= 512 {
            let end = v.len() - 512;
            reseal(&mut v, end);
        }
    }
    if let Ok(img) = Vhd::from_bytes(v, "fuzz") {
        let _ = scan(&img, 4 << 20);
    }
});
