//! How much of a qcow2 image's virtual disk its own tables map, counted from the L1 and L2
//! tables without reading any data (for `rbdkit inspect`). Each distinct L2 table is read and
//! walked once (a table that several L1 entries share, as a hostile image may make them, is
//! counted from memory), and the bytes of tables read are capped, so the cost is bounded by
//! the file, not by what the image claims.
use super::l2::{Mapping, OFFSET_MASK};
use super::Qcow2;
use crate::error::Result;
use serde::Serialize;
use std::collections::HashMap;

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

impl Allocation {
    fn add(&mut self, o: &Allocation) {
        self.data_bytes += o.data_bytes;
        self.compressed_bytes += o.compressed_bytes;
        self.zero_bytes += o.zero_bytes;
    }
}

impl Qcow2 {
    /// Counts the allocation from the tables, reading at most `max_table_bytes` of distinct L2
    /// tables; `None` when the image has more than that.
    pub fn allocation(&self, max_table_bytes: u64) -> Result<Option<Allocation>> {
        let lay = &self.layout;
        let span = lay.l2_span();
        let size = self.header.size;
        let mut total = Allocation::default();
        // Counts of tables that map a whole span inside the disk, by table offset.
        let mut whole: HashMap<u64, Allocation> = HashMap::new();
        for (i, &l1e) in self.l1.iter().enumerate() {
            let start = i as u64 * span;
            let l2_off = l1e & OFFSET_MASK;
            if start >= size || l2_off == 0 {
                continue;
            }
            let in_disk = (size - start).min(span);
            if let Some(c) = whole.get(&l2_off).filter(|_| in_disk == span) {
                total.add(c);
                continue;
            }
            total.l2_tables += 1;
            if total.l2_tables.saturating_mul(lay.cluster_size()) > max_table_bytes {
                return Ok(None);
            }
            let c = self.count_table(l2_off, start, in_disk)?;
            total.add(&c);
            if in_disk == span {
                whole.insert(l2_off, c);
            }
        }
        Ok(Some(total))
    }

    /// The allocation of the L2 table at `l2_off`, which maps `in_disk` bytes from guest
    /// offset `start`.
    fn count_table(&self, l2_off: u64, start: u64, in_disk: u64) -> Result<Allocation> {
        let lay = &self.layout;
        let cs = lay.cluster_size();
        let table = self.cache.get(l2_off, || self.load_l2(l2_off))?;
        let mut a = Allocation::default();
        for index in 0..in_disk.div_ceil(cs) {
            let (entry, bitmap) = lay.entry(&table, index as usize);
            let len = (in_disk - index * cs).min(cs);
            let mut pos = 0;
            while pos < len {
                let (m, run) = lay.classify(entry, bitmap, pos).map_err(|why| {
                    self.bad(format!(
                        "L2 entry for guest offset {:#x}: {why}: the image is corrupt",
                        start + index * cs + pos
                    ))
                })?;
                let n = run.min(len - pos).max(1);
                match m {
                    Mapping::Data(_) => a.data_bytes += n,
                    Mapping::Compressed(..) => {
                        a.data_bytes += n;
                        a.compressed_bytes += n;
                    }
                    Mapping::Zero => a.zero_bytes += n,
                    Mapping::Unallocated => {}
                }
                pos += n;
            }
        }
        Ok(a)
    }
}
