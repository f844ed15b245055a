//! Fuzzes the VHD reader: any input, parsed from memory (`Vhd::from_bytes`), must open or fail
//! with an error, and a disk that opens must map and read (as `rbdkit::disk::scan` walks it)
//! without panicking, looping or allocating without bound.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rbdkit::disk::scan;
use rbdkit::disk::vhd::Vhd;

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = Vhd::from_bytes(data.to_vec(), "fuzz") {
        let _ = scan(&img, 4 << 20);
    }
});
