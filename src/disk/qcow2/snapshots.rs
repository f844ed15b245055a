//! The internal snapshot table, walked only to refuse what qemu refuses when it opens an image
//! (`qcow2_read_snapshots`): an entry with more than 1 KiB of extra data, or a table over
//! 64 MiB. rbdkit reads only the active image, so nothing here is kept. As in qemu, bytes past
//! the end of the file read as zeros (an empty entry), and the header already checked the
//! count (at most 65536) and the offset (cluster-aligned, below 2^63).
use super::bytes::ByteSource;
use super::header::Header;
use crate::error::{Error, Result};

/// Fixed part of an entry: L1 offset and size, id and name lengths, dates, VM state size,
/// extra data size.
const ENTRY_HEADER: u64 = 40;
/// Most extra data per entry (qemu's `QCOW_MAX_SNAPSHOT_EXTRA_DATA`).
const MAX_EXTRA_DATA: u64 = 1024;
/// Largest table (qemu's `QCOW_MAX_SNAPSHOTS_SIZE`: 1 KiB for each of 65536 snapshots).
const MAX_TABLE_BYTES: u64 = 1024 * 65536;

/// Reads `buf.len()` bytes at `offset`, zeros past the end of the file.
fn read_padded(file: &dyn ByteSource, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    buf.fill(0);
    let avail = file.size().saturating_sub(offset).min(buf.len() as u64) as usize;
    if avail > 0 {
        file.read_exact_at(&mut buf[..avail], offset)?;
    }
    Ok(())
}

/// Walks the snapshot table of `header` in `file`: at most 65536 reads of 40 bytes.
pub(super) fn check(file: &dyn ByteSource, header: &Header, path: &str) -> Result<()> {
    let bad = |why: String| Error::bad_image(path, why);
    let mut offset = header.snapshots_offset;
    let mut entry = [0u8; ENTRY_HEADER as usize];
    for i in 0..header.nb_snapshots {
        // Entries start 8-aligned; the offsets stay below 2^63 + 64 MiB, no overflow.
        offset = offset.next_multiple_of(8);
        read_padded(file, &mut entry, offset)
            .map_err(|e| Error::io(format!("read snapshot table of {path}"), e))?;
        let id_len = u16::from_be_bytes([entry[12], entry[13]]) as u64;
        let name_len = u16::from_be_bytes([entry[14], entry[15]]) as u64;
        let extra = u32::from_be_bytes([entry[36], entry[37], entry[38], entry[39]]) as u64;
        if extra > MAX_EXTRA_DATA {
            return Err(bad(format!(
                "snapshot table entry {i} has {extra} bytes of extra data, over qemu's limit of {MAX_EXTRA_DATA}: the snapshot table is corrupt (`qemu-img check -r all` drops it)"
            )));
        }
        offset += ENTRY_HEADER + extra + id_len + name_len;
        let table_bytes = offset - header.snapshots_offset;
        if table_bytes > MAX_TABLE_BYTES {
            return Err(bad(format!(
                "snapshot table runs to {table_bytes} bytes at entry {i}, over qemu's limit of {MAX_TABLE_BYTES}: the snapshot table is corrupt (`qemu-img check -r all` drops the overhanging snapshots)"
            )));
        }
    }
    Ok(())
}
