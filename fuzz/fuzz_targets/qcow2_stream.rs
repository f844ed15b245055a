//! Fuzzes the forward-only qcow2 stream decoder (what `import-raw -` runs on stdin): any input
//! must decode or fail with an error, never panic, hang or allocate without bound, and every
//! event it emits must lie inside the virtual disk. Compressed clusters are decoded too.
//! Decoding stops after a budget of data events so one input stays fast.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rbdkit::disk::qcow2::stream::{Event, Qcow2Stream};
use rbdkit::disk::qcow2::decode_cluster;
use rbdkit::Error;

/// Guest bytes of data events decoded per input before the decoder is stopped.
const DATA_BUDGET: u64 = 8 << 20;
/// Event size cap (the RBD object size in real imports; small here to cross many pieces).
const PIECE: u64 = 64 << 10;

fuzz_target!(|data: &[u8]| {
    let Ok(stream) = Qcow2Stream::open(Box::new(std::io::Cursor::new(data.to_vec())), "fuzz")
    else {
        return;
    };
    let size = stream.virtual_size();
    let cs = stream.header().cluster_size() as usize;
    let comp = stream.header().compression;
    let mut budget = DATA_BUDGET;
    let mut out = vec![0u8; cs];
    let _ = stream.decode_all(PIECE, &mut |ev| {
        let (guest, len) = match &ev {
            Event::Data { guest, bytes } => (*guest, bytes.len() as u64),
            Event::Zero { guest, len } => (*guest, *len),
            Event::Compressed { guest, input, len, .. } => {
                let _ = decode_cluster(comp, input, &mut out);
                (*guest, *len as u64)
            }
        };
        assert!(len > 0 && guest.checked_add(len).is_some_and(|e| e <= size));
        if !matches!(ev, Event::Zero { .. }) {
            budget = budget.checked_sub(len).ok_or(Error::Other("budget".into()))?;
        }
        Ok(())
    });
});
