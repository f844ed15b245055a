//! Fuzzes format detection: any input, probed as a file (`probe`, random access: footers,
//! VHDX region and metadata tables, VMDK descriptors) and as a stream head (`probe_head`),
//! must give an answer without panicking, looping or allocating without bound, and both
//! must agree on whether the content is ambiguous when the whole input fits in the head.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rbdkit::disk::detect::{probe, probe_head, HEAD_BYTES};

fuzz_target!(|data: &[u8]| {
    let file = probe(&data.to_vec()).expect("reads from memory cannot fail");
    let head = probe_head(data);
    if data.len() <= HEAD_BYTES {
        // Only a fixed VHD's footer (at the end) can make the two differ in their matches.
        if file.container != rbdkit::disk::detect::Container::Vhd {
            assert_eq!(file.container, head.container);
        }
    }
});
