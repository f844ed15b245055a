//! The partition table of a raw disk: an MBR (0x55AA at 510 and at least one used entry, every
//! boot indicator 0 or 0x80, as Linux requires) or a GPT (a protective MBR entry of type 0xEE
//! and a header "EFI PART" at LBA 1). A partitioned disk is still raw; a table found beside a
//! container is one more match, so the content is ambiguous. The sanity checks follow
//! `format_inspector`'s: a protective MBR must define one partition only, and the GPT header
//! must be where and what the protective MBR promises.
use super::{le32, le64, Input};
use crate::error::Result;
use serde::Serialize;

/// A partition table kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionTable {
    /// GUID partition table (behind a protective MBR).
    Gpt,
    /// DOS/MBR partition table.
    Mbr,
}

const ENTRIES: usize = 446;
const PROTECTIVE: u8 = 0xee;

/// Finds a partition table in the first sectors, and what is wrong with it.
pub(super) fn inspect(input: &Input) -> Result<Option<(PartitionTable, Vec<String>)>> {
    let Some(mbr) = input.head().get(..512) else {
        return Ok(None);
    };
    if mbr[510..512] != [0x55, 0xaa] {
        return Ok(None);
    }
    let mut used = Vec::new();
    for i in 0..4 {
        let e = &mbr[ENTRIES + i * 16..ENTRIES + (i + 1) * 16];
        // Any other boot indicator means these bytes are boot code, not a table.
        if e[0] != 0 && e[0] != 0x80 {
            return Ok(None);
        }
        if e[4] != 0 {
            let start = le32(e, 8).unwrap_or(0);
            let count = le32(e, 12).unwrap_or(0);
            used.push((i, e[4], u64::from(start), u64::from(count)));
        }
    }
    if used.is_empty() {
        return Ok(None);
    }
    let mut reasons = Vec::new();
    if used.iter().any(|&(_, t, _, _)| t == PROTECTIVE) {
        if used.len() > 1 {
            reasons.push("the protective MBR of a GPT disk defines more than one partition".into());
        }
        gpt_header(input, &mut reasons)?;
        return Ok(Some((PartitionTable::Gpt, reasons)));
    }
    for &(i, _, start, count) in &used {
        if start == 0 {
            reasons.push(format!(
                "MBR partition {} starts on the partition table",
                i + 1
            ));
        }
        if count == 0 {
            reasons.push(format!("MBR partition {} is empty", i + 1));
        }
    }
    for (n, a) in used.iter().enumerate() {
        for b in &used[n + 1..] {
            if a.2 < b.2 + b.3 && b.2 < a.2 + a.3 {
                reasons.push(format!(
                    "MBR partitions {} and {} overlap",
                    a.0 + 1,
                    b.0 + 1
                ));
            }
        }
    }
    Ok(Some((PartitionTable::Mbr, reasons)))
}

/// Checks the GPT header at LBA 1 (512-byte sectors, as the protective MBR assumes).
fn gpt_header(input: &Input, reasons: &mut Vec<String>) -> Result<()> {
    let Some(h) = input.read(512, 512)? else {
        reasons.push("no GPT header after the protective MBR".into());
        return Ok(());
    };
    if &h[..8] != b"EFI PART" {
        reasons.push("no GPT header after the protective MBR".into());
        return Ok(());
    }
    let size = le32(&h, 12).unwrap_or(0);
    if !(92..=512).contains(&size) {
        reasons.push(format!("GPT header size {size} is invalid"));
    }
    let my_lba = le64(&h, 24).unwrap_or(0);
    if my_lba != 1 {
        reasons.push(format!("GPT header says it lies at LBA {my_lba}, not 1"));
    }
    let entry_size = le32(&h, 84).unwrap_or(0);
    if entry_size < 128 || !entry_size.is_power_of_two() {
        reasons.push(format!("GPT partition entry size {entry_size} is invalid"));
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::{probe, probe_head, Container, MatchName};
    use super::PartitionTable;

    /// Writes MBR entry `i`: boot flag, type, start LBA, sectors.
    pub fn entry(d: &mut [u8], i: usize, boot: u8, kind: u8, start: u32, count: u32) {
        let e = &mut d[446 + i * 16..446 + (i + 1) * 16];
        e[0] = boot;
        e[4] = kind;
        e[8..12].copy_from_slice(&start.to_le_bytes());
        e[12..16].copy_from_slice(&count.to_le_bytes());
        d[510] = 0x55;
        d[511] = 0xaa;
    }

    /// A GPT disk: protective MBR plus a header at LBA 1.
    pub fn gpt(sectors: u32) -> Vec<u8> {
        let mut d = vec![0u8; sectors as usize * 512];
        entry(&mut d, 0, 0, 0xee, 1, sectors - 1);
        d[512..520].copy_from_slice(b"EFI PART");
        d[524..528].copy_from_slice(&92u32.to_le_bytes());
        d[536..544].copy_from_slice(&1u64.to_le_bytes());
        d[592..596].copy_from_slice(&128u32.to_le_bytes());
        d[596..600].copy_from_slice(&128u32.to_le_bytes());
        d
    }

    #[test]
    fn mbr_disk_is_raw_with_a_table() {
        let mut d = vec![0u8; 4096];
        entry(&mut d, 0, 0x80, 0x83, 2048, 100);
        let p = probe(&d).unwrap();
        assert_eq!(p.container, Container::Raw);
        assert_eq!(p.partition_table, Some(PartitionTable::Mbr));
        assert_eq!(
            p.matches,
            vec![MatchName::PartitionTable(PartitionTable::Mbr)]
        );
        assert_eq!(p.virtual_size, Some(4096));
        assert!(p.unsafe_reasons.is_empty());
        entry(&mut d, 1, 0, 0x83, 2100, 100);
        entry(&mut d, 2, 0, 0x83, 0, 0);
        assert_eq!(probe(&d).unwrap().unsafe_reasons.len(), 3);
    }

    #[test]
    fn boot_code_and_empty_tables_are_not_tables() {
        let mut d = vec![0u8; 512];
        d[510] = 0x55;
        d[511] = 0xaa;
        assert_eq!(probe_head(&d).partition_table, None);
        entry(&mut d, 0, 0x80, 0x83, 2048, 100);
        d[446 + 16] = 0x12;
        assert_eq!(probe_head(&d).partition_table, None);
        assert_eq!(probe_head(&d[..511]).partition_table, None);
    }

    #[test]
    fn gpt_checks() {
        let d = gpt(64);
        let p = probe(&d).unwrap();
        assert_eq!(p.partition_table, Some(PartitionTable::Gpt));
        assert!(p.unsafe_reasons.is_empty(), "{:?}", p.unsafe_reasons);
        let mut bad = d.clone();
        super::tests::entry(&mut bad, 1, 0, 0x83, 34, 10);
        bad[512] = b'X';
        let p = probe(&bad).unwrap();
        assert_eq!(p.unsafe_reasons.len(), 2, "{:?}", p.unsafe_reasons);
        // Only the protective MBR: the header is not there to check.
        assert_eq!(probe_head(&d[..512]).unsafe_reasons.len(), 1);
    }
}
