//! How much of a qcow2 image's virtual disk its own tables map, counted from the L1 and L2
//! tables without reading any data (for `rbdkit inspect`). Each distinct L2 table is read
//! once, and the bytes of tables walked are capped, so a hostile image whose L1 entries point
//! at thousands of tables costs bounded time.
use super::l2::{Mapping, OFFSET_MASK};
use super::Qcow2;
use crate::error::Result;
use serde::Serialize;
use std::collections::HashSet;

/// Guest bytes by how this image's tables map them (a backing file is not consulted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Allocation {
    /// Bytes held as data clusters (plain or compressed) in this image.
    pub data_bytes: u64,
    /// Of those, bytes held in compressed clusters.
    pub compressed_bytes: u64,
    /// Bytes that read as zeros by a zero flag.
    pub zero_bytes: u64,
    /// L2 tables allocated.
    pub l2_tables: u64,
}

impl Qcow2 {
    /// Counts the allocation from the tables, walking at most `max_table_bytes` of L2 tables;
    /// `None` when the image maps more than that.
    pub fn allocation(&self, max_table_bytes: u64) -> Result<Option<Allocation>> {
        let lay = &self.layout;
        let cs = lay.cluster_size();
        let size = self.header.size;
        let mut a = Allocation::default();
        let mut seen = HashSet::new();
        let mut walked = 0u64;
        for (i, &l1e) in self.l1.iter().enumerate() {
            let start = i as u64 * lay.l2_span();
            let l2_off = l1e & OFFSET_MASK;
            if start >= size || l2_off == 0 {
                continue;
            }
            if seen.insert(l2_off) {
                a.l2_tables += 1;
            }
            // A table shared by several L1 entries is walked once per entry (the cache keeps
            // its bytes), so the budget counts walks, not distinct tables.
            walked += 1;
            if walked.saturating_mul(cs) > max_table_bytes {
                return Ok(None);
            }
            let table = self.cache.get(l2_off, || self.load_l2(l2_off))?;
            for index in 0..lay.l2_entries() {
                let cluster_start = start + index * cs;
                if cluster_start >= size {
                    break;
                }
                let (entry, bitmap) = lay.entry(&table, index as usize);
                let in_disk = (size - cluster_start).min(cs);
                let mut pos = 0;
                while pos < in_disk {
                    let (m, run) = lay.classify(entry, bitmap, pos).map_err(|why| {
                        self.bad(format!(
                            "L2 entry for guest offset {:#x}: {why}: the image is corrupt",
                            cluster_start + pos
                        ))
                    })?;
                    let n = run.min(in_disk - pos);
                    match m {
                        Mapping::Data(_) => a.data_bytes += n,
                        Mapping::Compressed(..) => {
                            a.data_bytes += n;
                            a.compressed_bytes += n;
                        }
                        Mapping::Zero => a.zero_bytes += n,
                        Mapping::Unallocated => {}
                    }
                    pos += n.max(1);
                }
            }
        }
        Ok(Some(a))
    }
}
