//! Whether a VHDX's log must be replayed before its data can be trusted (MS-VHDX 2.3): the
//! current header names a log GUID and the log holds an entry of that GUID that is valid
//! ("loge", a sequence number, a length of whole 4 KiB sectors inside the log, and a CRC-32C
//! over the whole entry). qemu refuses such an image when it opens it read-only (as
//! `qemu-img convert` does) and asks for `qemu-img check -r all`, which replays it; rbdkit
//! refuses it the same way. A log GUID with no valid entry of that GUID (a log already
//! replayed) is nothing to replay, as for qemu.
//!
//! This is a superset of qemu's search for the active sequence: any valid entry of the log's
//! GUID counts, so rbdkit never reads data a log would change.
use super::crc;
use super::header::Layout;
use crate::disk::qcow2::ByteSource;
use crate::error::{Error, Result};

/// Largest log read (the log is 1 MiB unless `log_size` says otherwise).
pub const MAX_LOG: u64 = 256 << 20;
const SECTOR: usize = 4096;

/// Refuses the image when its log needs replaying.
pub fn check(file: &dyn ByteSource, l: &Layout, shown: &str) -> Result<()> {
    if l.log_guid == [0u8; 16] || l.log.len == 0 {
        return Ok(());
    }
    let bad = |why: String| Err(Error::bad_image(shown, why));
    if !l.log.len.is_multiple_of(1 << 20) || l.log.len > MAX_LOG {
        return bad(format!(
            "VHDX log of {} bytes is invalid (whole MiB, at most {} MiB): the image is corrupt",
            l.log.len,
            MAX_LOG >> 20
        ));
    }
    let mut log = vec![0u8; l.log.len as usize];
    file.read_exact_at(&mut log, l.log.offset)
        .map_err(|e| Error::io(format!("read the VHDX log of {shown}"), e))?;
    for at in (0..log.len()).step_by(SECTOR) {
        if entry_is_valid(&log, at, &l.log_guid) {
            return bad(format!(
                "VHDX log needs to be replayed (the image was not closed cleanly): replay it with qemu-img check -r all '{}', then convert it",
                crate::text::escape(shown)
            ));
        }
    }
    Ok(())
}

/// Whether a valid log entry of `guid` starts at `at` (entries may wrap around the log).
fn entry_is_valid(log: &[u8], at: usize, guid: &[u8; 16]) -> bool {
    let h = &log[at..at + 64];
    let le32 = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().expect("4 bytes")) as usize;
    let seq = u64::from_le_bytes(h[16..24].try_into().expect("8 bytes"));
    let len = le32(8);
    if &h[..4] != b"loge"
        || &h[32..48] != guid
        || seq == 0
        || len == 0
        || len % SECTOR != 0
        || len > log.len()
    {
        return false;
    }
    // The entry, unwrapped if it runs past the end of the log.
    let entry: Vec<u8> = log[at..]
        .iter()
        .chain(&log[..at])
        .take(len)
        .copied()
        .collect();
    crc::valid(&entry, 4)
}
